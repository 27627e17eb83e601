"""Resolve a config's stream: the embedded world's tasks, or the real MTIL datasets on disk.

The engine calls :func:`load_stream` and never needs to know which kind it got: a real task is
an ordinary :class:`~clviz.core.task.Task` whose images are a lazy store read from disk.
"""

from __future__ import annotations

from clviz.core.config import RunConfig
from clviz.core.task import Task
from clviz.errors import InputError
from clviz.world.tasks import STREAMS, WORLD_IMAGE_SIZE, get_stream


def real_streams() -> dict[str, str]:
    """Names and descriptions of the streams read from real datasets (``--data-root``)."""
    from clviz.data.mtil import MTIL_STREAMS

    return {name: spec.description for name, spec in MTIL_STREAMS.items()}


def is_real_stream(name: str) -> bool:
    """Whether ``name`` is a real-dataset stream (as opposed to the embedded world), including a
    subset of one such as ``mtil:Aircraft,DTD``."""
    return name.partition(":")[0] in real_streams()


def list_all_streams() -> list[str]:
    """Every stream name a config may use: the embedded world's, then the real ones."""
    return [*STREAMS, *real_streams()]


def check_stream(name: str) -> None:
    """Raise an InputError listing every valid stream when ``name`` is not one of them."""
    if name not in STREAMS and not is_real_stream(name):
        raise InputError(f"unknown stream {name!r}; valid streams: {', '.join(list_all_streams())}")
    if is_real_stream(name):
        from clviz.data.mtil import parse_mtil_stream

        parse_mtil_stream(name)  # a subset naming unknown datasets fails before any work


def stream_task_names(name: str) -> tuple[str, ...]:
    """The task names of stream ``name`` (embedded or real), in order, without drawing or
    reading any image."""
    check_stream(name)
    if is_real_stream(name):
        from clviz.data.mtil import parse_mtil_stream

        return tuple(parse_mtil_stream(name).datasets)
    return tuple(STREAMS[name].tasks)


def load_stream(config: RunConfig) -> tuple[Task, ...]:
    """The tasks of ``config.stream`` in order, at ``config.image_size`` pixels.

    Embedded streams are drawn from ``config.seed`` (32 px unless ``image_size`` says otherwise);
    real streams read ``config.data_root`` (else ``$CLVIZ_DATA``) at 224 px by default, and use the
    seed only for the few-shot draw.
    """
    check_stream(config.stream)
    if is_real_stream(config.stream):
        from clviz.data.mtil import get_mtil_stream  # a malformed subset fails here, named

        return get_mtil_stream(
            config.stream, root=config.data_root, image_size=config.image_size, seed=config.seed
        )
    return get_stream(
        config.stream, seed=config.seed, image_size=config.image_size or WORLD_IMAGE_SIZE
    )
