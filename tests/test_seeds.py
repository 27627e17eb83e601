"""The comparison over several seeds: runs per seed, mean ± std, the figure, bad input."""

from __future__ import annotations

import pytest

from clviz.core.result import RunResult
from clviz.experiments.seeds import Spread, compare_seeds, difference_is_clear, seed_table, spreads
from clviz.figures import seed_bars

A = [[80.0, 30.0, 20.0], [60.0, 90.0, 25.0], [50.0, 70.0, 85.0]]
B = [[70.0, 40.0, 20.0], [60.0, 80.0, 35.0], [50.0, 60.0, 85.0]]


def two_seeds() -> dict[str, list[RunResult]]:
    return {
        "finetune": [RunResult("finetune", ["a", "b", "c"], m) for m in (A, B)],
        "zscl": [RunResult("zscl", ["a", "b", "c"], m) for m in (A, A)],
    }


def test_spreads_are_the_mean_and_sample_std_of_each_seeds_metric():
    table = spreads(two_seeds())
    # Transfer: A (30 + 22.5) / 2 = 26.25, B (40 + 27.5) / 2 = 33.75; sample std 5.30.
    assert table["finetune"]["transfer"].values == (26.25, 33.75)
    assert table["finetune"]["transfer"].mean == pytest.approx(30.0)
    assert table["finetune"]["transfer"].std == pytest.approx(5.303, abs=1e-3)
    assert table["zscl"]["transfer"].std == 0.0
    assert "| finetune | 30.0 ± 5.3 |" in seed_table(two_seeds())


def test_a_difference_is_clear_only_beyond_both_spreads():
    assert difference_is_clear(Spread(50, 1, ()), Spread(46, 2, ()))
    assert not difference_is_clear(Spread(50, 2, ()), Spread(47, 2, ()))


def test_the_seed_figure_draws_bars_with_error_bars_and_one_dot_per_seed():
    table = spreads(two_seeds())
    fig = seed_bars(table, ("transfer", "last"))
    bars = [t for t in fig.data if t.type == "bar"]
    dots = [t for t in fig.data if t.type == "box"]
    assert [b.name for b in bars] == ["finetune", "zscl"]
    assert list(bars[0].error_y.array) == [table["finetune"][m].std for m in ("transfer", "last")]
    assert len(dots[0].y) == 4  # two metrics x two seeds
    assert "2 seeds" in fig.layout.title.text


def test_compare_seeds_runs_each_method_once_per_seed(tmp_path):
    by_method = compare_seeds(
        ["zero-shot", "finetune"], [0, 1], stream="smoke", steps=2, root=tmp_path, progress=False
    )
    assert [r.config["seed"] for r in by_method["finetune"]] == [0, 1]
    zs = [r.metrics.transfer for r in by_method["zero-shot"]]
    assert zs[0] != zs[1]  # another seed draws another sample of the world


@pytest.mark.parametrize(
    ("seeds", "message"), [([], "no seeds given"), ([0, 0], "seeds repeat: \\[0, 0\\]")]
)
def test_bad_seeds_are_refused_before_training(tmp_path, seeds, message):
    with pytest.raises(ValueError, match=message):
        compare_seeds(["finetune"], seeds, stream="smoke", steps=2, root=tmp_path)
