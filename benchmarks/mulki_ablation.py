"""MulKI's stage-by-stage ablation on the default stream, and its training time against ZSCL.

    python benchmarks/mulki_ablation.py [--stream S] [--seed N] [--root DIR] [--timing-tasks 3]

1. The ablation: MulKI with all four stages, then with each stage switched off in turn (runs are
   reused from the run store when finished). Prints Transfer / Avg / Last / BWT, the change
   in Transfer, and each run's seconds (whole stream, evaluation included), next to ZSCL and
   fine-tuning on the same stream.
2. Training time per task relative to ZSCL, measured in this process: for each of the first
   ``--timing-tasks`` tasks, ZSCL and MulKI each set up, train and finish the task, alternating,
   on their own copy of the backbone (so load from other processes hits both alike).
"""

from __future__ import annotations

import argparse
import copy
import platform
import time

import torch

from clviz.backbone import load_backbone
from clviz.core import TrainConfig, learn_task
from clviz.experiments.compare import compare
from clviz.experiments.mulki_ablation import run_ablation
from clviz.experiments.tables import ablation_table
from clviz.methods import build_method
from clviz.world.tasks import get_stream


def time_per_task(stream: str, seed: int, tasks: int) -> list[dict[str, float]]:
    """Seconds of one task (set-up, training, end of task) per task, ZSCL and MulKI
    alternating."""
    model, _, tokenizer = load_backbone()
    methods = {n: build_method(n, copy.deepcopy(model), tokenizer) for n in ("zscl", "mulki")}
    out = []
    for index, task in enumerate(get_stream(stream, seed=seed)[:tasks]):
        row = {"task": task.name}
        for name, method in methods.items():
            start = time.perf_counter()
            learn_task(method, task, index, seed=index, progress=False)
            row[name] = time.perf_counter() - start
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="results folder (default results/runs)")
    parser.add_argument("--timing-tasks", type=int, default=3, help="0 skips the timing")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads (1 on a busy machine)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    baselines = compare(
        ["finetune", "zscl"], args.stream, args.seed, root=args.root, progress=False
    )
    results = run_ablation(args.stream, args.seed, root=args.root)
    print(
        f"stream {args.stream!r}, seed {args.seed}, {TrainConfig().steps} steps per task; "
        f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )
    print(ablation_table({**results, **baselines}))

    if args.timing_tasks:
        rows = time_per_task(args.stream, args.seed, args.timing_tasks)
        print("\ntraining time per task (set-up + 100 steps + end of task), same process:")
        print("| task | ZSCL s | MulKI s | MulKI / ZSCL |\n|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['task']} | {r['zscl']:.1f} | {r['mulki']:.1f} | "
                f"{r['mulki'] / r['zscl']:.2f} |"
            )
        z, m = sum(r["zscl"] for r in rows), sum(r["mulki"] for r in rows)
        print(f"| total | {z:.1f} | {m:.1f} | {m / z:.2f} |")


if __name__ == "__main__":
    main()
