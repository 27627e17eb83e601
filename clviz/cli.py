"""The ``clviz`` command line: one sub-command per job, each a thin wrapper over the package."""

from __future__ import annotations

import argparse
import json
import sys

from clviz.backbone import BackboneError


def _zeroshot(args: argparse.Namespace) -> int:
    from clviz.backbone import load_backbone
    from clviz.world.tasks import get_stream
    from clviz.zeroshot import zeroshot_accuracy

    tasks = get_stream(args.stream, seed=args.seed)
    model, _, tokenizer = load_backbone(args.backbone, pretrained=args.pretrained)
    rows = [
        {"task": t.name, "accuracy": round(zeroshot_accuracy(model, tokenizer, t), 2),
         "chance": round(t.chance, 2), "classes": t.num_classes}
        for t in tasks
    ]
    if args.json:
        print(json.dumps({"stream": args.stream, "seed": args.seed, "backbone": args.backbone,
                          "zero_shot": rows}, indent=2))
        return 0
    print(f"zero-shot accuracy of {args.backbone} on stream {args.stream!r} (seed {args.seed})")
    print(f"{'task':<16}{'classes':>8}{'accuracy %':>12}{'chance %':>10}")
    for r in rows:
        print(f"{r['task']:<16}{r['classes']:>8}{r['accuracy']:>12.1f}{r['chance']:>10.1f}")
    mean = sum(r["accuracy"] for r in rows) / len(rows)
    print(f"{'mean':<16}{'':>8}{mean:>12.1f}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from clviz.world.tasks import STREAMS, get_domain

    print("streams:")
    for name, spec in STREAMS.items():
        print(f"  {name:<16} {spec.description} ({spec.train_per_class} train images per class)")
        print(f"  {'':<16} tasks: {', '.join(spec.tasks)}")
    print("tasks:")
    for name in dict.fromkeys(t for s in STREAMS.values() for t in s.tasks):
        d = get_domain(name)
        print(f"  {name:<16} {len(d.classnames):>2} classes, {d.source}: {d.description}")
    return 0


def _main_job(args: argparse.Namespace) -> int:
    from pathlib import Path

    from clviz.notebooks import run_notebooks

    out = Path(args.out)
    done = run_notebooks(args.notebooks, out / "notebooks")
    print(f"done: {len(done)} notebook(s) executed; open {done[0][1]}" if done else "nothing to do")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clviz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("zeroshot", help="zero-shot accuracy of a backbone on every task of a stream")
    p.add_argument("--stream", default="default", help="task stream (see 'clviz list')")
    p.add_argument("--seed", type=int, default=0, help="seed of the embedded world")
    p.add_argument("--backbone", default="clviz-tiny", help="open_clip architecture name")
    p.add_argument("--pretrained", default=None, help="hub tag or local weights file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_zeroshot)

    p = sub.add_parser("main", help="the main job: execute the notebooks, write results/")
    p.add_argument("--out", default="results", help="output folder")
    p.add_argument("--notebooks", nargs="*", default=["00_quickstart"],
                   help="notebook stems to execute (default: the quickstart)")
    p.set_defaults(func=_main_job)

    p = sub.add_parser("list", help="the available task streams and tasks")
    p.set_defaults(func=_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError, BackboneError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"clviz {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
