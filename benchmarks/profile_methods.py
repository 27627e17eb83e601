"""Where each method's training step and evaluation spend their time, measured in one run.

    python benchmarks/profile_methods.py                  # every method, the tiny CLIP
    python benchmarks/profile_methods.py --methods finetune moe-adapters --steps 20

Every method learns one task (``shapes``, a few steps, so teachers and routers exist), then is
timed on the next (``digits``): ``--steps`` training steps at batch 64 after ``--warmup`` untimed
ones, and one evaluation of the task's test split. A step is cut into the phases of the loop
(drawing the batch, the forward pass and loss, the backward pass, the optimiser step); forward
time is cut further by module, with forward hooks: the student's image tower and text tower
(adapters and routers included, and also shown alone), and the towers of frozen teachers.
ATLAS is timed in its first stage with trainable parameters. The reference line is the
untouched backbone's forward and backward with every weight trainable and no optimiser: the
floor that an adapter method, which trains a fraction of the
weights on a frozen backbone, should approach. Ratios are taken within this one run.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections import defaultdict
from contextlib import contextmanager

import torch
from torch import nn

from clviz.backbone import load_backbone
from clviz.core import TrainConfig, learn_task, make_format
from clviz.core.feed import feed
from clviz.core.loop import draws_for
from clviz.methods import build_method, list_methods
from clviz.methods.sites import Site
from clviz.world import make_task

BATCH = 64


class ForwardClock:
    """Forward seconds of chosen modules, by label (hooks; nested labels both count)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._handles: list = []
        self._started: dict[int, list[float]] = defaultdict(list)

    def watch(self, module: nn.Module, label: str) -> None:
        def before(mod, args):
            self._started[id(mod)].append(time.perf_counter())

        def after(mod, args, out):
            self.seconds[label] += time.perf_counter() - self._started[id(mod)].pop()

        self._handles += [module.register_forward_pre_hook(before)]
        self._handles += [module.register_forward_hook(after)]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def towers(model: nn.Module) -> dict[str, nn.Module]:
    return {"image tower": model.visual, "text tower": model.transformer}


def teachers(method, state) -> list[nn.Module]:
    """Frozen CLIP copies the method keeps (its snapshot teachers), found by attribute."""
    found = []
    for holder in (method, state):
        for value in vars(holder).values():
            if (
                isinstance(value, nn.Module)
                and value is not method.model
                and hasattr(value, "visual")
            ):
                found.append(value)
    return found


def watch(method, state) -> ForwardClock:
    clock = ForwardClock()
    for label, module in towers(method.model).items():
        clock.watch(module, label)
    for module in method.model.modules():
        if isinstance(module, Site):
            clock.watch(module, "adapters and routers")
    for teacher in teachers(method, state):
        for module in towers(teacher).values():
            clock.watch(module, "teacher towers")
    return clock


@contextmanager
def timer(totals: dict[str, float], label: str):
    started = time.perf_counter()
    yield
    totals[label] += time.perf_counter() - started


def profile_training(name: str, model, tokenizer, first, second, args) -> dict[str, float]:
    """Milliseconds per step of each phase, for ``args.steps`` steps of ``second``."""
    method = build_method(name, copy.deepcopy(model), tokenizer, TrainConfig(steps=3))
    learn_task(method, first, 0, seed=0, progress=False)
    task = second.for_training(method.train_config.prompts)
    state = method.begin_task(task, 1, draws_for(0))
    started = ((s, s.start()) for s in method.stages(state))
    stage, params = next(((s, p) for s, p in started if p), (None, None))
    if stage is None:  # training-free (zero-shot): evaluation only
        return {"evaluation": evaluation_ms(method, second)}
    optimizer = torch.optim.AdamW(params, lr=stage.lr, fused=True)
    generator = torch.Generator().manual_seed(0)
    n = task.size("train")
    draws = [
        torch.randint(n, (BATCH,), generator=generator) for _ in range(args.steps + args.warmup)
    ]
    totals: dict[str, float] = defaultdict(float)
    method.model.train()
    clock = None
    batches = iter(feed(task, "train", draws, method.device))
    for step in range(args.steps + args.warmup):
        if step == args.warmup:  # start counting
            totals.clear()
            clock = watch(method, state)
        with timer(totals, "data"):
            batch = next(batches)
        with timer(totals, "forward + loss"), method.context(task):
            loss = method.loss(batch, state)
        optimizer.zero_grad(set_to_none=True)
        with timer(totals, "backward"):
            loss.backward()
        with timer(totals, "optimiser"):
            optimizer.step()
        with timer(totals, "after step"):
            method.after_step(state, step)
    clock.remove()
    per_step = {k: 1000 * v / args.steps for k, v in totals.items()}
    per_step.update({k: 1000 * v / args.steps for k, v in clock.seconds.items()})
    per_step["step"] = sum(
        per_step[k] for k in ("data", "forward + loss", "backward", "optimiser", "after step")
    )
    flat = [q for p in params for q in (p["params"] if isinstance(p, dict) else [p])]
    per_step["trainable M"] = sum(q.numel() for q in flat) / 1e6
    per_step["evaluation"] = evaluation_ms(method, second)
    return per_step


