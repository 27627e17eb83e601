"""Per-layer features through hooks, and the nearest-centroid probe."""

from __future__ import annotations

import torch

from clviz.analysis.features import block_features, nearest_centroid_accuracy


def test_block_features_match_the_model(tiny, small_task):
    model = tiny[0]
    feats = block_features(model, small_task.test_images, batch_size=7)
    assert list(feats) == [f"visual.transformer.resblocks.{i}" for i in range(4)]
    assert all(f.shape == (len(small_task.test_labels), 128) for f in feats.values())
    again = block_features(model, small_task.test_images, batch_size=64)
    torch.testing.assert_close(
        feats["visual.transformer.resblocks.3"],
        again["visual.transformer.resblocks.3"],
        rtol=1e-4,
        atol=1e-5,
    )


def test_nearest_centroid_accuracy():
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    y = torch.tensor([0, 0, 1, 1])
    assert nearest_centroid_accuracy(x, y, x, y) == 100.0
    assert nearest_centroid_accuracy(x, y, x, 1 - y) == 0.0
