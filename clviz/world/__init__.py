"""The embedded world: procedural and real-drawing tasks and a caption corpus, made offline.

Everything is drawn on the fly from a seed; nothing is downloaded. See :func:`get_stream`.
"""

from clviz.world.corpus import make_corpus
from clviz.world.multimodal import list_pair_families, make_pair_task
from clviz.world.sources import OPENMOJI_CREDIT
from clviz.world.tasks import (
    STREAMS,
    few_shot,
    get_stream,
    list_streams,
    list_tasks,
    make_task,
)

__all__ = [
    "OPENMOJI_CREDIT",
    "STREAMS",
    "few_shot",
    "get_stream",
    "list_pair_families",
    "list_streams",
    "list_tasks",
    "make_corpus",
    "make_pair_task",
    "make_task",
]
