"""A run announces every task and step to a listener, and nothing outside a run."""

from __future__ import annotations

from clviz.core.loop import learn_task
from clviz.core.progress import Position, listening
from clviz.experiments.profiles import make_config
from clviz.experiments.runs import run
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
        from clviz import build_method, load_backbone

        model, _, tokenizer = load_backbone()
        learn_task(
            build_method("finetune", model, tokenizer), get_stream("smoke")[0], progress=False
        )
    assert heard == []


def test_a_position_says_where_it_is():
    p = Position(2, 8, "letters", "stage 2", 10, 40)
    assert p.fraction == 2.25
    assert p.describe() == "task 3/8 letters · stage 2 · step 10/40"
    assert Position(0, 8, "shapes").describe() == "task 1/8 shapes"
