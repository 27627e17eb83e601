"""Feature hooks: capture or edit the activations of named modules, as a context manager.

Modelled on baukit's ``TraceDict``::

    with Trace(model, clip_block_names(model)["image"]) as trace:
        model.encode_image(x)
    trace["visual.transformer.resblocks.3"]      # the block's output, detached

Layers can be given by name, as a list of names, or as a filter ``(name, module) -> bool``.
``edit_output(name, output)`` may return a replacement output (ablations, patching).
``stop=True`` ends the forward pass once the last traced layer has run (cheap feature
extraction from early layers). The hooks are removed on exit, also after an exception.
:func:`trace_batches` does it batch by batch over a large input.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from clviz.errors import InputError, UnknownNameError

LayerSpec = str | Iterable[str] | Callable[[str, nn.Module], bool]
EditFn = Callable[[str, Any], Any]


class StopForward(Exception):
    """Raised inside a traced forward pass to end it early (``Trace(stop=True)``)."""


def hookable_modules(model: nn.Module, pattern: str | None = None) -> list[str]:
    """Names of every sub-module of ``model`` (optionally matching a glob ``pattern``)."""
    names = [n for n, _ in model.named_modules() if n]
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names


def clip_block_names(model: nn.Module) -> dict[str, list[str]]:
    """The residual blocks of an open_clip CLIP's two towers, in order: {'image', 'text'}."""
    from open_clip.transformer import ResidualAttentionBlock

    blocks: dict[str, list[str]] = {"image": [], "text": []}
    for name, module in model.named_modules():
        if isinstance(module, ResidualAttentionBlock):
            blocks["image" if name.startswith("visual.") else "text"].append(name)
    return blocks


def resolve_layers(model: nn.Module, layers: LayerSpec) -> list[str]:
    """Module names selected by ``layers``; unknown names raise with close matches listed."""
    modules = dict(model.named_modules())
    if callable(layers):
        return [n for n, m in modules.items() if n and layers(n, m)]
    names = [layers] if isinstance(layers, str) else list(layers)
    for name in names:
        if name not in modules:
            stem = name.rsplit(".", 1)[0]
            close = [n for n in modules if n.startswith(stem)][:8] or hookable_modules(model)[:8]
            raise UnknownNameError(
                f"no module named {name!r} in {type(model).__name__}; "
                f"some valid names: {', '.join(close)} (see clviz.hooks.hookable_modules)"
            )
    return names


def _detach(value: Any, clone: bool) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach()
        return value.clone() if clone else value
    if isinstance(value, tuple | list):
        return type(value)(_detach(v, clone) for v in value)
    return value


class Trace:
    """Record the outputs (and optionally inputs) of the chosen modules during a forward pass.

    Args:
        model: any ``nn.Module``.
        layers: a module name, a list of names, or a filter ``(name, module) -> bool``.
        retain_input: also keep each module's first positional input.
        detach: store detached tensors (default) or keep the graph for gradients.
        clone: store copies, safe against later in-place edits.
        edit_output: ``f(name, output) -> new output or None`` applied before recording.
        stop: end the forward pass after the last listed layer has run.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: LayerSpec,
        *,
        retain_input: bool = False,
        detach: bool = True,
        clone: bool = False,
        edit_output: EditFn | None = None,
        stop: bool = False,
    ) -> None:
        self.model = model
        self.layers = resolve_layers(model, layers)
        if not self.layers:
            raise InputError(
                "the layer filter selected no module; see clviz.hooks.hookable_modules"
            )
        self.retain_input, self.detach, self.clone = retain_input, detach, clone
        self.edit_output, self.stop = edit_output, stop
        self.outputs: dict[str, Any] = {}
        self.inputs: dict[str, Any] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: Any) -> Any:
            if self.edit_output is not None:
                edited = self.edit_output(name, output)
                output = output if edited is None else edited
            keep = (lambda v: _detach(v, self.clone)) if self.detach else (lambda v: v)
            self.outputs[name] = keep(output)
            if self.retain_input and args:
                self.inputs[name] = keep(args[0])
            if self.stop and len(self.outputs) == len(self.layers):
                raise StopForward
            return output

        return hook

    def __enter__(self) -> Trace:
        modules = dict(self.model.named_modules())
        self._handles = [modules[n].register_forward_hook(self._hook(n)) for n in self.layers]
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return exc_type is StopForward

    def close(self) -> None:
        """Remove every hook (also done on exit)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __getitem__(self, name: str) -> Any:
        if name not in self.outputs:
            raise UnknownNameError(
                f"{name!r} was not captured; traced layers: {', '.join(self.layers)}"
            )
        return self.outputs[name]

    def __contains__(self, name: str) -> bool:
        return name in self.outputs

    def __iter__(self):
        return iter(self.outputs)

    def __len__(self) -> int:
        return len(self.outputs)


def trace_batches(
    model: nn.Module,
    layers: LayerSpec,
    inputs: Sequence,
    forward: Callable[[Any], Any],
    batch_size: int = 256,
    stop: bool = False,
) -> Iterator[tuple[Any, Trace]]:
    """Run ``forward`` on ``inputs`` ``batch_size`` at a time with ``layers`` traced; yields
    ``(forward's output, the trace)`` per batch (the output is None when ``stop`` ended the
    pass early). Keeps one batch's activations in memory at a time."""
    for i in range(0, len(inputs), batch_size):
        out = None
        with Trace(model, layers, stop=stop) as trace:
            out = forward(inputs[i : i + batch_size])
        yield out, trace
