"""The one loop: the only place a method is trained on a stream of tasks, task by task.

:func:`learn_task` takes a method through one task (``begin_task``, its ``stages`` of AdamW
steps on ``loss``, ``end_task``); :func:`run_stream` does it for every task of a stream, takes
the :class:`~clviz.core.evaluation.Evaluation`'s row after each, tells the observers, and
checkpoints into a :class:`~clviz.core.store.RunStore` so that an interrupted run resumes from
the last finished task with the same numbers: each task's randomness is seeded from
``(seed, task index)`` alone. The engine, not the method, knows which tasks are learned.

Observers (:class:`Observer`) watch a run without changing it: the drift probe's features at
every checkpoint, a close look inside one task, a progress display.
"""

from __future__ import annotations

import functools
import resource
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch.optim.lr_scheduler import LambdaLR

from clviz.core import distributed
from clviz.core.device import autocast, device_name, out_of_memory_hint
from clviz.core.evaluation import Evaluation, EveryTask
from clviz.core.feed import feed
from clviz.core.formats import Batch, PairTask, Task, TaskFormat, make_format
from clviz.core.method import check_formats
from clviz.core.progress import (
    current_position,
    following_run,
    progress_bar,
    run_bar,
    step_taken,
    task_started,
)
from clviz.core.rates import has_own_rate
from clviz.core.result import RunResult, StageStats, TaskStats
from clviz.core.schedules import lr_factor, warmup_steps
from clviz.errors import ClvizError

if TYPE_CHECKING:
    from clviz.core.method import Method, Stage, TaskState
    from clviz.core.store import RunStore


def task_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th task's training randomness: independent of what ran before."""
    return seed * 1_000_003 + index


def draws_for(seed: int) -> torch.Generator:
    """The generator of a method's own draws on a task (its
    :attr:`~clviz.core.method.TaskState.draws`) whose seed is ``seed`` (:func:`learn_task`'s:
    :func:`task_seed` of the run's seed and the task's index). Apart from the batch draws, so a
    method's draws never shift which batches it trains on.

    Parameter initialisation and the MoE router's noise use torch's global generator, which
    :func:`learn_task` seeds from the same ``seed`` before ``begin_task``."""
    first = torch.Generator().manual_seed(seed)
    return torch.Generator().manual_seed(int(torch.randint(2**62, (), generator=first)))


class ObserverError(ClvizError):
    """A run's observers cannot go on with it (added at a resume, or two under one name)."""


