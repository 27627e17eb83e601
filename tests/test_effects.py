"""The effects a notebook teaches: each is judged on the numbers, and class or full mode fails
when one does not show, while fast mode only reports."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from clviz.core.result import RunResult
from clviz.experiments.atlas_protocol import DownstreamResult
from clviz.teach import TakeawayError
from clviz.teach.effects import (
    Effect,
    atlas_effects,
    check_effects,
    comparison_effects,
    ddas_effects,
    distance_above_diagonal,
    drift_effects,
    forgetting_effects,
    learned_effect,
    learning_effects,
    moe_effects,
    mulki_effects,
)

FLAT = [[50.0] * 3] * 3
FORGETS = [[90.0, 40.0, 40.0], [60.0, 90.0, 40.0], [50.0, 60.0, 90.0]]
KEEPS = [[90.0, 49.0, 50.0], [90.0, 90.0, 50.0], [90.0, 90.0, 90.0]]


def run(name: str, matrix, zero_shot=(50.0, 50.0, 50.0)) -> RunResult:
    return RunResult(method=name, tasks=["a", "b", "c"], matrix=matrix, zero_shot=list(zero_shot))


def claim(effects: list[Effect], text: str) -> Effect:
    """The one effect whose claim contains ``text``."""
    (found,) = [e for e in effects if text in e.claim]
    return found


def test_a_method_learned_only_if_it_beats_zero_shot_on_every_task_left_open():
    assert learned_effect(run("finetune", FORGETS)).holds
    assert not learned_effect(run("finetune", FLAT)).holds  # equal is not learning
    dips = run("moe-adapters", [[90.0, 40.0, 40.0], [90.0, 49.0, 40.0], [90.0, 49.0, 95.0]])
    effect = learned_effect(dips)
    assert not effect.holds and "smallest -1.0 on b" in effect.numbers
    # a task zero-shot already solves (95 %) is left out: nothing much to gain there
    solved = run("moe-adapters", dips.matrix, zero_shot=(50.0, 95.0, 50.0))
    assert (
        learned_effect(solved).holds and "on 2 tasks below 90 %" in learned_effect(solved).numbers
    )
    assert not learned_effect(run("x", FLAT, zero_shot=(95.0,) * 3)).holds


def test_check_effects_fails_in_class_and_full_mode_and_reports_in_fast_mode():
    effects = [Effect("it shows", True, "x 1"), Effect("it is missing", False, "y 0")]
    lines = check_effects(effects, "fast")
    assert lines[:2] == ["✓ it shows (x 1)", "✗ it is missing (y 0)"]
    assert "CLVIZ_MODE=class" in lines[2]
    for mode in ("class", "full"):
        with pytest.raises(TakeawayError, match=r"1 effect\(s\) .* in " + mode + r" mode: it is"):
            check_effects(effects, mode)
    assert check_effects(effects[:1], "class") == ["✓ it shows (x 1)"]


def test_distance_above_diagonal_reads_only_tasks_not_learned_yet():
    # above the diagonal: (40, 40, 40) against 50 -> 10 points; the rest is ignored
    assert distance_above_diagonal(run("finetune", FORGETS), run("zero-shot", FLAT)) == 10.0


def test_stream_effects_show_for_forgetting_and_not_for_a_model_that_kept_everything():
    shows = {"zero-shot": run("zero-shot", FLAT), "finetune": run("finetune", FORGETS)}
    assert all(e.holds for e in learning_effects(shows))
    assert all(e.holds for e in forgetting_effects(shows))
    quiet = {**shows, "finetune": run("finetune", FLAT)}
    assert not any(e.holds for e in learning_effects(quiet))
    with_zscl = {**shows, "zscl": run("zscl", KEEPS)}
    effects = forgetting_effects(with_zscl)
    assert claim(effects, "zscl learned").holds  # checked before what it kept
    assert effects.index(claim(effects, "zscl learned")) < effects.index(
        claim(effects, "fine-tuning forgets")
    )
    assert claim(effects, "distillation").numbers == "zscl forgetting 0.0 against 35.0"
    assert claim(effects, "zscl keeps Transfer").holds


def test_moe_and_ddas_effects():
    runs = {
        "zero-shot": run("zero-shot", FLAT),
        "finetune": run("finetune", FORGETS),
        "moe-adapters-taskid": run("moe-adapters-taskid", [[90.0, 40.0, 40.0]] * 3),
        "moe-adapters": run("moe-adapters", KEEPS),
    }
    assert claim(moe_effects(runs), "forget less").holds
    assert not claim(moe_effects(runs), "moe-adapters-taskid learned").holds  # 40 < 50 on b
    effects = ddas_effects(runs)
    for text in ("newest router", "rescues", "closer", "moe-adapters holds", "keeps Transfer"):
        assert claim(effects, text).holds, text
    runs["moe-adapters"] = runs["moe-adapters-taskid"]
    assert not claim(ddas_effects(runs), "rescues").holds
    assert not claim(ddas_effects(runs), "moe-adapters keeps Transfer").holds  # 40 vs 50


def test_atlas_effects_need_less_forgetting_a_stage_spread_and_two_different_orders():
    upstream = {"atlas": run("atlas", KEEPS), "finetune": run("finetune", FORGETS)}

    def order(stage2: float) -> SimpleNamespace:
        accuracy = {"stage1": [50.0], "stage2": [stage2], "both": [53.0], "fresh": [55.0]}
        return SimpleNamespace(
            upstream=upstream, downstream=DownstreamResult(["a"], ["image"], accuracy)
        )

    forgets, spread, orders = atlas_effects({"multi-first": order(52.0), "uni-first": order(54.0)})
    assert forgets.holds and spread.holds and orders.holds
    assert not atlas_effects({"multi-first": order(52.0), "uni-first": order(52.0)})[2].holds


def test_mulki_drift_and_comparison_effects():
    runs = {
        "zero-shot": run("zero-shot", FLAT),
        "finetune": run("finetune", FORGETS),
        "mulki": run("mulki", KEEPS),
    }
    ablation = {"all stages": run("mulki", KEEPS), "without 2 · adding": run("mulki", FORGETS)}
    assert all(e.holds for e in mulki_effects(runs, ablation))
    same = {"all stages": run("mulki", KEEPS), "without 3": run("mulki", KEEPS)}
    assert not claim(mulki_effects(runs, same), "stage off").holds
    runs["moe-adapters"] = run("moe-adapters", KEEPS)
    drift = {
        "finetune": {"cka_embedding_last": 0.9},
        "mulki": {"cka_embedding_last": 0.99},
        "moe-adapters": {"cka_embedding_last": 0.8},  # moved more, forgot less
    }
    assert [e.holds for e in drift_effects(drift, runs)] == [True, True, True]
    drift["mulki"]["cka_embedding_last"] = 0.905
    assert not drift_effects(drift, runs)[1].holds
    assert [e.holds for e in comparison_effects(runs)] == [True] * 5  # 3 learned, then 2
