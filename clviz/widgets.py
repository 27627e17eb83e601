"""Interactive explorers for JupyterLab: thin ipywidgets shells over pure figure functions.

Pick a method and a task (numbered from 1, as every title does); the probe's UMAP, the routing
heatmap (MoE-Adapters) and the accuracy row update. Each panel is a function returning a plotly
figure (:func:`panels`), so everything the widget shows is tested without a browser.
"""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go

from clviz.analysis.drift.umap_map import DriftMap
from clviz.core.result import RunResult
from clviz.errors import UnknownNameError
from clviz.figures.drift import umap_frame
from clviz.figures.forgetting import accuracy_row
from clviz.figures.moe import expert_selection_heatmaps
from clviz.methods.moe import RoutingRecord


def routing_until(result: RunResult, index: int, tower: str = "image") -> go.Figure | None:
    """Expert selection of every task up to ``index`` (None for methods without routers)."""
    record = result.record
    if not isinstance(record, RoutingRecord):
        return None
    stop = index + 1
    return expert_selection_heatmaps(
        record.selections[:stop], record.frozen_history[:stop], result.tasks[:stop], tower
    )


def panels(
    results_by_method: Mapping[str, RunResult], dmap: DriftMap, method: str, index: int
) -> dict[str, go.Figure | None]:
    """What the explorer shows for ``method`` after task ``index`` (0-based here; every title
    numbers tasks from 1, as the slider does): the UMAP at checkpoint ``index + 1``, the
    accuracy row and, for MoE methods, the routing so far."""
    if method not in results_by_method:
        raise UnknownNameError(f"no results for {method!r}; have {', '.join(results_by_method)}")
    results = results_by_method[method]
    return {
        "umap": umap_frame(dmap, method, index + 1) if method in dmap.image else None,
        "accuracy": accuracy_row(results, index),
        "routing": routing_until(results, index),
    }


def task_slider(n_tasks: int):
    """The explorer's task slider, 1-based like every title it drives: "after task k" shows
    checkpoint k (checkpoint 0 is the untouched backbone)."""
    import ipywidgets as widgets

    return widgets.IntSlider(
        value=n_tasks,
        min=1,
        max=n_tasks,
        description="after task",
        continuous_update=False,
    )


def explorer(results_by_method: Mapping[str, RunResult], dmap: DriftMap):
    """A method dropdown and a task slider (1 .. T) over :func:`panels` (needs a live kernel)."""
    import ipywidgets as widgets
    from IPython.display import display

    methods = list(results_by_method)
    n_tasks = len(next(iter(results_by_method.values())).tasks)
    method = widgets.Dropdown(options=methods, value=methods[-1], description="method")
    task = task_slider(n_tasks)
    label = widgets.Label()
    out = widgets.Output()

    def draw(*_) -> None:
        index = task.value - 1  # the slider counts tasks from 1, panels index them from 0
        label.value = results_by_method[method.value].tasks[index]
        with out:
            out.clear_output(wait=True)
            for fig in panels(results_by_method, dmap, method.value, index).values():
                if fig is not None:
                    display(fig)

    method.observe(draw, names="value")
    task.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([method, task, label]), out])
