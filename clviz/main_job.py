"""The main job (``make run``): every method on the default stream, then one report.

Trains every registered method with the same budget (finished runs are reused from the
results folder), measures representation drift from the probe features each run saved, fits
one UMAP over the chosen runs, and writes ``results/report.html`` (self-contained) and
``results/summary.json`` beside the runs' own ``results.json`` files.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from clviz.analysis.drift import curves_of, drift_map, records_of
from clviz.analysis.drift.extract import FINAL
from clviz.core.io import write_json
from clviz.core.store import results_root
from clviz.experiments.profiles import default_profile
from clviz.experiments.seeds import compare_seeds, spreads
from clviz.experiments.tables import metric_rows
from clviz.experiments.workers import default_workers
from clviz.methods import get_method, list_methods
from clviz.report import build_report, write_report

UMAP_METHODS = ("finetune", "zscl", "moe-adapters")


def drift_summary(curves: dict[str, Any]) -> dict[str, float]:
    """The drift numbers worth quoting: start and end of each measure (final embeddings)."""
    last_block = [n for n in curves["cka"] if n != FINAL][-1]
    return {
        "cka_embedding_last": curves["cka"][FINAL][-1],
        "cka_last_block_last": curves["cka"][last_block][-1],
        "text_cka_embedding_last": curves["text_cka"][FINAL][-1],
        "knn_initial": curves["knn"][FINAL][0],
        "knn_last": curves["knn"][FINAL][-1],
        "centroid_shift_last": curves["centroid_shift"][-1],
        "modality_gap_initial": curves["modality_gap"][0],
        "modality_gap_last": curves["modality_gap"][-1],
    }


def main_job(
    out: str | Path = "results",
    stream: str = "default",
    seed: int = 0,
    methods: Sequence[str] | None = None,
    steps: int | None = None,
    umap_methods: Sequence[str] | None = None,
    root: str | Path | None = None,
    progress: bool = True,
    device: str | None = None,
    profile: str | None = None,
    workers: int | None = None,
    seeds: Sequence[int] | None = None,
) -> dict[str, Path]:
    """Run (or reuse) every method, then write the report and summary into ``out``.

    Runs live in ``root`` (default :func:`clviz.core.store.results_root`); ``profile`` defaults
    to ``$CLVIZ_PROFILE`` or ``embedded`` (``classroom-gpu`` for a student's GPU). The methods
    not trained yet train side by side in ``workers`` processes of one thread each (default:
    one per CPU core, one on a GPU; :mod:`clviz.experiments.workers`), logging to
    ``<out>/logs``; ``workers=1`` trains them one after the other in this process.

    ``seeds`` (several) repeats the comparison with each seed: the report and summary add
    every metric's mean ± standard deviation over them; the first seed's runs make the rest
    of the report (drift, UMAP, routing). It replaces ``seed``."""
    started = time.perf_counter()
    profile = profile or default_profile()
    out = Path(out)
    methods = list(methods or list_methods())
    for name in methods:
        get_method(name)  # an unknown name fails now, not after an hour of training
    seeds = list(seeds) if seeds else [seed]
    seed = seeds[0]
    runs = len(methods) * len(seeds)
    workers = workers or default_workers(device, runs)
    if workers > 1:
        print(f"training {runs} runs on {stream} in {workers} processes", flush=True)
    by_seed = compare_seeds(
        methods,
        seeds,
        stream=stream,
        steps=steps,
        root=root,
        workers=workers,
        logs=out / "logs",
        device=device,
        profile=profile,
        progress=progress,
    )
    results = {m: rs[0] for m, rs in by_seed.items()}
    print("measuring drift and fitting the UMAP", flush=True)
    records = records_of(results)
    curves = curves_of(records)
    chosen = [m for m in (umap_methods or UMAP_METHODS) if m in results] or methods[:1]
    dmap = drift_map({m: records[m] for m in chosen}, seed=seed, cache_dir=out / "drift")
    header = (  # stream, profile, seeds, steps and batch: the report reads them from the runs
        f"{len(methods)} methods; runs in {root or results_root()}; made with torch "
        f"{torch.__version__} on {platform.machine()} ("
        + (
            f"{workers} worker processes of 1 thread"
            if workers > 1
            else f"{torch.get_num_threads()} threads"
        )
        + "), "
        f"device {next(iter(results.values())).device}."
    )
    several = by_seed if len(seeds) > 1 else None
    page = build_report(results, curves, dmap, chosen, header, several, profile)
    report = write_report(out / "report.html", page)
    summary = out / "summary.json"
    write_json(
        summary,
        {
            "stream": stream,
            "profile": profile,
            "seeds": seeds,
            "comparison": [asdict(row) for row in metric_rows(results)],
            "over_seeds": {
                m: {k: asdict(v) for k, v in row.items()} for m, row in spreads(by_seed).items()
            },
            "drift": {m: drift_summary(c) for m, c in curves.items()},
            "runs": {m: str(r.run_dir) for m, r in results.items()},
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    return {"report": report, "summary": summary}
