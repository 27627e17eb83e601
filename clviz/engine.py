"""The continual-learning engine: learn a stream task by task, evaluate every task after each.

For each task t of the stream the method trains on t, finishes it, and is evaluated on *every*
task (learned or not yet learned), which gives row t of the T x T accuracy matrix. The untouched
backbone's zero-shot accuracy is recorded too. After every task a checkpoint is written
(atomically); an interrupted run resumes from the last finished task and ends with the same
matrix, because each task's randomness is seeded from ``(seed, task index)`` alone. The finished
results are cached under the hash of the full config.

At every checkpoint (and before the first task) the probe set's features are taken
(:mod:`clviz.drift`) and saved as ``features.pt`` beside ``results.json``: the drift pictures
need every checkpoint, and features are far smaller than the checkpoints themselves.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import clviz.methods  # noqa: F401  (registers the methods)
from clviz import distributed
from clviz.backbone import load_backbone
from clviz.config import RunConfig
from clviz.drift.extract import Snapshot, extract_snapshot
from clviz.drift.probe import make_probe
from clviz.drift.store import FEATURES, record_from, save_record
from clviz.initial import initial_evaluation
from clviz.io import atomic_path, write_json
from clviz.methods.base import Method, get_method, make_options
from clviz.metrics import summarize
from clviz.streams import load_stream
from clviz.world.tasks import Task

RESULTS = "results.json"
CHECKPOINT = "checkpoint.pt"


class RunDirError(RuntimeError):
    """The output folder holds another config's results; the message says what to do."""


def results_root() -> Path:
    """Where runs are cached: ``$CLVIZ_RESULTS``, else ``results/runs`` of this checkout (so the
    notebooks, the CLI and the main job share one cache), else ``./results/runs``."""
    if os.environ.get("CLVIZ_RESULTS"):
        return Path(os.environ["CLVIZ_RESULTS"])
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").is_file():
        return repo / "results" / "runs"
    return Path("results") / "runs"


def default_out_dir(config: RunConfig, root: str | Path | None = None) -> Path:
    """``<root>/<method>_<stream>_seed<seed>``, with the root from :func:`results_root`."""
    return Path(root or results_root()) / f"{config.method}_{config.stream}_seed{config.seed}"


def task_seed(seed: int, index: int) -> int:
    """The seed of task ``index``'s training randomness: independent of what ran before."""
    return seed * 1_000_003 + index


@torch.no_grad()
def accuracy(method: Method, task: Task, batch_size: int = 256) -> float:
    """Top-1 accuracy (percent) of ``method`` on ``task``'s test split."""
    correct = 0
    for i in range(0, len(task.test_labels), batch_size):
        logits = method.predict(task.test_images[i : i + batch_size], task)
        correct += (logits.argmax(-1).cpu() == task.test_labels[i : i + batch_size]).sum().item()
    return 100.0 * correct / len(task.test_labels)


def _check_out_dir(out: Path, digest: str, force: bool) -> dict | None:
    """Return cached results for this config, or None; refuse another config's folder."""
    results = out / RESULTS
    if results.is_file():
        existing = json.loads(results.read_text())
        if existing.get("config_hash") == digest:
            if (out / FEATURES).is_file():
                return existing
            return None  # made before probe features were recorded: run again (same results)
        if not force:
            raise RunDirError(
                f"{out} already holds the results of another config (method "
                f"{existing.get('method')!r}, stream {existing.get('stream')!r}, hash "
                f"{existing.get('config_hash')}); this config's hash is {digest}. "
                "Choose another --out folder, or pass --force to replace them."
            )
    return None


def _load_checkpoint(path: Path, digest: str, force: bool) -> dict[str, Any] | None:
    """The saved state of this config's unfinished run, or None to start afresh."""
    if not path.is_file():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if saved["config_hash"] == digest:
        return saved if "snapshots" in saved else None  # older format: start afresh
    if force:
        return None
    raise RunDirError(
        f"{path} belongs to another config (hash {saved['config_hash']}, this one "
        f"{digest}); choose another --out folder, or pass --force to replace it"
    )


