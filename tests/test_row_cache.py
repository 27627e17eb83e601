"""The one cache of frozen computations: a row per example, keyed by (namespace, position),
least recently used first out at a byte bound, and transparent to results."""

from __future__ import annotations

import pytest
import torch
from helpers import predict

from clviz.core import learn_task
from clviz.core.loop import draws_for
from clviz.methods.row_cache import RowCache, positions

ROW = 4 * 4  # bytes of one row of `Recorder`: four float32


class Recorder:
    """``compute``: row i is image i's value times (1, 2, 3, 4); remembers each call's
    images."""

    def __init__(self):
        self.calls: list[torch.Tensor] = []

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.calls.append(images.clone())
        return images.float()[:, None] * torch.arange(1.0, 5.0)


def rows(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)[:, None] * torch.arange(1.0, 5.0)


def test_positions_of_slices_tensors_masks_and_lists():
    assert positions(slice(3, 6), 3) == [3, 4, 5]
    assert positions(slice(None, None), 2) == [0, 1]
    assert positions(slice(2, None, 2), 3) == [2, 4, 6]
    assert positions(torch.tensor([5, 1, 5]), 3) == [5, 1, 5]
    assert positions(torch.tensor([False, True, True]), 2) == [1, 2]
    assert positions([7, 8], 2) == [7, 8]
    with pytest.raises(ValueError, match="names 2 examples but there are 3"):
        positions([7, 8], 3)
    with pytest.raises(ValueError, match="step forward"):
        positions(slice(None, None, -1), 2)


def test_rows_are_computed_once_together_and_returned_in_order():
    compute = Recorder()
    cache = RowCache(compute)
    images = torch.tensor([10, 11, 12, 13, 14])
    first = cache("a", torch.tensor([2, 0, 2]), images[[2, 0, 2]])  # position 2 twice
    torch.testing.assert_close(first, rows([12, 10, 12]))
    assert torch.equal(compute.calls[0], torch.tensor([12, 10]))  # new rows, first-seen order
    assert (cache.misses, cache.hits, len(cache)) == (2, 1, 2)
    again = cache("a", torch.tensor([3, 2, 1, 0]), images[[3, 2, 1, 0]])
    torch.testing.assert_close(again, rows([13, 12, 11, 10]))
    assert torch.equal(compute.calls[1], torch.tensor([13, 11]))  # only the new, as one batch
    assert (cache.misses, cache.hits, len(cache)) == (4, 3, 4)
    cache("a", slice(0, 4), images[:4])  # all four known: nothing computed
    assert len(compute.calls) == 2 and cache.hits == 7


def test_rows_are_keyed_by_position_not_by_pixels():
    """The key is where an example comes from: the same position is a hit whatever the
    tensor holds, and two positions are two rows even with identical pixels."""
    compute = Recorder()
    cache = RowCache(compute)
    cache("a", [0, 1], torch.tensor([5, 5]))
    assert len(compute.calls[0]) == 2 and len(cache) == 2
    torch.testing.assert_close(cache("a", [1], torch.tensor([9])), rows([5]))


def test_a_call_of_new_rows_computes_exactly_its_images():
    """Every row new and distinct: ``compute`` sees the call's own tensor, so the result is
    the uncached computation itself (the same batch, bit for bit)."""
    compute = Recorder()
    seen = []
    cache = RowCache(lambda x: (seen.append(x), compute(x))[1])
    images = torch.tensor([3, 1, 2])
    out = cache(("task", "test"), slice(0, 3), images)
    assert seen[0] is images
    assert torch.equal(out, compute(images))


def test_namespaces_with_the_same_positions_do_not_collide():
    compute = Recorder()
    cache = RowCache(compute)
    a = cache(("shapes", "test"), slice(0, 2), torch.tensor([1, 2]))
    b = cache(("digits", "test"), slice(0, 2), torch.tensor([3, 4]))
    c = cache(("shapes", "train"), slice(0, 2), torch.tensor([5, 6]))
    d = cache("reference", slice(0, 2), torch.tensor([7, 8]))
    for out, values in ((a, [1, 2]), (b, [3, 4]), (c, [5, 6]), (d, [7, 8])):
        torch.testing.assert_close(out, rows(values))
    assert len(compute.calls) == 4 and len(cache) == 8 and cache.hits == 0
    torch.testing.assert_close(cache(("digits", "test"), [1], torch.tensor([0])), rows([4]))


