"""One run store for every experiment: a folder per run, named and guarded by what determines it.

A run's folder holds ``results.json`` (a :class:`~clviz.core.result.RunResult`) once it is
finished, ``checkpoint.pt`` after every task so an interrupted run resumes where it stopped,
and whatever artefacts observers add (``features.pt``). The store is keyed by the digest of the
run's *identity* (its config, plus what the experiment adds): a finished run is reused, and a
folder that holds another identity's results is never overwritten unless asked (``force``).

Nothing is lost and nothing is silently wrong:

- a run that is going to write takes the folder's lock first (:mod:`clviz.core.lock`) and holds
  it until its result is written, so a second process on the folder fails at once, and the
  final write checks again that the folder holds nothing of another run;
- results, checkpoints and caches are sealed (:mod:`clviz.core.integrity`): written atomically
  with their sha256 and the run's identity inside, and checked on every read. A damaged file
  is an error naming it and the command that rebuilds it; with ``force`` it is removed and
  rebuilt;
- temporary files that killed clviz writes left behind are swept up when the lock is taken
  (only clviz's own, and only those whose writing process is gone: :mod:`clviz.core.io`).

``force`` (``--force``, or :func:`~clviz.core.integrity.forcing` around a whole command)
removes and rebuilds a damaged file; for a finished run whose checkpoint or probe features are
damaged that means training the run again (deterministic: the same matrix comes out).

Content-addressed caches (the untouched backbone's evaluation, the UMAP of a set of runs) go
through :func:`memo`, under the same root.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from clviz.core.config import digest_of
from clviz.core.integrity import (
    FORCE_FIX,
    IntegrityError,
    force_requested,
    read_header,
    read_sealed,
    read_sealed_json,
    seal_json,
    unsealed_torch_file,
    write_sealed,
)
from clviz.core.io import atomic_path, remove_stale_temps, strict_json, write_bytes_durably
from clviz.core.lock import FolderLock, check_folder_setting
from clviz.core.result import ResultError, RunResult
from clviz.errors import ClvizError

RESULTS = "results.json"
CHECKPOINT = "checkpoint.pt"
RESULTS_ENV = "CLVIZ_RESULTS"
FEATURES = "features.pt"  # the probe's features (clviz.analysis.drift), a finished run's artefact

T = TypeVar("T")

_LAST: list[RunStore] = []  # the store that last took its lock and has not finished: for Ctrl-C


class RunDirError(ClvizError, RuntimeError):
    """A folder holds another run's results or checkpoint; the message says what to do."""


def results_root() -> Path:
    """Where runs live: ``$CLVIZ_RESULTS``, else ``results/runs`` of this checkout (so the
    notebooks, the CLI and the main job share one store), else ``./results/runs``."""
    if os.environ.get(RESULTS_ENV) is not None:
        check_folder_setting(os.environ[RESULTS_ENV], f"${RESULTS_ENV}")
        return Path(os.environ[RESULTS_ENV])
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():
        return repo / "results" / "runs"
    return Path("results") / "runs"


def _writes() -> bool:
    """Whether this process takes run folders' locks and writes them: always, except the
    non-zero ranks of a real torchrun launch (rank 0 holds the lock for all; a ``RANK`` left in
    the environment of a single process changes nothing)."""
    from clviz.core.distributed import launch

    return launch().rank == 0


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def differences(here: Mapping[str, Any], there: Mapping[str, Any]) -> list[str]:
    """The settings in which two identities differ, as ``name: <there> there, <here> here``."""
    a, b = _flatten(json.loads(strict_json(here, default=str))), _flatten(there)
    return [
        f"{key}: {strict_json(b.get(key))} there, {strict_json(a.get(key))} here"
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]


