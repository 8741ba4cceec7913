"""Benchmark the running churn MLServer over HTTP, next to the in-process floor.

    python benchmarks/serving_bench.py [--url http://127.0.0.1:8480] [--duration 10]

Start the server first (`python -m deployment.local_server start <bundle>`); the
benchmark only reads CHURN_* / CHURN_SERVING_* settings to find it, the offline store
(for real customer ids) and the bundle the server reports in its V2 metadata.

Phases (each prints p50/p95/p99 latency, achieved throughput, errors):

1. 1 customer/request at a fixed rate (default 200/s, open loop: latency counts from
   the scheduled send time, so a stalled server is not hidden by a waiting client);
2. 1 customer/request at a fixed 600/s (the sustained-throughput goal);
3. 1 customer/request at saturation (closed loop, N connections);
4. 100 customers/request at a fixed rate (default 20/s) and at saturation;
5. the floor, in this process: the same Redis read (serving.online) + model predict,
   no HTTP, no MLServer.

The client is a minimal HTTP/1.1 keep-alive client on uvloop (a few tens of us of
CPU per request) because client and server share the machine's cores; a heavier
client would steal the CPU it measures. Where the server's time goes comes from
its own /metrics (runtime stages and MLServer's request timers), as deltas per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import requests
import uvloop

from churn.inference import infer_path, request_body
from churn.schema import ENTITY_KEY, Group
from churn.settings import get_settings
from deployment.local_server import base_url
from serving.settings import get_serving_settings


@dataclass
class PhaseResult:
    """Latencies (seconds) and outcomes of one phase."""

    name: str
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0
    server: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        lat = np.asarray(self.latencies) * 1e3
        ok = self.statuses.get(200, 0)
        errors = sum(n for s, n in self.statuses.items() if s != 200)
        if not len(lat):
            return f"{self.name:<34} no requests completed"
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        return (
            f"{self.name:<34} n={len(lat):>6}  {ok / self.seconds:>7.0f} req/s  "
            f"p50 {p50:6.2f}  p95 {p95:6.2f}  p99 {p99:6.2f}  max {lat.max():7.2f} ms  "
            f"errors {errors}" + (f" {dict(self.statuses)}" if errors else "")
        )


class Connection:
    """One keep-alive HTTP/1.1 connection: write a request, read one response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)


class Pool:
    """Idle connections reused first; new ones opened when all are busy.

    Connections idle for longer than MAX_IDLE_S are closed instead of reused: uvicorn
    closes keep-alive connections after 5 s of silence.
    """

    MAX_IDLE_S = 2.0

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[float, Connection]] = []

    async def acquire(self) -> Connection:
        now = time.monotonic()
        while self.idle:
            since, conn = self.idle.pop()
            if now - since < self.MAX_IDLE_S:
                return conn
            conn.writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return Connection(reader, writer)

    def release(self, conn: Connection) -> None:
        self.idle.append((time.monotonic(), conn))


def raw_request(host: str, path: str, ids: list[str]) -> bytes:
    body = json.dumps(request_body(ids, reasons=False)).encode()  # the served default
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def fixed_rate(
    pool: Pool, payloads: list[bytes], rate: float, duration: float
) -> PhaseResult:
    """Open loop: request i is due at t0 + i/rate whatever happened before."""
    # perf_counter, not loop.time(): uvloop's clock has millisecond resolution.
    result = PhaseResult("")
    n = max(1, int(rate * duration))
    t0 = time.perf_counter() + 0.05

    async def one(i: int, due: float) -> None:
        conn = await pool.acquire()
        status, _ = await conn.post(payloads[i % len(payloads)])
        result.latencies.append(time.perf_counter() - due)
        result.statuses[status] += 1
        pool.release(conn)

    tasks = []
    for i in range(n):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, due)))
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - t0
    return result


