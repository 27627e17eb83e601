"""Take-away checks fail when the numbers contradict the sentence, and the take-aways are
written from the numbers (the exercise checkers are tested in ``test_exercises.py``)."""

from __future__ import annotations

import pytest

from clviz.teach import TakeawayError, expect


def test_expect_returns_the_claim_or_fails_naming_it():
    assert expect(1 < 2, "one is less than two") == "one is less than two"
    with pytest.raises(TakeawayError, match=r"'fine-tuning forgets' does not hold .*BWT \+2.0"):
        expect(False, "fine-tuning forgets", "BWT +2.0")


def _result(name, matrix):
    from clviz.core.result import RunResult

    return RunResult(method=name, tasks=["a", "b", "c"], matrix=matrix, zero_shot=[50.0] * 3)


def test_forgetting_takeaways_follow_the_numbers():
    from clviz.teach.takeaways import forgetting_takeaways

    zs = _result("zero-shot", [[50.0] * 3] * 3)
    forgets = _result("finetune", [[90.0, 40.0, 40.0], [60.0, 90.0, 40.0], [50.0, 60.0, 90.0]])
    lines = forgetting_takeaways({"zero-shot": zs, "finetune": forgets})
    assert lines[0].startswith("Fine-tuning lost 10.0 points of Transfer (40.0")
    assert lines[1].startswith("It forgot 35.0 points")  # (90-50 + 90-60) / 2
    still = _result("finetune", [[51.0, 50.0, 50.0], [51.0, 51.0, 50.0], [51.0, 51.0, 51.0]])
    lines = forgetting_takeaways({"zero-shot": zs, "finetune": still})
    assert lines[0].startswith("Fine-tuning kept its Transfer") and "little" in lines[1]


def test_versus_says_above_below_or_level():
    from clviz.teach.takeaways import versus

    up = _result("a", [[60.0, 60.0, 60.0]] * 3)
    down = _result("b", [[60.0, 40.0, 40.0]] * 3)
    same = _result("c", [[60.0, 59.5, 59.5]] * 3)
    runs = {"a": up, "b": down, "c": same}
    assert versus(runs, "a", "b") == "a's Transfer (60.0) is above b's (40.0)"
    assert versus(runs, "b", "a").startswith("b's Transfer (40.0) is below")
    assert "about level" in versus(runs, "a", "c")


def test_drift_and_comparison_takeaways_quote_the_numbers():
    from clviz.teach.takeaways import comparison_takeaways, drift_takeaways

    zs = _result("zero-shot", [[50.0] * 3] * 3)
    ft = _result("finetune", [[90.0, 40.0, 40.0], [60.0, 90.0, 40.0], [50.0, 60.0, 90.0]])
    moe = _result("moe-adapters", [[90.0, 50.0, 50.0], [90.0, 90.0, 50.0], [90.0, 90.0, 90.0]])
    runs = {"zero-shot": zs, "finetune": ft, "moe-adapters": moe}
    summary = {"cka_embedding_last": 0.9, "modality_gap_initial": 0.5, "modality_gap_last": 0.7}
    moe_summary = {**summary, "cka_embedding_last": 0.99}
    lines = drift_takeaways({"finetune": summary, "moe-adapters": moe_summary}, runs)
    assert "CKA 0.900" in lines[0] and "less than fine-tuning" in lines[1]
    lines = comparison_takeaways(runs)
    assert lines[0].startswith("Lowest Transfer of the trained methods: finetune (40.0")
    assert "as on MTIL" in lines[0] and "moe-adapters (50.0)" in lines[1]
    assert "moe-adapters (+40.0 points)" in lines[2]


