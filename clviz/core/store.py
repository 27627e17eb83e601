"""One run store for every experiment: a folder per run, named and guarded by what determines it.

A run's folder holds ``results.json`` (a :class:`~clviz.core.result.RunResult`) once it is
finished, ``checkpoint.pt`` after every task so an interrupted run resumes where it stopped,
and whatever artefacts observers add (``features.pt``). The store is keyed by the digest of the
run's *identity* (its config, plus what the experiment adds): a finished run is reused, and a
folder that holds another identity's results is never overwritten unless asked (``force``).
Every write is atomic. Content-addressed caches (the untouched backbone's evaluation, the UMAP
of a set of runs) go through :func:`memo`, under the same root.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from clviz.core.config import digest_of
from clviz.core.io import atomic_path
from clviz.core.result import ResultError, RunResult

RESULTS = "results.json"
CHECKPOINT = "checkpoint.pt"
RESULTS_ENV = "CLVIZ_RESULTS"

T = TypeVar("T")


class RunDirError(RuntimeError):
    """A folder holds another run's results or checkpoint; the message says what to do."""


def results_root() -> Path:
    """Where runs live: ``$CLVIZ_RESULTS``, else ``results/runs`` of this checkout (so the
    notebooks, the CLI and the main job share one store), else ``./results/runs``."""
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():
        return repo / "results" / "runs"
    return Path("results") / "runs"


class RunStore:
    """The folder of one run, guarded by the digest of ``identity`` (a JSON-able mapping).

    Its finished result is a :class:`RunResult` unless ``result_type`` names another class
    with the same surface (``config_hash``, ``save(path)``, ``load(path)``, ``run_dir``), as
    the ATLAS protocol's result, which gathers several runs.
    """

    def __init__(
        self,
        folder: str | Path,
        identity: Mapping[str, Any],
        *,
        force: bool = False,
        result_type: type = RunResult,
    ):
        self.folder = Path(folder)
        self.identity = dict(identity)
        self.digest = digest_of(self.identity)
        self.force = force
        self.result_type = result_type

    @classmethod
    def named(
        cls,
        name: str,
        identity: Mapping[str, Any],
        *,
        group: str = "",
        root: str | Path | None = None,
        force: bool = False,
        result_type: type = RunResult,
    ) -> RunStore:
        """The default folder: ``<root>/<group>/<name>_<digest>``, readable and unique to the
        identity, so runs of different settings never share a folder."""
        base = Path(root) if root is not None else results_root()
        digest = digest_of(dict(identity))
        folder = base / group / f"{name}_{digest[:8]}"
        return cls(folder, identity, force=force, result_type=result_type)

    def path(self, name: str) -> Path:
        return self.folder / name

    def describe(self) -> str:
        return f"{self.folder} (identity {self.digest})"

    # ------------------------------------------------------------------ finished results
    def finished(self) -> Any:
        """This identity's finished result, or None; another identity's result is an error
        (or, with ``force``, ignored: it is replaced when this run finishes)."""
        path = self.path(RESULTS)
        if not path.is_file():
            return None
        try:
            result = self.result_type.load(path)
        except ResultError:
            if self.force:  # damaged: rebuilt, and replaced when this run finishes
                return None
            raise
        if result.config_hash == self.digest:
            return result
        if self.force:
            return None
        raise RunDirError(
            f"{self.folder} already holds the results of another run (identity "
            f"{result.config_hash}: {getattr(result, 'method', '')} "
            f"{getattr(result, 'stream', '')}); this run's identity is {self.digest}. Choose "
            "another --out folder, or pass --force to replace them."
        )

    def save(self, result: T) -> T:
        """Write ``result`` (stamped with this identity) atomically; returns it with its folder."""
        result.config_hash = self.digest
        result.save(self.path(RESULTS))
        result.run_dir = self.folder
        return result

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict[str, Any] | None:
        """The state saved after the last finished task of this identity, or None."""
        path = self.path(CHECKPOINT)
        if not path.is_file():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # a truncated or foreign file: say which, and what to do
            if self.force:
                return None
            raise ResultError(
                f"cannot read the checkpoint {path} ({type(err).__name__}); delete it, or rerun "
                "the same command with --force to start the run afresh"
            ) from None
        if saved.get("identity") == self.digest:
            return saved
        if self.force:
            return None
        raise RunDirError(
            f"{path} belongs to another run (identity {saved.get('identity')}, this one "
            f"{self.digest}); choose another --out folder, or pass --force to replace it"
        )

    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        with atomic_path(self.path(CHECKPOINT)) as tmp:
            torch.save({**state, "identity": self.digest}, tmp)


def memo(path: str | Path, compute: Callable[[], T]) -> T:
    """``compute()``, saved at ``path`` (``torch.save``, atomically) and loaded from there next
    time. ``path`` must name the inputs (a content hash): the file is trusted as it is."""
    path = Path(path)
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    value = compute()
    with atomic_path(path) as tmp:
        torch.save(value, tmp)
    return value


def weights_digest(model: nn.Module) -> str:
    """A hash of every tensor of ``model``'s state (names, shapes and values): the key of what
    is cached about a backbone, so a rebuilt weights file gets fresh entries."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
