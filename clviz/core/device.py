"""Where a run computes: CUDA, Apple MPS or the CPU, and the GPU habits that go with it.

``--device`` on the command line and ``$CLVIZ_DEVICE`` in notebooks name the device: ``auto``
(the default: CUDA, then Apple MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``. Asking
for a device this machine does not have is an error that lists the ones it has; nothing falls
back silently. Under ``torchrun`` on GPUs each process takes the GPU of its ``LOCAL_RANK``.

On CUDA the loop trains and evaluates under bf16 autocast (fp32 master weights; autocast
keeps softmax, log-softmax and cross-entropy in fp32) with TF32 matmuls allowed. On the CPU
nothing changes: fp32 throughout, results bit for bit as before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import TypeVar

import torch

from clviz.core.distributed import launch
from clviz.errors import InputError, OutOfMemory

ENV_VAR = "CLVIZ_DEVICE"
C = TypeVar("C")


class DeviceError(InputError):
    """The requested device does not exist here; the message lists the ones that do."""


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def available_devices() -> list[str]:
    """The devices this machine can compute on, e.g. ``['cuda:0', 'cuda:1', 'cpu']``."""
    found = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        found.append("mps")
    return [*found, "cpu"]


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """The device named by ``spec`` (None: ``$CLVIZ_DEVICE``, else ``auto``), checked to exist.

    ``auto`` picks CUDA (the ``LOCAL_RANK``-th GPU under torchrun), then MPS, then the CPU.
    """
    if spec is None:
        spec = os.environ.get(ENV_VAR) or "auto"
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = spec.strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", launch().local_rank)
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError as err:
        raise DeviceError(
            f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps "
            f"(this machine has: {', '.join(available_devices())})"
        ) from err
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count()
        index = device.index if device.index is not None else launch().local_rank
        if index < count:
            return torch.device("cuda", index)
    elif device.type == "mps" and _mps_available():
        return device
    raise DeviceError(
        f"device {spec!r} is not available on this machine; it has: "
        f"{', '.join(available_devices())}. Pass --device auto (or set {ENV_VAR}=auto) to use "
        "the best one there is."
    )


def place(config: C) -> tuple[C, torch.device]:
    """``config`` (a dataclass with a ``device`` field) with that device resolved to its type,
    and the device itself, set up for training. The type is part of a run's identity: a GPU's
    bf16 numbers are not the CPU's."""
    device = resolve_device(config.device)
    configure(device)
    return dataclasses.replace(config, device=device.type), device


def device_name(device: torch.device) -> str:
    """A readable name for results files: ``'cpu'``, ``'mps'``, ``'cuda (NVIDIA H100 ...)'``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def configure(device: torch.device) -> None:
    """GPU habits for ``device``: TF32 matmuls and cuDNN convolutions on CUDA (no-op elsewhere)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.cuda.set_device(device)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, nothing elsewhere (CPU results stay exactly fp32)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer); the CPU for an empty module."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def out_of_memory_hint(batch_size: int, option: str = "--batch-size") -> Iterator[None]:
    """Turn a GPU out-of-memory error into one that names the batch size and how to lower it."""
    try:
        yield
    except torch.OutOfMemoryError as err:
        raise OutOfMemory(
            f"out of GPU memory at batch size {batch_size}: lower it with {option} (or use a "
            "smaller backbone or image size; a new batch size starts a new run). The last "
            "finished task's checkpoint is intact: the same command resumes from it once the "
            f"memory is free. Original error: {err}"
        ) from err