def test_the_least_recently_used_row_goes_first_at_the_byte_bound():
    compute = Recorder()
    cache = RowCache(compute, max_bytes=3 * ROW)  # room for three rows
    cache("a", [0, 1, 2], torch.tensor([0, 1, 2]))
    assert (len(cache), cache.nbytes) == (3, 3 * ROW)
    cache("a", [0], torch.tensor([0]))  # row 0 used again: row 1 is now the oldest
    cache("a", [3], torch.tensor([3]))  # over the bound: row 1 goes
    assert len(cache) == 3 and cache.nbytes == 3 * ROW
    assert ("a", 1) not in cache and all(("a", p) in cache for p in (0, 2, 3))
    cache("a", [4, 5], torch.tensor([4, 5]))  # two more: rows 2 and 0 go, in that order
    assert [("a", p) in cache for p in range(6)] == [False, False, False, True, True, True]
    torch.testing.assert_close(cache("a", [1, 4], torch.tensor([1, 4])), rows([1, 4]))
    assert torch.equal(compute.calls[-1], torch.tensor([1]))  # the evicted row, recomputed


def test_a_call_larger_than_the_bound_is_still_answered_whole():
    compute = Recorder()
    cache = RowCache(compute, max_bytes=2 * ROW)
    out = cache("a", [0, 1, 2, 3], torch.tensor([0, 1, 2, 3]))
    torch.testing.assert_close(out, rows([0, 1, 2, 3]))
    assert len(cache) == 2 and ("a", 3) in cache and ("a", 0) not in cache


def test_a_zero_bound_keeps_nothing():
    compute = Recorder()
    cache = RowCache(compute, max_bytes=0)
    for _ in range(2):
        torch.testing.assert_close(cache("a", [0, 1, 0], torch.tensor([4, 5, 4])), rows([4, 5, 4]))
    assert len(cache) == 0 and cache.nbytes == 0 and len(compute.calls) == 2
    assert (cache.misses, cache.hits) == (4, 2)  # the repeat within a call is still shared


def test_rows_do_not_keep_the_whole_batch_alive():
    """Each kept row has its own storage, so evicting a row frees its bytes."""
    cache = RowCache(Recorder())
    cache("a", [0, 1], torch.tensor([1, 2]))
    kept = [cache._rows[("a", p)] for p in (0, 1)]
    assert kept[0].untyped_storage().data_ptr() != kept[1].untyped_storage().data_ptr()
    assert all(r.untyped_storage().nbytes() == ROW for r in kept)


# ---------------------------------------------------------------- the methods that use it
def test_ddas_features_are_cached_without_changing_predictions(make_method, small_task, fmt):
    method = make_method("moe-adapters", ddas_steps=5)
    task = fmt(small_task)
    learn_task(method, task, 0, seed=0, progress=False)
    cache = method.generic_features
    cache.clear()
    n = task.size("test")
    first = predict(method, task)
    assert (cache.misses, len(cache)) == (n, n)
    assert all(((task.name, "test"), p) in cache for p in range(n))
    again = predict(method, task)
    assert cache.hits == n and cache.misses == n
    assert torch.equal(first, again)
    method.split_features(task, "test")  # the selection report reads the evaluation's rows
    assert cache.hits == 2 * n and cache.misses == n
    method.split_features(task, "train")  # read once per task: not kept
    assert len(cache) == n
    cache.clear()
    assert torch.equal(predict(method, task), first)
    cache.max_bytes = 0  # off
    assert torch.equal(predict(method, task), first)


def test_zscl_caches_the_teacher_by_reference_position(make_method, small_task, fmt):
    method = make_method("zscl", reference_images=16, reference_texts=8, reference_batch=12)
    task = fmt(small_task)
    state = method.begin_task(task.for_training("first"), 0, draws_for(0))
    cache = state.teacher_images
    for _ in range(3):
        method.loss(task.batch("train", torch.arange(8)), state)
    assert cache.misses + cache.hits == 3 * 12 and cache.misses == len(cache) <= 16
    assert {k[0] for k in cache._rows} == {"reference"}
    (p,) = [k[1] for k in list(cache._rows)[:1]]
    with torch.no_grad():
        expected = cache.compute(method.reference_images[[p]])
    torch.testing.assert_close(cache._rows[("reference", p)], expected[0])


def test_mulki_and_lwf_cache_their_teachers_by_training_position(make_method, small_task, fmt):
    task = fmt(small_task)
    mulki = make_method("mulki")
    state = mulki.begin_task(task, 1, draws_for(0))
    mulki.loss(task.batch("train", torch.arange(16)), state)
    mulki.loss(task.batch("train", torch.arange(8, 24)), state)
    for cache in state.teacher_images:
        assert (cache.misses, cache.hits) == (24, 8)
        assert set(cache._rows) == {((task.name, "train"), p) for p in range(24)}
    lwf = make_method("lwf")
    state = lwf.begin_task(task.for_training("first"), 0, draws_for(0))
    lwf.loss(task.batch("train", torch.arange(8)), state)
    assert {k[0] for k in state.teacher._rows} == {(task.name, "train")}
    assert len(state.teacher) == state.teacher.misses