def build_method(config: RunConfig, model=None, tokenizer=None) -> Method:
    """The configured method on the backbone (loaded here unless given), untrained."""
    cls = get_method(config.method)
    options = make_options(cls, config.options)
    if model is None:
        model, _, tokenizer = load_backbone(config.backbone, config.pretrained)
    return cls(model, tokenizer, config.train, options)


def run(
    config: RunConfig,
    out_dir: str | Path | None = None,
    *,
    force: bool = False,
    progress: bool = True,
    on_task_end: Callable[[int, list[float]], None] | None = None,
) -> dict[str, Any]:
    """Train and evaluate ``config`` on its stream; returns (and writes) the results dict.

    The returned dict is ``results.json`` plus ``run_dir``, the folder the run lives in (its
    checkpoint and probe features are there).

    ``on_task_end(index, row)`` is called after each task's checkpoint is written.
    """
    distributed.init()  # under torchrun: join the process group (data-parallel training)
    out = Path(out_dir) if out_dir is not None else default_out_dir(config)
    digest = config.digest()
    cached = _check_out_dir(out, digest, force)
    if cached is not None:
        return {**cached, "run_dir": str(out)}

    started = time.perf_counter()
    torch.manual_seed(config.seed)
    tasks = load_stream(config)
    model, _, tokenizer = load_backbone(config.backbone, config.pretrained)
    checkpoint_path = out / CHECKPOINT
    probe = make_probe(tasks)
    state = _load_checkpoint(checkpoint_path, digest, force)
    if state is None:  # the untouched backbone, evaluated exactly as every method is
        zero_shot, snapshot = initial_evaluation(
            Method(model, tokenizer, config.train),
            tasks,
            probe,
            lambda m, t: accuracy(m, t, config.eval_batch_size),
            Path(results_root()) / "_initial",
        )
        state = {
            "rows": [],
            "task_stats": [],
            "seconds": 0.0,
            "zero_shot": zero_shot,
            "snapshots": [snapshot.as_dict()],
        }
    method = build_method(config, model, tokenizer)
    if "method" in state:
        method.load_state_dict(state.pop("method"), {t.name: t for t in tasks})

    bar = tqdm(
        range(len(tasks)),
        desc=f"{config.method} on {config.stream}",
        disable=not progress or not distributed.is_main(),
        initial=len(state["rows"]),
    )
    for index in range(len(state["rows"]), len(tasks)):
        task = tasks[index]
        torch.manual_seed(task_seed(config.seed, index))
        generator = torch.Generator().manual_seed(task_seed(config.seed, index))
        method.begin_task(task, index)
        stats = method.train_task(task, index, generator, progress=progress)
        method.finish_task(task, index)
        row = [accuracy(method, t, config.eval_batch_size) for t in tasks]
        state["rows"].append(row)
        state["snapshots"].append(extract_snapshot(method, probe).as_dict())
        state["task_stats"].append(stats)
        state["seconds"] += time.perf_counter() - started
        started = time.perf_counter()
        if distributed.is_main():
            with atomic_path(checkpoint_path) as tmp:
                torch.save({**state, "config_hash": digest, "method": method.state_dict()}, tmp)
        bar.update(1)
        bar.set_postfix(task=task.name, acc=f"{row[index]:.1f}")
        if on_task_end is not None:
            on_task_end(index, row)
    bar.close()

    trainable, total = method.count_parameters()
    results = {
        "method": config.method,
        "stream": config.stream,
        "seed": config.seed,
        "tasks": [t.name for t in tasks],
        "accuracy_matrix": state["rows"],
        "zero_shot": state["zero_shot"],
        "metrics": summarize(state["rows"]).as_dict(),
        "trainable_params": trainable,
        "total_params": total,
        "seconds": round(state["seconds"] + time.perf_counter() - started, 2),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "task_stats": state["task_stats"],
        "record": method.record(list(tasks)),
        "config_hash": digest,
        "config": config.as_dict(),
    }
    if distributed.is_main():
        snapshots = [Snapshot.from_dict(d) for d in state["snapshots"]]
        save_record(out / FEATURES, record_from(probe, snapshots))
        write_json(out / RESULTS, results)
    return {**results, "run_dir": str(out)}
