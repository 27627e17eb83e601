"""Zero-shot: the untouched backbone, the reference every other method is measured against."""

from __future__ import annotations

from torch import nn

from clviz.methods.base import Method, register_method


@register_method
class ZeroShot(Method):
    name = "zero-shot"
    summary = "the pretrained backbone, never trained"

    def trainable_parameters(self) -> list[nn.Parameter]:
        return []
