"""Pretrain the bundled tiny CLIP on the embedded world's caption corpus and write its bundle.

    python data_prep/pretrain_tiny_clip.py            # rebuild clviz/weights/clviz-tiny.*
    python data_prep/pretrain_tiny_clip.py --fast --out /tmp/tiny.safetensors   # smoke test

Prints the wall time and the zero-shot accuracy of the result on every task of the default
stream. The weights are written as float16 safetensors with a JSON manifest beside them
(architecture, data seed, steps, final loss, sha256, this command), both atomically.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from clviz.backbone import TINY_WEIGHTS, load_backbone
from clviz.core.clip import zeroshot_accuracy
from clviz.pretraining import PretrainConfig, pretrain, save_bundle
from clviz.world.tasks import get_stream

FAST = {"corpus_size": 512, "steps": 5, "batch_size": 32, "warmup_steps": 2}


def main(argv: list[str] | None = None) -> int:
    defaults = PretrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TINY_WEIGHTS, help="weights file to write")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--corpus-size", type=int, default=defaults.corpus_size)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--seed", type=int, default=defaults.data_seed, help="data and init seed")
    parser.add_argument("--fast", action="store_true", help="a few steps on a tiny corpus (tests)")
    parser.add_argument("--no-eval", action="store_true", help="skip the zero-shot table")
    args = parser.parse_args(argv)

    cfg = PretrainConfig(
        corpus_size=args.corpus_size,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        data_seed=args.seed,
        init_seed=args.seed,
    )
    if args.fast:
        cfg = PretrainConfig(**{**cfg.__dict__, **FAST})
    command = "python data_prep/pretrain_tiny_clip.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    started = time.perf_counter()
    model, stats = pretrain(cfg)
    manifest = save_bundle(model, cfg, stats, args.out, command.strip())
    print(
        f"pretraining took {time.perf_counter() - started:.1f} s "
        f"(drawing the corpus {stats['corpus_seconds']:.1f} s); final loss {stats['final_loss']}"
    )
    print(f"wrote {args.out} ({manifest['bytes'] / 1e6:.1f} MB) and its manifest")
    if not args.no_eval:
        model, _, tokenizer = load_backbone(pretrained=args.out)
        print(f"{'task':<16}{'zero-shot %':>12}{'chance %':>10}")
        for task in get_stream("default"):
            accuracy = zeroshot_accuracy(model, tokenizer, task)
            print(f"{task.name:<16}{accuracy:>12.1f}{task.chance:>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
