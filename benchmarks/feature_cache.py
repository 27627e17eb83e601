"""What feature caching saves when evaluating a T x T accuracy matrix, measured in one run.

    python benchmarks/feature_cache.py [--stream default] [--steps 5]

1. MoE-Adapters with DDAS: the selector reads frozen backbone features of every test image;
   without the cache they are recomputed for every row of the matrix, with it once per image.
   Trains briefly on every task (evaluation cost does not depend on training), then times T
   evaluations of all T tasks (a full matrix) with the cache off and on, and checks that the
   two matrices are identical.
2. The untouched backbone's zero-shot row (``clviz.experiments.runs.zero_shot_row``):
   computed, then loaded from the run store's cache.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from clviz.backbone import load_backbone
from clviz.core import EveryTask, RunConfig, TrainConfig, accuracy, learn_task, make_format
from clviz.experiments.runs import zero_shot_row
from clviz.methods import build_method
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
    model, _, tokenizer = load_backbone()
    tasks = [make_format(t, tokenizer) for t in get_stream(args.stream)]
    method = build_method("moe-adapters", model, tokenizer, TrainConfig(steps=args.steps))
    for i, task in enumerate(tasks):
        learn_task(method, task, i, seed=i, progress=False)

    cache = method.generic_features
    limit = cache.max_bytes
    cache.clear()
    cache.max_bytes = 0  # off: nothing is stored
    off, rows_off = matrix_seconds(method, tasks)
    cache.max_bytes = limit
    on, rows_on = matrix_seconds(method, tasks)
    assert rows_on == rows_off, "caching changed a prediction"
    n = len(tasks)
    print(
        f"{n} x {n} matrix, moe-adapters (DDAS), {sum(t.size('test') for t in tasks)} "
        "test images per row"
    )
    print(f"  without feature cache: {off:6.1f} s")
    print(f"  with feature cache:    {on:6.1f} s   ({off / on:.2f}x faster, identical matrix)")

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CLVIZ_RESULTS"] = tmp
        backbone = load_backbone()[0]
        evaluation = EveryTask(tasks)
        times = []
        for _ in range(2):
            started = time.perf_counter()
            zero_shot_row(backbone, tokenizer, evaluation, RunConfig("zero-shot", args.stream))
            times.append(time.perf_counter() - started)
    print(
        f"zero-shot row: computed {times[0]:.1f} s, cached {times[1]:.2f} s "
        f"({times[0] / times[1]:.0f}x)"
    )


if __name__ == "__main__":
    main()
