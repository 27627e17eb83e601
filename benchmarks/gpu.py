"""GPU figures of clviz, measured in one run: per-method training throughput and peak memory,
the MoE step against the frozen backbone, the 11 x 11 evaluation with and without feature
caching, and the embedded main job's wall time.

    python benchmarks/gpu.py                 # on a GPU: random ViT-B-16, 224 px, batch 64
    python benchmarks/gpu.py --small         # anywhere (CI, CPU): a narrow ViT, tiny sizes

Every figure is printed with the device it came from. ``--small`` measures nothing worth
quoting; it keeps every line of this script running in CI, where there is no GPU.

1. **Throughput and memory.** Each method learns one task (warm-up), then a second one; the
   second task's training steps are timed between the loop's ``on_task_start`` and
   ``on_task_trained`` hooks (so begin/end-of-task work such as DDAS fitting is excluded).
   Images/s = steps x batch / seconds. Peak memory is CUDA's ``max_memory_allocated``.
2. **MoE step / backbone.** One MoE-Adapters training step against a forward and backward
   pass of the untouched backbone with every weight trainable (the same loss, no optimiser).
3. **Evaluation.** MoE-Adapters (DDAS) evaluated on every task after each task: the 11 x 11
   accuracy matrix of the real MTIL loaders, on fake dataset folders, with DDAS's feature cache
   off and on (identical matrices are checked).
4. **Main job.** ``clviz main`` on the embedded default in a fresh results folder.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import open_clip
import torch

from clviz.backbone import image_normalization, random_init_quietly, register_config_file
from clviz.core import EveryTask, Observer, TrainConfig, learn_task, make_format
from clviz.core.device import autocast, configure, device_name, resolve_device
from clviz.core.feed import feed
from clviz.core.loop import draws_for
from clviz.data.fake import make_fake_mtil, write_narrow_vit
from clviz.data.mtil import MTIL_ORDER_I, get_mtil_stream
from clviz.main_job import main_job
from clviz.methods import build_method, list_methods
from clviz.world.tasks import get_stream


class TrainingClock(Observer):
    """Seconds between the first and the last training step of each task (GPU synchronised)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds, self._start = device, [], 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def on_task_start(self, method, state) -> None:
        self._sync()
        self._start = time.perf_counter()

    def on_task_trained(self, method, state) -> None:
        self._sync()
        self.seconds.append(time.perf_counter() - self._start)


def backbone(small: bool, device: torch.device):
    """A randomly initialised ViT-B-16 (or, with ``--small``, a narrow ViT) and its tokenizer."""
    name = "ViT-B-16"
    if small:
        name = register_config_file(str(write_narrow_vit(tempfile.mkdtemp(), 64, 16)))
    torch.manual_seed(0)
    with random_init_quietly():
        model = open_clip.create_model(name, device=device)
    return model.eval(), open_clip.get_tokenizer(name)


def input_size(model) -> int:
    """The square image side the model takes."""
    return image_normalization(model)[2]


def peak_mb(device: torch.device) -> str:
    if device.type != "cuda":
        return "n/a"
    return f"{torch.cuda.max_memory_allocated(device) / 2**20:,.0f} MB"


def throughput(args, device, model, tokenizer, tasks) -> None:
    print(f"\n1. training throughput, batch {args.batch_size}, {args.steps} steps per stage")
    for name in args.methods or list_methods():
        if name == "zero-shot":
            continue
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        train = TrainConfig(steps=args.steps, batch_size=args.batch_size)
        method = build_method(name, copy.deepcopy(model), tokenizer, train)
        clock = TrainingClock(device)
        stats = [
            learn_task(method, task, i, seed=i, observers=[clock], progress=False)
            for i, task in enumerate(tasks[:2])
        ]
        images = stats[1].steps * args.batch_size
        print(f"   {name:<20} {images / clock.seconds[1]:8.1f} images/s   peak {peak_mb(device)}")
        del method


