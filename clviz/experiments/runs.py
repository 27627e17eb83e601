"""A method on a task stream, as ``clviz run`` does it: config -> store -> the one loop.

:func:`run` is what the CLI, the notebooks, the main job and the ablations call: it reuses a
finished run from its :class:`~clviz.core.store.RunStore`, resumes an interrupted one, and
otherwise builds the stream, the backbone and the method from the config, then hands them to
:func:`clviz.core.loop.run_stream` with the drift probe watching. The untouched backbone's
zero-shot row is computed once per backbone and stream, and shared by every method's run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch

from clviz.analysis.drift import DriftObserver, make_probe
from clviz.backbone import load_backbone
from clviz.core import distributed
from clviz.core.config import RunConfig, digest_of
from clviz.core.device import place
from clviz.core.evaluation import EveryTask
from clviz.core.formats import ClassificationFormat, make_format
from clviz.core.integrity import force_requested, forcing
from clviz.core.lock import check_folder_setting
from clviz.core.loop import Observer, run_stream
from clviz.core.method import Method
from clviz.core.rates import check_rates
from clviz.core.result import RunResult
from clviz.core.store import RunStore, memo, results_root, weights_digest
from clviz.core.validation import AT_LEAST_ONE, MAX_SEED, Range, check_train, check_value
from clviz.data.streams import (
    check_stream,
    is_real_stream,
    load_stream,
    real_streams,
    stream_task_names,
)
from clviz.errors import InputError, MissingFileError
from clviz.experiments.budget import check_memory
from clviz.experiments.inputs import data_fingerprint, run_identity
from clviz.methods import build_method, get_method
from clviz.methods.registry import make_options
from clviz.methods.zeroshot import ZeroShot


def check_config(config: RunConfig, real_data: bool | None = None) -> None:
    """Everything ``config`` asks for, checked before any work: the method and its options
    (types, ranges), the training budget (at least one step per task), the seed, and that
    ``data_root`` goes with real data (``real_data``; by default: a real stream). Raises a
    ClvizError naming the setting."""
    cls = get_method(config.method)
    make_options(cls, config.options)
    check_train(config.train)
    check_rates(config.method, cls.Options, config.options, config.train)
    check_value("seed (--seed)", config.seed, int, Range(0, MAX_SEED))
    check_value("eval_batch_size", config.eval_batch_size, int, AT_LEAST_ONE)
    check_value("image_size", config.image_size, int | None, AT_LEAST_ONE)
    check_stream(config.stream)
    if real_data is None:
        real_data = is_real_stream(config.stream)
    if config.data_root is not None and not real_data:
        raise InputError(
            f"--data-root (data_root={config.data_root!r}) is for real datasets (the streams "
            f"{', '.join(real_streams())}, or cifar100); stream {config.stream!r} is embedded "
            "and would ignore it: leave --data-root out"
        )
    check_memory(config, len(stream_task_names(config.stream)))


def run_store(
    config: RunConfig,
    out_dir: str | Path | None = None,
    *,
    root: str | Path | None = None,
    force: bool = False,
) -> RunStore:
    """Where ``config``'s run lives: ``out_dir``, or
    ``<root>/<method>_<stream>_seed<seed>_steps<steps>_<hash>`` (every setting that changes
    results is in the hash, and so is the content of what the run reads:
    :mod:`clviz.experiments.inputs`; the main ones are in the name too)."""
    identity = run_identity(config)
    if out_dir is not None:
        check_folder_setting(out_dir, "--out")
        return RunStore(out_dir, identity, force=force)
    stream = config.stream.replace(":", "-").replace(",", "+")  # a subset, safe on any disk
    steps = config.train.steps if config.train.task_steps is None else "pertask"
    name = f"{config.method}_{stream}_seed{config.seed}_steps{steps}"
    return RunStore.named(name, identity, root=root, force=force)


def zero_shot_row(
    model, tokenizer, evaluation: EveryTask, config: RunConfig, force: bool = False
) -> list[float | None]:
    """The untouched backbone under ``evaluation``, cached per weights and evaluation data in
    ``<results root>/_cache/zero-shot`` (every method of a stream shares it; sealed, and with
    ``force`` rebuilt when damaged)."""
    labels = hashlib.sha256()
    for task in evaluation.tasks:
        labels.update(task.test_labels.numpy().tobytes())
    key = digest_of(
        {
            "weights": weights_digest(model),
            "tasks": evaluation.columns,
            "labels": labels.hexdigest(),
            "data": [config.stream, config.seed, config.image_size, config.data_root],
            "content": data_fingerprint(config.stream, config.data_root, config.seed),
            "device": config.device,
            "batch_size": evaluation.batch_size,
        }
    )
    path = results_root() / "_cache" / "zero-shot" / f"{key}.pt"
    return memo(path, lambda: evaluation.reference(ZeroShot(model, tokenizer)), force=force)


def run(
    config: RunConfig,
    out_dir: str | Path | None = None,
    *,
    root: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    observers: Sequence[Observer] = (),
) -> RunResult:
    """Train and evaluate ``config`` on its stream (or reuse its finished run); the result's
    ``run_dir`` holds ``results.json``, the last checkpoint and the probe's ``features.pt``."""
    check_config(config)  # a bad setting fails before any work
    config, device = place(config)
    with forcing(force or force_requested()):  # damaged caches met on the way are rebuilt too
        store = run_store(config, out_dir, root=root, force=force)
        # Under torchrun rank 0 takes the folder's lock; the other ranks wait for its answer.
        distributed.init(device)
        finished = distributed.decided_by_main(store.finished)
        if finished is not None:
            return finished
        with store:  # gives the lock back however the run ends
            return _train(config, device, store, force, progress, observers)


def _train(
    config: RunConfig,
    device: torch.device,
    store: RunStore,
    force: bool,
    progress: bool,
    observers: Sequence[Observer],
) -> RunResult:
    torch.manual_seed(config.seed)
    tasks = load_stream(config)
    model, _, tokenizer = load_backbone(config.backbone, config.pretrained, device)
    formats: list[ClassificationFormat] = [make_format(t, tokenizer) for t in tasks]
    evaluation = EveryTask(formats, config.eval_batch_size)
    zero_shot = zero_shot_row(model, tokenizer, evaluation, config, force)
    method = build_method(config.method, model, tokenizer, config.train, config.options)
    return run_stream(
        method,
        formats,
        evaluation,
        seed=config.seed,
        observers=[DriftObserver(make_probe(formats)), *observers],
        store=store,
        zero_shot=zero_shot,
        stream=config.stream,
        config=config.as_dict(),
        progress=progress,
    )


def load_trained(result: RunResult) -> Method:
    """The method of a finished run as it ended its stream, rebuilt from its run folder's last
    checkpoint: its weights, routers, adapters and records, to look inside (on the CPU)."""
    if result.run_dir is None:
        raise InputError("this result has no run folder (not made by clviz run): nothing to load")
    config = RunConfig.from_dict(result.config)
    saved = run_store(config, result.run_dir).checkpoint()
    if saved is None:
        raise MissingFileError(
            f"{result.run_dir} holds no checkpoint; rerun the same command with --force to "
            "train it again"
        )
    model, _, tokenizer = load_backbone(config.backbone, config.pretrained, "cpu")
    method = build_method(config.method, model, tokenizer, config.train, config.options)
    method.load_state_dict(saved["method"])
    return method
