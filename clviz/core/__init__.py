"""The core of clviz: what a task is, how a method meets a stream of tasks, and what comes out.

- :mod:`~clviz.core.task`: the data of a task (:class:`Task`, :class:`PairTask`);
- :mod:`~clviz.core.formats`: how CLIP scores each kind of task (:class:`TaskFormat`);
- :mod:`~clviz.core.clip`: CLIP's towers as a classifier (prompts, embeddings, zero-shot);
- :mod:`~clviz.core.config`: :class:`TrainConfig` and :class:`RunConfig`;
- :mod:`~clviz.core.loop`: :func:`learn_task` and :func:`run_stream`, the one training loop;
- :mod:`~clviz.core.evaluation`: what is measured after each task;
- :mod:`~clviz.core.result`: :class:`RunResult`, the typed outcome of a run;
- :mod:`~clviz.core.store`: :class:`RunStore`, the one folder-per-run store (resume, cache);
- :mod:`~clviz.core.io` and :mod:`~clviz.core.distributed`: atomic writes, torchrun.
"""

from clviz.core.config import RunConfig, TrainConfig
from clviz.core.evaluation import EveryTask, SeenClasses, accuracy
from clviz.core.formats import Batch, TaskFormat, make_format
from clviz.core.loop import Observer, draws_for, learn_task, run_stream, task_seed
from clviz.core.result import MethodRecord, RunResult, TaskStats
from clviz.core.store import RunDirError, RunStore, results_root
from clviz.core.task import PairTask, Task

__all__ = [
    "Batch",
    "EveryTask",
    "MethodRecord",
    "Observer",
    "PairTask",
    "RunConfig",
    "RunDirError",
    "RunResult",
    "RunStore",
    "SeenClasses",
    "Task",
    "TaskFormat",
    "TaskStats",
    "TrainConfig",
    "accuracy",
    "draws_for",
    "learn_task",
    "make_format",
    "results_root",
    "run_stream",
    "task_seed",
]
