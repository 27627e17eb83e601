"""One run per folder: an exclusive lock, taken before any work and held until the result is
written, so that two processes never train into (or overwrite) the same run folder.

The lock is ``filelock``'s (``flock`` on Unix), on ``<folder>/.lock``: the operating system
drops it when its process ends, however it ends (a SIGKILL leaves no stale lock), and a second
process asking for it fails at once instead of waiting. Within one process the lock is
re-entrant, so a notebook can rerun a failed cell on the same folder.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

from filelock import FileLock, Timeout

from clviz.core.io import temp_prefix
from clviz.errors import ClvizError

LOCK_NAME = ".lock"

_LOCKS: dict[Path, FileLock] = {}  # one lock object per folder and process: re-entrant
_GUARD = threading.Lock()


class FolderBusyError(ClvizError, RuntimeError):
    """The run folder cannot be taken: another run holds it, or it cannot be written."""


def check_folder_setting(value: str | os.PathLike | None, flag: str) -> None:
    """A folder the user named (``--out``, an environment variable) is not empty text and not
    a file: caught before any work, naming ``flag``."""
    if value is None:
        return
    if not str(value).strip():
        raise FolderBusyError(
            f"{flag} is empty; name a folder (an empty {flag} would write into the current one)"
        )
    if Path(value).exists() and not Path(value).is_dir():
        raise FolderBusyError(f"{flag} {value} is a file, not a folder; choose another {flag}")


def _writable_folder(folder: Path, flag: str) -> None:
    """Create ``folder`` and check that files can be written in it (before any training)."""
    if folder.exists() and not folder.is_dir():
        raise FolderBusyError(f"{flag} {folder} is a file, not a folder; choose another {flag}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=temp_prefix("write-check"), suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise FolderBusyError(
            f"cannot write in the run folder {folder} ({err.strerror or err}); choose a "
            f"writable {flag}"
        ) from None


class FolderLock:
    """The lock of one run folder; :meth:`acquire` fails at once when another process (or
    another thread) holds it. ``flag`` names the option that chose the folder, for messages."""

    def __init__(self, folder: str | os.PathLike, flag: str = "--out") -> None:
        self.folder = Path(folder)
        self.flag = flag
        self.held = False

    @property
    def path(self) -> Path:
        return self.folder / LOCK_NAME

    def acquire(self) -> None:
        """Take the lock (a no-op when this object holds it already)."""
        if self.held:
            return
        _writable_folder(self.folder, self.flag)
        key = self.folder.resolve()
        with _GUARD:
            lock = _LOCKS.setdefault(key, FileLock(str(key / LOCK_NAME), timeout=0))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise FolderBusyError(
                f"another clviz run holds the run folder {self.folder} (lock {self.path}); "
                f"wait for it to finish, or choose another {self.flag}"
            ) from None
        except OSError as err:
            raise FolderBusyError(
                f"cannot lock the run folder {self.folder} ({err.strerror or err}); choose a "
                f"writable {self.flag}"
            ) from None
        self.held = True

    def release(self) -> None:
        """Give the lock back (a no-op when this object does not hold it)."""
        if not self.held:
            return
        self.held = False
        _LOCKS[self.folder.resolve()].release()

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
