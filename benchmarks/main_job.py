"""Wall time of the main job, cold (nothing cached) and warm (everything cached), in one run.

    python benchmarks/main_job.py [--keep DIR] [--fast]

Runs ``clviz main`` twice as a subprocess, with a fresh results folder (``CLVIZ_RESULTS``) and
report folder: the first run trains every method, the second reuses every run and the UMAP.
Prints both wall times and their ratio, and each method's own seconds (its run's
``results.json``: training and evaluation, without process start-up). ``--workers`` is passed
to ``clviz main`` (default: one per core).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clviz.core.result import RunResult


def timed_main(root: Path, out: Path, fast: bool, workers: int | None) -> float:
    env = {**os.environ, "CLVIZ_RESULTS": str(root)}
    cmd = [sys.executable, "-m", "clviz", "main", "--out", str(out)]
    cmd += ["--fast"] if fast else []
    cmd += ["--workers", str(workers)] if workers else []
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", default=None, help="keep the runs and report in this folder")
    parser.add_argument("--fast", action="store_true", help="the smoke stream (a quick check)")
    parser.add_argument("--workers", type=int, default=None, help="clviz main --workers")
    args = parser.parse_args()
    base = Path(args.keep or tempfile.mkdtemp(prefix="clviz-main-"))
    root, out = base / "runs", base / "results"
    cold = timed_main(root, out, args.fast, args.workers)
    warm = timed_main(root, out, args.fast, args.workers)
    for path in sorted(root.glob("*/results.json")):
        result = RunResult.load(path)
        print(f"  {result.method:<21} {result.seconds:7.1f} s")
    print(f"main job, cold: {cold:7.1f} s ({cold / 60:.1f} min)")
    print(f"main job, warm: {warm:7.1f} s")
    print(f"cold / warm:    {cold / warm:7.1f}x")
    print(f"report: {out / 'report.html'}")


if __name__ == "__main__":
    main()
