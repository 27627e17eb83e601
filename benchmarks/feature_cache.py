"""What feature caching saves when evaluating a T x T accuracy matrix, measured in one run.

    python benchmarks/feature_cache.py [--stream default] [--steps 5]

1. MoE-Adapters with DDAS: the selector reads frozen backbone features of every test image;
   without the cache they are recomputed for every row of the matrix, with it once per batch.
   Trains briefly on every task (evaluation cost does not depend on training), then times T
   evaluations of all T tasks (a full matrix) with the cache off and on, and checks that the
   two matrices are identical.
2. The zero-shot row and the probe's initial features (``clviz.initial``): computed, then
   loaded from the cache.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from clviz.backbone import load_backbone
from clviz.drift.probe import make_probe
from clviz.engine import accuracy
from clviz.initial import initial_evaluation
from clviz.methods import Method, TrainConfig, get_method, make_options
from clviz.world.tasks import get_stream


def matrix_seconds(method, tasks) -> tuple[float, list[list[float]]]:
    started = time.perf_counter()
    rows = [[accuracy(method, t) for t in tasks] for _ in tasks]
    return time.perf_counter() - started, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", default="default")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    tasks = get_stream(args.stream)
    model, _, tokenizer = load_backbone()
    cls = get_method("moe-adapters")
    method = cls(model, tokenizer, TrainConfig(steps=args.steps), make_options(cls, {}))
    for i, task in enumerate(tasks):
        method.begin_task(task, i)
        method.train_task(task, i, torch.Generator().manual_seed(i), progress=False)
        method.finish_task(task, i)

    cache, limit = method._generic, method._generic.max_bytes
    cache.clear()
    cache.max_bytes = 0  # off: nothing is stored
    off, rows_off = matrix_seconds(method, tasks)
    cache.max_bytes = limit
    on, rows_on = matrix_seconds(method, tasks)
    assert rows_on == rows_off, "caching changed a prediction"
    n = len(tasks)
    print(
        f"{n} x {n} matrix, moe-adapters (DDAS), {sum(len(t.test_labels) for t in tasks)} "
        "test images per row"
    )
    print(f"  without feature cache: {off:6.1f} s")
    print(f"  with feature cache:    {on:6.1f} s   ({off / on:.2f}x faster, identical matrix)")

    with tempfile.TemporaryDirectory() as tmp:
        probe = make_probe(tasks)
        untouched = Method(load_backbone()[0], tokenizer, TrainConfig())
        times = []
        for _ in range(2):
            started = time.perf_counter()
            initial_evaluation(untouched, tasks, probe, accuracy, tmp)
            times.append(time.perf_counter() - started)
    print(
        f"zero-shot row + initial probe features: computed {times[0]:.1f} s, "
        f"cached {times[1]:.2f} s ({times[0] / times[1]:.0f}x)"
    )


if __name__ == "__main__":
    main()
