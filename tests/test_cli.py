"""The clviz command line: tables, JSON, and clear errors."""

from __future__ import annotations

import json

from clviz.cli import main


def test_list_names_streams_and_tasks(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "default-fewshot" in out and "emoji-animals" in out and "OpenMoji" in out


def test_zeroshot_json_covers_every_task(capsys):
    assert main(["zeroshot", "--stream", "extra", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["task"] for r in report["zero_shot"]] == ["emoji-vehicles", "layout"]
    for row in report["zero_shot"]:
        assert 0 <= row["accuracy"] <= 100 and row["chance"] == round(100 / row["classes"], 2)


def test_zeroshot_table(capsys):
    assert main(["zeroshot", "--stream", "extra"]) == 0
    out = capsys.readouterr().out
    assert "chance %" in out and "layout" in out and "mean" in out


def test_unknown_stream_is_a_clear_error(capsys):
    assert main(["zeroshot", "--stream", "mtil-xl"]) == 2
    err = capsys.readouterr().err
    assert "unknown stream 'mtil-xl'" in err and "default-fewshot" in err


def test_unknown_notebook_is_a_clear_error(capsys):
    assert main(["main", "--notebooks", "99_nothing"]) == 2
    assert "valid: 00_quickstart" in capsys.readouterr().err
