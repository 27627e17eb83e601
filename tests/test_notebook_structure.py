"""Every numbered notebook is built as teaching material: learning goals and its expected time
at the top, a self-checked exercise and an effect check where it teaches a method, discussion
questions at the end, and the teacher's guide times every one of them."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from clviz.notebooks import notebook_paths

NOTEBOOKS = notebook_paths()
GUIDE = Path(__file__).resolve().parent.parent / "docs" / "teaching.md"


def markdown(nb) -> list[str]:
    return ["".join(c.source) for c in nb.cells if c.cell_type == "markdown"]


def code(nb) -> str:
    return "\n".join("".join(c.source) for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_first_cell_states_goals_and_the_class_mode_time(path):
    first = markdown(nbformat.read(path, as_version=4))[0]
    assert (
        "**Time.** In class mode (`CLVIZ_MODE=class`) on a 2-core CPU in JupyterLab: about "
        in first
    )
    assert "opened alone from an empty store" in first
    assert "On one GPU:" in first
    if not path.stem.startswith("00"):
        assert "**Learning goals.**" in first


@pytest.mark.parametrize(
    "path", [p for p in NOTEBOOKS if "01" <= p.stem[:2] <= "08"], ids=lambda p: p.stem
)
def test_method_notebooks_have_an_exercise_an_effect_check_and_questions(path):
    nb = nbformat.read(path, as_version=4)
    source = code(nb)
    assert "from clviz.teach import check_" in source  # a self-checked "your turn" cell
    assert "check_effects(" in source and "budget.mode" in source
    assert "**Questions to discuss.**" in markdown(nb)[-1]


def test_the_teachers_guide_times_every_notebook():
    guide = GUIDE.read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        number = path.stem[:2]
        assert f"| {number} " in guide, f"docs/teaching.md has no timing row for {path.stem}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_draws_a_widget_progress_bar(path):
    """A widget bar makes JupyterLab show the kernel Idle for the rest of its cell
    (``clviz.core.progress``): notebooks draw progress with ``progress_bar``."""
    source = code(nbformat.read(path, as_version=4))
    for widget_bar in ("tqdm.auto", "tqdm.notebook", "tqdm import tqdm", "IntProgress"):
        assert widget_bar not in source, f"{path.stem} uses {widget_bar}; use progress_bar"


TRAINS = ("compare(", "compare_seeds(", "run(", "run_protocol(", "walk_through(", "learn_task(")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_first_code_cell_trains_nothing(path):
    """On a fresh kernel JupyterLab's debugger asks the kernel about itself on the control
    channel, and the kernel's replies read as *Idle* for the rest of the first cell: a first
    cell that trains for minutes would show an idle kernel (measured in the walkthrough)."""
    nb = nbformat.read(path, as_version=4)
    first = next(c.source for c in nb.cells if c.cell_type == "code")
    assert not [t for t in TRAINS if t in first], f"{path.stem}'s first code cell trains"
