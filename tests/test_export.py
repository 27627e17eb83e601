"""Executed notebooks to share: offline HTML (no CDN, widgets shown as they ran), small .ipynb."""

from __future__ import annotations

import re

import nbformat
import pytest
from nbclient.exceptions import CellTimeoutError

from clviz.browser import check_html
from clviz.export import progress_line, widget_view
from clviz.notebooks import execute_notebook

FIGURE = """from clviz.figures import use_notebook_renderer
use_notebook_renderer()
import plotly.graph_objects as go
go.Figure(go.Bar(y=[1, 2]))"""
EXPLORER = """import ipywidgets as w
from IPython.display import display
out = w.Output()
with out:
    display(go.Figure(go.Scatter(y=[3, 1, 2])))
controls = [
    w.Dropdown(options=["a", "b"], value="b", description="method"),
    w.IntSlider(value=3, min=1, max=3, description="after task"),
]
w.VBox([w.HBox(controls), out])"""


def notebook(path, *sources: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, path)
    return path


def test_a_widget_shows_its_controls_and_its_outputs_from_the_saved_state():
    state = {
        "box": {
            "model_name": "VBoxModel",
            "state": {"children": ["IPY_MODEL_pick", "IPY_MODEL_o"]},
        },
        "pick": {
            "model_name": "DropdownModel",
            "state": {"description": "method", "index": 1, "_options_labels": ["a", "b"]},
        },
        "o": {"model_name": "OutputModel", "state": {"outputs": [{"output_type": "stream"}]}},
    }
    assert widget_view(state, "box") == (["method b"], [{"output_type": "stream"}])
    assert widget_view(state, "gone") == ([], [])
    assert progress_line(state, "box") is None


def test_a_progress_bar_becomes_its_text_and_an_html_progress_element():
    state = {
        "bar": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_p"]}},
        "l": {"model_name": "HTMLModel", "state": {"value": "finetune: 100%"}},
        "p": {"model_name": "FloatProgressModel", "state": {"value": 3.0, "max": 3.0}},
    }
    line = progress_line(state, "bar")
    assert "finetune: 100%" in line and '<progress value="3.0" max="3.0">' in line


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    source = notebook(folder / "explorer.ipynb", FIGURE, EXPLORER)
    return execute_notebook(source, folder / "out", cell_timeout=120)


def test_the_html_loads_nothing_from_a_cdn_and_shows_the_widgets_first_view(exported):
    _, page = exported
    text = page.read_text(encoding="utf-8")
    assert re.findall(r'<script[^>]*src="https?://', text) == []
    assert text.count("* plotly.js v") == 1  # plotly.js embedded once
    assert text.count('class="plotly-graph-div"') == 2  # the figure inside the widget too
    assert "method b · after task 3" in text
    assert "An interactive widget" in text and text.count("An interactive widget") == 1


def test_the_saved_notebook_keeps_one_copy_of_each_figure_and_no_plotly_js(exported):
    executed, _ = exported
    assert executed.stat().st_size < 100_000  # 5 MB with plotly.js and HTML copies
    nb = nbformat.read(executed, as_version=4)
    figures = [o for c in nb.cells for o in c.outputs if "application/vnd.plotly.v1+json" in o.data]
    assert len(figures) == 1 and "text/html" not in figures[0].data


def test_the_offline_html_draws_every_figure_in_chromium(chromium, exported, tmp_path):
    _, page = exported
    seen = check_html(page)
    assert seen.errors == []
    assert seen.drawn == seen.figures == 2


def test_a_cell_past_its_time_limit_stops_the_export(tmp_path):
    source = notebook(tmp_path / "stuck.ipynb", "import time\ntime.sleep(60)")
    with pytest.raises(CellTimeoutError):
        execute_notebook(source, tmp_path / "out", cell_timeout=3)
    assert not (tmp_path / "out" / "stuck.html").exists()


def test_replies_are_read_in_short_waits_and_the_time_limit_still_holds():
    import asyncio
    import time
    from queue import Empty

    from clviz.notebooks import short_waits

    class Channel:
        def __init__(self, ready_after: int):
            self.calls, self.ready_after = [], ready_after

        async def get_msg(self, timeout=None):
            self.calls.append(timeout)
            if len(self.calls) > self.ready_after:
                return {"msg_type": "execute_reply"}
            await asyncio.sleep(timeout)
            raise Empty

    channel = Channel(ready_after=2)
    short_waits(channel, interval=0.01)
    assert asyncio.run(channel.get_msg(timeout=900))["msg_type"] == "execute_reply"
    assert len(channel.calls) == 3 and max(channel.calls) <= 0.01  # not one 900 s wait
    never = Channel(ready_after=10**6)
    short_waits(never, interval=0.01)
    started = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(never.get_msg(timeout=0.05))
    assert time.monotonic() - started < 1
