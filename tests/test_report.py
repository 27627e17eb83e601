"""The main job's report: the table, the self-contained HTML, the job end to end, a browser."""

from __future__ import annotations

import json

import pytest

from clviz.analysis.drift import curves_of
from clviz.browser import check_html
from clviz.core.result import RunResult, StageStats, TaskStats
from clviz.experiments.profiles import make_config
from clviz.main_job import main_job
from clviz.report import (
    Difference,
    build_report,
    comparison_table_html,
    headline_differences,
    noise_section,
    setup_note,
    takeaways,
    write_report,
)


def fake(
    name: str,
    transfer: float,
    last: float,
    seed: int = 0,
    steps: int = 123,
    batch: int = 32,
    trained: tuple[int, ...] = (),
) -> RunResult:
    """A three-task run of the default stream: every entry above the diagonal ``transfer``,
    every other ``last`` (so Transfer and Last are exactly those), with a config as a real run
    saves it and the steps each task trained."""
    t, w = transfer, last
    return RunResult(
        name,
        ["a", "b", "c"],
        [[w, t, t], [w, w, t], [w, w, w]],
        stream="default",
        seed=seed,
        config={"method": name, "seed": seed, "train": {"steps": steps, "batch_size": batch}},
        task_stats=[TaskStats([StageStats("train", s, 1.0, 0.5)]) for s in trained],
    )


def comparison(**overrides: RunResult) -> dict[str, RunResult]:
    """Zero-shot, fine-tuning, ZSCL and ATLAS, ATLAS 13 points below zero-shot's Transfer."""
    return {
        "zero-shot": fake("zero-shot", 50.0, 50.0),
        "finetune": fake("finetune", 40.0, 70.0),
        "zscl": fake("zscl", 49.8, 69.9),
        "atlas": fake("atlas", 37.0, 60.0),
        **overrides,
    }


def over_seeds(spread: float, against: str = "") -> dict[str, list[RunResult]]:
    """Three seeds of each method in :func:`comparison`, each metric its seed-0 value -spread,
    0, +spread (standard deviation ``spread``); the method ``against`` moves the other way."""
    return {
        name: [
            fake(name, r.metrics.transfer + d, r.metrics.last + d, seed=seed)
            for seed, d in enumerate((-spread, 0.0, spread)[:: -1 if name == against else 1])
        ]
        for name, r in comparison().items()
    }


def test_comparison_table_has_every_method_and_the_published_numbers(drift_runs):
    table = comparison_table_html(drift_runs)
    assert table.count("<tr>") == 1 + len(drift_runs)
    assert "moe-adapters-taskid" in table
    assert "<td>44.6</td>" in table  # fine-tuning's published MTIL-I Transfer


def test_comparison_table_subtracts_zero_shots_transfer_avg_and_last():
    table = comparison_table_html(comparison())
    assert "<th>Transfer − zero-shot</th><th>Avg − zero-shot</th><th>Last − zero-shot</th>" in table
    atlas = table[table.index("<td>atlas</td>") :].split("</tr>")[0]
    # Avg: (6 x 60 + 3 x 37) / 9 = 52.33, zero-shot's 50
    assert "<td>-13.0</td><td>+2.3</td><td>+10.0</td>" in atlas
    assert "<td>+0.0</td><td>+0.0</td><td>+0.0</td>" in table  # zero-shot's own row
    alone = comparison_table_html({"atlas": fake("atlas", 37.0, 60.0)})
    assert "<td>–</td><td>–</td><td>–</td>" in alone  # nothing to subtract


def test_setup_note_reads_steps_batch_and_seeds_from_the_runs():
    note = setup_note(comparison(), over_seeds(1.0), "embedded")
    assert "stream: default; profile: embedded" in note
    assert "seeds: 0, 1, 2" in note
    assert "training steps per task: 123; batch size: 32" in note
    own = make_config("embedded", "finetune", "default").train.steps
    assert f"mode: steps set by hand (the embedded profile's own budget is {own});" in note
    odd = comparison(zscl=fake("zscl", 49.8, 69.9, steps=7, batch=16))
    note = setup_note(odd, None, "embedded")
    assert "seed: 0;" in note
    assert "training steps per task DIFFER between runs: 123 (finetune, atlas); 7 (zscl)" in note
    assert "batch size DIFFER between runs: 32 (finetune, atlas); 16 (zscl)" in note
    full = {n: fake(n, 50.0, 50.0, steps=own) for n in ("zero-shot", "finetune")}
    assert "mode: full (the embedded profile's own budget)" in setup_note(full, None, "embedded")


def test_setup_note_names_a_run_that_trained_other_steps_than_its_config():
    runs = comparison(atlas=fake("atlas", 37.0, 60.0, trained=(123, 184, 184)))
    runs["finetune"] = fake("finetune", 40.0, 70.0, trained=(123, 123, 123))
    note = setup_note(runs)
    assert "atlas trained 123, 184, 184 steps on its tasks" in note
    assert "finetune trained" not in note and "profile" not in note


def test_one_seed_measures_no_noise_and_calls_no_difference_real():
    section = noise_section(comparison())
    assert "Seed noise was not measured in this report" in section
    assert "<code>clviz main --seeds 0 1 2</code>" in section
    # best vs second on Transfer (zero-shot, zscl), Avg, Last; then finetune and atlas vs
    # zero-shot (zscl's Transfer against zero-shot's is the first already)
    assert section.count("not tested against seed noise") == 5
    assert section.count("zscl 49.8") == 1
    assert "exceeds" not in section and "within seed noise" not in section
    assert "Transfer: zero-shot 50.0 vs zscl 49.8: +0.2 points" in section
    tie = noise_section(comparison(zscl=fake("zscl", 50.0, 69.9)))
    assert "zero-shot 50.0 vs zscl 50.0: no difference at this precision." in tie


