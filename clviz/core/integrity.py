"""Sealed files: every checkpoint, cache and results file carries its own sha256, checked on read.

A flipped bit, a truncated write or a hand edit must never become a different number or a
pickle traceback: it is an :class:`IntegrityError` naming the file and the command that
rebuilds it. The checksum travels *inside* the file, so that one atomic replace
(:func:`~clviz.core.io.atomic_path`) publishes data and checksum together.

- Binary files (checkpoints, caches: anything ``torch.save`` writes) are ``MAGIC``, one line of
  JSON (the header: the payload's size, what the caller adds such as the run's identity, and
  the sha256 of header and payload), then ``torch.save``'s bytes.
- JSON files (``results.json``) get an ``"integrity"`` member: the sha256 of the rest of the
  document and of the member itself, plus what the caller adds (the run's identity).

A seal proves that the bytes are intact, and also *where they belong*: every sealed file
records its ``role`` (``checkpoint``, ``results``, ``features``, ``cache``...) and its ``key``
(the run's digest, the cache entry's name). A reader says which role and key it expects, and a
file copied or moved over another one is refused like a damaged file: an intact file in the
wrong place is as wrong as a flipped bit.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch

from clviz.core.io import atomic_path, json_safe, write_bytes_durably
from clviz.errors import ClvizError, InputError

MAGIC = b"CLVIZ-SEALED 1\n"
ZIP_MAGIC = b"PK\x03\x04"  # how every torch.save file begins
INTEGRITY = "integrity"
MAX_HEADER = 1 << 20  # a header line is small; a longer "line" is damage, not a header
FORCE_FIX = "rerun the same command with --force to rebuild it"


_FORCE: ContextVar[bool] = ContextVar("clviz_force", default=False)


@contextmanager
def forcing(on: bool = True) -> Iterator[None]:
    """Within the block, every damaged sealed file clviz meets is removed and rebuilt, as with
    ``--force`` (the command line wraps a whole command in it; caches deep inside, such as the
    world's drawn splits or a UMAP, then honour the flag too)."""
    token = _FORCE.set(on)
    try:
        yield
    finally:
        _FORCE.reset(token)


def request_force(on: bool) -> None:
    """Set ``--force`` for the rest of this thread: a worker process that trains on behalf of
    a command given ``--force`` (:mod:`clviz.experiments.workers`)."""
    _FORCE.set(on)


def force_requested() -> bool:
    """Whether the running command asked for ``--force`` (see :func:`forcing`)."""
    return _FORCE.get()


class ResultError(ClvizError, ValueError):
    """A results, checkpoint or cache file that cannot be read; the message names it and how to
    rebuild it (also importable from :mod:`clviz.core.result`)."""


class IntegrityError(ResultError):
    """A file whose content does not match its checksum, or that is not a sealed file at all;
    the message names the file and how to rebuild it."""


def damaged(path: str | os.PathLike, why: str, fix: str = FORCE_FIX) -> IntegrityError:
    """The error for a damaged ``path``: what is wrong with it, then what to do."""
    return IntegrityError(f"{path} is damaged: {why}; {fix}")


def canonical(data: Any) -> bytes:
    """The one byte string of a JSON value that checksums are taken over."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), default=str, allow_nan=False
    ).encode()


def _binding(role: str, key: str | None) -> dict[str, str]:
    if not role:
        raise InputError("a sealed file needs a role (what kind of file it is)")
    return {"role": role, "key": "" if key is None else str(key)}


def check_binding(
    path: Path, meta: Mapping[str, Any], role: str, key: str | None, fix: str
) -> None:
    """``meta`` (a seal) was written for ``role`` and, unless ``key`` is None, for ``key``;
    otherwise the file was copied or moved here: an :class:`IntegrityError` naming it."""
    if "role" not in meta:
        raise damaged(path, "it records no role and key (written by an older clviz)", fix)
    theirs = (meta.get("role"), meta.get("key"))
    if theirs[0] != role or (key is not None and theirs[1] != str(key)):
        raise damaged(
            path,
            f"it was written as the {theirs[0]} of {theirs[1]!r}, not as the {role} of "
            f"{key!r} (copied or moved here from another place)",
            fix,
        )


def _digest(meta: Mapping[str, Any], payload: bytes | memoryview) -> str:
    h = hashlib.sha256(canonical({k: v for k, v in meta.items() if k != "sha256"}))
    h.update(b"\n")
    h.update(payload)
    return h.hexdigest()


# ---------------------------------------------------------------------- binary (torch) files
def write_sealed(
    path: str | os.PathLike,
    obj: Any,
    *,
    role: str,
    key: str | None,
    meta: Mapping[str, Any] | None = None,
) -> None:
    """``torch.save(obj)`` to ``path``, atomically, behind a header holding ``role``, ``key``
    and ``meta`` (JSON) and the sha256 of all of it."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getbuffer()
    header = {**(meta or {}), **_binding(role, key), "bytes": len(payload)}
    header["sha256"] = _digest(header, payload)
    with atomic_path(path) as tmp:
        write_bytes_durably(tmp, MAGIC, canonical(header) + b"\n", payload)


def _split(path: Path, data: bytes, fix: str) -> tuple[dict[str, Any], memoryview]:
    if not data.startswith(MAGIC):
        why = "it is empty" if not data else "it is not a sealed clviz file (or an older clviz's)"
        raise damaged(path, why, fix)
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER)
    try:
        header = json.loads(data[len(MAGIC) : end]) if end > 0 else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or not isinstance(header.get("bytes"), int):
        raise damaged(path, "its header cannot be read", fix)
    return header, memoryview(data)[end + 1 :]


