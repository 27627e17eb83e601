"""Wall time of the main job, cold (nothing cached) and warm (everything cached), in one run.

    python benchmarks/main_job.py [--keep DIR] [--fast]

Runs ``clviz main`` twice as a subprocess, with a fresh results folder (``CLVIZ_RESULTS``) and
report folder: the first run trains every method, the second reuses every run and the UMAP.
Prints both wall times and their ratio. The issue's targets: cold < 20 min, warm < 1 min.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_main(root: Path, out: Path, fast: bool) -> float:
    env = {**os.environ, "CLVIZ_RESULTS": str(root)}
    cmd = [sys.executable, "-m", "clviz", "main", "--out", str(out)]
    started = time.perf_counter()
    subprocess.run(cmd + (["--fast"] if fast else []), env=env, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", default=None, help="keep the runs and report in this folder")
    parser.add_argument("--fast", action="store_true", help="the smoke stream (a quick check)")
    args = parser.parse_args()
    base = Path(args.keep or tempfile.mkdtemp(prefix="clviz-main-"))
    root, out = base / "runs", base / "results"
    cold = timed_main(root, out, args.fast)
    warm = timed_main(root, out, args.fast)
    print(f"main job, cold: {cold:7.1f} s ({cold / 60:.1f} min)")
    print(f"main job, warm: {warm:7.1f} s")
    print(f"cold / warm:    {cold / warm:7.1f}x")
    print(f"report: {out / 'report.html'}")


if __name__ == "__main__":
    main()
