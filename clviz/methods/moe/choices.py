"""Which experts the routers pick for given images or prompts, at evaluation (no routing noise).

A router reads token 0 of what enters its block's MLP (after the block's attention). In the
image tower that is the class token, which has attended to every patch, so different images can
get different experts. In the text tower it is
the start-of-text token, and the causal mask lets it see only itself: every prompt reaches the
router with the same vector, so a task's text router makes one fixed choice per layer, whatever
the class name (the reference routes the same way).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from clviz.core.clip import encode_images, encode_texts
from clviz.errors import InputError
from clviz.hooks import Trace
from clviz.methods.moe.method import MoEAdaptersTaskId
from clviz.methods.sites import use_task


@torch.no_grad()
def router_choices(
    method: MoEAdaptersTaskId,
    router: int,
    *,
    images: torch.Tensor | None = None,
    prompts: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """The experts each layer of one tower picks for each input, with task ``router``'s routers:
    layer name -> N x k expert indices (sorted per row). Give ``images`` (the image tower) or
    ``prompts`` (the text tower)."""
    if (images is None) == (prompts is None):
        raise InputError("give images or prompts (one tower at a time)")
    if not 0 <= router < len(next(iter(method.layers.values())).router):
        raise InputError(f"router {router} does not exist yet; the method has learned fewer tasks")
    visual = images is not None
    names = [n for n in method.layers if n.startswith("visual.") == visual]
    method.model.eval()
    with (
        use_task(method.layers.values(), router),
        Trace(method.model, [f"{n}.sites.parallel.router" for n in names]) as trace,
    ):
        if visual:
            encode_images(method.model, images)
        else:
            encode_texts(method.model, method.tokenizer(list(prompts)))
    return {n: trace[f"{n}.sites.parallel.router"][0].sort(dim=-1).values for n in names}
