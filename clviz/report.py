"""The main job's report: one self-contained HTML file with the comparison and the pictures.

Plotly's JavaScript is embedded once, so the file opens offline in any browser and can be
mailed or archived as it is. Every figure comes from :mod:`clviz.figures`. Every sentence about
the results is computed from the runs: the setup from their configs, the take-aways from the
table (:mod:`clviz.teach.takeaways`), and which differences exceed seed noise from the spread
over seeds (or, with one seed, that it was not measured).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from clviz import figures
from clviz.analysis.drift.umap_map import DriftMap
from clviz.core.io import atomic_path
from clviz.core.result import RunResult
from clviz.experiments.profiles import make_config
from clviz.experiments.seeds import LABELS as SEED_LABELS
from clviz.experiments.seeds import METRICS as SEED_METRICS
from clviz.experiments.seeds import spreads
from clviz.experiments.tables import metric_rows
from clviz.figures import drift as drift_figures
from clviz.figures import moe as moe_figures
from clviz.methods.moe import RoutingRecord
from clviz.published import published_row
from clviz.teach.takeaways import atlas_transfer_takeaway, comparison_takeaways

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


ZERO_SHOT = "zero-shot"
HEADLINE = ("transfer", "avg", "last")
NAMES = dict(zip(SEED_METRICS, SEED_LABELS, strict=True))
NOISE_SIGMAS = 2.0  # a difference exceeds seed noise above this many stds of itself
SEEDS_COMMAND = "clviz main --seeds 0 1 2"


def zero_shot_differences(
    results_by_method: Mapping[str, RunResult],
) -> dict[str, dict[str, float | None]]:
    """Each method's Transfer, Avg and Last minus zero-shot's (None without a zero-shot run),
    as notebook 08 computes them (:func:`clviz.published.beside_published`)."""
    zs = results_by_method.get(ZERO_SHOT)
    return {
        name: {
            k: None if zs is None else getattr(r.metrics, k) - getattr(zs.metrics, k)
            for k in HEADLINE
        }
        for name, r in results_by_method.items()
    }


def _signed(v: float | None) -> str:
    return "–" if v is None else f"{v:+.1f}"


def comparison_table_html(results_by_method: Mapping[str, RunResult]) -> str:
    """The comparison as an HTML table: each method's numbers, its Transfer / Avg / Last minus
    zero-shot's, and the published MTIL order-I numbers beside."""
    head = (
        "<tr><th>method</th><th>Transfer</th><th>Avg</th><th>Last</th><th>BWT</th>"
        "<th>forgetting</th><th>Transfer − zero-shot</th><th>Avg − zero-shot</th>"
        "<th>Last − zero-shot</th><th>trainable params</th><th>seconds</th>"
        "<th>MTIL-I Transfer</th><th>MTIL-I Avg</th><th>MTIL-I Last</th></tr>"
    )
    deltas = zero_shot_differences(results_by_method)
    rows = []
    for r in metric_rows(results_by_method):
        p = published_row(r.label)
        cells = [
            html.escape(r.label),
            *(_fmt(getattr(r, k)) for k in ("transfer", "avg", "last", "bwt", "forgetting")),
            *(_signed(deltas[r.label][k]) for k in HEADLINE),
            _fmt(int(r.trainable_params)),
            _fmt(r.seconds, 0),
            *(_fmt(p[k]) for k in ("transfer", "avg", "last")),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _grouped(values: Mapping[str, Any]) -> dict[Any, list[str]]:
    """Methods by value, in first-seen order."""
    groups: dict[Any, list[str]] = {}
    for method, value in values.items():
        groups.setdefault(value, []).append(method)
    return groups


def _one_or_each(what: str, values: Mapping[str, Any]) -> str:
    """ "what: 100" when every run agrees, else each value with its methods, flagged."""
    groups = _grouped(values)
    if len(groups) == 1:
        return f"{what}: {next(iter(groups))}"
    each = "; ".join(f"{v} ({', '.join(ms)})" for v, ms in groups.items())
    return f"{what} DIFFER between runs: {each}"


def _train(r: RunResult, key: str) -> Any:
    """One field of a run's training config ("not recorded" where the config lacks it)."""
    return (r.config.get("train") or {}).get(key, "not recorded")


def _budget(r: RunResult) -> Any:
    """A run's configured steps per task: its ``steps``, or its per-task ``task_steps``."""
    per_task = (r.config.get("train") or {}).get("task_steps")
    return ", ".join(map(str, per_task)) if per_task else _train(r, "steps")


def _trained_steps(trained: Mapping[str, RunResult]) -> list[str]:
    """Runs whose trained steps per task (their stages summed) differ from their config's,
    e.g. ATLAS, whose two stages take more than ``steps``."""
    notes = []
    for name, r in trained.items():
        done = [t.steps for t in r.task_stats]
        train = r.config.get("train") or {}
        planned = train.get("task_steps") or [train.get("steps")] * len(done)
        if any(done) and done != list(planned):
            notes.append(f"{name} trained {', '.join(map(str, done))} steps on its tasks")
    return notes


def _mode(trained: Mapping[str, RunResult], stream: str, profile: str) -> str:
    """Fast (the smoke stream), full (the profile's own budget) or steps set by hand."""
    if stream == "smoke":
        return "fast (the smoke stream: a smoke test, too small to teach with)"
    own = {name: make_config(profile, name, stream).train.steps for name in trained}
    if all(own[name] == _train(r, "steps") for name, r in trained.items()):
        return f"full (the {profile} profile's own budget)"
    groups = _grouped(own)
    if len(groups) == 1:
        return f"steps set by hand (the {profile} profile's own budget is {next(iter(groups))})"
    each = "; ".join(f"{v} for {', '.join(ms)}" for v, ms in groups.items())
    return f"steps set by hand (the {profile} profile's own budget is {each})"


def setup_note(
    results_by_method: Mapping[str, RunResult],
    seeds: Mapping[str, Sequence[RunResult]] | None = None,
    profile: str | None = None,
) -> str:
    """What ran, read from the runs' configs (never a typed constant): stream, profile, mode,
    seeds, steps per task and batch size of the trained methods (zero-shot trains nothing);
    runs that differ in steps or batch are named."""
    runs = [r for rs in seeds.values() for r in rs] if seeds else list(results_by_method.values())
    used = sorted({r.config.get("seed", r.seed) for r in runs})
    streams = {m: r.stream for m, r in results_by_method.items()}
    trained = {m: r for m, r in results_by_method.items() if m != ZERO_SHOT}
    parts = [_one_or_each("stream", streams)]
    if profile:
        parts.append(f"profile: {profile}")
        if trained and len(set(streams.values())) == 1:
            parts.append(f"mode: {_mode(trained, next(iter(streams.values())), profile)}")
    parts.append(("seed: " if len(used) == 1 else "seeds: ") + ", ".join(map(str, used)))
    if trained:
        parts.append(
            _one_or_each("training steps per task", {m: _budget(r) for m, r in trained.items()})
        )
        parts.append(
            _one_or_each("batch size", {m: _train(r, "batch_size") for m, r in trained.items()})
        )
    text = "Setup, from the runs' configs: " + "; ".join(parts) + "."
    if notes := _trained_steps(trained):
        text += " Steps actually trained, from the runs' results: " + "; ".join(notes) + "."
    return html.escape(text, quote=False)


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


@dataclass(frozen=True)
class Difference:
    """One headline difference: ``a``'s ``metric`` minus ``b``'s (means over the seeds when
    several ran), and its seed noise: the standard deviation of the difference taken seed by
    seed (:func:`paired_spread`), None when only one seed ran (noise not measured)."""

    metric: str
    a: str
    b: str
    value_a: float
    value_b: float
    noise: float | None

    @property
    def value(self) -> float:
        return self.value_a - self.value_b

    @property
    def exceeds_noise(self) -> bool | None:
        """Whether ``|difference| > NOISE_SIGMAS x noise``; None when noise was not measured."""
        return None if self.noise is None else abs(self.value) > NOISE_SIGMAS * self.noise


def headline_pairs(values: Mapping[str, Mapping[str, float]]) -> list[tuple[str, str, str]]:
    """(metric, a, b) of the differences a reader takes from the table: the best against the
    second best on Transfer, Avg and Last, then each trained method's Transfer against
    zero-shot's (where not already among the first)."""
    pairs = []
    for metric in HEADLINE:
        ranked = sorted(values, key=lambda m: values[m][metric], reverse=True)
        if len(ranked) > 1:
            pairs.append((metric, ranked[0], ranked[1]))
    if ZERO_SHOT in values:
        taken = {(metric, *sorted((a, b))) for metric, a, b in pairs}
        pairs += [
            ("transfer", m, ZERO_SHOT)
            for m in values
            if m != ZERO_SHOT and ("transfer", *sorted((m, ZERO_SHOT))) not in taken
        ]
    return pairs


def headline_differences(
    results_by_method: Mapping[str, RunResult],
    seeds: Mapping[str, Sequence[RunResult]] | None = None,
) -> list[Difference]:
    """The :func:`headline_pairs`, with seed noise measured when ``seeds`` holds more than one
    seed per method.

    The rule: a difference exceeds seed noise when the mean over the seeds of (a - b) is
    larger than ``NOISE_SIGMAS`` (2) times the standard deviation of that per-seed difference.
    The difference is taken seed by seed because two methods on one seed share its world
    sample and its batches: what moves both together is not noise between them. With one seed
    no noise is measured and no difference is called real."""
    measured = bool(seeds) and min(len(rs) for rs in seeds.values()) > 1
    if measured:
        table = spreads(seeds)
        values = {m: {k: table[m][k].mean for k in HEADLINE} for m in table}
    else:
        values = {
            m: {k: getattr(r.metrics, k) for k in HEADLINE} for m, r in results_by_method.items()
        }
    return [
        Difference(
            metric,
            a,
            b,
            values[a][metric],
            values[b][metric],
            paired_spread(seeds[a], seeds[b], metric) if measured else None,
        )
        for metric, a, b in headline_pairs(values)
    ]


def paired_spread(a: Sequence[RunResult], b: Sequence[RunResult], metric: str) -> float:
    """Sample standard deviation over the seeds both methods ran of ``metric(a) - metric(b)``,
    the runs matched by seed."""
    by_seed = {r.config["seed"]: getattr(r.metrics, metric) for r in b}
    diffs = [getattr(r.metrics, metric) - by_seed[r.config["seed"]] for r in a]
    return float(np.std(diffs, ddof=1))


def _difference_line(d: Difference) -> str:
    """One difference in words, with its verdict against seed noise."""
    pair = f"{NAMES[d.metric]}: {d.a} {d.value_a:.1f} vs {d.b} {d.value_b:.1f}: "
    if abs(d.value) < 0.05:
        return pair + "no difference at this precision."
    text = pair + f"{d.value:+.1f} points; "
    if d.noise is None:
        return text + "not tested against seed noise."
    bound = f"{NOISE_SIGMAS:g} × {d.noise:.2f} = {NOISE_SIGMAS * d.noise:.2f} points"
    if d.exceeds_noise:
        return text + f"exceeds seed noise ({bound})."
    return text + f"within seed noise ({bound}): another seed could reverse it."


def noise_section(
    results_by_method: Mapping[str, RunResult],
    seeds: Mapping[str, Sequence[RunResult]] | None = None,
) -> str:
    """Which headline differences exceed seed noise (:func:`headline_differences`), with the
    rule printed; with one seed, says that noise was not measured and how to measure it."""
    diffs = headline_differences(results_by_method, seeds)
    measured = bool(diffs) and diffs[0].noise is not None
    what = (
        "The best method against the second best on Transfer, Avg and Last, and each "
        "method's Transfer against zero-shot's. "
    )
    if measured:
        count = min(len(rs) for rs in seeds.values())
        note = what + (
            f"Differences of the means over {count} seeds. Rule: a difference exceeds seed "
            f"noise when it is larger than {NOISE_SIGMAS:g} × the standard deviation of the "
            "same difference taken seed by seed (both methods on one seed share its world "
            "sample and its batches)."
        )
    else:
        note = what + (
            "Seed noise was not measured in this report: only one seed ran, so none of these "
            "differences can be called real, however large. "
            f"<code>{SEEDS_COMMAND}</code> measures it (every method with three seeds)."
        )
    items = "".join(f"<li>{html.escape(_difference_line(d), quote=False)}</li>" for d in diffs)
    return _section("Differences and seed noise", note, f"<ul class='note'>{items}</ul>")


def takeaways(results_by_method: Mapping[str, RunResult]) -> list[str]:
    """The report's take-aways, each computed from the comparison's numbers (notebook 08's,
    and ATLAS's Transfer explained); none without a zero-shot run to compare with."""
    trained = [m for m in results_by_method if m != ZERO_SHOT]
    if ZERO_SHOT not in results_by_method or not trained:
        return []
    lines = comparison_takeaways(results_by_method)
    if "atlas" in results_by_method:
        lines.append(atlas_transfer_takeaway(results_by_method))
    return lines


def _takeaway_section(results_by_method: Mapping[str, RunResult], measured: bool) -> str:
    lines = takeaways(results_by_method)
    if not lines:
        return ""
    seed = next(iter(results_by_method.values())).config.get("seed", "")
    noise = (
        "the section above says which differences exceed seed noise."
        if measured
        else "seed noise was not measured (above), so they describe this run, not differences "
        "shown to be real."
    )
    items = "".join(f"<li>{html.escape(line, quote=False)}</li>" for line in lines)
    return _section(
        "Take-aways",
        f"Written from the comparison table (seed {seed}) when the report was made; {noise}",
        f"<ul class='note'>{items}</ul>",
    )


def build_report(
    results_by_method: Mapping[str, RunResult],
    curves_by_method: Mapping[str, Mapping[str, Any]],
    dmap: DriftMap,
    umap_methods: Sequence[str],
    header: str = "",
    seeds: Mapping[str, Sequence[RunResult]] | None = None,
    profile: str | None = None,
) -> str:
    """The report's HTML text; ``seeds`` (each method's results over several seeds, see
    :func:`clviz.experiments.seeds.compare_seeds`) adds a section with error bars and measures
    the seed noise of the headline differences; ``profile`` (the runs' profile name) lets the
    setup line name it and the budget's mode."""
    figs: list[go.Figure] = []

    def fig(f: go.Figure) -> str:
        figs.append(f)
        # auto_play off: an animation opens on its first frame (checkpoint 0), as in notebook
        # 07, instead of playing to the last one when the page loads
        return f.to_html(
            full_html=False,
            include_plotlyjs=len(figs) == 1,
            default_width="100%",
            auto_play=False,
        )

    any_run = next(iter(results_by_method.values()))
    checkpoints = ["initial", *any_run.tasks]
    several = bool(seeds) and min(len(rs) for rs in seeds.values()) > 1
    parts = [
        _section(
            "The comparison",
            "Transfer: accuracy on tasks not learned yet (above the diagonal); Avg: the whole "
            "matrix; Last: after the whole stream (ZSCL's definitions). Transfer, Avg and "
            "Last − zero-shot: each method's number minus the untouched model's. The MTIL-I "
            "columns are the published ViT-B/16 numbers on the real benchmark, for the shape "
            "of the comparison, not its values.",
            comparison_table_html(results_by_method),
            fig(figures.metric_bars(results_by_method)),
        ),
        _seed_section(seeds, fig) if several else "",
        noise_section(results_by_method, seeds),
        _takeaway_section(results_by_method, several),
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
            "its features moved. Dots: images; diamonds: class texts; colour: task. Each map "
            "opens at checkpoint 0, the initial backbone; press play or drag the slider.",
            *(fig(drift_figures.umap_animation(dmap, m)) for m in umap_methods),
        ),
    ]
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
        f"<p class='note'>{setup_note(results_by_method, seeds, profile)}</p>"
        + "".join(parts)
        + "</body></html>"
    )


def write_report(path: str | Path, text: str) -> Path:
    """Write the report atomically; returns its path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
