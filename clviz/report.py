"""The main job's report: one self-contained HTML file with the comparison and the pictures.

Plotly's JavaScript is embedded once, so the file opens offline in any browser and can be
mailed or archived as it is. Every figure comes from :mod:`clviz.figures`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from clviz import figures
from clviz.analysis.drift.umap_map import DriftMap
from clviz.core.io import atomic_path
from clviz.core.result import RunResult
from clviz.experiments.seeds import LABELS as SEED_LABELS
from clviz.experiments.seeds import METRICS as SEED_METRICS
from clviz.experiments.seeds import spreads
from clviz.experiments.tables import metric_rows
from clviz.figures import drift as drift_figures
from clviz.figures import moe as moe_figures
from clviz.methods.moe import RoutingRecord
from clviz.published import published_row

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.92em; }
th, td { padding: 4px 10px; text-align: right; border-bottom: 1px solid #eee; }
th:first-child, td:first-child { text-align: left; }
.note { color: #555; font-size: 0.92em; max-width: 60em; }
"""


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.{digits}f}"


def comparison_table_html(results_by_method: Mapping[str, RunResult]) -> str:
    """The comparison as an HTML table, with the published MTIL order-I numbers beside."""
    head = (
        "<tr><th>method</th><th>Transfer</th><th>Avg</th><th>Last</th><th>BWT</th>"
        "<th>forgetting</th><th>trainable params</th><th>seconds</th>"
        "<th>MTIL-I Transfer</th><th>MTIL-I Avg</th><th>MTIL-I Last</th></tr>"
    )
    rows = []
    for r in metric_rows(results_by_method):
        p = published_row(r.label)
        cells = [
            html.escape(r.label),
            *(_fmt(getattr(r, k)) for k in ("transfer", "avg", "last", "bwt", "forgetting")),
            _fmt(int(r.trainable_params)),
            _fmt(r.seconds, 0),
            *(_fmt(p[k]) for k in ("transfer", "avg", "last")),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _section(title: str, note: str, *parts: str) -> str:
    return f"<h2>{html.escape(title)}</h2><p class='note'>{note}</p>" + "".join(parts)


def _seed_section(seeds: Mapping[str, Sequence[RunResult]], fig: Callable[[go.Figure], str]) -> str:
    table = spreads(seeds)
    used = ", ".join(str(r.config["seed"]) for r in next(iter(seeds.values())))
    head = "<tr><th>method</th>" + "".join(f"<th>{m}</th>" for m in SEED_LABELS) + "</tr>"
    rows = "".join(
        f"<tr><td>{html.escape(method)}</td>"
        + "".join(f"<td>{row[m]}</td>" for m in SEED_METRICS)
        + "</tr>"
        for method, row in table.items()
    )
    return _section(
        "Over several seeds",
        f"The comparison repeated with seeds {used} (another sample of the world, another "
        "initialisation and batch order): mean ± "
        "sample standard deviation. Where two methods' error bars overlap, one seed could "
        "have ordered them the other way.",
        f"<table>{head}{rows}</table>",
        fig(figures.seed_bars(table)),
    )


def build_report(
    results_by_method: Mapping[str, RunResult],
    curves_by_method: Mapping[str, Mapping[str, Any]],
    dmap: DriftMap,
    umap_methods: Sequence[str],
    header: str = "",
    seeds: Mapping[str, Sequence[RunResult]] | None = None,
) -> str:
    """The report's HTML text; ``seeds`` (each method's results over several seeds, see
    :func:`clviz.experiments.seeds.compare_seeds`) adds a section with error bars."""
    figs: list[go.Figure] = []

    def fig(f: go.Figure) -> str:
        figs.append(f)
        return f.to_html(full_html=False, include_plotlyjs=len(figs) == 1, default_width="100%")

    any_run = next(iter(results_by_method.values()))
    checkpoints = ["initial", *any_run.tasks]
    parts = [
        _section(
            "The comparison",
            "Every method on the same stream with the same budget. Transfer: accuracy on tasks "
            "not learned yet (above the diagonal); Avg: the whole matrix; Last: after the whole "
            "stream (ZSCL's definitions). The MTIL-I columns are the published ViT-B/16 numbers "
            "on the real benchmark, for the shape of the comparison, not its values.",
            comparison_table_html(results_by_method),
            fig(figures.metric_bars(results_by_method)),
        ),
        _section(
            "Accuracy matrices",
            "Row t: accuracy on every task after learning task t.",
            fig(figures.accuracy_heatmaps(results_by_method)),
            fig(figures.task_curve_comparison(results_by_method, any_run.tasks[0])),
        ),
        _section(
            "Representation drift",
            "Probe features (test images of every task, and every class text) after each task, "
            "compared with the initial backbone: linear CKA, 5-NN accuracy, how far class "
            "centroids moved, and the gap between the image and the text cloud.",
            fig(drift_figures.drift_comparison(curves_by_method, checkpoints)),
            *(
                fig(
                    drift_figures.cka_layers(
                        curves_by_method[m], checkpoints, f"{m}: CKA per layer"
                    )
                )
                for m in umap_methods
            ),
        ),
        _section(
            "The probe on one map",
            "One UMAP fitted on every checkpoint of these runs together: a point moves because "
            "its features moved. Dots: images; diamonds: class texts; colour: task. Press play "
            "or drag the slider.",
            *(fig(drift_figures.umap_animation(dmap, m)) for m in umap_methods),
        ),
    ]
    if seeds and len(next(iter(seeds.values()))) > 1:
        parts.insert(1, _seed_section(seeds, fig))
    moe = [m for m, r in results_by_method.items() if isinstance(r.record, RoutingRecord)]
    if moe:
        r = results_by_method[moe[-1]]
        rec = r.record
        parts.append(
            _section(
                f"Routing ({moe[-1]})",
                "How often each expert was selected while each task trained; x: experts already "
                "frozen when the task began.",
                fig(
                    moe_figures.expert_selection_heatmaps(
                        rec.selections, rec.frozen_history, r.tasks
                    )
                ),
                fig(moe_figures.frozen_timeline(rec.frozen_history, r.tasks)),
            )
        )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>clviz report</title>"
        f"<style>{STYLE}</style></head><body><h1>clviz: continual learning on the "
        f"{html.escape(any_run.stream)} stream</h1><p class='note'>{header}</p>"
        + "".join(parts)
        + "</body></html>"
    )


def write_report(path: str | Path, text: str) -> Path:
    """Write the report atomically; returns its path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
