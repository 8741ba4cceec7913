"""Serving with the prediction log on vs off, in one run: latency at 200 and 600 req/s, drops.

    CHURN_TELCO_CSV=/path/to/telco.csv python benchmarks/prediction_log_bench.py [--duration 10]

Self-contained: a temporary CHURN_HOME with its own Redis on free ports, the real
Telco features (the feature pipeline), a small XGBoost bundle, and one MLServer
started twice on it: CHURN_SERVING_PREDICTION_LOG_ENABLED=false, then true (default
flush settings). Each start sends 1 customer/request at 200/s and at 600/s (open
loop, serving_bench's client) and prints p50/p99, errors, and the log's written and
dropped counters from /metrics. Everything is removed at the end. Prints figures; it
is not a test (the goal: p50 within +10% with the log on, 0 drops at 600 req/s).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import requests
import uvloop
from serving_bench import Pool, fixed_rate, raw_request

from churn import redis_local
from churn.data.telco import load_telco
from churn.features.derived import add_derived
from churn.features.pipeline import DataSource, run_feature_pipeline
from churn.inference import infer_path
from churn.loop.predlog import read_log
from churn.models.candidates import train_candidate
from churn.schema import ENTITY_KEY, LABEL, model_input_names
from churn.settings import get_settings
from deployment import local_server
from deployment.bundle import build_bundle_from_pipeline
from serving.settings import get_serving_settings


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(home: Path) -> dict[str, str]:
    return {
        "CHURN_HOME": str(home),
        "CHURN_REDIS_HOST": "127.0.0.1",
        "CHURN_REDIS_PORT": str(_port()),
        "CHURN_REDIS_PASSWORD": f"bench-{secrets.token_hex(8)}",
        "CHURN_REDIS_DB": "0",
        "CHURN_SERVING_HOME": str(home / "serving"),
        "CHURN_SERVING_HTTP_PORT": str(_port()),
        "CHURN_SERVING_GRPC_PORT": str(_port()),
        "CHURN_SERVING_METRICS_PORT": str(_port()),
    }


def _log_counter(metrics_url: str, result: str) -> float:
    text = requests.get(metrics_url, timeout=5).text
    prefix = f'churn_serving_prediction_log_records_total{{model="churn",result="{result}"}}'
    return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(prefix))


async def _phases(url: str, ids: list[str], duration: float) -> list[tuple[int, float, float, int]]:
    parsed = urlparse(url)
    pool = Pool(parsed.hostname or "127.0.0.1", parsed.port or 80)
    payloads = [raw_request(parsed.netloc, infer_path("churn"), [i]) for i in ids]
    await fixed_rate(pool, payloads, 100.0, 2.0)  # warm-up
    out = []
    for rate in (200, 600):
        result = await fixed_rate(pool, payloads, float(rate), duration)
        lat = np.asarray(result.latencies) * 1e3
        p50, p99 = np.percentile(lat, [50, 99])
        errors = sum(n for status, n in result.statuses.items() if status != 200)
        out.append((rate, float(p50), float(p99), errors))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run both configurations and print one line per (log, rate)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--csv", default=os.environ.get("CHURN_TELCO_CSV"))
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate")
    args = parser.parse_args(argv)
    if not args.csv:
        parser.error("give --csv or CHURN_TELCO_CSV (the Telco CSV)")
    home = Path(tempfile.mkdtemp(prefix="churn-predlog-bench-"))
    os.environ.update(_environment(home))
    get_settings.cache_clear()
    get_serving_settings.cache_clear()
    settings, serving = get_settings(), get_serving_settings()
    cfg = redis_local.config_from_settings(settings)
    redis_local.start(cfg)
    try:
        csv = Path(args.csv)
        run_feature_pipeline(DataSource(kind="telco", csv_path=csv), settings)
        frame = add_derived(load_telco(csv))
        grid = [{"n_estimators": 120, "max_depth": 3, "learning_rate": 0.1, "subsample": 0.9}]
        model = train_candidate(
            "xgboost", frame[model_input_names()], frame[LABEL], grid, seed=0, cv_folds=2
        ).pipeline
        bundle = home / "bundle"
        build_bundle_from_pipeline(bundle, model, model_version="1", threshold=0.35)
        ids = [str(i) for i in frame[ENTITY_KEY].tolist()]
        metrics_url = f"http://127.0.0.1:{serving.metrics_port}/metrics"
        print(f"{'log':<4} {'rate':>5} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
              f"{'written':>8} {'dropped':>8}")  # fmt: skip
        for enabled in ("false", "true"):
            local_server.install(bundle, serving)
            local_server.start(
                settings=serving,
                env={
                    "CHURN_SERVING_PREDICTION_LOG_ENABLED": enabled,
                    "CHURN_SERVING_DRIFT_ENABLED": "false",
                },
            )
            try:
                rows = uvloop.run(_phases(local_server.base_url(serving), ids, args.duration))
                written = _log_counter(metrics_url, "written")
                dropped = _log_counter(metrics_url, "dropped")
            finally:
                local_server.stop(serving)
            label = "on" if enabled == "true" else "off"
            for rate, p50, p99, errors in rows:
                print(f"{label:<4} {rate:>5} {p50:>8.2f} {p99:>8.2f} {errors:>7} "
                      f"{written:>8.0f} {dropped:>8.0f}")  # fmt: skip
        logged = read_log(serving.prediction_log_root)
        print(f"records in the log after shutdown: {len(logged)} (flushed on exit)")
    finally:
        redis_local.stop(cfg)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