def test_several_seeds_measure_each_differences_noise_seed_by_seed():
    together = headline_differences(comparison(), over_seeds(1.0))  # every method moves alike
    assert all(d.noise == pytest.approx(0.0) and d.exceeds_noise for d in together)
    diffs = headline_differences(comparison(), over_seeds(1.0, against="zscl"))
    by = {(d.metric, d.a, d.b): d for d in diffs}
    close = by[("transfer", "zero-shot", "zscl")]  # +0.2 with per-seed differences -1.8, .2, 2.2
    assert close.noise == pytest.approx(2.0) and close.exceeds_noise is False
    assert by[("transfer", "atlas", "zero-shot")].exceeds_noise is True  # -13 on every seed
    section = noise_section(comparison(), over_seeds(1.0, against="zscl"))
    assert "Differences of the means over 3 seeds" in section
    assert "standard deviation of the same difference taken seed by seed" in section  # rule
    assert "Transfer: atlas 37.0 vs zero-shot 50.0: -13.0 points; exceeds seed noise" in section
    assert "+0.2 points; within seed noise (2 × 2.00 = 4.00 points)" in section


def test_a_difference_exceeds_noise_only_beyond_twice_its_std():
    assert Difference("last", "a", "b", 52.01, 50.0, 1.0).exceeds_noise
    assert not Difference("last", "a", "b", 52.0, 50.0, 1.0).exceeds_noise
    assert not Difference("last", "a", "b", 48.0, 50.0, 1.0).exceeds_noise
    assert Difference("last", "a", "b", 50.1, 50.0, None).exceeds_noise is None


def test_takeaways_follow_the_numbers():
    lines = takeaways(comparison())
    assert lines[0].startswith("Lowest Transfer of the trained methods: atlas (37.0")
    assert lines[-1].startswith("ATLAS's Transfer (37.0) is 13.0 points below zero-shot's")
    better = takeaways(comparison(atlas=fake("atlas", 55.0, 60.0)))
    assert better[0].startswith("Lowest Transfer of the trained methods: finetune (40.0")
    assert "5.0 points above zero-shot's" in better[-1]
    assert "Transfer above zero-shot's: atlas" in " ".join(better)
    assert takeaways({"finetune": fake("finetune", 40.0, 70.0)}) == []  # no zero-shot


def test_report_embeds_plotly_once_and_draws_every_section(drift_runs, records, dmap, tmp_path):
    text = build_report(drift_runs, curves_of(records), dmap, ["finetune"], "a test")
    assert text.count("* plotly.js v") == 1  # the library header appears once: self-contained
    figures = text.count('class="plotly-graph-div"')
    assert figures >= 8
    for section in (
        "The comparison",
        "Differences and seed noise",
        "Take-aways",
        "Representation drift",
        "Routing (moe-adapters-taskid)",
    ):
        assert section in text
    steps = drift_runs["finetune"].config["train"]["steps"]
    assert f"training steps per task: {steps};" in text  # 8, from the fixture's configs
    assert "Seed noise was not measured" in text and "Over several seeds" not in text
    assert "so they describe this run, not differences shown to be real" in text
    # the UMAP animation opens on checkpoint 0: nothing plays it to the end on load
    assert "Plotly.addFrames(" in text and "Plotly.animate(" not in text
    path = write_report(tmp_path / "report.html", text)
    assert path.read_text(encoding="utf-8") == text


def test_main_job_writes_report_and_summary(tmp_path, capsys):
    paths = main_job(
        tmp_path / "out",
        stream="smoke",
        methods=["zero-shot", "finetune"],
        steps=2,
        root=tmp_path / "runs",
        progress=False,
        seeds=[0, 1],
    )
    summary = json.loads(paths["summary"].read_text())
    assert [r["label"] for r in summary["comparison"]] == ["zero-shot", "finetune"]
    assert summary["drift"]["zero-shot"]["cka_embedding_last"] == pytest.approx(1.0, abs=1e-3)
    assert summary["seeds"] == [0, 1]
    assert len(summary["over_seeds"]["finetune"]["transfer"]["values"]) == 2
    report = paths["report"].read_text(encoding="utf-8")
    assert len(report) > 1_000_000  # plotly.js is inside
    assert "Over several seeds" in report and "seeds 0, 1" in report
    assert "stream: smoke; profile: embedded; mode: fast" in report
    assert "seeds: 0, 1; training steps per task: 2;" in report
    assert "Differences of the means over 2 seeds" in report and "Take-aways" in report
    assert "the section above says which differences exceed seed noise" in report
    out = capsys.readouterr().out  # four runs, trained side by side (one worker per core)
    assert "finetune done" in out and "zero-shot done" in out
    assert (tmp_path / "out" / "logs" / "finetune.log").is_file()
    assert (tmp_path / "out" / "logs" / "finetune-seed1.log").is_file()


def test_main_job_refuses_an_unknown_method_before_training(tmp_path):
    with pytest.raises(ValueError, match="unknown method 'fine-tune'"):
        main_job(tmp_path, methods=["finetune", "fine-tune"], root=tmp_path)


def test_report_renders_in_headless_chromium(chromium, drift_runs, records, dmap, tmp_path):
    path = write_report(
        tmp_path / "report.html", build_report(drift_runs, curves_of(records), dmap, ["finetune"])
    )
    seen = check_html(path)
    assert seen.errors == []
    assert seen.drawn == seen.figures > 0
