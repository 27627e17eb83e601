"""Every method is bit-for-bit reproducible on the CPU, across processes.

Two fresh processes train every registered method on the same two small tasks with the same
seeds and print a SHA-256 of each final state; the digests must be equal. MoE-Adapters' expert
pool used to gather a copy of each sample's expert weights, whose backward (an accumulating
scatter) summed in a different order from one process to the next: 560 weights differed after a
few steps. The grouped dispatch that replaced it is exact, and this test keeps it so.
"""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import copy, hashlib, json, torch
from clviz.backbone import load_backbone
from clviz.core import TrainConfig, learn_task, make_format
from clviz.methods import build_method, list_methods
from clviz.world import make_task

model, _, tok = load_backbone("clviz-tiny", device="cpu")
tasks = [make_format(make_task(n, train_per_class=6, test_per_class=2), tok)
         for n in ("shapes", "digits")]
small = {  # the methods' own data, kept small
    "zscl": {"reference_images": 32, "reference_texts": 16},
    "moe-adapters": {"ddas_steps": 5, "generic_images": 32},
}
digests = {}
for name in list_methods():
    torch.manual_seed(0)
    method = build_method(name, copy.deepcopy(model), tok, TrainConfig(steps=3, batch_size=16),
                          small.get(name))
    for i, task in enumerate(tasks):
        learn_task(method, task, i, seed=i, progress=False)
    h = hashlib.sha256()
    for key, value in sorted(method.model.state_dict().items()):
        h.update(key.encode()); h.update(value.detach().contiguous().numpy().tobytes())
    digests[name] = h.hexdigest()
print(json.dumps(digests))
"""


def train_in_a_fresh_process() -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=600
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_method_trains_bit_for_bit_the_same_in_two_processes():
    first, second = train_in_a_fresh_process(), train_in_a_fresh_process()
    assert len(first) >= 9
    differ = [name for name in first if first[name] != second[name]]
    assert not differ, f"weights differ between two identical runs: {differ}"
