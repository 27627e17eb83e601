"""One walk of a dataset's folder, before torchvision lists it: refuse links, fingerprint files.

torchvision lists some datasets with ``os.walk(followlinks=True)`` (``ImageFolder``: EuroSAT) or
``rglob`` (SUN397). A link inside a class folder (``Forest/loop -> ..``) copies images into both
train and test, and two such links make the walk endless while memory grows. :func:`scan_dataset`
walks the folder first without following any link (``os.scandir``), so the hang cannot start:

* every link below the dataset's top folder is refused (a folder link can loop or duplicate a
  class; a file link is a duplicate of another file of the dataset or points outside it). The
  top folder itself may be a link (``data_root/dtd -> /mnt/big/dtd`` is normal);
* a FIFO, socket or device (a read would block or fail) is refused;
* the same walk returns a cheap fingerprint of the content, for run identity: the sha256 of the
  sorted (relative path, size, mtime_ns) of every file, from ``stat`` alone (no image is read).

:func:`check_unique` then checks what torchvision listed: no image twice in one split, none in
both train and test. Every error is a one-line :class:`DatasetError` naming the path and the fix.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator, Mapping, Sequence

from clviz.errors import InputError

LINK_FIX = "replace the link by a real copy of what it points to, or remove it"


class DatasetError(InputError):
    """A real dataset is missing or malformed; the message names the path and the layout."""


def _inside(path: str, folder: str) -> bool:
    """Whether the absolute ``path`` is ``folder`` or below it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _link_error(name: str, link: str, real_top: str) -> DatasetError:
    """The error for a link found below a dataset's top folder: where it points, and the fix."""
    target = os.readlink(link)
    try:
        mode = os.stat(link).st_mode  # follows the link
    except OSError:
        what = f"a broken or looping link (to {target!r})"
    else:
        resolved = os.path.realpath(link)
        where = (
            "inside the same dataset"
            if _inside(resolved, real_top)
            else f"outside the dataset folder {real_top}"
        )
        kind = "folder" if stat.S_ISDIR(mode) else "file"
        dup = ", a duplicate" if kind == "file" and _inside(resolved, real_top) else ""
        what = f"a link to the {kind} {resolved} ({where}{dup}; the link says {target!r})"
    return DatasetError(
        f"{name}: {link} is {what}; clviz follows no link inside a dataset folder (a link can "
        f"loop, or put one image in both train and test): {LINK_FIX}"
    )


def _entries(name: str, folder: str) -> list[os.DirEntry]:
    """The entries of ``folder``, or a DatasetError naming it when it cannot be listed."""
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError as err:
        raise DatasetError(
            f"{name}: cannot list the folder {folder} ({type(err).__name__}: {err.strerror}); "
            "make it readable, or remove it"
        ) from None


def _walk(name: str, top: str, real_top: str) -> Iterator[tuple[bytes, os.stat_result | None]]:
    """(relative path, lstat) of every file and (relative path + ``/``, None) of every folder
    below ``top``, never following a link; a link or a special file is a DatasetError."""
    stack, cut, sep = [top], len(top) + 1, os.sep.encode()
    while stack:
        folder = stack.pop()
        for entry in _entries(name, folder):
            rel = os.fsencode(entry.path[cut:]).replace(sep, b"/")  # entry.path: top/.../name
            if entry.is_symlink():
                raise _link_error(name, entry.path, real_top)
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
                yield rel + b"/", None
            elif entry.is_file(follow_symlinks=False):
                yield rel, entry.stat(follow_symlinks=False)
            else:
                raise DatasetError(
                    f"{name}: {entry.path} is not a regular file or folder (a FIFO, socket or "
                    "device: reading it would block or fail); remove it from the dataset folder"
                )


def scan_dataset(folder: str | os.PathLike, name: str) -> str:
    """Check the dataset folder ``folder`` (``name`` for messages) and return its fingerprint.

    Refuses, with a one-line :class:`DatasetError`, any link below ``folder`` and any special
    file. The fingerprint is the hex sha256 of the sorted (relative path, size, mtime_ns) of
    every file (and the relative path of every folder), from ``stat`` alone.
    """
    top = os.path.abspath(folder)
    real_top = os.path.realpath(top)
    records = []
    for rel, st in _walk(name, top, real_top):
        extra = b"" if st is None else f"{st.st_size}\0{st.st_mtime_ns}".encode()
        records.append(rel + b"\0" + extra + b"\n")
    digest = hashlib.sha256()
    for record in sorted(records):
        digest.update(record)
    return digest.hexdigest()


def _real(path: str | os.PathLike, top: str, real_top: str) -> str:
    """The resolved form of ``path``. Below a scanned folder (no link there) the lexical form
    plus the top's real path is exact and costs no system call; elsewhere ``realpath``."""
    normal = os.path.normpath(os.path.abspath(path))
    if _inside(normal, top):
        return real_top + normal[len(top) :]
    return os.path.realpath(normal)


def check_unique(
    splits: Mapping[str, Sequence[str | os.PathLike]], folder: str | os.PathLike, name: str
) -> None:
    """Refuse an image listed twice in one split or in two splits (``splits``: split name to
    the image paths torchvision listed; ``folder``: the dataset's scanned top folder)."""
    top = os.path.abspath(folder)
    real_top = os.path.realpath(top)
    seen: dict[str, tuple[str, str]] = {}
    for split, paths in splits.items():
        for path in paths:
            key = _real(path, top, real_top)
            if key in seen:
                raise _duplicate_error(name, key, seen[key], (split, str(path)))
            seen[key] = (split, str(path))


def _duplicate_error(
    name: str, real: str, first: tuple[str, str], second: tuple[str, str]
) -> DatasetError:
    """The error for one image listed twice: which splits, as which paths, and the fix."""
    (split_a, path_a), (split_b, path_b) = first, second
    listed = f" (listed as {path_a} and {path_b})" if path_a != path_b else ""
    if split_a == split_b:
        where = f"is listed twice in the {split_a} split"
    else:
        where = f"is in both the {split_a} and the {split_b} split"
    return DatasetError(
        f"{name}: image {real} {where}{listed}; every image must count once, and a test image "
        "must never be trained on: remove the repeated entry from the dataset's split list, or "
        "the duplicate file"
    )
