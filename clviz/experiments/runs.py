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
from clviz.core.config import RunConfig, digest_of
from clviz.core.device import place
from clviz.core.evaluation import EveryTask
from clviz.core.formats import ClassificationFormat, make_format
from clviz.core.loop import Observer, run_stream
from clviz.core.result import RunResult
from clviz.core.store import RunStore, memo, results_root, weights_digest
from clviz.data.streams import load_stream
from clviz.methods import build_method, get_method
from clviz.methods.base import Method
from clviz.methods.zeroshot import ZeroShot


def run_store(
    config: RunConfig,
    out_dir: str | Path | None = None,
    *,
    root: str | Path | None = None,
    force: bool = False,
) -> RunStore:
    """Where ``config``'s run lives: ``out_dir``, or ``<root>/<method>_<stream>_seed<seed>_<hash>``
    (every setting that changes results is in the hash)."""
    identity = config.as_dict()
    if out_dir is not None:
        return RunStore(out_dir, identity, force=force)
    stream = config.stream.replace(":", "-").replace(",", "+")  # a subset, safe on any disk
    name = f"{config.method}_{stream}_seed{config.seed}"
    return RunStore.named(name, identity, root=root, force=force)


def zero_shot_row(model, tokenizer, evaluation: EveryTask, config: RunConfig) -> list[float | None]:
    """The untouched backbone under ``evaluation``, cached per weights and evaluation data in
    ``<results root>/_cache/zero-shot`` (every method of a stream shares it)."""
    labels = hashlib.sha256()
    for task in evaluation.tasks:
        labels.update(task.test_labels.numpy().tobytes())
    key = digest_of(
        {
            "weights": weights_digest(model),
            "tasks": evaluation.columns,
            "labels": labels.hexdigest(),
            "data": [config.stream, config.seed, config.image_size, config.data_root],
            "device": config.device,
            "batch_size": evaluation.batch_size,
        }
    )
    path = results_root() / "_cache" / "zero-shot" / f"{key}.pt"
    return memo(path, lambda: evaluation.reference(ZeroShot(model, tokenizer)))


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
    get_method(config.method)  # an unknown name fails before any work
    config, device = place(config)
    store = run_store(config, out_dir, root=root, force=force)
    finished = store.finished()
    if finished is not None:
        return finished
    torch.manual_seed(config.seed)
    tasks = load_stream(config)
    model, _, tokenizer = load_backbone(config.backbone, config.pretrained, device)
    formats: list[ClassificationFormat] = [make_format(t, tokenizer) for t in tasks]
    evaluation = EveryTask(formats, config.eval_batch_size)
    zero_shot = zero_shot_row(model, tokenizer, evaluation, config)
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
        raise ValueError("this result has no run folder (not made by clviz run): nothing to load")
    config = RunConfig.from_dict(result.config)
    saved = run_store(config, result.run_dir).checkpoint()
    if saved is None:
        raise FileNotFoundError(
            f"{result.run_dir} holds no checkpoint; rerun the same command with --force to "
            "train it again"
        )
    model, _, tokenizer = load_backbone(config.backbone, config.pretrained, "cpu")
    method = build_method(config.method, model, tokenizer, config.train, config.options)
    method.load_state_dict(saved["method"])
    return method