async def saturate(
    pool: Pool, payloads: list[bytes], concurrency: int, duration: float
) -> PhaseResult:
    """Closed loop: `concurrency` connections, each sending as soon as it has an answer."""
    result = PhaseResult("")
    end = time.perf_counter() + duration
    counter = iter(range(10**9))

    async def worker() -> None:
        conn = await pool.acquire()
        while time.perf_counter() < end:
            started = time.perf_counter()
            status, _ = await conn.post(payloads[next(counter) % len(payloads)])
            result.latencies.append(time.perf_counter() - started)
            result.statuses[status] += 1
        pool.release(conn)

    started = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    result.seconds = time.perf_counter() - started
    return result


SERVER_SERIES = {
    "http": "rest_server_request_duration_seconds",  # starlette-exporter: whole HTTP handler
    "mlserver_infer": "model_infer_request_duration",  # MLServer: registry + predict
    "runtime_total": 'churn_serving_stage_seconds{{model="{m}",stage="total"}}',
    "runtime_read": 'churn_serving_stage_seconds{{model="{m}",stage="online_read"}}',
    "runtime_score_batch": 'churn_serving_stage_seconds{{model="{m}",stage="score"}}',
}


def server_counters(metrics_url: str, model: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of each timer in SERVER_SERIES, from the server's /metrics."""
    text = requests.get(metrics_url, timeout=5).text
    out: dict[str, tuple[float, float]] = {}
    for key, series in SERVER_SERIES.items():
        pattern = series.format(m=model)
        base, _, labels = pattern.partition("{")
        total = count = 0.0
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            name, _, rest = line.partition("{")
            if labels and labels.rstrip("}") not in rest:
                continue
            if key == "http" and '"/v2/models/{model_name}/infer"' not in rest:
                continue
            value = float(line.rsplit(" ", 1)[1])
            if name == f"{base}_sum":
                total += value
            elif name == f"{base}_count":
                count += value
        out[key] = (total, count)
    return out


def server_means(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """Mean milliseconds per observation of each timer between two scrapes."""
    means = {}
    for key in SERVER_SERIES:
        d_sum = after[key][0] - before[key][0]
        d_count = after[key][1] - before[key][1]
        if d_count > 0:
            means[key] = d_sum / d_count * 1e3
            means[f"{key}_n"] = d_count
    return means


async def floor(bundle: Path, ids: list[str], batch: int, n: int) -> list[float]:
    """In-process: the runtime's Redis read + derive + predict, no HTTP."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    from churn.features.store import get_store
    from serving.bundle import load_bundle
    from serving.online import OnlineFeatureReader, layout_from_store
    from serving.resp import RespClient, endpoint_from_options

    loaded = load_bundle(bundle)
    store = get_store()
    nodes, options = RedisOnlineStore._parse_connection_string(
        store.config.online_store.connection_string
    )
    client = RespClient(
        endpoint_from_options(nodes, options, "bench"), timeout_s=1.0, retry_interval_s=0.1
    )
    reader = OnlineFeatureReader(layout_from_store(store, loaded.manifest.feature_service), client)
    rng = np.random.default_rng(1)
    out = []
    for i in range(n + 20):
        chosen = [ids[j] for j in rng.integers(0, len(ids), batch)]
        started = time.perf_counter()
        rows = await reader.read(chosen)
        loaded.model.predict_proba(rows.columns)
        if i >= 20:  # warm-up
            out.append(time.perf_counter() - started)
    client.close()
    return out


def floor_line(name: str, latencies: list[float]) -> str:
    lat = np.asarray(latencies) * 1e3
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    return (
        f"{name:<34} n={len(lat):>6}  {1e3 / statistics.mean(lat):>7.0f} req/s  "
        f"p50 {p50:6.2f}  p95 {p95:6.2f}  p99 {p99:6.2f} ms (sequential)"
    )


def customer_ids() -> list[str]:
    """Real ids from the offline store (every one of them is materialized online)."""
    table = get_settings().offline_table(Group.ACCOUNT.value)
    ids = pq.read_table(table, columns=[ENTITY_KEY]).column(ENTITY_KEY).to_pylist()
    return sorted(set(ids))


def main(argv: list[str] | None = None) -> int:
    s = get_serving_settings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=base_url(s))
    parser.add_argument("--metrics-url", default=f"http://127.0.0.1:{s.metrics_port}/metrics")
    parser.add_argument("--model", default=s.model_name)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--rate", type=float, default=200.0, help="1-customer fixed rate")
    parser.add_argument("--sustained-rate", type=float, default=600.0)
    parser.add_argument("--batch-rate", type=float, default=20.0, help="100-customer fixed rate")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)

    meta = requests.get(f"{args.url}/v2/models/{args.model}", timeout=5)
    meta.raise_for_status()
    params = meta.json().get("parameters") or {}
    bundle = Path(params["bundle"])
    ids = customer_ids()
    host, _, port = args.url.removeprefix("http://").partition(":")
    path = infer_path(args.model)
    rng = np.random.default_rng(0)
    singles = [raw_request(host, path, [ids[i]]) for i in rng.integers(0, len(ids), 5000)]
    batches = [
        raw_request(host, path, [ids[i] for i in rng.integers(0, len(ids), 100)])
        for _ in range(200)
    ]
    check = requests.post(
        f"{args.url}{path}", json=json.loads(singles[0].split(b"\r\n\r\n", 1)[1]), timeout=5
    )
    check.raise_for_status()

    print(
        f"server {args.url} model {args.model} version {params.get('model_version')} "
        f"({params.get('model_kind')}), bundle {bundle}"
    )
    print(
        f"machine: {os.cpu_count()} cores, load average before {os.getloadavg()}, "
        f"python {sys.version.split()[0]}; {len(ids)} customers online"
    )

    async def run_phases() -> list[PhaseResult]:
        pool = Pool(host, int(port))
        d = args.duration
        phases: list[tuple[str, Callable[[], Awaitable[PhaseResult]]]] = [
            (f"1 cust @ {args.rate:.0f}/s fixed", lambda: fixed_rate(pool, singles, args.rate, d)),
            (
                f"1 cust @ {args.sustained_rate:.0f}/s fixed",
                lambda: fixed_rate(pool, singles, args.sustained_rate, d),
            ),
            (
                f"1 cust saturation (c={args.concurrency})",
                lambda: saturate(pool, singles, args.concurrency, d),
            ),
            (
                f"100 cust @ {args.batch_rate:.0f}/s fixed",
                lambda: fixed_rate(pool, batches, args.batch_rate, d),
            ),
            ("100 cust saturation (c=4)", lambda: saturate(pool, batches, 4, d)),
        ]
        results = []
        await saturate(pool, singles, 4, 1.0)  # warm-up
        for name, make in phases:
            before = server_counters(args.metrics_url, args.model)
            result: PhaseResult = await make()
            result.name = name
            result.server = server_means(before, server_counters(args.metrics_url, args.model))
            print(result.line(), flush=True)
            results.append(result)
            await asyncio.sleep(0.5)
        return results

    results = uvloop.run(run_phases())
    print("\nwhere the server's time goes (mean ms per request, from its /metrics):")
    columns = ("client", "http", "mlserver", "runtime", "read", "score/batch", "reqs/batch")
    print(f"{'phase':<34}" + "".join(f"{c:>12}" for c in columns))
    for r in results:
        m = r.server
        values = [
            statistics.mean(r.latencies) * 1e3,
            *(m.get(k, float("nan")) for k in SERVER_SERIES),
            m.get("runtime_total_n", 0) / max(m.get("runtime_score_batch_n", 1), 1),
        ]
        print(f"{r.name:<34}" + "".join(f"{v:12.2f}" for v in values))
    print("\nfloor (same Redis read + derive + predict, in this process, no HTTP):")
    print(floor_line("1 customer", uvloop.run(floor(bundle, ids, 1, 2000))))
    print(floor_line("100 customers", uvloop.run(floor(bundle, ids, 100, 300))))
    print(f"load average after {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