def unsealed_torch_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a plain ``torch.save`` zip (an older clviz's cache, before files
    were sealed), as opposed to a sealed file or something damaged."""
    with open(path, "rb") as f:
        return f.read(4) == ZIP_MAGIC


def read_header(path: str | os.PathLike, fix: str = FORCE_FIX) -> dict[str, Any]:
    """The header of a sealed file, read without its payload (not verified: see
    :func:`read_sealed`)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(len(MAGIC) + MAX_HEADER)
    return _split(path, head, fix)[0]


def read_sealed(
    path: str | os.PathLike,
    *,
    role: str,
    key: str | None,
    weights_only: bool = True,
    fix: str = FORCE_FIX,
) -> tuple[Any, dict[str, Any]]:
    """The object sealed in ``path`` and its header, after checking size, sha256, and that it
    was written as ``role`` of ``key`` (None: any key of that role); any mismatch, or a
    payload torch cannot read, is an :class:`IntegrityError` (``fix`` says what to do)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise damaged(path, f"it cannot be read ({err.strerror or err})", fix) from None
    header, payload = _split(path, data, fix)
    if len(payload) != header["bytes"]:
        why = f"it holds {len(payload)} bytes of data where {header['bytes']} were written"
        raise damaged(path, f"{why} (truncated or extended)", fix)
    if _digest(header, payload) != header.get("sha256"):
        raise damaged(path, "its sha256 does not match the one written with it", fix)
    check_binding(path, header, role, key, fix)
    try:
        obj = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=weights_only)
    except Exception as err:  # checksummed yet unreadable: written by an incompatible torch
        raise damaged(path, f"torch cannot read it ({type(err).__name__})", fix) from None
    return obj, header


# ---------------------------------------------------------------------- JSON files
def seal_json(
    data: Mapping[str, Any],
    *,
    role: str,
    key: str | None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``data`` with an ``"integrity"`` member: ``role``, ``key``, ``meta`` and the sha256 of
    everything. Non-finite numbers become null (strict JSON, :func:`~clviz.core.io.json_safe`)."""
    body = json_safe({k: v for k, v in data.items() if k != INTEGRITY})
    integrity = {**json_safe(dict(meta or {})), **_binding(role, key)}
    integrity["sha256"] = _digest(integrity, canonical(body))
    return {**body, INTEGRITY: integrity}


def write_sealed_json(
    path: str | os.PathLike,
    data: Mapping[str, Any],
    *,
    role: str,
    key: str | None,
    meta: Mapping[str, Any] | None = None,
) -> None:
    """Write ``data``, sealed as ``role`` of ``key`` with ``meta``, as indented strict JSON,
    atomically."""
    sealed = seal_json(data, role=role, key=key, meta=meta)
    text = json.dumps(sealed, indent=2, allow_nan=False) + "\n"
    with atomic_path(path) as tmp:
        write_bytes_durably(tmp, text.encode())


def _no_constant(name: str) -> None:
    raise InputError(f"{name} is not a JSON number (strict JSON has no NaN or Infinity)")


def read_sealed_json(
    path: str | os.PathLike, fix: str = FORCE_FIX, *, role: str, key: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the document without its seal, the seal) of a sealed JSON file, after checking its
    checksum and that it was written as ``role`` of ``key`` (None: any key)."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_no_constant)
    except OSError as err:
        raise damaged(path, f"it cannot be read ({err.strerror or err})", fix) from None
    except ValueError as err:  # UnicodeDecodeError and JSONDecodeError alike
        raise damaged(path, f"it is not valid JSON ({err})", fix) from None
    if not isinstance(data, dict) or not isinstance(data.get(INTEGRITY), dict):
        raise damaged(path, "it has no checksum (written by an older clviz, or by hand)", fix)
    integrity = data.pop(INTEGRITY)
    if _digest(integrity, canonical(data)) != integrity.get("sha256"):
        raise damaged(path, "its sha256 does not match its content (edited or corrupted)", fix)
    check_binding(path, integrity, role, key, fix)
    return data, integrity
