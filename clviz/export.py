"""Executed notebooks to share: HTML that opens offline, and .ipynb copies that stay small.

nbconvert's own HTML loads require.js, MathJax and the widget manager from CDNs, so a saved
notebook opened without a network shows blank widgets and logs errors. Here:

- the page comes from the ``clviz_offline`` template (JupyterLab's look, no CDN script);
  plotly.js is embedded once, in the first figure's output (``use_notebook_renderer``);
- every widget is replaced by what it showed when the notebook ran: the outputs stored in its
  widget state (the explorer's figures) under a line naming its controls' values;
- external scripts inside outputs are dropped: plotly's notebook renderer adds MathJax from a
  CDN to every figure, and no clviz figure holds math;
- the .ipynb keeps one copy of each plotly figure (the JSON JupyterLab draws), not two, and
  not the 3.5 MB plotly.js the HTML copies need.
"""

from __future__ import annotations

import copy
import html
import re
from pathlib import Path
from typing import Any

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PLOTLY_JSON = "application/vnd.plotly.v1+json"
TEMPLATES = Path(__file__).resolve().parent / "templates"
EXTERNAL_SCRIPT = re.compile(r'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>')
PLOTLY_INIT = "window.PlotlyConfig"  # plotly.js itself, emitted once before the first figure


def _model_id(ref: Any) -> str | None:
    return ref.removeprefix("IPY_MODEL_") if isinstance(ref, str) else None


def widget_view(state: dict[str, Any], model_id: str) -> tuple[list[str], list[dict[str, Any]]]:
    """What widget ``model_id`` showed when the notebook was saved: its controls as
    "description value" strings, and the outputs of every Output widget inside it, in order."""
    model = state.get(model_id)
    if model is None:
        return [], []
    values = model.get("state", {})
    if model.get("model_name") == "OutputModel":
        return [], list(values.get("outputs", []))
    controls, outputs = [], []
    if "description" in values:
        value = values.get("value")
        if "_options_labels" in values and values.get("index") is not None:
            value = values["_options_labels"][values["index"]]
        controls.append(f"{values['description']} {value}".strip())
    elif model.get("model_name") == "LabelModel" and values.get("value"):
        controls.append(str(values["value"]))
    for child in values.get("children", []):
        if (ref := _model_id(child)) is not None:
            more_controls, more_outputs = widget_view(state, ref)
            controls += more_controls
            outputs += more_outputs
    return controls, outputs


PROGRESS_MODELS = ("FloatProgressModel", "IntProgressModel")


def progress_line(state: dict[str, Any], model_id: str) -> str | None:
    """A progress bar (tqdm's HBox of text, bar, text) as static HTML, or None for any other
    widget: the text as tqdm last wrote it, and an HTML ``<progress>`` where the bar was."""
    model = state.get(model_id, {})
    children = [_model_id(c) for c in model.get("state", {}).get("children", [])]
    kinds = [state.get(c, {}).get("model_name") for c in children]
    if not any(kind in PROGRESS_MODELS for kind in kinds):
        return None
    parts = []
    for child, kind in zip(children, kinds, strict=True):
        values = state[child].get("state", {})
        if kind in PROGRESS_MODELS:
            parts.append(
                f'<progress value="{values.get("value", 0)}" max="{values.get("max", 1)}">'
                "</progress>"
            )
        elif kind == "HTMLModel":
            parts.append(str(values.get("value", "")))  # tqdm's own HTML, escaped by tqdm
    return '<div style="font-family:monospace">' + " ".join(parts) + "</div>"


def _static_widget(state: dict[str, Any], model_id: str) -> list[dict[str, Any]]:
    if (line := progress_line(state, model_id)) is not None:
        return [{"output_type": "display_data", "metadata": {}, "data": {"text/html": line}}]
    controls, outputs = widget_view(state, model_id)
    shown = " · ".join(controls) or "its first view"
    note = (
        '<p style="color:#555;font-style:italic">An interactive widget in JupyterLab; this '
        f"copy shows what it showed when the notebook ran: {html.escape(shown)}.</p>"
    )
    return [{"output_type": "display_data", "metadata": {}, "data": {"text/html": note}}, *outputs]


def offline_notebook(nb: Any) -> Any:
    """A copy of executed notebook ``nb`` with every widget view replaced by its stored
    outputs, and no widget state left for a widget manager to load."""
    nb = copy.deepcopy(nb)
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                outputs.append(output)
            else:
                outputs += _static_widget(state, view["model_id"])
        for output in outputs:
            data = output.get("data", {})
            if "text/html" in data:
                data["text/html"] = EXTERNAL_SCRIPT.sub("", _text(data["text/html"]))
        cell.outputs = [_as_node(o) for o in outputs]
    nb.metadata.pop("widgets", None)
    return nb


def _as_node(output: Any) -> Any:
    import nbformat

    return output if isinstance(output, nbformat.NotebookNode) else nbformat.from_dict(output)


def _text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def _one_plotly_copy(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept = []
    for output in outputs:
        data = output.get("data", {})
        if PLOTLY_JSON in data:
            data.pop("text/html", None)
        if not (set(data) == {"text/html"} and _text(data["text/html"]).find(PLOTLY_INIT) >= 0):
            kept.append(output)
    return kept


def small_notebook(nb: Any) -> Any:
    """A copy of executed notebook ``nb`` for saving: figures that carry plotly's JSON drop
    their HTML copy and plotly.js goes (JupyterLab draws the JSON; the HTML export keeps both)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = _one_plotly_copy(cell.get("outputs", []))
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for model in state.values():
        if model.get("model_name") == "OutputModel":
            values = model.get("state", {})
            values["outputs"] = _one_plotly_copy(values.get("outputs", []))
    return nb


def offline_html(nb: Any) -> str:
    """The HTML page of executed notebook ``nb``: JupyterLab's look, no script from a CDN."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="clviz_offline", extra_template_basedirs=[str(TEMPLATES)])
    body, _ = exporter.from_notebook_node(offline_notebook(nb))
    return body
