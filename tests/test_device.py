"""Devices, the DataLoader feed for images read from disk, and out-of-memory errors."""

from __future__ import annotations

import copy
import time
from dataclasses import replace

import pytest
import torch
from helpers import predict

import clviz
import clviz.core.evaluation
import clviz.core.loop
from clviz.cli import main
from clviz.core.config import RunConfig, TrainConfig
from clviz.core.device import DeviceError, available_devices, resolve_device
from clviz.core.feed import feed
from clviz.core.formats import make_format
from clviz.core.loop import run_stream
from clviz.core.method import Method
from clviz.data.fake import make_fake_mtil
from clviz.data.mtil import make_mtil_task
from clviz.errors import ImageReadError
from clviz.experiments.runs import run, run_store
from clviz.methods import METHODS, build_method
from clviz.world import make_task


def test_cpu_and_auto_resolve_here(monkeypatch):
    monkeypatch.delenv("CLVIZ_DEVICE", raising=False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None) == resolve_device("auto")
    assert available_devices()[-1] == "cpu"
    monkeypatch.setenv("CLVIZ_DEVICE", "cpu")
    assert resolve_device(None) == torch.device("cpu")


@pytest.mark.parametrize("spec", ["cuda:7", "mps", "tpu", "cuda:x"])
def test_missing_or_unknown_device_is_a_fast_clear_error(spec):
    if spec in available_devices():
        pytest.skip(f"this machine has {spec}")
    start = time.perf_counter()
    with pytest.raises(DeviceError) as err:
        resolve_device(spec)
    assert time.perf_counter() - start < 1.0
    assert repr(spec) in str(err.value) and "cpu" in str(err.value)  # names what exists


def test_cli_device_error_names_the_devices(capsys):
    if "cuda:0" in available_devices():
        pytest.skip("this machine has a GPU")
    assert main(["run", "--method", "finetune", "--fast", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "'cuda' is not available" in err and "cpu" in err


@pytest.fixture(scope="module")
def eurosat(tmp_path_factory):
    root = make_fake_mtil(tmp_path_factory.mktemp("mtil"), ["EuroSAT"], 6, 2)
    _, _, tokenizer = clviz.load_backbone()
    return root, make_format(make_mtil_task("EuroSAT", root, image_size=32), tokenizer)


def test_loader_workers_give_the_same_batches(eurosat, monkeypatch):
    _, task = eurosat
    g = torch.Generator().manual_seed(0)
    indices = [torch.randint(len(task.train_labels), (8,), generator=g) for _ in range(4)]
    fed = {}
    for workers in ("0", "2"):
        monkeypatch.setenv("CLVIZ_WORKERS", workers)
        fed[workers] = list(feed(task, "train", indices))
    for a, b in zip(fed["0"], fed["2"], strict=True):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(fed["2"][0].images, fed["2"][1].images)


def test_bad_worker_count_is_a_clear_error(eurosat, monkeypatch):
    _, task = eurosat
    monkeypatch.setenv("CLVIZ_WORKERS", "many")
    with pytest.raises(ValueError, match="CLVIZ_WORKERS must be a whole number"):
        list(feed(task, "train", [slice(0, 4)]))


def test_a_damaged_image_is_named_from_inside_a_worker(tmp_path, monkeypatch):
    root = make_fake_mtil(tmp_path, ["EuroSAT"], 2, 1)
    _, _, tokenizer = clviz.load_backbone()
    task = make_format(make_mtil_task("EuroSAT", root, image_size=32), tokenizer)
    victim = sorted((root / "eurosat" / "2750").rglob("*.jpg"))[0]
    victim.write_bytes(b"not a jpeg")
    monkeypatch.setenv("CLVIZ_WORKERS", "2")
    everything = [torch.arange(len(task.train_labels)), torch.arange(len(task.test_labels))]
    with pytest.raises(ImageReadError, match=victim.name):
        for split, idx in zip(("train", "test"), everything, strict=True):
            list(feed(task, split, [idx]))


def test_out_of_memory_names_the_batch_size_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    config = RunConfig("finetune", stream="smoke", train=TrainConfig(steps=3, batch_size=16))
    clean = run(config, tmp_path / "clean", progress=False)
    real_loss = Method.loss

    def oom_on_task_two(self, batch, state):
        if state.index == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_loss(self, batch, state)

    monkeypatch.setattr(Method, "loss", oom_on_task_two)
    with pytest.raises(torch.OutOfMemoryError) as err:
        run(config, tmp_path / "resumed", progress=False)
    assert "batch size 16" in str(err.value) and "--batch-size" in str(err.value)
    saved = run_store(replace(config, device="cpu"), tmp_path / "resumed").checkpoint()
    assert len(saved["rows"]) == 1  # the first task, finished and saved
    monkeypatch.setattr(Method, "loss", real_loss)
    resumed = run(config, tmp_path / "resumed", progress=False)
    assert resumed.matrix == clean.matrix


SMALL_OPTIONS = {"moe-adapters": {"ddas_steps": 5}, "zscl": {"reference_images": 32}}


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_trains_and_evaluates_under_bf16_autocast(tiny, monkeypatch, method):
    """CUDA runs train and evaluate under bf16 autocast; CPU autocast exercises the same mixed
    dtypes here, so a dtype clash (bf16 logits into an fp32 buffer) fails in CI, not on a GPU.
    (CUDA keeps more ops in fp32 than the CPU does, so not every CUDA clash shows here.)"""

    def cpu_bf16(device):
        return torch.autocast("cpu", dtype=torch.bfloat16)

    monkeypatch.setattr(clviz.core.loop, "autocast", cpu_bf16)
    monkeypatch.setattr(clviz.core.evaluation, "autocast", cpu_bf16)
    model, _, tokenizer = tiny
    train = TrainConfig(steps=1, batch_size=8)
    learner = build_method(
        method, copy.deepcopy(model), tokenizer, train, SMALL_OPTIONS.get(method)
    )
    tasks = [make_task(name, train_per_class=4, test_per_class=2) for name in ("shapes", "colors")]
    result = run_stream(learner, tasks, progress=False)
    formats = [make_format(t, tokenizer) for t in tasks]
    with cpu_bf16("cpu"):  # the last row, by hand: the share of test images predicted right
        right = [predict(learner, f).argmax(-1) == f.test_labels for f in formats]
    assert len(result.matrix) == 2
    assert result.matrix[-1] == pytest.approx([100.0 * r.float().mean().item() for r in right])
    assert result.record is None or learner.record(formats)
