"""Step time of MoE-Adapters with 4 vs 22 experts at top-2: the cost must not grow with E.

    python benchmarks/moe_expert_scaling.py [--batch 128] [--steps 20]

Times training steps of the tiny CLIP with MoE adapters in both towers, for E = 4 and E = 22
experts in one run, and prints the ratio (target: at most 1.2).
"""

from __future__ import annotations

import argparse
import time

import torch

from clviz.backbone import load_backbone
from clviz.core import TrainConfig, make_format
from clviz.core.loop import draws_for, optimize
from clviz.methods import build_method
from clviz.world import make_task


def step_time(experts: int, batch: int, steps: int) -> float:
    model, _, tokenizer = load_backbone()
    train = TrainConfig(steps=3, batch_size=batch)
    method = build_method("moe-adapters-taskid", model, tokenizer, train, {"experts": experts})
    state = method.begin_task(make_format(make_task("shapes"), tokenizer), 0, draws_for(0))
    (stage,) = method.stages(state)
    params = stage.start()
    optimize(method, state, stage, params, torch.Generator().manual_seed(0), progress=False)
    stage.steps = steps  # the first call was the warm-up
    started = time.perf_counter()
    optimize(method, state, stage, params, torch.Generator().manual_seed(1), progress=False)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(2)
    times = {e: step_time(e, args.batch, args.steps) for e in (4, 22)}
    for e, t in times.items():
        print(f"E = {e:>2} experts, top-2, batch {args.batch}: {t * 1000:.0f} ms per training step")
    print(f"ratio E=22 / E=4: {times[22] / times[4]:.2f}")


if __name__ == "__main__":
    main()