def test_atlas_takeaways_rank_the_ablations():
    from types import SimpleNamespace

    from clviz.experiments.atlas_protocol import DownstreamResult
    from clviz.teach.takeaways import atlas_takeaways

    upstream = {
        "atlas": _result("atlas", [[90.0, 40.0, 40.0], [90.0, 90.0, 40.0], [90.0, 90.0, 90.0]]),
        "finetune": _result(
            "finetune", [[90.0, 40.0, 40.0], [60.0, 90.0, 40.0], [50.0, 60.0, 90.0]]
        ),
    }
    down = DownstreamResult(
        ["a"], ["image"], {"stage1": [52.0], "stage2": [55.0], "both": [55.5], "fresh": [50.0]}
    )
    lines = atlas_takeaways({"multi-first": SimpleNamespace(upstream=upstream, downstream=down)})
    assert lines[0] == (
        "multi-first: upstream, ATLAS forgot nothing (+0.0), "
        "continual fine-tuning forgot 35.0 points."
    )
    assert lines[1].startswith("multi-first: downstream, both transfers best (+5.5")
    assert lines[1].endswith("ahead by less than a point.")


def test_moe_takeaways_and_reuse():
    from clviz.teach.takeaways import moe_takeaways, reuse_takeaway

    zs = _result("zero-shot", [[50.0] * 3] * 3)
    ft = _result("finetune", [[90.0, 40.0, 40.0], [60.0, 90.0, 40.0], [50.0, 60.0, 90.0]])
    moe = _result("moe-adapters-taskid", [[90.0, 45.0, 45.0], [90.0, 90.0, 45.0], [90.0] * 3])
    lines = moe_takeaways({"zero-shot": zs, "finetune": ft, "moe-adapters-taskid": moe})
    assert "MoE-Adapters forgot nothing (+0.0) where fine-tuning forgot 35.0 points" in lines[0]
    assert "Transfer 45.0 against the untouched model's 50.0 - tasks not learned" in lines[1]
    assert reuse_takeaway([0.2, 0.4]).startswith("Later tasks sent on average 30 %")
    assert reuse_takeaway([]).startswith("One task only")


def test_zeroshot_takeaways_name_the_closest_task_to_chance_and_the_room_left():
    from clviz.teach.takeaways import zeroshot_takeaways

    chance = {"shapes": 12.5, "colors": 12.5, "counting": 20.0}
    lines = zeroshot_takeaways({"shapes": 40.0, "colors": 95.0, "counting": 25.0}, chance)
    assert lines[0].startswith("Every task starts above chance: the closest is counting, 5.0")
    assert lines[1].startswith("2 of 3 tasks are below 90 % (the lowest, counting, at 25.0 %)")
    lines = zeroshot_takeaways({"shapes": 12.9, "colors": 95.0, "counting": 92.0}, chance)
    assert lines[0] == (
        "2 of 3 tasks start above chance; shapes sit at chance level: the tiny CLIP cannot "
        "read them yet."
    )
    assert lines[1].startswith("1 of 3 tasks are below 90 %")
    solved = zeroshot_takeaways({"shapes": 91.0, "colors": 95.0, "counting": 92.0}, chance)
    assert solved[1].startswith("Zero-shot already solves every task")


def test_ddas_takeaways_say_whether_transfer_was_rescued_and_what_guessing_cost():
    from clviz.teach.takeaways import ddas_takeaways

    keeps = [[90.0, 50.0, 50.0], [88.0, 90.0, 50.0], [88.0, 88.0, 90.0]]
    runs = {
        "zero-shot": _result("zero-shot", [[50.0] * 3] * 3),
        "moe-adapters-taskid": _result(
            "moe-adapters-taskid", [[90.0, 40.0, 40.0], [90.0, 90.0, 40.0], [90.0, 90.0, 90.0]]
        ),
        "moe-adapters": _result("moe-adapters", keeps),
    }
    rescued, cost = ddas_takeaways(runs)
    assert rescued.startswith("Without a task id, DDAS kept Transfer at 50.0 (zero-shot 50.0;")
    assert "went back to the untouched backbone" in rescued
    assert "guessing the router costs" in cost  # Last 88.7 against the oracle's 90
    runs["moe-adapters"] = runs["moe-adapters-taskid"]
    rescued, cost = ddas_takeaways(runs)
    assert "did not rescue" in rescued and "cost almost nothing" in cost
