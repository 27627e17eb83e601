"""ATLAS's Transfer take-away: computed from the numbers both ways, and its mechanism the code's."""

from __future__ import annotations

from types import SimpleNamespace

from clviz.core.loop import draws_for
from clviz.core.result import RunResult
from clviz.teach.takeaways import atlas_transfer_takeaway


def with_transfer(name: str, transfer: float, last: float = 60.0) -> RunResult:
    """A three-task run whose every entry above the diagonal is ``transfer`` (so its Transfer
    is exactly that) and every other entry ``last``."""
    t, w = transfer, last
    return RunResult(name, ["a", "b", "c"], [[w, t, t], [w, w, t], [w, w, w]])


def runs(atlas: float, zero_shot: float = 50.0, finetune: float | None = 40.0) -> dict:
    out = {"zero-shot": with_transfer("zero-shot", zero_shot, 50.0)}
    if finetune is not None:
        out["finetune"] = with_transfer("finetune", finetune)
    out["atlas"] = with_transfer("atlas", atlas)
    return out


def test_a_transfer_below_zero_shot_is_quoted_and_explained():
    line = atlas_transfer_takeaway(runs(atlas=37.0))
    assert line.startswith("ATLAS's Transfer (37.0) is 13.0 points below zero-shot's (50.0)")
    assert "below fine-tuning's (40.0)" in line
    assert "the lowest of the 3 methods here" in line
    assert "Why:" in line and "no way back to the untouched backbone" in line
    assert "newest task's queries" in line and "DDAS" in line


def test_a_transfer_above_zero_shot_is_not_blamed_on_the_adapters():
    line = atlas_transfer_takeaway(runs(atlas=55.0, finetune=58.0))
    assert line.startswith("ATLAS's Transfer (55.0) is 5.0 points above zero-shot's (50.0)")
    assert "below fine-tuning's (58.0)" in line
    assert "lowest" not in line and "Why:" not in line
    assert "helped the tasks not learned yet" in line


def test_a_transfer_level_with_zero_shot_says_so_without_fine_tuning():
    line = atlas_transfer_takeaway(runs(atlas=50.4, finetune=None))
    assert line.startswith("ATLAS's Transfer (50.4) is about level with zero-shot's (50.0)")
    assert "fine-tuning" not in line and "below" not in line and "above" not in line
    assert "hardly changed" in line


def test_fine_tuning_level_with_atlas_is_about_level():
    line = atlas_transfer_takeaway(runs(atlas=37.0, finetune=37.5))
    assert "about level with fine-tuning's (37.5)" in line
    assert "the lowest of the 3 methods here" in line  # 37.0 < 37.5, level or not
    assert "lowest" not in atlas_transfer_takeaway(runs(atlas=37.0, finetune=36.9))


def test_the_mechanism_it_names_is_the_codes(make_method, fmt, small_task):
    """An unseen task goes through the adapters with the newest query set: no site hands it
    to the untouched backbone (task None), and nothing bypasses them."""
    atlas = make_method("atlas")
    atlas.begin_task(fmt(small_task), 0, draws_for(0))
    with atlas.context(SimpleNamespace(name="not learned yet")):
        assert all(site.task == 0 for site in atlas.sites.values())
        assert all(site.bypass is None for site in atlas.sites.values())
