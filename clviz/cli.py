"""The ``clviz`` command line: one sub-command per job, each a thin wrapper over the package."""

from __future__ import annotations

import argparse
import json
import sys

from clviz.backbone import BackboneError
from clviz.engine import RunDirError


def _zeroshot(args: argparse.Namespace) -> int:
    from clviz.backbone import load_backbone
    from clviz.world.tasks import get_stream
    from clviz.zeroshot import zeroshot_accuracy

    tasks = get_stream(args.stream, seed=args.seed)
    model, _, tokenizer = load_backbone(args.backbone, pretrained=args.pretrained)
    rows = [
        {
            "task": t.name,
            "accuracy": round(zeroshot_accuracy(model, tokenizer, t), 2),
            "chance": round(t.chance, 2),
            "classes": t.num_classes,
        }
        for t in tasks
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "stream": args.stream,
                    "seed": args.seed,
                    "backbone": args.backbone,
                    "zero_shot": rows,
                },
                indent=2,
            )
        )
        return 0
    print(f"zero-shot accuracy of {args.backbone} on stream {args.stream!r} (seed {args.seed})")
    print(f"{'task':<16}{'classes':>8}{'accuracy %':>12}{'chance %':>10}")
    for r in rows:
        print(f"{r['task']:<16}{r['classes']:>8}{r['accuracy']:>12.1f}{r['chance']:>10.1f}")
    mean = sum(r["accuracy"] for r in rows) / len(rows)
    print(f"{'mean':<16}{'':>8}{mean:>12.1f}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from clviz.config import RunConfig
    from clviz.engine import default_out_dir, run
    from clviz.methods import get_method
    from clviz.methods.base import TrainConfig
    from clviz.world.tasks import stream_spec

    get_method(args.method)  # fail fast on a bad name, before any work
    stream_spec(args.stream)
    train = TrainConfig()
    if args.steps is not None:
        train.steps = args.steps
    if args.fast:
        train.steps = min(train.steps, 10)
    options = json.loads(args.options) if args.options else {}
    if not isinstance(options, dict):
        raise ValueError(f"--options must be a JSON object, got {args.options!r}")
    config = RunConfig(
        method=args.method,
        stream=args.stream,
        seed=args.seed,
        train=train,
        options=options,
        backbone=args.backbone,
        pretrained=args.pretrained,
    )
    out = Path(args.out) if args.out else default_out_dir(config)
    results = run(config, out, force=args.force)
    m = results["metrics"]
    print(
        f"{args.method} on {args.stream}: Transfer {m['transfer']:.1f}  Avg {m['avg']:.1f}  "
        f"Last {m['last']:.1f}  BWT {m['bwt']:+.1f}  forgetting {m['forgetting']:.1f}  "
        f"({results['seconds']:.0f} s)"
    )
    print(f"results: {out / 'results.json'}")
    return 0


def _params(args: argparse.Namespace) -> int:
    from clviz.params import count_parameters

    counts = count_parameters(args.backbone, args.method, args.experts, args.bottleneck, args.tasks)
    if args.json:
        print(json.dumps(counts, indent=2))
        return 0
    for key, value in counts.items():
        shown = f"{value / 1e6:.2f}M" if isinstance(value, int) and value > 10_000 else value
        print(f"{key:<16}{shown}")
    ratio = counts["trainable"] / counts["full_finetune"]
    print(f"trainable / full fine-tuning: {ratio:.1%} ({1 - ratio:.0%} fewer)")
    return 0


def _metrics(args: argparse.Namespace) -> int:
    from clviz.metrics import load_matrix, summarize

    summary = summarize(load_matrix(args.file)).as_dict()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key:<11}{value:>9.2f}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from clviz.methods import METHODS
    from clviz.world.tasks import STREAMS, get_domain

    print("methods:")
    for name, cls in METHODS.items():
        print(f"  {name:<16} {cls.summary}")
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

    p = sub.add_parser(
        "zeroshot", help="zero-shot accuracy of a backbone on every task of a stream"
    )
    p.add_argument("--stream", default="default", help="task stream (see 'clviz list')")
    p.add_argument("--seed", type=int, default=0, help="seed of the embedded world")
    p.add_argument("--backbone", default="clviz-tiny", help="open_clip architecture name")
    p.add_argument("--pretrained", default=None, help="hub tag or local weights file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_zeroshot)

    p = sub.add_parser("main", help="the main job: execute the notebooks, write results/")
    p.add_argument("--out", default="results", help="output folder")
    p.add_argument(
        "--notebooks",
        nargs="*",
        default=["00_quickstart"],
        help="notebook stems to execute (default: the quickstart)",
    )
    p.set_defaults(func=_main_job)

    p = sub.add_parser("run", help="train a method on a stream and evaluate every task")
    p.add_argument("--method", required=True, help="method name (see 'clviz list')")
    p.add_argument("--stream", default="default", help="task stream (see 'clviz list')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="training steps per task")
    p.add_argument("--out", default=None, help="results folder (default results/runs/...)")
    p.add_argument(
        "--options", default=None, help="method options as JSON, e.g. '{\"alpha\": 0.3}'"
    )
    p.add_argument("--backbone", default="clviz-tiny")
    p.add_argument("--pretrained", default=None)
    p.add_argument("--fast", action="store_true", help="at most 10 steps per task (smoke test)")
    p.add_argument("--force", action="store_true", help="replace another config's results")
    p.set_defaults(func=_run)

    p = sub.add_parser("params", help="trainable and total parameters of a method, untrained")
    p.add_argument("--backbone", default="clviz-tiny", help="open_clip architecture")
    p.add_argument("--method", required=True)
    p.add_argument("--experts", type=int, default=22)
    p.add_argument("--bottleneck", type=int, default=64)
    p.add_argument("--tasks", type=int, default=11, help="routers to count (one per task)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_params)

    p = sub.add_parser("metrics", help="Transfer, Avg, Last, BWT and forgetting of a matrix file")
    p.add_argument("file", help="CSV, JSON list of rows, or JSON with 'accuracy_matrix'")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_metrics)

    p = sub.add_parser("list", help="the available methods, task streams and tasks")
    p.set_defaults(func=_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError, BackboneError, RunDirError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"clviz {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
