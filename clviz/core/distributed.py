"""Data-parallel training with torch.distributed (DDP), launched by ``torchrun``.

    torchrun --nproc_per_node 2 -m clviz run --method finetune          # CPU: gloo
    torchrun --nproc_per_node 8 -m clviz run --profile mtil --method zscl  # GPUs: nccl

Every process builds the same world, model and method from the same seed and draws the same
batch indices; each trains on its own slice of every batch (``shard``), and
``DistributedDataParallel`` averages the gradients, so one step sees the whole batch as in a
single process. Evaluation is sharded too: each process scores every ``world``-th test batch
and the counts are summed (:func:`shard_batches`); only rank 0 writes files. Each process runs
on its own GPU (``LOCAL_RANK``), with nccl between GPUs and gloo between CPU processes.
Methods keep their trainable state inside ``method.model`` (what DDP synchronises);
per-process statistics that decide something (MoE selection counts) are summed with
:func:`all_reduce_sum`. Random draws *inside* a loss (MoE routers' noise) are per process,
so such methods train equally well but not bit-for-bit like a single process.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from clviz.errors import InputError

T = TypeVar("T")


class LaunchError(InputError):
    """torchrun's environment variables are set but make no launch; the message names them."""


@dataclass(frozen=True)
class Launch:
    """This process's place in a launch: ``world`` processes, this one ``rank`` (its GPU is the
    ``local_rank``-th). A single process is ``Launch(1, 0, 0)``."""

    world: int
    rank: int
    local_rank: int


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise LaunchError(
            f"${name} must be a whole number >= 0, got {text!r}; unset it, or start the "
            "command with torchrun, which sets it"
        )
    return value


def launch() -> Launch:
    """The launch that torchrun's ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` describe, checked:
    whole numbers, ``RANK < WORLD_SIZE``. Without ``WORLD_SIZE`` > 1 this is a single process,
    whatever ``RANK`` a shell left behind (it takes its run folder's lock and writes)."""
    world = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world < 1:
        raise LaunchError(f"$WORLD_SIZE must be at least 1, got {world}; unset it, or use torchrun")
    if world == 1:
        return Launch(1, 0, 0)
    if rank >= world:
        raise LaunchError(
            f"$RANK ({rank}) must be below $WORLD_SIZE ({world}); start the command with "
            "torchrun, which sets both"
        )
    return Launch(world, rank, local_rank)


def launched() -> bool:
    """True inside a ``torchrun`` launch with more than one process."""
    return launch().world > 1


def init(device: torch.device | None = None) -> None:
    """Join the process group torchrun set up: nccl when this process computes on a GPU (its
    ``LOCAL_RANK``-th), gloo on the CPU; idempotent."""
    if launched() and not dist.is_initialized():
        on_gpu = device is not None and device.type == "cuda"
        if on_gpu:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if on_gpu else "gloo")


def decided_by_main(decide: Callable[[], T]) -> T:
    """``decide()`` on rank 0 alone, its outcome (a value, or the error it raised) shared with
    every process, which wait for it; a plain call in a single process. Rank 0 takes a run
    folder's lock this way while the others wait on it."""
    if not active():
        return decide()
    box: list[object] = [None]
    if rank() == 0:
        try:
            box[0] = ("value", decide())
        except Exception as err:
            box[0] = ("error", err)
    dist.broadcast_object_list(box, src=0)
    kind, outcome = box[0]  # type: ignore[misc]
    if kind == "error":
        raise outcome  # type: ignore[misc]
    return outcome  # type: ignore[return-value]


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """Whether this process writes files and prints progress."""
    return rank() == 0


def shard(idx: torch.Tensor) -> torch.Tensor:
    """This process's contiguous slice of a batch of indices (equal sizes when divisible)."""
    if not active():
        return idx
    world = dist.get_world_size()
    if len(idx) % world:
        raise InputError(
            f"batch size {len(idx)} is not divisible by {world} processes; choose a batch size "
            "that is, so that every process's gradient has the same weight"
        )
    per = len(idx) // world
    return idx[rank() * per : (rank() + 1) * per]


def shard_batches(batches: Iterable[T]) -> Iterator[T]:
    """This process's share of a sequence of batches: every ``world``-th one from its rank
    (all of them in a single process). Evaluation splits the test set this way."""
    if not active():
        yield from batches
        return
    yield from itertools.islice(batches, rank(), None, dist.get_world_size())


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over processes in place (a no-op in a single process)."""
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


class _Objective(nn.Module):
    """Wraps a model so that DDP sees a forward pass: ``forward(fn)`` returns ``fn()``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        return fn()


def data_parallel(model: nn.Module) -> Callable[[Callable[[], torch.Tensor]], torch.Tensor]:
    """``run(loss_fn)``: computes the loss so that backward averages gradients over processes
    (plain ``loss_fn()`` in a single process). Build one per optimisation stage: which
    parameters train may change between tasks."""
    if not active():
        return lambda fn: fn()
    wrapped = DistributedDataParallel(
        _Objective(model), broadcast_buffers=False, find_unused_parameters=True
    )
    return wrapped
