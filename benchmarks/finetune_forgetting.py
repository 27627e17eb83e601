"""Fine-tune the whole tiny CLIP on one task and measure what it gains and what the rest lose.

    python benchmarks/finetune_forgetting.py [--task shapes] [--steps 300]

Prints zero-shot accuracy of every task of the default stream before and after, the lift on
the fine-tuned task and how many other tasks lost accuracy: forgetting in one picture.
"""

from __future__ import annotations

import argparse
import time

import torch

from clviz.backbone import load_backbone
from clviz.core import TrainConfig, learn_task
from clviz.core.clip import zeroshot_accuracy
from clviz.methods import build_method
from clviz.world.tasks import get_stream, make_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="shapes")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)

    model, _, tokenizer = load_backbone()
    tasks = get_stream("default")
    before = {t.name: zeroshot_accuracy(model, tokenizer, t) for t in tasks}
    started = time.perf_counter()
    method = build_method("finetune", model, tokenizer, TrainConfig(steps=args.steps, lr=args.lr))
    learn_task(method, make_task(args.task), seed=args.seed)
    seconds = time.perf_counter() - started
    after = {t.name: zeroshot_accuracy(model, tokenizer, t) for t in tasks}

    print(f"full fine-tuning on {args.task!r}: {args.steps} steps, lr {args.lr}, {seconds:.1f} s")
    print(f"{'task':<16}{'before %':>10}{'after %':>10}{'change':>9}")
    for name in before:
        mark = "  <- fine-tuned" if name == args.task else ""
        print(
            f"{name:<16}{before[name]:>10.1f}{after[name]:>10.1f}"
            f"{after[name] - before[name]:>+9.1f}{mark}"
        )
    others = [n for n in before if n != args.task]
    dropped = [n for n in others if after[n] < before[n]]
    print(
        f"lift on {args.task}: {after[args.task] - before[args.task]:+.1f} points; "
        f"{len(dropped)} of {len(others)} other tasks lost accuracy"
    )


if __name__ == "__main__":
    main()
