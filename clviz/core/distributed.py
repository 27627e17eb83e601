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
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

T = TypeVar("T")


def launched() -> bool:
    """True inside a ``torchrun`` launch with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device | None = None) -> None:
    """Join the process group torchrun set up: nccl when this process computes on a GPU (its
    ``LOCAL_RANK``-th), gloo on the CPU; idempotent."""
    if launched() and not dist.is_initialized():
        on_gpu = device is not None and device.type == "cuda"
        if on_gpu:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if on_gpu else "gloo")


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
        raise ValueError(
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
