"""The main job's report: the table, the self-contained HTML, the job end to end, a browser."""

from __future__ import annotations

import json

import pytest

from clviz.analysis.drift import curves_of
from clviz.browser import check_html
from clviz.experiments.main_job import main_job
from clviz.report import build_report, comparison_table_html, write_report


def test_comparison_table_has_every_method_and_the_published_numbers(drift_runs):
    table = comparison_table_html(drift_runs)
    assert table.count("<tr>") == 1 + len(drift_runs)
    assert "moe-adapters-taskid" in table
    assert "<td>44.6</td>" in table  # fine-tuning's published MTIL-I Transfer


def test_report_embeds_plotly_once_and_draws_every_section(drift_runs, records, dmap, tmp_path):
    text = build_report(drift_runs, curves_of(records), dmap, ["finetune"], "a test")
    assert text.count("* plotly.js v") == 1  # the library header appears once: self-contained
    figures = text.count('class="plotly-graph-div"')
    assert figures >= 8
    for section in ("The comparison", "Representation drift", "Routing (moe-adapters-taskid)"):
        assert section in text
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