class RunStore:
    """The folder of one run, guarded by the digest of ``identity`` (a JSON-able mapping).

    Its finished result is a :class:`RunResult` unless ``result_type`` names another class
    with the same surface (``config_hash``, ``save(path)``, ``load(path)``, ``run_dir``), as
    the ATLAS protocol's result, which gathers several runs.

    A store takes the folder's lock when it finds nothing finished (:meth:`finished`: the
    caller is about to train) or first writes, and gives it back when the result is saved
    (:meth:`save`) or on :meth:`release`; ``with store:`` releases it however the block ends.
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
        self.force = force or force_requested()
        self.result_type = result_type
        self.lock = FolderLock(self.folder)

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

    # ------------------------------------------------------------------ the lock
    def acquire(self) -> None:
        """Take the folder's lock (fails at once if another run holds it) and sweep up the
        temporary files of writes that were killed."""
        if not _writes() or self.lock.held:
            return
        self.lock.acquire()
        remove_stale_temps(self.folder)
        _LAST[:] = [self]

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _remove_damaged(self, path: Path) -> None:
        """``force``: a damaged file goes (under the lock), and is rebuilt by this run."""
        self.acquire()
        path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ finished results
    def _clash(self, theirs: Any, their_digest: Any, lead: str | None = None) -> RunDirError:
        """The error for a folder holding another run's files, with the settings that differ."""
        changed = differences(self.identity, theirs) if isinstance(theirs, Mapping) else []
        shown = "; ".join(changed[:8]) + (f"; {len(changed) - 8} more" if len(changed) > 8 else "")
        detail = shown or f"identity {their_digest}, this run's {self.digest}"
        lead = lead or f"{self.folder} already holds the results of another run"
        return RunDirError(
            f"{lead} ({detail}). Choose another --out folder, or pass --force to replace it."
        )

    def _sealed_results(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(document, seal) of ``results.json``, or None if there is none (or, with
        ``force``, a damaged one, now removed)."""
        path = self.path(RESULTS)
        if not path.is_file():
            return None
        try:
            return read_sealed_json(path, role="results", key=None)
        except IntegrityError:
            if self.force:
                self._remove_damaged(path)
                return None
            raise

    def _read_finished(self) -> Any:
        sealed = self._sealed_results()
        if sealed is None:
            return None
        data, seal = sealed
        their_digest = data.get("config_hash")
        if their_digest != self.digest:
            if self.force:
                return None  # replaced when this run finishes
            theirs = seal.get("identity", data.get("config"))
            raise self._clash(theirs, their_digest)
        try:
            result = self.result_type.load(self.path(RESULTS))
        except (ResultError, IntegrityError):
            if self.force:
                self._remove_damaged(self.path(RESULTS))
                return None
            raise
        result.run_dir = self.folder
        artefact = self._damaged_artefact() if self.force else None
        if artefact is not None:  # rebuilt by training the run again (the same matrix)
            self._remove_damaged(artefact)
            self._remove_damaged(self.path(RESULTS))
            return None
        return result

    def _damaged_artefact(self) -> Path | None:
        """The first of a finished run's checkpoint and probe features that fails its seal."""
        for name, role in ((CHECKPOINT, "checkpoint"), (FEATURES, "features")):
            path = self.path(name)
            if not path.is_file():
                continue
            try:
                read_sealed(path, role=role, key=None, weights_only=False)
            except IntegrityError:
                return path
        return None

    def check_partial(self) -> None:
        """A partial run's checkpoint in this folder belongs to this identity (read from its
        header, before any work); another's is the clash error, unless ``force``."""
        path = self.path(CHECKPOINT)
        if self.force or not path.is_file():
            return
        try:
            header = read_header(path)
        except (OSError, IntegrityError):
            return  # a damaged checkpoint is named when it is read
        if header.get("identity") not in (None, self.digest):
            lead = f"{path} belongs to another run"
            raise self._clash(header.get("settings"), header.get("identity"), lead)

    def finished(self) -> Any:
        """This identity's finished result, or None: then the caller will train, and the store
        holds the folder's lock from here. Another identity's result is an error (or, with
        ``force``, ignored: it is replaced when this run finishes); so is a damaged file (or,
        with ``force``, removed)."""
        result = self._read_finished()
        if result is not None:
            result.reused = True
            return result
        self.check_partial()
        self.acquire()
        result = self._read_finished()  # another process may have finished it meanwhile
        if result is not None:
            result.reused = True
            self.release()
        return result

    def save(self, result: T) -> T:
        """Write ``result`` (stamped and sealed with this identity) atomically, after checking
        again that the folder holds no other run's results; then give the lock back."""
        self.acquire()
        path = self.path(RESULTS)
        if not self.force:
            sealed = self._sealed_results()
            if sealed is not None and sealed[0].get("config_hash") != self.digest:
                data, seal = sealed
                theirs = seal.get("identity", data.get("config"))
                raise self._clash(theirs, data.get("config_hash"))
        result.config_hash = self.digest
        with atomic_path(path) as tmp:
            result.save(tmp)  # the result's own JSON, sealed here with the identity
            data = json.loads(tmp.read_text())
            meta = {"identity": self.identity, "digest": self.digest}
            sealed = seal_json(data, role="results", key=self.digest, meta=meta)
            write_bytes_durably(tmp, (strict_json(sealed, indent=2) + "\n").encode())
        result.run_dir = self.folder
        if self in _LAST:
            _LAST.clear()
        self.release()
        return result

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict[str, Any] | None:
        """The state saved after the last finished task of this identity, or None. A damaged
        checkpoint is an error (``force``: removed, and the run starts afresh)."""
        path = self.path(CHECKPOINT)
        if not path.is_file():
            return None
        try:
            saved, header = read_sealed(path, role="checkpoint", key=None, weights_only=False)
        except IntegrityError:
            if self.force:
                self._remove_damaged(path)
                return None
            raise
        if header.get("identity") == self.digest and saved.get("identity") == self.digest:
            return saved
        if self.force:
            return None
        lead = f"{path} belongs to another run"
        raise self._clash(header.get("settings"), header.get("identity"), lead)

    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        """Seal ``state`` (with this identity and the number of finished tasks) into
        ``checkpoint.pt``, atomically."""
        self.acquire()
        meta = {
            "identity": self.digest,
            "settings": self.identity,
            "tasks_done": len(state.get("rows", ())),
        }
        state = {**state, "identity": self.digest}
        write_sealed(self.path(CHECKPOINT), state, role="checkpoint", key=self.digest, meta=meta)

    def tasks_done(self) -> int:
        """How many tasks the checkpoint on disk holds (0 without a readable one)."""
        try:
            return int(read_header(self.path(CHECKPOINT)).get("tasks_done", 0))
        except (OSError, IntegrityError, ValueError, TypeError):
            return 0


def resume_hint() -> str:
    """What to tell someone who interrupted a run: the task a rerun resumes from."""
    if not _LAST:
        return "rerun the same command to start again"
    store = _LAST[0]
    return (
        f"rerun the same command to resume from task {store.tasks_done() + 1} "
        f"(run folder {store.folder})"
    )


def cache_key(path: Path) -> str:
    """What a cache file is the entry of: its folder and name (which hold the content key)."""
    return f"{path.parent.name}/{path.name}"


def memo(
    path: str | Path, compute: Callable[[], T], *, force: bool = False, fix: str | None = None
) -> T:
    """``compute()``, sealed at ``path`` (atomically) and loaded from there next time, after
    its checksum and its key (the file's folder and name, :func:`cache_key`) are checked.
    ``path`` must name the inputs (a content hash), so an entry copied over another's name is
    refused. A damaged or misplaced file is an error saying ``fix`` (by default: rerun with
    --force, or delete the file); with ``force`` (or under
    :func:`~clviz.core.integrity.forcing`) it is rebuilt. An older clviz's cache file, unsealed
    or sealed without its key, is rebuilt and sealed (it cannot be checked)."""
    path = Path(path)
    remove_stale_temps(path.parent)
    if path.is_file() and not _older_cache(path):
        try:
            fix = fix or f"{FORCE_FIX}, or delete the file"
            return read_sealed(path, role="cache", key=cache_key(path), fix=fix)[0]
        except IntegrityError:
            if not (force or force_requested()):
                raise
            path.unlink(missing_ok=True)
    value = compute()
    write_sealed(path, value, role="cache", key=cache_key(path))
    return value


def _older_cache(path: Path) -> bool:
    """An older clviz's cache file: a plain ``torch.save`` zip, or sealed without a role."""
    if unsealed_torch_file(path):
        return True
    try:
        return "role" not in read_header(path)
    except (OSError, IntegrityError):
        return False  # damaged: named when read


def weights_digest(model: nn.Module) -> str:
    """A hash of every tensor of ``model``'s state (names, shapes and values): the key of what
    is cached about a backbone, so a rebuilt weights file gets fresh entries."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
