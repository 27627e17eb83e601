"""How fast real datasets decode: images/s from JPEG folders at 224 px, 0 vs 2 loader workers.

    python benchmarks/loader.py             # 3 fake MTIL datasets, 40 batches of 64
    python benchmarks/loader.py --small     # what CI runs: a few batches

Fake MTIL folders (``clviz.data.fake``) are written in torchvision's layouts with full-size
JPEGs (``--jpeg-size``), then the same seeded batches are fed through :func:`clviz.core.feed.feed`
twice: decoded in the main process (by the lazy store's own decoding threads) and by a
``DataLoader`` with worker processes. The batches are checked to be identical; only the time
differs. During training the workers also decode *while* the model computes, which this
decode-only figure does not show.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

import clviz.data.fake as fake
from clviz.backbone import load_backbone
from clviz.core.feed import WORKERS_VAR, feed
from clviz.core.formats import make_format
from clviz.data.mtil import make_mtil_task

DATASETS = ("DTD", "EuroSAT", "Flowers")


def images_per_second(task, indices, workers: int) -> tuple[float, list[torch.Tensor]]:
    os.environ[WORKERS_VAR] = str(workers)
    started = time.perf_counter()
    batches = [b.images for b in feed(task, "train", indices)]
    seconds = time.perf_counter() - started
    return sum(len(b) for b in batches) / seconds, batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a few batches (CI)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jpeg-size", type=int, default=500, help="side of the fake JPEGs")
    args = parser.parse_args()
    batches, batch_size, per_class = (3, 16, 4) if args.small else (40, 64, 20)
    fake.FAKE_SIZE = (args.jpeg_size, args.jpeg_size * 3 // 4)  # photo-sized, not the tiny default
    root = fake.make_fake_mtil(Path(tempfile.mkdtemp()) / "mtil", DATASETS, per_class, 1)
    _, _, tokenizer = load_backbone()
    g = torch.Generator().manual_seed(0)
    print(f"{os.cpu_count()} CPU cores; {batches} batches of {batch_size} at 224 px per dataset")
    for name in DATASETS:
        task = make_format(make_mtil_task(name, root, image_size=224), tokenizer)
        n = len(task.train_labels)
        indices = [torch.randint(n, (batch_size,), generator=g) for _ in range(batches)]
        serial, a = images_per_second(task, indices, 0)
        parallel, b = images_per_second(task, indices, args.workers)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True)), "workers changed a batch"
        print(
            f"{name:<9} 0 workers {serial:7.1f} images/s   {args.workers} workers "
            f"{parallel:7.1f} images/s   ({parallel / serial:.2f}x, identical batches)"
        )


if __name__ == "__main__":
    main()
