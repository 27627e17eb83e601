"""A run announces every task and step to a listener, and nothing outside a run; it draws
its progress as one text line, never a widget, so a notebook's kernel shows busy."""

from __future__ import annotations

from tqdm.std import tqdm

from clviz.core import progress
from clviz.core.loop import learn_task
from clviz.core.progress import Position, listening
from clviz.experiments.profiles import make_config
from clviz.experiments.runs import run
from clviz.experiments.workers import RunBars
from clviz.world import get_stream


def test_a_run_announces_each_task_and_step_in_order(tmp_path):
    heard: list[Position] = []
    with listening(heard.append):
        run(make_config("embedded", "finetune", "smoke", steps=3), root=tmp_path, progress=False)
    steps = [(p.task, p.step) for p in heard if p.steps]
    assert steps == [(t, s) for t in range(3) for s in (1, 2, 3)]
    assert [p.fraction for p in heard if p.steps][-1] == 3.0
    assert {p.tasks for p in heard} == {3}


def test_a_lone_task_and_a_finished_run_announce_nothing(tmp_path):
    config = make_config("embedded", "finetune", "smoke", steps=2)
    run(config, root=tmp_path, progress=False)
    heard: list[Position] = []
    with listening(heard.append):
        run(config, root=tmp_path, progress=False)  # reused: nothing trains
        from clviz import TrainConfig, build_method, load_backbone

        model, _, tokenizer = load_backbone()
        lone = build_method("finetune", model, tokenizer, TrainConfig(steps=2, batch_size=8))
        learn_task(lone, get_stream("smoke")[0], progress=False)
    assert heard == []


def test_a_position_says_where_it_is():
    p = Position(2, 8, "letters", "stage 2", 10, 40)
    assert p.fraction == 2.25
    assert p.describe() == "task 3/8 letters · stage 2 · step 10/40"
    assert Position(0, 8, "shapes").describe() == "task 1/8 shapes"


def test_a_run_draws_one_text_line_that_follows_its_steps(tmp_path, capsys):
    """One bar per run (no nested task bar), redrawn in place with the task and the step."""
    run(make_config("embedded", "finetune", "smoke", steps=3), root=tmp_path, progress=True)
    drawn = capsys.readouterr().err
    assert "finetune on smoke  task 3/3" in drawn and "step 3/3" in drawn
    assert "\x1b[A" not in drawn  # no cursor movement: a second line would need it
    assert "it/s" not in drawn  # the inner per-task bar stays off inside a run


def test_in_a_notebook_bars_are_text_on_stdout_never_widgets(monkeypatch, capsys):
    """A widget bar makes JupyterLab show the kernel Idle while a cell trains (the module's
    docstring); a text bar keeps it busy, and stdout is not shaded as an error."""
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    with progress.run_bar("lwf", 2) as bar:
        progress.task_started(0, 2, "shapes")
        progress.step_taken("train", 5, 10)
    assert type(bar) is tqdm  # tqdm.std, not tqdm.notebook's widget
    out = capsys.readouterr()
    assert "lwf  task 1/2 shapes · step 5/10" in out.out and out.err == ""


def test_the_workers_line_counts_runs_and_shows_each_running_one(capsys):
    board = RunBars(3, "2 workers")
    board.show([("lwf", Position(1, 4, "shapes", "train", 5, 10))])
    board.show([("zscl", Position(0, 4, "letters", "train", 2, 10))])
    board.finish("lwf", "lwf done (log: lwf.log)")
    board.close()
    out = capsys.readouterr()
    drawn = out.err
    assert "2 workers, 0/3 runs done: lwf task 2/4 shapes · step 5/10" in drawn
    assert "| zscl task 1/4 letters · step 2/10" in drawn
    assert "[1/3] lwf done (log: lwf.log)" in out.out  # a finished run's line: on stdout
    assert "2 workers, 1/3 runs done: zscl task 1/4" in drawn
    assert "\x1b[A" not in drawn
