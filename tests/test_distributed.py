"""Data-parallel training under torchrun (gloo, two CPU processes) equals one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import torch

from clviz.core import distributed
from clviz.experiments.profiles import make_config
from clviz.experiments.runs import run

TOLERANCE = 2.5  # accuracy points: averaging two half-batch gradients is not bit-identical


def test_single_process_helpers_are_no_ops():
    idx = torch.arange(8)
    assert not distributed.active() and distributed.is_main()
    assert torch.equal(distributed.shard(idx), idx)
    assert torch.equal(distributed.all_reduce_sum(idx.clone()), idx)


def test_two_processes_match_one(tmp_path):
    args = ["--method", "finetune", "--stream", "smoke", "--steps", "6"]
    single = run(  # the config `clviz run` makes: the embedded profile's
        make_config("embedded", "finetune", "smoke", steps=6), tmp_path / "single", progress=False
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CLVIZ_RESULTS": str(tmp_path / "cache")}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "clviz",
            "run",
            *args,
            "--out",
            str(tmp_path / "ddp"),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    ddp = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert ddp["config_hash"] == single.config_hash
    diff = np.abs(np.asarray(ddp["matrix"]) - np.asarray(single.matrix))
    assert diff.max() <= TOLERANCE, diff
    assert ddp["matrix"] != [ddp["zero_shot"]] * 3  # it did train
