"""Run every registered method on the default stream and print one comparison table.

    python benchmarks/compare_methods.py [--stream default] [--seed 0] [--root DIR]

Each method runs in its own process (so that its peak memory is its own); finished runs are
reused from the run store. Prints Transfer / Avg / Last / BWT / forgetting, trainable
parameters, seconds and peak memory.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys

from clviz.core.config import RunConfig
from clviz.core.result import RunResult
from clviz.experiments.runs import run_store
from clviz.experiments.tables import metric_rows
from clviz.methods import list_methods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="results folder (default results/runs)")
    parser.add_argument("--methods", nargs="*", default=list_methods())
    args = parser.parse_args()

    results = {}
    for name in args.methods:
        config = RunConfig(method=name, stream=args.stream, seed=args.seed)
        folder = run_store(config, root=args.root).folder
        subprocess.run(
            [sys.executable, "-m", "clviz", "run", "--method", name, "--stream", args.stream,
             "--seed", str(args.seed), "--out", str(folder)],
            check=True,
        )  # fmt: skip
        results[name] = RunResult.load(folder / "results.json")

    print(
        f"\nstream {args.stream!r}, seed {args.seed}; machine: {platform.machine()}, "
        f"{platform.processor() or 'cpu'}, python {platform.python_version()}"
    )
    print(
        f"{'method':<20}{'Transfer':>9}{'Avg':>7}{'Last':>7}{'BWT':>7}{'forget':>8}"
        f"{'trainable':>11}{'seconds':>9}{'peak MB':>9}"
    )
    for r in metric_rows(results):
        print(
            f"{r.label:<20}{r.transfer:>9.1f}{r.avg:>7.1f}{r.last:>7.1f}"
            f"{r.bwt:>+7.1f}{r.forgetting:>8.1f}{r.trainable_params / 1e6:>10.2f}M"
            f"{r.seconds:>9.0f}{r.peak_memory_mb:>9.0f}"
        )


if __name__ == "__main__":
    main()
