"""The pretraining script's fast option: it trains, writes a loadable bundle and a manifest."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "data_prep"))

import pretrain_tiny_clip  # noqa: E402

from clviz.backbone import load_backbone, sha256_of  # noqa: E402


def test_fast_pretraining_writes_a_loadable_bundle(tmp_path, capsys):
    out = tmp_path / "tiny.safetensors"
    assert pretrain_tiny_clip.main(["--fast", "--no-eval", "--out", str(out)]) == 0
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["sha256"] == sha256_of(out)
    assert manifest["pretrain_config"]["steps"] == 5 and manifest["final_loss"] > 0
    assert "--fast" in manifest["rebuild_command"]
    assert not list(tmp_path.glob(".*.tmp")), "no temporary files left behind"
    model, _, _ = load_backbone("clviz-tiny", pretrained=out)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert "pretraining took" in capsys.readouterr().out


def test_pretraining_is_deterministic():
    from clviz.pretraining import PretrainConfig, pretrain

    cfg = PretrainConfig(corpus_size=64, steps=3, batch_size=16, warmup_steps=1)
    a, _ = pretrain(cfg, progress=False)
    b, _ = pretrain(cfg, progress=False)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