class Observer:
    """Watches a run through :func:`run_stream` (every hook is optional). Whatever an observer
    must keep across an interruption goes into ``state_dict``, saved with each checkpoint under
    its ``name``: unique among a run's observers, the class's name unless it sets one."""

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            cls.name = cls.__name__

    def resume_unwatched(self, method: Method, tasks: Sequence[TaskFormat], done: int) -> None:
        """Called instead of ``load_state_dict`` when a run resumes with this observer but its
        checkpoint holds nothing of it: it did not watch the first ``done`` tasks. One that keeps
        no state (no ``state_dict`` of its own) just starts watching; what one that keeps state
        records would miss those tasks, so by default the run stops and says so."""
        if type(self).state_dict is Observer.state_dict:
            return
        raise ObserverError(
            f"observer {self.name!r} did not watch the first {done} task(s) of this run, so it "
            "cannot resume it: leave the observer out to finish the run, or start the run "
            "over with it (--force)"
        )

    def on_stream_start(self, method: Method, tasks: Sequence[TaskFormat]) -> None:
        """Before the first task (not called again when a run resumes)."""

    def on_task_start(self, method: Method, state: TaskState) -> None:
        """After ``begin_task``, before any training step."""

    def on_task_trained(self, method: Method, state: TaskState) -> None:
        """After the last training step, before ``end_task``."""

    def on_task_end(self, method: Method, index: int, row: list[float]) -> None:
        """After ``end_task`` and the evaluation of task ``index`` (before its checkpoint)."""

    def on_stream_end(self, result: RunResult, store: RunStore | None) -> None:
        """After the last task; ``store`` (when given) is where the run lives."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


FINITE_CHECK_EVERY = 50  # steps between checks of the loss on an accelerator (one sync each)


class DivergenceError(ClvizError, ArithmeticError):
    """Training produced a non-finite loss; the message names the method, task, step and the
    setting to lower. The run stops there: its last checkpoint (the tasks before) is kept."""


def rate_hint(method: Method, rate: float) -> str:
    """How to lower the rate of ``method``: its own ``lr`` option, or the training rate."""
    lower = f"{rate / 10:g}"
    if has_own_rate(type(method.options)):
        return f"Lower the method's rate with --options '{{\"lr\": {lower}}}' (it was {rate:g})"
    return f"Lower the training rate with --lr {lower} (it was {rate:g})"


def check_finite(
    losses: Sequence[torch.Tensor], first_step: int, method: Method, state: TaskState, stage: Stage
) -> None:
    """Raise :class:`DivergenceError` at the first non-finite loss of ``losses`` (the losses of
    steps ``first_step``, ``first_step + 1``...)."""
    finite = torch.isfinite(torch.stack(list(losses)).float())
    if bool(finite.all()):
        return
    bad = int((~finite).nonzero()[0, 0])
    value = float(losses[bad])
    where = f" ({stage.name})" if stage.name != "train" else ""
    raise DivergenceError(
        f"{method.name} diverged on task {state.index + 1} ({state.task.name}){where} at step "
        f"{first_step + bad + 1} of {stage.steps}: the loss is {value}. "
        f"{rate_hint(method, stage.lr)}: that is a new run; this run's folder keeps its "
        "checkpoint of the tasks before"
    )


def optimize(
    method: Method,
    state: TaskState,
    stage: Stage,
    params: list,
    generator: torch.Generator,
    progress: bool,
) -> StageStats:
    """``stage.steps`` AdamW steps on ``params`` (the started stage's), each on ``batch_size``
    training examples drawn with replacement by ``generator``, of ``method.loss`` under the
    task's context, the rate following ``TrainConfig.schedule``."""
    task, train = state.task, method.train_config
    model = method.model
    optimizer = torch.optim.AdamW(
        params,
        lr=stage.lr,
        weight_decay=train.weight_decay,
        betas=train.betas,
        eps=train.eps,
        fused=True,
    )
    warmup = warmup_steps(stage.steps, train.warmup_steps, train.warmup_ratio)
    scheduler = LambdaLR(optimizer, lr_factor(train.schedule, stage.steps, warmup))

    def batch_loss(batch: Batch) -> torch.Tensor:
        with method.context(task):
            return method.loss(batch, state)

    n = task.size("train")
    model.train()
    run = distributed.data_parallel(model)  # plain call in a single process
    amp = autocast(method.device)  # bf16 on CUDA; nothing on the CPU
    losses = []  # kept on the device: no host synchronisation per step
    size = min(train.batch_size, n)
    # Every process draws the same batches and takes its slice of each.
    draws = [
        distributed.shard(torch.randint(n, (size,), generator=generator))
        for _ in range(stage.steps)
    ]
    bar = progress_bar(
        feed(task, "train", draws, method.device),
        total=stage.steps,
        desc=f"{method.name} · {task.name}" + (f" · {stage.name}" if stage.name != "train" else ""),
        # inside a run, its own bar shows the steps (one line, also in a notebook)
        disable=not progress or not distributed.is_main() or current_position() is not None,
        leave=False,
    )
    # A non-finite loss stops the run at once: every step on the CPU (reading a number there
    # costs nothing), every FINITE_CHECK_EVERY steps on an accelerator (each read waits for it).
    check_every = 1 if method.device.type == "cpu" else FINITE_CHECK_EVERY
    checked = 0
    for step, batch in enumerate(bar):
        with out_of_memory_hint(size):
            with amp:
                loss = run(functools.partial(batch_loss, batch))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        method.after_step(state, step)
        step_taken(stage.name, step + 1, stage.steps)
        losses.append(loss.detach())
        if len(losses) - checked >= check_every or step + 1 == stage.steps:
            check_finite(losses[checked:], checked, method, state, stage)
            checked = len(losses)
    model.eval()
    losses = torch.stack(losses).float().tolist() if losses else []
    tail = losses[-10:]
    rates = [group["initial_lr"] for group in optimizer.param_groups]
    return StageStats(stage.name, len(losses), losses[0], sum(tail) / len(tail), rates)


def learn_task(
    method: Method,
    task: Task | PairTask | TaskFormat,
    index: int = 0,
    *,
    seed: int = 0,
    observers: Sequence[Observer] = (),
    progress: bool = True,
) -> TaskStats:
    """Take ``method`` through one task: begin, train every stage, end. ``seed`` seeds the
    task's randomness (the global generator and the batch draws); returns how training went."""
    task = make_format(task, method.tokenizer)
    check_formats(method, [task])
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    state = method.begin_task(
        task.for_training(method.train_config.prompts), index, draws_for(seed)
    )
    for observer in observers:
        observer.on_task_start(method, state)
    stages = []
    for stage in method.stages(state):
        params = stage.start()
        if stage.steps and params:
            stages.append(optimize(method, state, stage, params, generator, progress))
    for observer in observers:
        observer.on_task_trained(method, state)
    method.end_task(state)
    return TaskStats(stages)


def _peak_gpu_memory_mb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def run_stream(
    method: Method,
    tasks: Sequence[Task | PairTask | TaskFormat],
    evaluation: Evaluation | None = None,
    *,
    seed: int = 0,
    observers: Sequence[Observer] = (),
    store: RunStore | None = None,
    zero_shot: list[float | None] | None = None,
    stream: str = "",
    config: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    progress: bool = True,
) -> RunResult:
    """Learn ``tasks`` in order with ``method``; evaluate after each; return the result.

    Args:
        evaluation: what is measured after each task (default: accuracy on every task).
        seed: task ``i`` is seeded with :func:`task_seed` ``(seed, i)``.
        observers: watch the run (drift features, a close look at one task...).
        store: checkpoint after every task into it, resume from it, and save the result in
            it at the end (the caller checks ``store.finished()`` first).
        zero_shot: the untouched backbone under ``evaluation`` if already known (a cached
            row); otherwise measured on ``method`` before its first task, which every method
            starts as (adapters inactive, nothing trained).
        stream, config, extra: recorded in the result (``extra``: what a protocol adds).
    """
    distributed.init(method.device)  # under torchrun: join the process group
    tasks = [make_format(t, method.tokenizer) for t in tasks]
    check_formats(method, tasks)  # every task's format, before any work
    evaluation = evaluation if evaluation is not None else EveryTask(tasks)
    names = [observer.name for observer in observers]
    if len(set(names)) != len(names):
        raise ObserverError(f"two observers share a name ({', '.join(names)}): rename one")
    saved = store.checkpoint() if store is not None else None
    if saved is not None:
        method.load_state_dict(saved["method"])
        kept = saved["observers"]  # an observer left out now: its state is simply not read
        for observer in observers:
            if observer.name in kept:
                observer.load_state_dict(kept[observer.name])
            else:
                observer.resume_unwatched(method, tasks, len(saved["rows"]))
        rows, task_stats = saved["rows"], saved["task_stats"]
        seconds, zero_shot = saved["seconds"], saved["zero_shot"]
    else:
        rows, task_stats, seconds = [], [], 0.0
        if zero_shot is None:
            zero_shot = evaluation.reference(method)
        for observer in observers:
            observer.on_stream_start(method, tasks)

    label = f"{method.name}" + (f" on {stream}" if stream else "")
    shown = progress and distributed.is_main()
    with following_run(), run_bar(label, len(tasks), len(rows), shown):
        for index in range(len(rows), len(tasks)):
            started = time.perf_counter()
            task_started(index, len(tasks), tasks[index].name)
            stats = learn_task(
                method,
                tasks[index],
                index,
                seed=task_seed(seed, index),
                observers=observers,
                progress=progress,
            )
            row = evaluation.row(method, index)
            rows.append(row)
            task_stats.append(stats)
            for observer in observers:
                observer.on_task_end(method, index, row)
            seconds += time.perf_counter() - started
            if store is not None and distributed.is_main():
                store.save_checkpoint(
                    {
                        "rows": rows,
                        "task_stats": task_stats,
                        "seconds": seconds,
                        "zero_shot": zero_shot,
                        "method": method.state_dict(),
                        "observers": {o.name: o.state_dict() for o in observers},
                    }
                )

    trainable, total = method.count_parameters()
    result = RunResult(
        method=method.name,
        tasks=[t.name for t in tasks],
        matrix=rows,
        columns=list(evaluation.columns),
        zero_shot=list(zero_shot),
        protocol=evaluation.protocol,
        stream=stream,
        seed=seed,
        task_stats=task_stats,
        trainable_params=trainable,
        total_params=total,
        seconds=round(seconds, 2),
        peak_memory_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        device=device_name(method.device),
        peak_gpu_memory_mb=_peak_gpu_memory_mb(method.device),
        record=method.record(tasks),
        config=dict(config or {}),
        extra=dict(extra or {}),
    )
    if store is not None and distributed.is_main():
        for observer in observers:
            observer.on_stream_end(result, store)
        store.save(result)
    else:
        for observer in observers:
            observer.on_stream_end(result, None)
    return result