def evaluation_ms(method, task) -> float:
    """One evaluation of ``task``'s test split, batches of 256."""
    started = time.perf_counter()
    predict = method.predictor(task)
    for batch in task.batches("test", 256):
        predict(batch)
    return 1000 * (time.perf_counter() - started)


def backbone_pass_ms(model, tokenizer, task, args) -> float:
    """Forward and backward of the untouched backbone, every weight trainable, no optimiser."""
    method = build_method("finetune", copy.deepcopy(model), tokenizer, TrainConfig())
    task = task.for_training(method.train_config.prompts)
    state = method.begin_task(task, 1, draws_for(0))
    generator = torch.Generator().manual_seed(0)
    method.model.train()
    seconds = 0.0
    for step in range(args.steps + args.warmup):
        batch = task.batch(
            "train", torch.randint(task.size("train"), (BATCH,), generator=generator)
        )
        started = time.perf_counter()
        loss = method.loss(batch, state)
        loss.backward()
        method.model.zero_grad(set_to_none=True)
        if step >= args.warmup:
            seconds += time.perf_counter() - started
    return 1000 * seconds / args.steps


COLUMNS = (
    "trainable M",
    "step",
    "data",
    "forward + loss",
    "image tower",
    "text tower",
    "adapters and routers",
    "teacher towers",
    "backward",
    "optimiser",
    "after step",
    "evaluation",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=None, help="default: every method")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, _, tokenizer = load_backbone("clviz-tiny", device="cpu")
    first = make_format(make_task("shapes", train_per_class=16, test_per_class=8), tokenizer)
    second = make_format(make_task("digits"), tokenizer)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, ms per step"
    )
    floor = backbone_pass_ms(model, tokenizer, second, args)
    rows = {}
    for name in args.methods or list_methods():
        rows[name] = profile_training(name, model, tokenizer, first, second, args)
        step = rows[name].get("step")
        print(f"  {name}: " + (f"{step:.0f} ms per step" if step else "no training"), flush=True)
    base = rows.get("finetune", {}).get("step")
    header = (
        f"{'method':<21}"
        + "".join(f"{c[:11]:>12}" for c in COLUMNS)
        + f"{'x finetune':>12}{'x floor':>9}"
    )
    print("\n" + header)
    for name, row in rows.items():
        if "step" not in row:
            print(
                f"{name:<21}{'training-free':>12}{row['evaluation']:>{12 * len(COLUMNS) - 12}.1f}"
            )
            continue
        cells = "".join(f"{row.get(c, 0.0):>12.1f}" for c in COLUMNS)
        ratio = f"{row['step'] / base:>12.2f}" if base else f"{'-':>12}"
        print(f"{name:<21}{cells}{ratio}{row['step'] / floor:>9.2f}")
    print(f"{'backbone fwd+bwd':<21}{floor:>12.1f}   (every weight trainable, no optimiser)")
    print("\nevaluation: ms for the digits test split (400 images) after the step measurements;")
    print(
        "image/text tower, adapters and teacher towers are parts of forward + loss (forward hooks)."
    )


if __name__ == "__main__":
    main()
