"""What methods declare, and what the loop checks before any work: the task formats a method
learns, the one learning-rate resolver (its order, its conflicts, the rates it records), the
registry that finds every method file, and MoE-Adapters' record read from the evaluation."""

from __future__ import annotations

import copy
import dataclasses
import inspect
from pathlib import Path

import pytest
import torch

import clviz.methods
from clviz.cli import main
from clviz.core import run_stream
from clviz.core.config import RunConfig, TrainConfig
from clviz.core.formats import ClassificationFormat, TaskFormat, make_format
from clviz.core.loop import learn_task
from clviz.core.rates import resolve_rate
from clviz.errors import InputError
from clviz.experiments.runs import check_config
from clviz.methods import METHODS, build_method
from clviz.world.multimodal import make_pair_task
from clviz.world.tasks import make_task


# ---------------------------------------------------------------- task formats
@pytest.mark.parametrize("name", ["lwf", "zscl", "replay", "mulki", "moe-adapters"])
def test_a_format_the_method_does_not_learn_is_refused_before_any_training(
    name, make_method, small_task, monkeypatch
):
    method = make_method(name)
    assert method.formats == (ClassificationFormat,)
    began = []
    monkeypatch.setattr(method, "begin_task", lambda *args: began.append(args))
    matching = make_pair_task("matching", train_per_class=2, test_per_class=2)
    with pytest.raises(InputError) as err:
        run_stream(method, [small_task, matching], progress=False)
    assert "learns image classification tasks only" in str(err.value)
    assert "'matching' is a image-text matching task" in str(err.value)
    assert began == [], "refused before the first task began"


def test_the_methods_that_learn_every_format_say_so():
    every = sorted(name for name, cls in METHODS.items() if cls.formats == (TaskFormat,))
    assert every == ["atlas", "finetune", "moe-adapters-taskid", "wise-ft", "zero-shot"]


# ---------------------------------------------------------------- learning rates
@dataclasses.dataclass
class WithRate:
    lr: float = 5e-3


@dataclasses.dataclass
class WithoutRate:
    alpha: float = 0.5


def test_the_rate_resolver_order():
    """The per-task table, else the method's own lr option, else the run's rate; a group's
    scale multiplies the base."""
    table = TrainConfig(lr=1e-4, task_lr={"shapes": 3e-4})
    assert resolve_rate(table, WithRate(), "shapes") == 3e-4
    assert resolve_rate(table, WithRate(), "digits") == 5e-3
    assert resolve_rate(table, WithoutRate(), "digits") == 1e-4
    assert resolve_rate(table, WithRate(), "digits", scale=100) == pytest.approx(0.5)


def test_an_lr_option_beside_a_per_task_table_is_an_error_naming_both():
    config = RunConfig(
        "moe-adapters-taskid",
        stream="smoke",
        train=TrainConfig(task_lr={"shapes": 1e-3}),
        options={"lr": 2e-3},
    )
    with pytest.raises(InputError, match=r"option lr \(0\.002\) and the per-task rates"):
        check_config(config)
    check_config(dataclasses.replace(config, options={}))  # the table alone is fine


def test_a_run_rate_the_method_would_ignore_is_refused_by_the_cli(capsys):
    code = main(["run", "--method", "moe-adapters-taskid", "--fast", "--lr", "1e-3"])
    assert code == 2
    message = capsys.readouterr().err
    assert "takes its rate from its own lr option" in message
    assert """--options '{"lr": 0.001}'""" in message


def test_every_stage_records_the_rates_it_used(make_method, small_task):
    stats = learn_task(make_method("finetune"), small_task, progress=False)
    assert [s.rates for s in stats.stages] == [[1e-4]]
    atlas = make_method("atlas")
    learn_task(atlas, small_task, 0, progress=False)
    second = make_task("digits", seed=0, train_per_class=4, test_per_class=2)
    stats = learn_task(atlas, second, 1, progress=False)
    o = atlas.options
    assert [s.rates for s in stats.stages] == [
        [pytest.approx(o.lr * o.query_lr_scale)],  # stage 1: the queries, 100x
        [o.lr],  # stage 2: the new adapter, key and query (classification: no head)
    ]


# ---------------------------------------------------------------- the registry
def test_the_registry_finds_every_method_file_by_itself():
    """No method module is named in ``clviz/methods/__init__.py``: each one that registers a
    class is found (adding a method is adding one file)."""
    init = Path(inspect.getfile(clviz.methods)).read_text()
    defining = {cls.__module__.split(".")[2] for cls in METHODS.values()}  # zscl, moe, atlas...
    assert defining and not any(f"import {module}" in init for module in defining)
    orders = [cls.listing_order for cls in METHODS.values()]
    assert orders == sorted(orders) and list(METHODS)[:2] == ["zero-shot", "finetune"]


# ---------------------------------------------------------------- MoE-Adapters' record
def test_the_ddas_record_reads_the_last_evaluation(tiny, small_task, monkeypatch):
    """The selection report reuses the errors the final evaluation row computed: no pass of
    the backbone over any test set, and the numbers a fresh pass gives."""
    model, _, tokenizer = tiny
    train = TrainConfig(steps=2, batch_size=8)
    options = {"experts": 4, "freeze_per_task": 1, "generic_images": 32, "ddas_steps": 5}
    torch.manual_seed(0)
    method = build_method("moe-adapters", copy.deepcopy(model), tokenizer, train, options)
    second = make_task("digits", seed=0, train_per_class=4, test_per_class=3)
    result = run_stream(method, [small_task, second], progress=False)
    passes = []
    features = method._backbone_features
    monkeypatch.setattr(
        method, "_backbone_features", lambda x: passes.append(len(x)) or features(x)
    )
    monkeypatch.setattr(method.generic_features, "compute", method._backbone_features)
    assert result.tasks == ["shapes", "digits"]
    formats = [make_format(t, tokenizer) for t in (small_task, second)]
    kept = method.record(formats)
    assert passes == [], "the record ran the backbone again"
    method.test_errors.clear()
    method.generic_features.clear()
    fresh = method.record(formats)
    assert passes, "without the evaluation's errors the record computes them"
    for mode, report in kept.ddas.items():
        assert report.confusion == fresh.ddas[mode].confusion
        assert report.correct == pytest.approx(fresh.ddas[mode].correct)
        for name, errors in report.best_errors.items():
            assert errors == pytest.approx(fresh.ddas[mode].best_errors[name], abs=1e-5)
