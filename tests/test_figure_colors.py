"""One colour per method, by name: distinct for every registered method, the same everywhere."""

from __future__ import annotations

import numpy as np

from clviz.core import RunResult
from clviz.figures import colors
from clviz.figures.colors import METHOD_COLORS, method_color, method_colors, task_color
from clviz.methods import list_methods

TASKS = ["a", "b", "c"]


def run(name: str) -> RunResult:
    return RunResult(name, TASKS, [[80, 30, 20], [60, 90, 25], [50, 70, 85]])


def test_every_registered_method_has_its_own_colour():
    names = list_methods()
    assert set(METHOD_COLORS) == set(names)  # a new method needs a colour here
    assert len({method_color(n).lower() for n in names}) == len(names)
    assert method_color("zero-shot") == "#888888"  # the untouched backbone: neutral grey
    assert method_color("moe-adapters-taskid") != method_color("moe-adapters")


def test_other_labels_never_take_a_registered_methods_colour():
    registered = {c.lower() for c in METHOD_COLORS.values()}
    for label in ("mulki (no stage 2)", "all stages", "fresh adapter", "method 7", "x"):
        assert method_colors([label, *list_methods()])[label].lower() not in registered
        assert method_color(label) == method_color(label)  # stable: derived from the text


def test_a_variant_takes_its_methods_colour_unless_both_are_drawn():
    assert method_color("finetune (seed 1)") == method_color("finetune")
    assert method_color("finetune seed 1") == method_color("finetune")
    assert colors.base_method("moe-adapters-taskid (seed 0)") == "moe-adapters-taskid"
    alone = method_colors(["mulki (no stage 2)", "zscl"])
    assert alone["mulki (no stage 2)"] == method_color("mulki")
    both = method_colors(["mulki", "mulki (no stage 2)"])
    assert both["mulki"] == method_color("mulki") != both["mulki (no stage 2)"]


def test_two_figures_give_a_method_the_same_colour_whatever_else_they_show():
    from clviz.analysis.drift.extract import FINAL
    from clviz.figures import metric_bars, seed_bars, task_curve_comparison
    from clviz.figures.drift import drift_comparison

    bars = metric_bars({n: run(n) for n in ("zero-shot", "finetune", "atlas")})
    bar_colours = {t.name: t.marker.color for t in bars.data}
    curves = {
        n: {
            "cka": {FINAL: [1.0, 0.9, 0.8, 0.7]},
            "knn": {FINAL: [50.0, 60.0, 55.0, 50.0]},
            "centroid_shift": [0.0, 0.1, 0.2, 0.3],
            "modality_gap": [0.8, 0.8, 0.7, 0.7],
        }
        for n in ("atlas", "lwf", "finetune")  # another set, another order
    }
    drift = drift_comparison(curves, ["initial", *TASKS])
    drift_colours = {t.name: t.line.color for t in drift.data}
    lines = task_curve_comparison({n: run(n) for n in ("finetune", "atlas")}, "b")
    line_colours = {t.name: t.line.color for t in lines.data}
    for name in ("finetune", "atlas"):
        assert bar_colours[name] == drift_colours[name] == line_colours[name]
        assert bar_colours[name] == method_color(name)
    assert bar_colours["zero-shot"] == method_color("zero-shot")

    spread = type("Spread", (), {"mean": 50.0, "std": 1.0, "values": [49.0, 51.0]})()
    seeds = seed_bars({n: {"transfer": spread, "last": spread} for n in ("atlas", "zscl")})
    seed_colours = {t.name: t.marker.color for t in seeds.data if t.type == "bar"}
    assert seed_colours == {"atlas": method_color("atlas"), "zscl": method_color("zscl")}


def test_tasks_keep_one_colour_each_across_figures():
    from clviz.figures import task_curves
    from clviz.figures.moe import ddas_error_histograms

    curves = task_curves(run("finetune"))
    line_colours = [t.line.color for t in curves.data if t.mode == "lines"]
    hist = ddas_error_histograms({t: np.array([0.1, 0.2]) for t in TASKS}, 0.15)
    assert line_colours == [t.marker.color for t in hist.data] == [task_color(i) for i in range(3)]
    assert len({task_color(i) for i in range(20)}) == 20
