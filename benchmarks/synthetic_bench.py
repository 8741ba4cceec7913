"""Time the synthetic generator (and, optionally, the contract) at several sizes.

Usage: python benchmarks/synthetic_bench.py [--sizes 100000 1000000 5000000]
       [--snapshots 1] [--validate]

Prints one line per size: seconds and rows/s. Not a test: figures depend on the
machine; the README quotes them with the machine they were measured on.
"""

from __future__ import annotations

import argparse
import time

from churn.data.contract import validate
from churn.data.synthetic import generate

DEFAULT_SIZES = (100_000, 1_000_000)


def _time(n_customers: int, n_snapshots: int, check: bool) -> None:
    started = time.perf_counter()
    frame = generate(n_customers, seed=0, n_snapshots=n_snapshots)
    generated = time.perf_counter() - started
    line = (
        f"generate n_customers={n_customers:>9,} snapshots={n_snapshots} rows={len(frame):>10,}: "
        f"{generated:6.2f} s, {len(frame) / generated:>11,.0f} rows/s"
    )
    if check:
        started = time.perf_counter()
        validate(frame, require_timestamps=True, require_label=True)
        checked = time.perf_counter() - started
        line += f" | validate {checked:6.2f} s, {len(frame) / checked:>11,.0f} rows/s"
    print(line, flush=True)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark for each requested size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--snapshots", type=int, default=1)
    parser.add_argument("--validate", action="store_true", help="also time the data contract")
    args = parser.parse_args(argv)
    generate(1_000, seed=0)  # warm-up: imports and first-call allocations are not measured
    for size in args.sizes:
        _time(size, args.snapshots, args.validate)


if __name__ == "__main__":
    main()
