"""Representation drift: the probe, the measures, the saved features, the map, the figures."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from clviz.analysis.drift import (
    centroid_shift,
    curves_of,
    drift_map,
    extract_snapshot,
    knn_accuracy,
    linear_cka,
    make_probe,
    modality_gap,
    umap_map,
)
from clviz.analysis.features import block_features
from clviz.core.clip import class_text_features, image_features
from clviz.core.formats import make_format
from clviz.figures import drift as drift_figures
from clviz.methods.zeroshot import ZeroShot
from clviz.widgets import panels, routing_until
from clviz.world.tasks import get_stream


def formats(tasks, tiny):
    return [make_format(t, tiny[2]) for t in tasks]


def test_probe_takes_the_first_test_images_of_every_class(tiny):
    tasks = get_stream("smoke")
    probe = make_probe(formats(tasks, tiny), per_class=3)
    assert len(probe) == 3 * sum(t.num_classes for t in tasks)
    first = tasks[0]
    idx = torch.nonzero(first.test_labels == 1).flatten()[:3]
    assert torch.equal(probe.images[probe.of_task(0)][3:6], first.test_images[idx])
    assert probe.text_task_ids().tolist().count(2) == tasks[2].num_classes
    with pytest.raises(ValueError, match="per_class must be at least 2"):
        make_probe(formats(tasks, tiny), per_class=1)


def test_linear_cka_is_one_for_rotations_and_scaling_and_low_for_unrelated_features():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=g)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0)
    assert linear_cka(x, torch.randn(200, 16, generator=g)) < 0.2
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(x, x[:10])


def test_centroid_shift_and_modality_gap_on_known_geometry():
    x = torch.eye(4)[:2].repeat(3, 1)  # two classes, at e1 and e2
    groups = torch.tensor([0, 1] * 3)
    assert centroid_shift(x, x, groups) == pytest.approx(0.0)
    rotated = torch.eye(4)[2:].repeat(3, 1)  # both classes moved to orthogonal directions
    assert centroid_shift(x, rotated, groups) == pytest.approx(1.0)
    image, text = torch.eye(3)[:1].repeat(5, 1), torch.eye(3)[1:2].repeat(4, 1)
    assert modality_gap(image, text) == pytest.approx(math.sqrt(2))
    assert modality_gap(image, image) == pytest.approx(0.0)


def test_knn_accuracy_separates_clusters_from_noise():
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(4).repeat_interleave(10)
    centers = torch.randn(4, 8, generator=g) * 5
    clustered = centers[labels] + 0.1 * torch.randn(40, 8, generator=g)
    tasks = torch.zeros(40, dtype=torch.long)
    assert knn_accuracy(clustered, tasks, labels) == 100.0
    assert knn_accuracy(torch.randn(40, 8, generator=g), tasks, labels) < 60.0


def test_snapshot_matches_what_the_method_computes(tiny):
    model, _, tokenizer = tiny
    tasks = get_stream("smoke")[:2]
    probe = make_probe(formats(tasks, tiny), per_class=2)
    snap = extract_snapshot(ZeroShot(model, tokenizer), probe)
    images = probe.images[probe.of_task(1)]
    assert torch.allclose(snap.image["embedding"][probe.of_task(1)], image_features(model, images))
    n0 = tasks[0].num_classes
    assert torch.allclose(
        snap.text["embedding"][n0:], class_text_features(model, tokenizer, tasks[1])
    )
    block = "visual.transformer.resblocks.3"
    assert torch.allclose(snap.image[block][probe.of_task(1)], block_features(model, images)[block])
    assert set(snap.text) == {"embedding", *(f"transformer.resblocks.{i}" for i in range(4))}


def test_runs_save_a_snapshot_per_checkpoint_sharing_the_initial_one(drift_runs, records):
    for name, rec in records.items():
        assert rec.checkpoints == ["initial", *drift_runs[name].tasks]
    first = [r.snapshots[0].image["embedding"] for r in records.values()]
    assert all(torch.equal(first[0], f) for f in first[1:])


def test_drift_curves_see_fine_tuning_move_and_zero_shot_stay(records):
    curves = curves_of(records)
    still, moved = curves["zero-shot"], curves["finetune"]
    assert all(v == pytest.approx(1.0, abs=1e-3) for v in still["cka"]["embedding"])
    assert still["modality_gap"][0] == pytest.approx(still["modality_gap"][-1], abs=1e-3)
    assert moved["cka"]["embedding"][-1] < 0.999
    assert moved["centroid_shift"][-1] > still["centroid_shift"][-1]
    assert len(moved["knn"]["visual.transformer.resblocks.0"]) == 4


def test_drift_map_is_cached_and_shares_the_initial_frame(records, dmap, tmp_path, monkeypatch):
    n = len(records["finetune"].task_ids)
    assert dmap.image["finetune"][0].shape == (n, 2)
    assert np.array_equal(dmap.image["finetune"][0], dmap.image["zero-shot"][0])
    cached = drift_map(records, cache_dir=tmp_path)
    monkeypatch.setattr(umap_map, "_fit", lambda *a: pytest.fail("refitted a cached map"))
    again = drift_map(records, cache_dir=tmp_path)
    assert np.array_equal(cached.text["finetune"][2], again.text["finetune"][2])


FIT_IN_A_ONE_THREAD_PROCESS = """
import numpy as np, torch, umap
from clviz.analysis.drift.umap_map import _fit
from clviz.backbone import load_backbone
torch.set_num_threads(1)
load_backbone()  # as in a worker: the reset shows only after the backbone is loaded
_fit(np.random.default_rng(0).random((60, 8), dtype=np.float32), 0, 5, 0.3)
print(torch.get_num_threads(), umap.umap_.smooth_knn_dist.stats.cache_path)
"""


def test_a_umap_fit_keeps_torchs_threads_and_caches_its_kernels():
    """numba's OpenMP layer, started by the first fit of a process, resets the OpenMP pool torch
    shares: a one-thread worker must stay on one thread (a fresh process: it happens once).
    umap-learn's kernels are compiled into numba's disk cache, not again in every process."""
    done = subprocess.run(
        [sys.executable, "-c", FIT_IN_A_ONE_THREAD_PROCESS], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    threads, cache = done.stdout.split()[-2:]
    assert threads == "1" and cache != "None"


def test_drift_figures(records, dmap):
    """The run's own numbers: each method's curves in their panels, the CKA of every layer,
    and each task's points of the map at the chosen checkpoint, in the animation's frames too."""
    curves = curves_of(records)
    checkpoints = records["finetune"].checkpoints
    anim = drift_figures.umap_animation(dmap, "finetune")
    assert isinstance(anim, go.Figure) and len(anim.frames) == len(checkpoints)
    fig = drift_figures.drift_comparison(curves, checkpoints)
    assert len(fig.data) == 4 * len(curves)
    moved = [t for t in fig.data if t.name == "finetune"]
    ft = curves["finetune"]
    panels = [ft["cka"]["embedding"], ft["knn"]["embedding"], ft["centroid_shift"]]
    np.testing.assert_allclose([t.y for t in moved], [*panels, ft["modality_gap"]])
    heat = drift_figures.cka_layers(curves["finetune"], checkpoints)
    assert heat.data[0].z.shape == (10, len(checkpoints))  # 5 image + 5 text layers
    layers = [*curves["finetune"]["cka"].values(), *curves["finetune"]["text_cka"].values()]
    np.testing.assert_allclose(heat.data[0].z, layers)
    with pytest.raises(IndexError, match="out of range"):
        drift_figures.umap_frame(dmap, "finetune", len(checkpoints))
    frame = drift_figures.umap_frame(dmap, "finetune", 1)
    rec = records["finetune"]
    images, texts = frame.data[0::2], frame.data[1::2]
    assert [t.name for t in images] == rec.tasks and len(texts) == len(rec.tasks)
    for t, (image, text) in enumerate(zip(images, texts, strict=True)):
        rows, trows = (rec.task_ids == t).numpy(), (rec.text_task_ids == t).numpy()
        np.testing.assert_array_equal(image.x, dmap.image["finetune"][1][rows, 0])
        np.testing.assert_array_equal(image.y, dmap.image["finetune"][1][rows, 1])
        np.testing.assert_array_equal(text.y, dmap.text["finetune"][1][trows, 1])
        assert list(text.text) == [rec.classnames[t][c] for c in rec.text_labels[trows].tolist()]
    last = anim.frames[-1].data[0].x  # the last frame: the map after the last task
    np.testing.assert_array_equal(last, dmap.image["finetune"][-1][(rec.task_ids == 0).numpy(), 0])
    for f in (anim, fig, heat, frame):
        assert f.layout.width is None and f.layout.autosize is True  # fills the cell


def test_drift_curves_by_hand_go_to_their_panels_and_rows():
    """Made-up curves: each measure in its own panel, each method its line, the image
    layers' CKA above the text layers', labelled by block."""

    def curves(shift):
        return {
            "cka": {"visual.transformer.resblocks.0": [1.0, 0.9 - shift], "embedding": [1.0, 0.7]},
            "text_cka": {"transformer.resblocks.0": [1.0, 0.95]},
            "knn": {
                "visual.transformer.resblocks.0": [40.0, 45.0],
                "embedding": [50.0, 60.0 + shift],
            },
            "centroid_shift": [0.0, 0.2 + shift],
            "modality_gap": [0.8, 0.6 - shift],
        }

    fig = drift_figures.drift_comparison({"atlas": curves(0.0), "zscl": curves(0.1)}, ["0", "a"])
    shown = [(t.name, t.xaxis, list(t.y)) for t in fig.data]
    assert shown == [
        ("atlas", "x", [1.0, 0.7]), ("atlas", "x2", [50.0, 60.0]),
        ("atlas", "x3", [0.0, 0.2]), ("atlas", "x4", [0.8, 0.6]),
        ("zscl", "x", [1.0, 0.7]), ("zscl", "x2", [50.0, 60.0 + 0.1]),
        ("zscl", "x3", [0.0, 0.2 + 0.1]), ("zscl", "x4", [0.8, 0.6 - 0.1]),
    ]  # fmt: skip
    assert all(list(t.x) == ["0", "a"] for t in fig.data)
    block = drift_figures.drift_comparison(
        {"atlas": curves(0.0)}, ["0", "a"], layer="visual.transformer.resblocks.0"
    )
    assert [list(t.y) for t in block.data[:2]] == [[1.0, 0.9], [40.0, 45.0]]  # that layer's
    assert "block 0" in block.layout.annotations[0].text
    assert list(block.data[2].y) == [0.0, 0.2]  # the final embeddings' centroid shift
    heat = drift_figures.cka_layers(curves(0.1), ["0", "a"]).data[0]
    np.testing.assert_allclose(heat.z, [[1.0, 0.8], [1.0, 0.7], [1.0, 0.95]])
    assert list(heat.y) == ["image · block 0", "image · final embedding", "text · block 0"]
    assert heat.zmin == 0.5 and heat.zmax == 1


def test_umap_animation_controls_do_not_overlap(records, dmap):
    anim = drift_figures.umap_animation(dmap, "finetune")
    (menu,), (slider,) = anim.layout.updatemenus, anim.layout.sliders
    labels = [b.label for b in menu.buttons]
    assert any("play" in t for t in labels) and any("pause" in t for t in labels)
    # the buttons end (right edge, in the left margin) where the slider begins
    assert menu.xanchor == "right" and slider.xanchor == "left" and menu.x <= slider.x
    assert menu.pad.r > 0 and anim.layout.margin.l >= 100  # the margin holds the buttons
    # both hang below the plot, below the x axis's labels; the buttons level with the rail,
    # under the slider's current-value label
    assert menu.y == slider.y == 0 and menu.yanchor == slider.yanchor == "top"
    assert slider.pad.t >= 50 and menu.pad.t > slider.pad.t
    assert anim.layout.margin.b >= menu.pad.t + 25 * len(menu.buttons)
    assert slider.currentvalue.prefix == "checkpoint " and slider.currentvalue.xanchor == "left"
    first = records["finetune"].checkpoints[0]
    assert slider.steps[0].label == f"0: {first}"


@pytest.mark.parametrize("index", [0, 1, 2])
def test_explorer_panels_follow_the_task_index(drift_runs, dmap, index):
    runs = drift_runs  # the smoke stream's three tasks: every index is tried
    shown = panels(runs, dmap, "moe-adapters-taskid", index)
    assert f"checkpoint {index + 1}" in shown["umap"].layout.title.text
    bars = shown["accuracy"].data[0]
    assert list(bars.y) == runs["moe-adapters-taskid"].matrix[index]
    assert len(shown["routing"].data) >= index + 1  # one heatmap per task so far (+ frozen marks)
    assert routing_until(runs["finetune"], index) is None
    with pytest.raises(KeyError, match="no results for 'lwf'"):
        panels(runs, dmap, "lwf", index)
