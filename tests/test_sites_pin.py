"""``AdaptedBlock.forward`` is clviz's only copy of open_clip's residual block forward: the
source it mirrors is pinned by hash, so an open_clip upgrade that changes it fails here."""

from __future__ import annotations

import open_clip
import pytest

from clviz.methods import sites


def test_open_clip_block_forward_is_the_one_adapted_block_mirrors():
    sites.check_open_clip_forward()  # the message says what to re-check, and what to update


def test_a_changed_forward_fails_naming_what_to_recheck(monkeypatch):
    monkeypatch.setattr(sites, "OPEN_CLIP_BLOCK_FORWARD_SHA256", "0" * 64)
    with pytest.raises(RuntimeError) as err:
        sites.check_open_clip_forward()
    message = str(err.value)
    assert "open_clip's block forward" in message and "changed" in message
    assert f"installed version {open_clip.__version__}" in message
    assert "AdaptedBlock.forward" in message and "line by line" in message
    assert "OPEN_CLIP_BLOCK_FORWARD_SHA256" in message
