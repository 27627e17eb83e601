"""Zero-shot: the untouched backbone, the reference every other method is measured against."""

from __future__ import annotations

from collections.abc import Iterator

from clviz.core.method import ClassIncrementalSetting, Method, Stage, TaskState
from clviz.methods.registry import register_method


@register_method
class ZeroShot(Method):
    name = "zero-shot"
    listing_order = 0
    class_incremental = ClassIncrementalSetting()
    relative_cost = 0.1
    summary = "the pretrained backbone, never trained"

    def stages(self, state: TaskState) -> Iterator[Stage]:
        return iter(())

    def count_parameters(self) -> tuple[int, int]:
        return 0, sum(p.numel() for p in self.model.parameters())
