"""Atomic file writes: a finished result is never lost to a half-written file.

A write goes to a temporary file beside its target (``.<name>.<random>.tmp``), is flushed to
disk, and replaces the target in one step. A process killed mid-write leaves such a temporary
file behind and the old target untouched; :func:`remove_stale_temps` sweeps them up.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    On an exception the temporary file is removed and ``path`` keeps its old content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_durably(path: str | os.PathLike, *chunks: bytes | memoryview) -> None:
    """Write ``chunks`` to ``path`` and flush them to disk before returning (a temporary file
    of :func:`atomic_path`, so that the replace never publishes a half-flushed file)."""
    with open(path, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


def write_json(path: str | os.PathLike, data: object) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def remove_stale_temps(folder: str | os.PathLike, *, older_than_s: float = 0.0) -> list[Path]:
    """Delete the temporary files that killed writes left in ``folder`` (those of
    :func:`atomic_path`, at least ``older_than_s`` seconds old); returns what was removed.

    Call it only where no other process may be writing (a locked run folder), or with an age
    that no live write reaches (a shared cache)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now, removed = time.time(), []
    for tmp in folder.glob(f".*{TEMP_SUFFIX}"):
        try:
            if now - tmp.stat().st_mtime >= older_than_s:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:  # another sweep, or its writer, got there first
            continue
    return removed
