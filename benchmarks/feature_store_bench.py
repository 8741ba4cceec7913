"""Feature store figures: materialization throughput and online read latency.

Runs on its own redis-server (spare port, temporary data dir, own password) and a
temporary CHURN_HOME, so it never touches the project's `.churn/` or a running
`churn redis`. Prints:

- materialization throughput (feature-view rows/s and customers/s) for the real
  Telco CSV and for --customers synthetic customers (default 1,000,000);
- get_online_features latency p50/p99 for 1 and 100 customers per call, through the
  FeatureService (raw views + python-mode on-demand view) and through the raw
  views only, over --reps calls each (ids drawn at random per call).

Usage: python benchmarks/feature_store_bench.py [--customers N] [--reps N] [--csv PATH]
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn import redis_local
from churn.data.offline import write_offline_store
from churn.data.synthetic import generate
from churn.data.telco import load_telco
from churn.data.timestamps import DEFAULT_SNAPSHOT_TIME, assign_event_time
from churn.features.names import FEATURE_SERVICE, VIEW_BY_GROUP, feature_refs
from churn.features.store import (
    apply_repo,
    get_store,
    materialize,
    online_features,
    service_refs,
)
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP
from churn.settings import PROJECT_ROOT, Settings, get_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _configure_redis() -> None:
    """A fresh port and password for this run's own redis-server."""
    os.environ["CHURN_REDIS_HOST"] = "127.0.0.1"
    os.environ["CHURN_REDIS_PORT"] = str(_free_port())
    os.environ["CHURN_REDIS_PASSWORD"] = f"bench-{secrets.token_hex(8)}"
    os.environ["CHURN_REDIS_DB"] = "0"


def _use_home(home: Path) -> Settings:
    """Point CHURN_HOME at `home` (the feature repo reads it from the environment)."""
    os.environ["CHURN_HOME"] = str(home)
    get_settings.cache_clear()
    return get_settings()


def _materialize_figures(label: str, frame: pd.DataFrame, settings: Settings) -> list[str]:
    """Ingest one snapshot, apply, materialize it; return report lines."""
    client = redis_local.client(redis_local.config_from_settings(settings), timeout_s=60)
    client.flushdb()
    began = time.perf_counter()
    write_offline_store(frame)
    ingest_s = time.perf_counter() - began
    store = get_store(settings=settings)
    apply_repo(store, settings=settings)
    moment = frame[EVENT_TIMESTAMP].max().to_pydatetime()
    report = materialize(store, moment - timedelta(days=1), moment + timedelta(days=1))
    customers = frame[ENTITY_KEY].nunique()
    rows = customers * len(VIEW_BY_GROUP)
    keys = client.dbsize()
    if keys != customers:
        raise RuntimeError(f"{label}: Redis holds {keys} keys, expected {customers}")
    return [
        f"materialize {label}: {customers:,} customers x {len(VIEW_BY_GROUP)} views = "
        f"{rows:,} rows in {report.seconds:.1f} s -> {rows / report.seconds:,.0f} rows/s, "
        f"{customers / report.seconds:,.0f} customers/s "
        f"(offline write incl. contract check: {ingest_s:.1f} s)"
    ]


def _latency(call: Callable[[], object], reps: int, warmup: int = 20) -> tuple[float, float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(reps):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def _latency_figures(settings: Settings, ids: Sequence[str], reps: int) -> list[str]:
    store = get_store(settings=settings)
    rng = np.random.default_rng(0)
    pool = np.asarray(ids)
    lines = []
    variants: list[tuple[str, str | list[str]]] = [
        (f"FeatureService {FEATURE_SERVICE} by name (lookup per call)", FEATURE_SERVICE),
        (f"FeatureService {FEATURE_SERVICE} resolved once", service_refs(store)),
        ("raw views only (no on-demand view)", feature_refs(include_derived=False)),
    ]
    for name, features in variants:
        for batch in (1, 100):

            def call(batch: int = batch, features: str | list[str] = features) -> object:
                chosen = rng.choice(pool, size=batch, replace=False).tolist()
                return online_features(store, chosen, features=features)

            p50, p99 = _latency(call, reps)
            lines.append(
                f"online {name}, {batch} customer(s)/call: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                f"(n={reps})"
            )
    return lines


def _synthetic_figures(customers: int, home: Path) -> list[str]:
    """Materialization throughput for `customers` synthetic customers in their own home."""
    began = time.perf_counter()
    synthetic = generate(customers, seed=1)
    print(f"generated {customers:,} synthetic customers in {time.perf_counter() - began:.1f} s")
    lines = _materialize_figures(f"synthetic {customers:,}", synthetic, _use_home(home))
    print(*lines, sep="\n", flush=True)
    return lines


def _test_inputs() -> Any:
    """tests/inputs.py, the one place that finds the Telco CSV (imported on demand)."""
    sys.path.insert(0, str(PROJECT_ROOT / "tests"))
    import inputs

    return inputs


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument(
        "--csv", type=Path, default=None, help="Telco CSV (default: tests/inputs.py finds it)"
    )
    parser.add_argument(
        "--skip-synthetic", action="store_true", help="Telco materialization and latency only"
    )
    args = parser.parse_args(argv)
    if args.reps < 200:
        parser.error("--reps must be >= 200 for a meaningful p99")

    with tempfile.TemporaryDirectory(prefix="churn-bench-") as tmp:
        _configure_redis()
        settings = _use_home(Path(tmp) / "telco")
        cfg = redis_local.config_from_settings(settings)
        redis_local.start(cfg)
        lines: list[str] = []
        try:
            csv, label = _test_inputs().benchmark_telco_csv(args.csv, Path(tmp))
            telco = assign_event_time(load_telco(csv), DEFAULT_SNAPSHOT_TIME)
            lines += _materialize_figures(label, telco, settings)
            print(*lines, sep="\n", flush=True)
            latency = _latency_figures(settings, telco[ENTITY_KEY].tolist(), args.reps)
            print(*latency, sep="\n", flush=True)
            lines += latency
            if not args.skip_synthetic:
                lines += _synthetic_figures(args.customers, Path(tmp) / "synthetic")
        finally:
            redis_local.stop(cfg)
        print("\n== summary ==", *lines, sep="\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
