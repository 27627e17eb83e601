"""The ``clviz`` command line: one sub-command per job, each a thin wrapper over the package."""

from __future__ import annotations

import argparse
import json
import sys
import traceback

from clviz.core.integrity import forcing
from clviz.core.lock import check_folder_setting
from clviz.core.validation import MAX_SEED
from clviz.errors import REPORT_BUGS, ClvizError, InputError
from clviz.experiments.compare import MODES
from clviz.experiments.workers import WorkersInterrupted

INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C


def _whole_number(least: int, what: str):
    """An argparse type: an integer of at least ``least`` (argparse names the flag)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    return parse


def _whole_number_in(least: int, most: int, what: str):
    """An argparse type: an integer in ``[least, most]``."""
    parse_least = _whole_number(least, what)

    def parse(text: str) -> int:
        value = parse_least(text)
        if value > most:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    return parse


def _positive_number(text: str) -> float:
    """An argparse type: a finite number above zero (a learning rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


POSITIVE = _whole_number(1, "at least 1")
SEED = _whole_number_in(0, MAX_SEED, f"a whole number from 0 to {MAX_SEED} (32 bits)")


FORCE_HELP = "rebuild any damaged file it meets, and replace another config's results"
PROFILE_HELP = "embedded (CPU, the default), classroom-gpu (one GPU, 64 px) or mtil (real data)"
DEVICE_HELP = "auto (default: CUDA, then Apple MPS, else CPU), cpu, cuda, cuda:N or mps"


def _zeroshot(args: argparse.Namespace) -> int:
    from clviz.backbone import load_backbone
    from clviz.core.clip import zeroshot_accuracy
    from clviz.world.tasks import get_stream

    tasks = get_stream(args.stream, seed=args.seed)
    model, _, tokenizer = load_backbone(args.backbone, args.pretrained, args.device)
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
    from clviz.core import distributed
    from clviz.experiments.inputs import describe_inputs, run_identity
    from clviz.experiments.runs import run
    from clviz.methods import get_method

    get_method(args.method)  # fail fast on a bad name, before any work
    config = _profile_config(args)
    result = run(config, args.out, force=args.force)
    if not distributed.is_main():
        return 0  # under torchrun, rank 0 reports and writes the result
    if result.reused:
        inputs = describe_inputs(run_identity(config)["inputs"])
        print(f"reused the finished run in {result.run_dir} (same settings; {inputs})")
    m = result.metrics
    print(
        f"{args.method} on {config.stream}: Transfer {m.transfer:.1f}  Avg {m.avg:.1f}  "
        f"Last {m.last:.1f}  BWT {m.bwt:+.1f}  forgetting {m.forgetting:.1f}  "
        f"({result.seconds:.0f} s)"
    )
    print(f"results: {result.run_dir / 'results.json'}")
    return 0


def _profile_config(args: argparse.Namespace, real_data: bool | None = None, build=None):
    """The RunConfig of ``--profile`` for ``--method``, with the command line's overrides,
    checked (``real_data``: whether ``--data-root`` is read; by default, for a real stream).
    ``build`` makes the config (default: the profile's, :func:`make_config`)."""
    from clviz.core.rates import run_rate_ignored
    from clviz.data.streams import check_stream
    from clviz.experiments.profiles import make_config
    from clviz.experiments.runs import check_config
    from clviz.methods import get_method

    build = build or make_config
    try:
        options = json.loads(args.options) if args.options else {}
    except ValueError as err:
        raise InputError(f"--options is not valid JSON ({err}): {args.options!r}") from None
    if not isinstance(options, dict):
        raise InputError(f"--options must be a JSON object, got {args.options!r}")
    config = build(
        args.profile,
        args.method,
        args.stream,
        args.seed,
        pretrained=args.pretrained,
        data_root=args.data_root,
        steps=args.steps,
        options=options,
    )
    check_stream(config.stream)
    if args.backbone is not None:
        config.backbone = args.backbone
    if args.batch_size is not None:
        config.train.batch_size = args.batch_size
    if getattr(args, "no_task_lr", False):
        config.train.task_lr = None
    if getattr(args, "lr", None) is not None:
        config.train.lr = args.lr
        ignored = run_rate_ignored(config.method, get_method(config.method).Options, config.train)
        if ignored:
            raise InputError(ignored)
    config.device = args.device
    if args.fast:
        config.train.steps = min(config.train.steps, 10)
    check_config(config, real_data)  # every setting, before any work
    return config


def _class_incremental(args: argparse.Namespace) -> int:
    from clviz.experiments.class_incremental import (
        REFERENCE_TEMPLATE,
        Recipe,
        recipe_methods,
        reference_config,
        run_class_incremental,
    )
    from clviz.methods import get_method

    if args.stream is None:
        args.stream = "default"  # the embedded class pool; real data is --dataset cifar100
    real = args.dataset != "world"
    if args.recipe == "reference":
        get_method(args.method)
        if args.method not in recipe_methods():
            raise InputError(
                f"the reference recipe has no {args.method!r}; valid: "
                f"{', '.join(recipe_methods())} (any method runs with --recipe embedded)"
            )
        if args.steps is not None:
            raise InputError(
                "--train-steps is for --recipe embedded; the reference recipe trains --epochs "
                "epochs of each step"
            )
        config = _profile_config(
            args,
            real_data=real,
            build=lambda profile, method, *rest, **kw: reference_config(
                method, profile, *rest, **kw
            ),
        )
        recipe = Recipe(REFERENCE_TEMPLATE, args.epochs)
    else:
        get_method(args.method)
        config = _profile_config(args, real_data=real)
        recipe = Recipe()
    result = run_class_incremental(
        config, args.dataset, args.steps_ci, args.out, recipe=recipe, force=args.force
    )
    m, zs = result.metrics, result.zero_shot_metrics
    curve = "  ".join(f"{row[0]:.1f}" for row in result.matrix)
    print(
        f"{args.method} on {args.dataset} in {args.steps_ci} steps: Avg {m.avg:.1f}  "
        f"Last {m.last:.1f}  (zero-shot Avg {zs.avg:.1f}  Last {zs.last:.1f}; "
        f"{result.seconds:.0f} s)"
    )
    print(f"accuracy over all classes seen, per step: {curve}")
    print(f"results: {result.run_dir / 'results.json'}")
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
    from clviz.core.metrics import load_matrix, summarize

    summary = summarize(load_matrix(args.file)).as_dict()
    if args.json:  # strict JSON: a NaN would be refused here, not printed
        print(json.dumps(summary, indent=2, allow_nan=False))
    else:
        for key, value in summary.items():
            print(f"{key:<11}{value:>9.2f}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from clviz.core.formats import TaskFormat
    from clviz.methods import METHODS
    from clviz.world.tasks import STREAMS, get_domain

    print("methods:")
    for name, cls in METHODS.items():
        print(f"  {name:<16} {cls.summary}")
        learns = (
            "every task format"
            if cls.formats == (TaskFormat,)
            else (" and ".join(f.kind for f in cls.formats) + " tasks only")
        )
        print(f"  {'':<16} learns {learns}")
    print("streams:")
    for name, spec in STREAMS.items():
        print(f"  {name:<16} {spec.description} ({spec.train_per_class} train images per class)")
        print(f"  {'':<16} tasks: {', '.join(spec.tasks)}")
    print("tasks:")
    for name in dict.fromkeys(t for s in STREAMS.values() for t in s.tasks):
        d = get_domain(name)
        print(f"  {name:<16} {len(d.classnames):>2} classes, {d.source}: {d.description}")
    from clviz.data.streams import real_streams
    from clviz.experiments.profiles import PROFILES

    print("real streams (--data-root or $CLVIZ_DATA):")
    for name, description in real_streams().items():
        print(f"  {name:<16} {description}")
    print("profiles (--profile):")
    for name, profile in PROFILES.items():
        print(f"  {name:<16} {profile.description}")
    return 0


def _main_job(args: argparse.Namespace) -> int:
    from clviz.main_job import main_job

    stream, steps = ("smoke", 10) if args.fast else (args.stream, args.steps)
    check_folder_setting(args.out, "--out")
    paths = main_job(
        args.out,
        stream=stream,
        seed=args.seed,
        methods=args.methods,
        steps=steps,
        device=args.device,
        profile=args.profile,
        workers=args.workers,
        seeds=args.seeds,
    )
    print(f"report:  {paths['report'].resolve()}")
    print(f"summary: {paths['summary'].resolve()}")
    return 0


def _notebooks(args: argparse.Namespace) -> int:
    from pathlib import Path

    from clviz.notebooks import run_notebooks

    done = run_notebooks(args.names, Path(args.out), args.mode, args.cell_timeout)
    print(f"done: {len(done)} notebook(s) executed; open {done[0][1]}" if done else "nothing to do")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clviz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "zeroshot", help="zero-shot accuracy of a backbone on every task of a stream"
    )
    p.add_argument("--stream", default="default", help="task stream (see 'clviz list')")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the embedded world")
    p.add_argument("--backbone", default="clviz-tiny", help="open_clip architecture name")
    p.add_argument("--pretrained", default=None, help="hub tag or local weights file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.set_defaults(func=_zeroshot)

    p = sub.add_parser(
        "main", help="the main job: every method on the default stream, then an HTML report"
    )
    p.add_argument("--out", default="results", help="where the report and summary go")
    p.add_argument("--stream", default="default", help="task stream (see 'clviz list')")
    seed = p.add_mutually_exclusive_group()
    seed.add_argument("--seed", type=SEED, default=0)
    seed.add_argument(
        "--seeds",
        type=SEED,
        nargs="+",
        default=None,
        help="several seeds: the report adds mean ± std over them (e.g. --seeds 0 1 2)",
    )
    p.add_argument("--steps", type=POSITIVE, default=None, help="training steps per task")
    p.add_argument("--methods", nargs="*", default=None, help="default: every method")
    p.add_argument("--fast", action="store_true", help="the smoke stream, 10 steps per task")
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.add_argument("--profile", default=None, help=PROFILE_HELP)
    p.add_argument(
        "--workers",
        type=POSITIVE,
        default=None,
        help="methods trained at once, one thread each (default: one per CPU core; 1 on a GPU)",
    )
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(func=_main_job)

    p = sub.add_parser(
        "notebooks", help="execute notebooks into small .ipynb and offline .html files"
    )
    p.add_argument("names", nargs="*", default=None, help="notebook stems (default: all)")
    p.add_argument("--out", default="results/notebooks", help="output folder")
    p.add_argument(
        "--mode",
        choices=MODES,
        default=None,
        help="CLVIZ_MODE for the notebooks (default: this shell's, else full)",
    )
    p.add_argument(
        "--cell-timeout", type=POSITIVE, default=900, help="seconds a cell may run (default 900)"
    )
    p.set_defaults(func=_notebooks)

    def run_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--method", required=True, help="method name (see 'clviz list')")
        p.add_argument("--profile", default="embedded", help=PROFILE_HELP)
        p.add_argument("--stream", default=None, help="task stream (default: the profile's)")
        p.add_argument("--data-root", default=None, help="real datasets' folder ($CLVIZ_DATA)")
        p.add_argument("--seed", type=SEED, default=0)
        p.add_argument("--out", default=None, help="results folder (default results/runs/...)")
        p.add_argument(
            "--options", default=None, help="method options as JSON, e.g. '{\"alpha\": 0.3}'"
        )
        p.add_argument("--backbone", default=None, help="default: the profile's")
        p.add_argument("--pretrained", default=None, help="hub tag or local weights file")
        p.add_argument("--fast", action="store_true", help="at most 10 steps per task (smoke)")
        p.add_argument("--force", action="store_true", help=FORCE_HELP)
        p.add_argument(
            "--lr", type=_positive_number, default=None, help="training rate (default: profile's)"
        )
        p.add_argument(
            "--no-task-lr",
            action="store_true",
            help="one rate for every task: drop the profile's per-task rates (task_lr)",
        )
        p.add_argument("--device", default=None, help=DEVICE_HELP)
        p.add_argument(
            "--batch-size",
            type=POSITIVE,
            default=None,
            help="training batch (default: the profile's)",
        )

    p = sub.add_parser("run", help="train a method on a stream and evaluate every task")
    run_arguments(p)
    p.add_argument("--steps", type=POSITIVE, default=None, help="training steps per task")
    p.set_defaults(func=_run)

    p = sub.add_parser(
        "class-incremental", help="learn a class pool in steps; accuracy over all seen classes"
    )
    run_arguments(p)
    p.add_argument("--dataset", default="world", help="world (embedded) or cifar100 (real)")
    p.add_argument("--steps", dest="steps_ci", type=POSITIVE, default=10, help="10, 20 or 50...")
    p.add_argument(
        "--recipe",
        choices=("reference", "embedded"),
        default="reference",
        help="reference: the MoE-Adapters cil/ recipe (one template, one router for MoE, "
        "--epochs per step); embedded: the profile's training, --train-steps per step",
    )
    p.add_argument("--epochs", type=POSITIVE, default=1, help="per step (reference recipe)")
    p.add_argument(
        "--train-steps", dest="steps", type=POSITIVE, default=None, help="per step (embedded)"
    )
    p.set_defaults(func=_class_incremental)

    p = sub.add_parser("params", help="trainable and total parameters of a method, untrained")
    p.add_argument("--backbone", default="clviz-tiny", help="open_clip architecture")
    p.add_argument("--method", required=True)
    p.add_argument("--experts", type=POSITIVE, default=22)
    p.add_argument("--bottleneck", type=POSITIVE, default=64)
    p.add_argument("--tasks", type=POSITIVE, default=11, help="routers to count (one per task)")
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
        with forcing(getattr(args, "force", False)):
            return args.func(args)
    except ClvizError as err:  # what was asked for, or what the disk holds: one line
        print(f"clviz {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the machine's: a full disk, a folder that cannot be read
        print(f"clviz {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        from clviz.core.store import resume_hint

        hint = str(err) if isinstance(err, WorkersInterrupted) else resume_hint()
        print(f"\nclviz {args.command}: interrupted; {hint}", file=sys.stderr)
        return INTERRUPTED
    except Exception:  # anything else is a bug in clviz: keep its traceback
        traceback.print_exc()
        print(
            f"\nclviz {args.command}: this is a bug in clviz, not in what you asked for. Please "
            f"report it on {REPORT_BUGS}, with the command you ran and the traceback above.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
