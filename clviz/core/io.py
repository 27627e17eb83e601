"""Atomic file writes: a finished result is never lost to a half-written file.

A write goes to a temporary file beside its target, is flushed to disk, and replaces the target
in one step. A process killed mid-write leaves such a temporary file behind and the old target
untouched; :func:`remove_stale_temps` sweeps them up.

A temporary file is named ``.<name>.clviz-<pid>-<random>.tmp``: it says that clviz wrote it and
which process did, so a sweep removes only clviz's own files, and only those whose writer is
gone. A user's own ``.something.tmp`` beside a run is never touched.

Every ``OSError`` of a write (a full disk, a read-only folder) becomes a :class:`WriteError`
naming the file it was writing.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clviz.errors import ClvizError

TEMP_SUFFIX = ".tmp"
TEMP_MARK = ".clviz-"  # between the target's name and the writer's process id
_TEMP_NAME = re.compile(r"^\..+\.clviz-(?P<pid>\d+)-[^.]*\.tmp$")


class WriteError(ClvizError, OSError):
    """A file could not be written (disk full, folder read-only...); the message names it."""


def _write_error(path: Path, err: OSError) -> WriteError:
    fix = (
        "free some space on that disk, or choose another --out"
        if err.errno in (errno.ENOSPC, errno.EDQUOT)
        else "choose a writable --out (or $CLVIZ_RESULTS)"
    )
    return WriteError(err.errno, f"cannot write {path} ({err.strerror or err}); {fix}")


def temp_prefix(name: str) -> str:
    """The start of this process's temporary files for ``name`` (see :func:`writer_alive`)."""
    return f".{name}{TEMP_MARK}{os.getpid()}-"


def writer_alive(pid: int) -> bool:
    """Whether process ``pid`` (on this machine) still exists."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=temp_prefix(path.name), suffix=TEMP_SUFFIX, dir=path.parent
        )
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    except WriteError:
        raise
    except OSError as err:
        raise _write_error(path, err) from None
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except WriteError:
        raise
    except OSError as err:
        raise _write_error(path, err) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_durably(path: str | os.PathLike, *chunks: bytes | memoryview) -> None:
    """Write ``chunks`` to ``path`` and flush them to disk before returning (a temporary file
    of :func:`atomic_path`, so that the replace never publishes a half-flushed file)."""
    try:
        with open(path, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise _write_error(Path(path), err) from None


def json_safe(data: Any) -> Any:
    """``data`` with every non-finite float (NaN, infinities) as None: what JSON can hold of an
    undefined or unfinished value. Mappings, lists and tuples are walked."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(v) for v in data]
    return data


def strict_json(data: Any, **kwargs: Any) -> str:
    """``json.dumps`` that never writes a bare ``NaN``/``Infinity`` (not JSON): non-finite
    numbers become ``null`` (:func:`json_safe`), and anything else non-finite is an error."""
    return json.dumps(json_safe(data), allow_nan=False, **kwargs)


def write_json(path: str | os.PathLike, data: object) -> None:
    """Write ``data`` as indented, strict JSON, atomically."""
    text = strict_json(data, indent=2) + "\n"
    with atomic_path(path) as tmp:
        write_bytes_durably(tmp, text.encode())


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed clviz writes left in ``folder``: only files named
    as :func:`atomic_path` names them, and only those whose writing process is gone (a live
    write, in this process or another, is never disturbed). Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for tmp in folder.glob(f".*{TEMP_MARK}*{TEMP_SUFFIX}"):
        match = _TEMP_NAME.match(tmp.name)
        if match is None or writer_alive(int(match["pid"])):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:  # another sweep got there first
            continue
    return removed
