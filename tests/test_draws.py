"""One seed source: every random draw a method makes comes from its task state's ``draws``,
which the loop seeds from (seed, task index). A method's outcome changes with its draws and
only with them: the same draws give the same weights, other draws other weights."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from clviz.core import loop
from clviz.core.loop import draws_for, learn_task
from clviz.methods import METHODS
from clviz.world.tasks import make_task

# The methods that draw, and what they draw: the reference batch (lwf, zscl), the replayed
# examples and the memory (replay, joint), the generic images' autoencoder and the held-out split
# (moe-adapters' DDAS). Every other method must not depend on ``draws`` at all.
DRAWING = {"lwf", "zscl", "replay", "joint", "moe-adapters"}
SMALL = {  # options that keep each method quick on the tiny CLIP
    "zscl": {"reference_images": 16, "reference_texts": 16, "reference_batch": 4},
    "moe-adapters": {"experts": 4, "freeze_per_task": 1, "generic_images": 32, "ddas_steps": 5},
    "moe-adapters-taskid": {"experts": 4, "freeze_per_task": 1},
}


NO_DRAWS: Any = object()  # not a generator: drawing with it fails


def tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor in a (nested) state dict, in a fixed order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for k in sorted(value, key=str) for t in tensors(value[k])]
    if isinstance(value, list | tuple):
        return [t for v in value for t in tensors(v)]
    if hasattr(value, "__dict__"):
        return tensors(vars(value))
    return []


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def two_tasks():
    return [
        make_task("shapes", seed=0, train_per_class=6, test_per_class=2),
        make_task("digits", seed=0, train_per_class=6, test_per_class=2),
    ]


def outcome(make_method, name: str, tasks, draw_offset: int, monkeypatch) -> list[torch.Tensor]:
    """The method's state after two tasks, its draws shifted by ``draw_offset`` while the batch
    draws and the global generator keep their seeds."""
    monkeypatch.setattr(loop, "draws_for", lambda seed: draws_for(seed + draw_offset))
    torch.manual_seed(0)  # the adapters' initial weights, drawn when the method is built
    method = make_method(name, **SMALL.get(name, {}))
    for index, task in enumerate(tasks):
        learn_task(method, task, index, seed=index, progress=False)
    return tensors(method.state_dict())


@pytest.mark.parametrize("name", sorted(DRAWING))
def test_a_drawing_methods_outcome_follows_its_draws(name, make_method, two_tasks, monkeypatch):
    """The same draws give the same weights, other draws other weights: the method's
    randomness is its task state's, and nothing else's."""
    first = outcome(make_method, name, two_tasks, 0, monkeypatch)
    again = outcome(make_method, name, two_tasks, 0, monkeypatch)
    other = outcome(make_method, name, two_tasks, 1, monkeypatch)
    assert same(first, again), f"{name}: the same draws gave different weights"
    assert not same(first, other), f"{name} draws, yet other draws left it unchanged"


@pytest.mark.parametrize("name", sorted(set(METHODS) - DRAWING))
def test_the_other_methods_never_draw(name, make_method, two_tasks, monkeypatch):
    """A method not listed as drawing learns two tasks with ``draws`` that fail on any use."""
    monkeypatch.setattr(loop, "draws_for", lambda seed: NO_DRAWS)
    method = make_method(name, **SMALL.get(name, {}))
    for index, task in enumerate(two_tasks):
        learn_task(method, task, index, seed=index, progress=False)


def test_draws_depend_on_the_seed_and_the_task_alone():
    def first_draws(seed: int) -> torch.Tensor:
        return torch.randint(1000, (8,), generator=draws_for(seed))

    torch.manual_seed(123)  # the global generator plays no part
    assert torch.equal(first_draws(loop.task_seed(0, 1)), first_draws(loop.task_seed(0, 1)))
    assert not torch.equal(first_draws(loop.task_seed(0, 1)), first_draws(loop.task_seed(1, 1)))
    assert not torch.equal(first_draws(loop.task_seed(0, 1)), first_draws(loop.task_seed(0, 2)))
