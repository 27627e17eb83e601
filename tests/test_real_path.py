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

import pytest

from clviz.cli import main
from clviz.core.result import RunResult
from clviz.data.fake import make_fake_mtil, save_random_weights, write_narrow_vit
from clviz.data.mtil import get_mtil_stream
from clviz.methods import list_methods

STREAM = "mtil:EuroSAT,MNIST,OxfordPet"


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Fake dataset folders and the narrow ViT (config file and weights)."""
    root = tmp_path_factory.mktemp("real")
    data = make_fake_mtil(root / "data", ["EuroSAT", "MNIST", "OxfordPet", "CIFAR100"], 2, 1)
    config = write_narrow_vit(root)
    weights = save_random_weights(config, root / "narrow-vit.pt")
    captions = root / "captions.tsv"  # Conceptual Captions' layout: caption, tab, URL
    captions.write_text("a dog on a beach\thttp://x/1\n\na red car\thttp://x/2\n")
    return {
        "root": root,
        "data": data,
        "backbone": config,
        "weights": weights,
        "captions": captions,
    }


def zscl_reference(real) -> tuple[str, str]:
    """ZSCL's reference data on the real path: an image folder (EuroSAT's fake class folders
    stand in for ImageNet's) and a caption file."""
    folder = real["data"] / "eurosat" / "2750"
    return (
        "--options",
        json.dumps({"reference_folder": str(folder), "caption_file": str(real["captions"])}),
    )


def moe_options(real) -> tuple[str, str]:
    """DDAS on the real path: 20 autoencoder steps, not 300, and 4 images of a generic image
    folder (EuroSAT's fake class folders stand in for TinyImageNet)."""
    folder = real["data"] / "eurosat" / "2750"
    options = {"ddas_steps": 20, "generic_folder": str(folder), "generic_images": 4}
    return "--options", json.dumps(options)


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
    extra = {"moe-adapters": moe_options(real), "zscl": zscl_reference(real)}.get(method, ())
    out = cli(real, method, "run", method, "--stream", STREAM, "--steps", "2", *extra)
    result = RunResult.load(out / "results.json")
    assert result.tasks == ["EuroSAT", "MNIST", "OxfordPet"]
    assert result.config["backbone"].endswith("narrow-vit-224.json")
    assert result.config["image_size"] == 224 and result.device == "cpu"
    # every entry is k of the column task's n test images right: k * 100 / n, k a whole number
    sizes = [len(t.test_labels) for t in get_mtil_stream(STREAM, real["data"])]
    for row in [*result.matrix, result.zero_shot]:
        right = [a * n / 100 for a, n in zip(row, sizes, strict=True)]
        assert right == pytest.approx([round(k) for k in right], abs=1e-6), row
    if method == "zero-shot":  # never trained: every row is the untouched backbone's
        assert result.matrix == [result.zero_shot] * 3
    train = result.config["train"]
    if method in ("finetune", "lwf", "wise-ft", "zscl", "mulki", "moe-adapters"):
        assert train["schedule"] == "cosine" and set(result.tasks) <= set(train["task_lr"])
    if method == "atlas":
        assert train["schedule"] == "linear" and train["betas"] == [0.9, 0.98]
    if method == "moe-adapters":  # DDAS routed the images of all three learned tasks
        assert result.record.ddas["per_sample"].learned == result.tasks
        assert set(result.record.ddas["per_sample"].generic_errors) == set(result.tasks)


def test_ddas_on_the_real_benchmark_asks_for_generic_images(real, capsys):
    out = real["root"] / "runs" / "moe-no-generic"
    args = [
        "run",
        "--profile",
        "mtil",
        "--method",
        "moe-adapters",
        "--data-root",
        str(real["data"]),
    ]
    args += ["--backbone", str(real["backbone"]), "--pretrained", str(real["weights"])]
    assert main([*args, "--stream", STREAM, "--steps", "1", "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert "generic_folder" in err and "allow_embedded_generic" in err


def test_zscl_on_the_real_benchmark_asks_for_reference_data(real, capsys):
    out = real["root"] / "runs" / "zscl-no-reference"
    args = ["run", "--profile", "mtil", "--method", "zscl", "--data-root", str(real["data"])]
    args += ["--backbone", str(real["backbone"]), "--pretrained", str(real["weights"])]
    assert main([*args, "--stream", STREAM, "--steps", "2", "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert "reference_folder" in err and "allow_embedded_reference" in err
    assert not (out / "results.json").exists()


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
        *moe_options(real),
        backbone=False,
    )
    result = RunResult.load(out / "results.json")
    assert result.config["backbone"] == "ViT-B-16" and len(result.matrix) == 1


def test_class_incremental_cifar100_and_the_few_shot_stream(real):
    out = cli(real, "ci", "class-incremental", "moe-adapters-taskid", "--dataset", "cifar100")
    result = RunResult.load(out / "results.json")  # the reference recipe, one router
    assert result.config["options"]["one_router"] and result.extra["iterations"][0] == 6
    stream = "mtil-fewshot:EuroSAT,MNIST"
    out = cli(
        real, "fs", "run", "moe-adapters", "--stream", stream, "--steps", "2", *moe_options(real)
    )
    result = RunResult.load(out / "results.json")
    assert result.tasks == ["EuroSAT", "MNIST"]
