"""The ATLAS protocol: ablation table, upstream forgetting, downstream transfer (both orders).

Usage: ``python benchmarks/atlas_protocol.py [--fast] [--seed 0]``. Results are cached under
``clviz.engine.results_root()/atlas/`` (one JSON per order and config), so reruns print at once.
"""

from __future__ import annotations

import argparse
import time

from clviz.atlas.protocol import (
    ORDERS,
    ProtocolConfig,
    ablation_rows,
    fast_config,
    forgetting_rows,
    run_protocol,
)


def print_table(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    keys = list(rows[0])
    print(" | ".join(keys))
    for r in rows:
        print(" | ".join(str(r[k]) for k in keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="tiny budgets (a smoke check)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = {}
    for order in ORDERS:
        config = fast_config(order) if args.fast else ProtocolConfig(order)
        config = ProtocolConfig(**{**config.__dict__, "seed": args.seed})
        started = time.perf_counter()
        results[order] = run_protocol(config)
        print(
            f"{order}: {results[order]['seconds']} s when computed "
            f"({time.perf_counter() - started:.1f} s now)"
        )
    print_table(
        ablation_rows(results),
        "Downstream low-shot accuracy (%) by ablation; transfer = mean - fresh adapter's mean",
    )
    print_table(
        forgetting_rows(results),
        "Upstream forgetting (points: right after the task - after the stream); last = final mean",
    )


if __name__ == "__main__":
    main()