def timed(fn, device: torch.device, repeat: int) -> float:
    """Mean seconds of ``fn()`` over ``repeat`` calls, after one warm-up call."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / repeat


def moe_ratio(args, device, model, tokenizer, tasks) -> None:
    task = make_format(tasks[0], tokenizer)
    (batch,) = feed(task, "train", [slice(0, args.batch_size)], device)
    train = TrainConfig(steps=1, batch_size=args.batch_size)
    moe = build_method("moe-adapters-taskid", copy.deepcopy(model), tokenizer, train)
    state = moe.begin_task(task, 0, draws_for(0))
    (stage,) = moe.stages(state)
    optimizer = torch.optim.AdamW(stage.params, lr=stage.lr)

    def moe_step() -> None:
        with moe.context(task), autocast(device):
            loss = moe.loss(batch, state)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    full = build_method("finetune", copy.deepcopy(model), tokenizer, train)
    full_state = full.begin_task(task, 0, draws_for(0))

    def backbone_pass() -> None:
        with autocast(device):
            loss = full.loss(batch, full_state)
        full.model.zero_grad(set_to_none=True)
        loss.backward()

    repeat = 2 if args.small else 10
    moe_s, base_s = timed(moe_step, device, repeat), timed(backbone_pass, device, repeat)
    print(f"\n2. one MoE-Adapters step {moe_s * 1e3:.0f} ms; backbone forward+backward")
    print(f"   {base_s * 1e3:.0f} ms; ratio {moe_s / base_s:.2f} (batch {args.batch_size})")


def evaluation(args, device, model, tokenizer) -> None:
    names = ("EuroSAT", "MNIST", "OxfordPet") if args.small else MTIL_ORDER_I
    root = make_fake_mtil(Path(tempfile.mkdtemp()) / "mtil", names, 2, args.test_per_class)
    size = input_size(model)
    stream = "mtil:" + ",".join(names)
    tasks = [make_format(t, tokenizer) for t in get_mtil_stream(stream, root, image_size=size)]
    n = len(tasks)
    print(f"\n3. {n} x {n} evaluation of moe-adapters (DDAS): learning {n} tasks", flush=True)
    method = build_method("moe-adapters", copy.deepcopy(model), tokenizer, TrainConfig(steps=1))
    for i, task in enumerate(tasks):
        started = time.perf_counter()
        learn_task(method, task, i, seed=i, progress=False)
        seconds = time.perf_counter() - started
        print(f"   {task.name}: learned, DDAS fitted ({seconds:.1f} s)", flush=True)
    evaluate = EveryTask(tasks)
    cache, limit = method.generic_features, method.generic_features.max_bytes
    results = {}
    for label, max_bytes in (("off", 0), ("on", limit)):
        cache.clear()
        cache.max_bytes = max_bytes
        started = time.perf_counter()
        results[label] = [evaluate.row(method, i) for i in range(n)]
        results[label + " s"] = time.perf_counter() - started
        print(f"   feature cache {label}: {results[label + ' s']:.1f} s", flush=True)
    assert results["on"] == results["off"], "the feature cache changed a prediction"
    images = sum(len(t.test_labels) for t in tasks)
    ratio = results["off s"] / results["on s"]
    print(f"   {images} test images per row; {ratio:.2f}x faster with the cache, same matrices")


def main_job_time(args, device) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CLVIZ_RESULTS"] = tmp
        started = time.perf_counter()
        # --small trains in this process, as the main job does on a GPU (one worker there)
        small = {
            "stream": "smoke",
            "methods": ["finetune", "moe-adapters"],
            "steps": 2,
            "workers": 1,
        }
        main_job(Path(tmp) / "out", **(small if args.small else {}), progress=False, device=device)
        seconds = time.perf_counter() - started
    what = "smoke stream, 2 methods, 2 steps" if args.small else "every method, the full budget"
    print(f"\n4. main job on the embedded world ({what}): {seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes: CI on a CPU")
    parser.add_argument("--device", default=None, help="default: $CLVIZ_DEVICE or the best")
    parser.add_argument("--methods", nargs="*", default=None, help="default: every method")
    parser.add_argument("--skip-main-job", action="store_true")
    args = parser.parse_args()
    args.batch_size, args.steps = (4, 2) if args.small else (64, 20)
    args.test_per_class = 1 if args.small else 4
    device = resolve_device(args.device)
    configure(device)
    print(f"device: {device_name(device)}; torch {torch.__version__}")
    model, tokenizer = backbone(args.small, device)
    size = input_size(model)
    tasks = get_stream("smoke", image_size=size)
    throughput(args, device, model, tokenizer, tasks)
    moe_ratio(args, device, model, tokenizer, tasks)
    evaluation(args, device, model, tokenizer)
    if not args.skip_main_job:
        main_job_time(args, str(device))


if __name__ == "__main__":
    main()
