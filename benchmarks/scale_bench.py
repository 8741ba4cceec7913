"""Scale figures: the feature, training and batch pipelines at one size, new engines beside the old.

One command per size, every stage in its own process (peak RSS is that process's and
its children's, from wait4), all in a temporary CHURN_HOME with its own redis-server
and ZenML store, so nothing of the checkout's `.churn/` is touched:

  pipeline:features    `zenml pipeline run` of the feature pipeline: generate the
                       synthetic customers (--customers x --snapshots label rows),
                       validate, write the parquet offline store, apply, materialize
  materialize:new/old  `materialize` of the latest snapshot alone, into an emptied
                       Redis: bulk engine + DuckDB store vs Feast's local engine + file
                       store (the previous defaults)
  training_set:new/old the point-in-time training set of every label row: DuckDB store
                       in 250k-row chunks, derived features by derive() on numpy columns,
                       vs the previous path: the file store in one Feast call with Feast's
                       offline on-demand transformation; skipped for old when its measured
                       ~3.6 GB per 1M label rows would not fit in the free memory
  pipeline:training    `zenml pipeline run` of the training pipeline, default config
  pipeline:batch(k=3)  `zenml pipeline run` of the batch pipeline, top-3 reasons
  pipeline:batch(k=0)  the same without reasons

Usage: python benchmarks/scale_bench.py --customers 1000000 [--snapshots 5] [--skip-old]
       [--only STAGE ...]
Prints one line per stage (wall seconds, peak RSS) and a summary table at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from churn.settings import PROJECT_ROOT

STAGES = (
    "pipeline:features",
    "materialize:new",
    "materialize:old",
    "training_set:new",
    "training_set:old",
    "pipeline:training",
    "pipeline:batch(k=3)",
    "pipeline:batch(k=0)",
)
OLD_ENGINE = {"CHURN_OFFLINE_STORE": "file", "CHURN_MATERIALIZATION_ENGINE": "local"}
NEW_ENGINE = {"CHURN_OFFLINE_STORE": "duckdb", "CHURN_MATERIALIZATION_ENGINE": "bulk"}
OLD_BYTES_PER_LABEL_ROW = 3.6e9 / 1e6  # the file store's one-call join, measured at 1M


@dataclass(frozen=True)
class Figure:
    """One stage's outcome."""

    stage: str
    seconds: float | None
    peak_gb: float | None
    note: str


