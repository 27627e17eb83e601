"""clviz: see inside continual learning of CLIP-style vision-language models.

    import clviz
    model, preprocess, tokenizer = clviz.load_backbone()   # the bundled tiny CLIP
    tasks = clviz.get_stream("default")                     # the embedded task stream
    method = clviz.build_method("finetune", model, tokenizer)
    result = clviz.run_stream(method, tasks)                # the one training loop
    result.matrix, result.metrics                           # what it learned and kept

The layout: :mod:`clviz.core` (tasks, formats, the loop, the store, results),
:mod:`clviz.methods` (one class per method, with its building blocks),
:mod:`clviz.experiments` (runs from configs, comparisons, protocols, ablations),
:mod:`clviz.analysis` (metrics, features, drift) and :mod:`clviz.figures`.
"""

from clviz.backbone import BackboneError, load_backbone
from clviz.core import (
    RunConfig,
    RunResult,
    TrainConfig,
    draws_for,
    learn_task,
    make_format,
    run_stream,
)
from clviz.core.clip import zeroshot_accuracy
from clviz.errors import ClvizError
from clviz.hooks import Trace, clip_block_names, hookable_modules
from clviz.methods import build_method, get_method, list_methods
from clviz.world import get_stream, list_streams, list_tasks

__version__ = "0.1.0"

__all__ = [
    "BackboneError",
    "ClvizError",
    "RunConfig",
    "RunResult",
    "Trace",
    "TrainConfig",
    "build_method",
    "clip_block_names",
    "draws_for",
    "get_method",
    "get_stream",
    "hookable_modules",
    "learn_task",
    "list_methods",
    "list_streams",
    "list_tasks",
    "load_backbone",
    "make_format",
    "run_stream",
    "zeroshot_accuracy",
]
