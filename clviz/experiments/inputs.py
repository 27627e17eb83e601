"""What a run reads, by content: the part of its identity that a path alone cannot give.

A run's folder, and whether a finished run is reused, are keyed by the digest of its identity.
The config names its inputs by path (``--pretrained /weights/ViT-B-16.bin``, ``--data-root``, a
backbone ``.json``, a ``generic_folder``); the identity adds what those paths hold *now*, so
replacing a weights file, editing a config in place or changing a dataset's images makes a new
run instead of bringing back the old matrix:

- the backbone: the config file's and the weights file's sha256 (cached by path, size and
  modification time, :func:`clviz.backbone.input_fingerprint`);
- a real stream: each dataset folder's listing (names, sizes, modification times of its files;
  :func:`clviz.data.mtil.stream_fingerprint`), never the image bytes;
- the embedded world: the version of the code and sources that draw it;
- a method option naming a folder or a file (``*_folder``, ``*_file``): that folder's listing,
  that file's size and modification time.

``docs/robustness.md`` says what this covers and what it does not.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from clviz.backbone import input_fingerprint
from clviz.core.config import RunConfig
from clviz.data.streams import is_real_stream


def path_fingerprint(path: str | os.PathLike) -> str:
    """A file's size and modification time, or a folder's listing of both (no bytes read)."""
    path = Path(path).expanduser()
    h = hashlib.sha256()
    if path.is_file():
        stat = path.stat()
        h.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
        return h.hexdigest()[:16]
    for folder, dirs, files in sorted(os.walk(path)):  # followlinks=False: no loop can start
        dirs.sort()
        for name in sorted(files):
            file = Path(folder) / name
            stat = file.lstat()
            h.update(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def data_fingerprint(stream: str, data_root: str | None, seed: int) -> dict[str, str]:
    """The content of a stream's data: each real dataset's listing, or the embedded world's
    version."""
    if is_real_stream(stream):
        from clviz.data.mtil import resolve_data_root, stream_fingerprint

        return stream_fingerprint(stream, resolve_data_root(data_root))
    from clviz.world.tasks import world_version

    return {"world": world_version()}


def option_fingerprints(options: dict[str, Any]) -> dict[str, str]:
    """The folders and files that a method's options name, by content."""
    return {
        name: path_fingerprint(value)
        for name, value in sorted(options.items())
        if isinstance(value, str) and name.endswith(("_folder", "_file"))
    }


def input_identity(config: RunConfig, stream: str | None = None) -> dict[str, Any]:
    """Everything ``config``'s run reads, by content (``stream``: the data it reads, when not
    ``config.stream``: a class-incremental run on CIFAR-100)."""
    inputs: dict[str, Any] = {
        "backbone": input_fingerprint(config.backbone, config.pretrained),
        "data": data_fingerprint(stream or config.stream, config.data_root, config.seed),
    }
    options = option_fingerprints(config.options)
    if options:
        inputs["options"] = options
    return inputs


def describe_inputs(inputs: dict[str, Any]) -> str:
    """One line for people: each input and the start of its fingerprint."""

    def walk(data: Any, prefix: str) -> list[str]:
        if isinstance(data, dict):
            return [part for k, v in data.items() for part in walk(v, f"{prefix}{k} ")]
        return [f"{prefix.strip()} {str(data)[:12]}"]

    return "inputs: " + ", ".join(walk(inputs, ""))


def run_identity(config: RunConfig) -> dict[str, Any]:
    """A run's identity: its whole config and the content of what it reads."""
    return {**config.as_dict(), "inputs": input_identity(config)}
