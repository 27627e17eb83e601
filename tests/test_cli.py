"""The clviz command line: tables, JSON, and clear errors."""

from __future__ import annotations

import json

import pytest

from clviz.cli import main
from clviz.errors import REPORT_BUGS, InputError


def test_list_names_streams_and_tasks(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "default-fewshot" in out and "emoji-animals" in out and "OpenMoji" in out
    assert "zscl" in out and "wise-ft" in out


def test_zeroshot_json_covers_every_task(capsys, tiny):
    """Each task's accuracy is what the zero-shot method scores through the evaluation path
    the runs use (its predictor on the task's format), to the two decimals printed."""
    from clviz.core.evaluation import accuracy
    from clviz.core.formats import make_format
    from clviz.methods.zeroshot import ZeroShot
    from clviz.world.tasks import get_stream

    assert main(["zeroshot", "--stream", "extra", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["task"] for r in report["zero_shot"]] == ["emoji-vehicles", "layout"]
    model, _, tokenizer = tiny
    for row, task in zip(report["zero_shot"], get_stream("extra"), strict=True):
        assert row["classes"] == task.num_classes
        assert row["chance"] == round(100 / row["classes"], 2)
        expected = accuracy(ZeroShot(model, tokenizer), make_format(task, tokenizer))
        assert row["accuracy"] == round(expected, 2)


def test_zeroshot_table(capsys):
    assert main(["zeroshot", "--stream", "extra"]) == 0
    out = capsys.readouterr().out
    assert "chance %" in out and "layout" in out and "mean" in out


def test_unknown_stream_is_a_clear_error(capsys):
    assert main(["zeroshot", "--stream", "mtil-xl"]) == 2
    err = capsys.readouterr().err
    assert "unknown stream 'mtil-xl'" in err and "default-fewshot" in err


def test_unknown_notebook_is_a_clear_error(capsys):
    assert main(["notebooks", "99_nothing"]) == 2
    assert "valid: 00_quickstart" in capsys.readouterr().err


def test_metrics_command(tmp_path, capsys):
    path = tmp_path / "m.csv"
    path.write_text("80,30,20\n60,90,25\n50,70,85\n")
    assert main(["metrics", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["transfer"] == 26.25
    path.write_text("80,30\n60\n")
    assert main(["metrics", str(path)]) == 2
    assert "row 2 has 1 entries" in capsys.readouterr().err


def test_run_command_writes_results(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--method", "zero-shot", "--stream", "smoke", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "zero-shot" and len(results["matrix"]) == 3
    assert "Transfer" in capsys.readouterr().out
    assert (
        main(["run", "--method", "finetune", "--stream", "smoke", "--out", str(out), "--fast"]) == 2
    )
    assert "another run" in capsys.readouterr().err


def test_python_dash_m_clviz_is_the_cli():
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "clviz", "list"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "moe-adapters" in done.stdout


def test_run_rejects_unknown_method_and_bad_options(capsys):
    assert main(["run", "--method", "ewc"]) == 2
    assert "valid methods:" in capsys.readouterr().err
    assert (
        main(["run", "--method", "wise-ft", "--options", '{"beta": 2}', "--stream", "smoke"]) == 2
    )
    assert "valid options: alpha" in capsys.readouterr().err


def test_metrics_refuses_bad_matrices_and_prints_strict_json(tmp_path, capsys):
    cases = {
        "over.csv": ("150,30\n60,90\n", "150 is not an accuracy in percent"),
        "under.csv": ("80,30\n-40,90\n", "-40 is not an accuracy in percent"),
        "one.csv": ("70\n", "1 x 1"),
        "binary.csv": (bytes(range(256)), "is not a text file"),
        "garbled.json": ("[[80, 30], [60", "is not valid JSON"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        assert main(["metrics", str(path), "--json"]) == 2
        err = capsys.readouterr().err
        assert message in err and str(path) in err, (name, err)
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufefftask;a;b\n80,5;30\n60;90\n".encode())
    assert main(["metrics", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)  # strict JSON: no NaN anywhere
    assert summary["transfer"] == 30.0 and summary["avg"] == pytest.approx(65.125)


def test_flags_are_checked_by_name(capsys):
    for flag, value in (("--seed", "-1"), ("--steps", "0"), ("--steps", "-5")):
        with pytest.raises(SystemExit):
            main(["run", "--method", "finetune", flag, value])
        assert f"argument {flag}" in capsys.readouterr().err


def test_class_incremental_runs_the_reference_recipe(tmp_path, capsys):
    out = tmp_path / "ci"
    args = ["class-incremental", "--method", "moe-adapters-taskid", "--stream", "smoke"]
    args += ["--steps", "2"]
    assert main([*args, "--out", str(out)]) == 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["method"] == "moe-adapters-taskid"  # one router, no DDAS
    assert saved["config"]["options"]["one_router"] is True
    assert saved["extra"]["recipe"] == {"template": "a bad photo of a {}.", "epochs": 1}
    assert "Avg" in capsys.readouterr().out
    assert main([*args[:2], "lwf", *args[3:], "--out", str(tmp_path / "x")]) == 2
    assert "the reference recipe has no 'lwf'" in capsys.readouterr().err
    assert main([*args, "--train-steps", "3", "--out", str(tmp_path / "y")]) == 2
    assert "--train-steps is for --recipe embedded" in capsys.readouterr().err


def test_an_expected_error_is_one_line_and_a_bug_keeps_its_traceback(monkeypatch, capsys):
    """ClvizError (what was asked for, or what the disk holds) prints as one line; any other
    exception is a bug: its traceback stays, with where to report it."""
    import clviz.cli as cli

    def expected(args):
        raise InputError("the stream 'x' is unknown; pick one of: default")

    def bug(args):
        raise ZeroDivisionError("division by zero")

    parser = cli.build_parser()
    for func, code in ((expected, 2), (bug, 1)):
        monkeypatch.setattr(cli, "build_parser", lambda p=parser, f=func: _with(p, f))
        assert cli.main(["list"]) == code
    expected_err, bug_err = capsys.readouterr().err.split("Traceback", 1)
    assert (
        expected_err.strip() == "clviz list: error: the stream 'x' is unknown; pick one of: default"
    )
    assert "ZeroDivisionError: division by zero" in bug_err
    assert "this is a bug in clviz" in bug_err and REPORT_BUGS in bug_err


def _with(parser, func):
    """``parser`` with the ``list`` sub-command running ``func``."""
    parser._subparsers._group_actions[0].choices["list"].set_defaults(func=func)
    return parser