class StageFailedError(RuntimeError):
    """A stage's process exited non-zero; `reason` is its last error line."""

    def __init__(self, stage: str, code: int, output: str) -> None:
        errors = [line.strip() for line in output.splitlines() if "Error" in line]
        self.reason = errors[-1][:200] if errors else f"exit {code}"
        super().__init__(f"stage {stage} failed (exit {code}):\n{output[-4000:]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(home: Path, port: int, password: str) -> dict[str, str]:
    """The loop demo's isolated pipeline environment plus this run's Redis."""
    from churn.runs import isolated_environment

    env = isolated_environment(home)
    env.update(
        {
            "CHURN_REDIS_HOST": "127.0.0.1",
            "CHURN_REDIS_PORT": str(port),
            "CHURN_REDIS_PASSWORD": password,
            "CHURN_REDIS_DB": "0",
            **NEW_ENGINE,
        }
    )
    return env


def _run_stage(argv: Sequence[str], env: Mapping[str, str]) -> tuple[float, float, str]:
    """Run one stage process; (seconds, peak RSS in GB of it and its children, its note)."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        raise StageFailedError(argv[-1], proc.returncode, output)
    notes = [line.removeprefix("NOTE ") for line in output.splitlines() if line.startswith("NOTE ")]
    return seconds, usage.ru_maxrss * 1024 / 1e9, "; ".join(notes)


def _stage_argv(stage: str, args: argparse.Namespace, home: Path) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "--customers",
        str(args.customers),
        "--snapshots",
        str(args.snapshots),
        "--home",
        str(home),
        "--stage",
        stage,
    ]


def _pipeline(name: str, home: Path, overrides: Mapping[str, Any], env: Mapping[str, str]) -> None:
    """One `zenml pipeline run` with configs/<name>.yaml plus overrides."""
    from churn.runs import pipeline_config, run_pipeline

    config = pipeline_config(name, overrides, home / "configs", {})
    run_pipeline(name, config, env)


def _note(text: str) -> None:
    print(f"NOTE {text}", flush=True)


def _latest_window() -> tuple[Any, Any]:
    """[latest snapshot - 1 day, + 1 day]: what a daily materialization loads."""
    from churn.data.offline import LABELS_TABLE, read_offline_table
    from churn.schema import EVENT_TIMESTAMP

    latest = read_offline_table(LABELS_TABLE)[EVENT_TIMESTAMP].max().to_pydatetime()
    return latest - timedelta(days=1), latest + timedelta(days=1)


def stage_main(stage: str, args: argparse.Namespace) -> None:
    """Inside a stage process: do the stage's work (environment set by the parent)."""
    env = dict(os.environ)
    if stage == "pipeline:features":
        source = {
            "kind": "synthetic",
            "n_customers": args.customers,
            "n_snapshots": args.snapshots,
            "seed": 1,
        }
        _pipeline("feature_pipeline", args.home, {"source": source, "outcomes": None}, env)
    elif stage.startswith("materialize:"):
        from churn import redis_local
        from churn.features.store import get_store, materialize
        from churn.settings import get_settings

        settings = get_settings()
        redis_local.client(redis_local.config_from_settings(settings), timeout_s=60).flushdb()
        start, end = _latest_window()
        report = materialize(get_store(settings=settings), start, end)
        keys = redis_local.client(redis_local.config_from_settings(settings)).dbsize()
        _note(f"{keys:,} customers x {len(report.views)} views in {report.seconds:.1f} s")
    elif stage.startswith("training_set:"):
        from churn.data.offline import LABELS_TABLE, read_offline_table
        from churn.features.names import FEATURE_SERVICE
        from churn.features.store import HISTORICAL_CHUNK_ROWS, get_store, historical_features

        labels = read_offline_table(LABELS_TABLE)
        store = get_store()
        began = time.perf_counter()
        if stage.endswith("new"):
            rows = len(historical_features(store, labels, chunk_rows=HISTORICAL_CHUNK_ROWS))
        else:  # the previous path: one Feast call, Feast's offline on-demand transformation
            service = store.get_feature_service(FEATURE_SERVICE)
            rows = len(store.get_historical_features(entity_df=labels, features=service).to_df())
        _note(f"{rows:,} rows in {time.perf_counter() - began:.1f} s")
    elif stage == "pipeline:training":
        _pipeline("training_pipeline", args.home, {}, env)
    elif stage.startswith("pipeline:batch"):
        top_k = 3 if "k=3" in stage else 0
        overrides = {"top_k": top_k, "campaign": {"enabled": False}}
        _pipeline("batch_inference_pipeline", args.home, overrides, env)
    else:
        raise SystemExit(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")


def _free_memory_bytes() -> float:
    """MemAvailable from /proc/meminfo (Linux)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return float(line.split()[1]) * 1024
    return 0.0


def _label_rows(home: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(home / "offline" / "labels.parquet").metadata.num_rows)


def run_all(args: argparse.Namespace) -> list[Figure]:
    """Every selected stage in order, in one temporary home."""
    from churn import redis_local
    from churn.settings import Settings

    stages = [s for s in STAGES if not args.only or s in args.only]
    if args.skip_old:
        stages = [s for s in stages if not s.endswith(":old")]
    figures: list[Figure] = []
    root = Path(tempfile.mkdtemp(prefix="churn-scale-"))
    home = root / "home"
    port, password = _free_port(), f"bench-{secrets.token_hex(8)}"
    env = _environment(home, port, password)
    cfg = redis_local.config_from_settings(
        Settings(home=home, redis_port=port, redis_password=password)
    )
    redis_local.start(cfg)
    try:
        for stage in stages:
            stage_env = {**env, **(OLD_ENGINE if stage.endswith(":old") else {})}
            if stage == "training_set:old":
                need = _label_rows(home) * OLD_BYTES_PER_LABEL_ROW
                if need > 0.8 * _free_memory_bytes():
                    note = f"not run: needs ~{need / 1e9:.0f} GB in one call"
                    figures.append(Figure(stage, None, None, note))
                    print(f"{stage}: {note}", flush=True)
                    continue
            try:
                seconds, peak, note = _run_stage(_stage_argv(stage, args, home), stage_env)
            except StageFailedError as e:  # later stages may still run; the table says so
                figures.append(Figure(stage, None, None, f"FAILED: {e.reason}"))
                print(f"{stage}: FAILED\n{e}", flush=True)
                continue
            figures.append(Figure(stage, seconds, peak, note))
            print(f"{stage}: {seconds:.1f} s, peak RSS {peak:.2f} GB  {note}", flush=True)
    finally:
        redis_local.stop(cfg)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return figures


def summary(figures: Sequence[Figure], args: argparse.Namespace) -> str:
    """A markdown table of the run."""
    rows = [
        f"| {f.stage} | {'-' if f.seconds is None else f'{f.seconds:.1f}'} | "
        f"{'-' if f.peak_gb is None else f'{f.peak_gb:.2f}'} | {f.note} |"
        for f in figures
    ]
    label_rows = args.customers * args.snapshots
    head = (
        f"{args.customers:,} customers x {args.snapshots} snapshot(s) = {label_rows:,} "
        f"label rows, {os.cpu_count()} CPUs"
    )
    return "\n".join([head, "| stage | wall s | peak RSS GB | note |", "|---|---|---|---|", *rows])


def main(argv: Sequence[str] | None = None) -> int:
    """Parent: run the stages and print the table; child (--stage): one stage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=1)
    parser.add_argument("--skip-old", action="store_true", help="new engines only")
    parser.add_argument("--only", nargs="*", choices=STAGES, help="run only these stages")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        stage_main(args.stage, args)
        return 0
    figures = run_all(args)
    print("\n== summary ==\n" + summary(figures, args), flush=True)
    print(json.dumps([f.__dict__ for f in figures]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
