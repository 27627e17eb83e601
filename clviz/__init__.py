"""clviz: see inside continual learning of CLIP-style vision-language models.

import clviz
model, preprocess, tokenizer = clviz.load_backbone()     # the bundled tiny CLIP
tasks = clviz.get_stream("default")                       # the embedded task stream
"""

from clviz.backbone import BackboneError, load_backbone
from clviz.hooks import Trace, clip_block_names, hookable_modules
from clviz.world import get_stream, list_streams, list_tasks
from clviz.zeroshot import zeroshot_accuracy

__version__ = "0.1.0"

__all__ = [
    "BackboneError",
    "Trace",
    "clip_block_names",
    "get_stream",
    "hookable_modules",
    "list_streams",
    "list_tasks",
    "load_backbone",
    "zeroshot_accuracy",
]
