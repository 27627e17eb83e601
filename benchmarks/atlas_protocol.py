"""The ATLAS protocol: downstream transfer by ablation, upstream forgetting (both orders).

Usage: ``python benchmarks/atlas_protocol.py [--fast] [--seed 0]``. Each order lives in the run
store (``<results root>/atlas-protocol/``), so a rerun prints at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from clviz.experiments.atlas_protocol import (
    ORDERS,
    ProtocolConfig,
    downstream_table,
    fast_config,
    forgetting_table,
    run_protocol,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="tiny budgets (a smoke check)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = {}
    for order in ORDERS:
        config = fast_config(order) if args.fast else ProtocolConfig(order)
        config = dataclasses.replace(config, seed=args.seed)
        started = time.perf_counter()
        results[order] = run_protocol(config, progress=True)
        print(
            f"{order}: {results[order].seconds} s when computed "
            f"({time.perf_counter() - started:.1f} s now)"
        )
    print("\nDownstream low-shot accuracy (%) by learner; transfer = mean - fresh adapter's mean")
    print(downstream_table(results))
    print("\nUpstream forgetting (points: right after the task - after the stream)")
    print(forgetting_table(results))


if __name__ == "__main__":
    main()
