"""The real-benchmark path, end to end on the CPU: ``clviz run --profile mtil`` for every method.

Fake folders of three MTIL datasets (torchvision's layouts), open_clip ViTs saved here as local
weights files (a narrow one for every method, the real ViT-B-16 architecture for one run), and
two training steps per task: every line the real benchmark runs, at a size CI can afford. It
found, among others, that DDAS crashed on images read from disk at the end of the first task,
that the drift probe refused small real test splits, and that the MTIL profile handed a DDAS
option to the method without DDAS.
"""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch

from clviz.backbone import random_init_quietly, register_config_file
from clviz.cli import main
from clviz.core.result import RunResult
from clviz.data.fake import make_fake_mtil
from clviz.methods import list_methods

STREAM = "mtil:EuroSAT,MNIST,OxfordPet"
NARROW_VIT = {  # ViT-B-16's code path at 224 px, a few thousand times cheaper
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 1, "layers": 2},
}

FEWER_DDAS_STEPS = ("--options", '{"ddas_steps": 20}')  # DDAS's autoencoders: 20 steps, not 300


def save_random_weights(name: str, path: Path) -> Path:
    """A randomly initialised open_clip model ``name`` saved as a local weights file (bf16)."""
    torch.manual_seed(0)
    with random_init_quietly():
        model = open_clip.create_model(name)
    state = {k: v.bfloat16() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Fake dataset folders and the narrow ViT (config file and weights)."""
    root = tmp_path_factory.mktemp("real")
    data = make_fake_mtil(root / "data", ["EuroSAT", "MNIST", "OxfordPet", "CIFAR100"], 2, 1)
    config = root / "narrow-vit.json"
    config.write_text(json.dumps(NARROW_VIT))
    weights = save_random_weights(register_config_file(str(config)), root / "narrow-vit.pt")
    return {"root": root, "data": data, "backbone": config, "weights": weights}


def cli(real, name: str, command: str, method: str, *extra: str, backbone: bool = True) -> Path:
    """Run ``clviz <command> --profile mtil`` on the fake folders; returns its ``--out``."""
    out = real["root"] / "runs" / name
    args = [command, "--profile", "mtil", "--method", method, "--data-root", str(real["data"])]
    if backbone:
        args += ["--backbone", str(real["backbone"]), "--pretrained", str(real["weights"])]
    assert main([*args, "--batch-size", "4", "--out", str(out), "--device", "cpu", *extra]) == 0
    return out


@pytest.mark.parametrize("method", list_methods())
def test_every_method_runs_the_mtil_profile(real, method):
    extra = FEWER_DDAS_STEPS if method == "moe-adapters" else ()
    out = cli(real, method, "run", method, "--stream", STREAM, "--steps", "2", *extra)
    result = RunResult.load(out / "results.json")
    assert result.tasks == ["EuroSAT", "MNIST", "OxfordPet"]
    assert result.config["backbone"].endswith("narrow-vit.json")
    assert result.config["image_size"] == 224 and result.device == "cpu"
    assert all(0.0 <= a <= 100.0 for row in result.matrix for a in row if a is not None)
    if method == "moe-adapters":  # DDAS routed the images of all three learned tasks
        assert result.record.ddas["per_sample"].learned == result.tasks


def test_the_real_vit_b_16_architecture(real):
    weights = save_random_weights("ViT-B-16", real["root"] / "vit-b-16.pt")
    out = cli(
        real,
        "vit-b-16",
        "run",
        "moe-adapters",
        "--stream",
        "mtil:MNIST",
        "--steps",
        "1",
        "--pretrained",
        str(weights),
        *FEWER_DDAS_STEPS,
        backbone=False,
    )
    result = RunResult.load(out / "results.json")
    assert result.config["backbone"] == "ViT-B-16" and len(result.matrix) == 1


def test_class_incremental_cifar100_and_the_few_shot_stream(real):
    out = cli(
        real, "ci", "class-incremental", "finetune", "--dataset", "cifar100", "--train-steps", "1"
    )
    assert (out / "results.json").is_file()
    stream = "mtil-fewshot:EuroSAT,MNIST"
    out = cli(
        real, "fs", "run", "moe-adapters", "--stream", stream, "--steps", "2", *FEWER_DDAS_STEPS
    )
    result = RunResult.load(out / "results.json")
    assert result.tasks == ["EuroSAT", "MNIST"]
