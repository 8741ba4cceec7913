"""One daily run of the customer database ingestion at scale, time per stage.

Runs on its own PostgreSQL (the twin's helper: Debian's server, temporary data
directory, spare port) and its own redis-server and CHURN_HOME, so it never touches
the project's `.churn/` or a running server. Steps:

1. seed --customers synthetic customers (default 1,000,000) as of day 1, their
   signup days spread over the month (so about 1/30 of them tick a month of tenure
   on any day, as in a real base);
2. day 1: the initial load (every row new: the whole base written and materialized);
3. day 2's changes in the database: 1% churn, 0.5% change plan, 0.5% change price,
   0.2% join, 0.05% arrive broken (quarantined, under the 1% budget);
4. day 2: the measured daily run (read, validate with quarantine, write the changed
   rows and day 1's labels, materialize-incremental of the changed rows only).

Prints the seconds of each stage of both days and the row counts.

Usage: python benchmarks/db_ingest_bench.py [--customers N]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa

from churn import redis_local, twin
from churn.data import customer_db
from churn.data.database import SourceTables, create_engine
from churn.data.synthetic import generate
from churn.features.daily import DatabaseSnapshotSource, DayReport, run_day
from churn.features.store import apply_repo, get_store
from churn.ports import free_port
from churn.schema import ENTITY_KEY
from churn.settings import get_settings

DAY1 = date(2025, 3, 10)
DAY2 = DAY1 + timedelta(days=1)
TABLES = SourceTables(
    customers="customers", subscriptions="subscriptions", billing="billing", db_schema=None
)
# Day 2 in the database: (share of customers, statement). setseed makes it repeatable.
CHANGES = (
    ("churn", "UPDATE customers SET churn_date = :d2 WHERE random() < 0.01"),
    (
        "plan",
        "UPDATE subscriptions SET contract_type = CASE contract_type "
        "WHEN 'Month-to-month' THEN 'One year' ELSE 'Month-to-month' END "
        "WHERE random() < 0.005",
    ),
    ("price", "UPDATE billing SET monthly_charges = monthly_charges + 1 WHERE random() < 0.005"),
    ("broken", "UPDATE billing SET monthly_charges = 4999 WHERE random() < 0.0005"),
)


def _line(report: DayReport, label: str) -> str:
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    total = sum(report.seconds.values())
    return (
        f"{label}: {total:.1f} s ({stages}); read {report.rows_read} rows, quarantined "
        f"{report.quarantined_rows}, wrote {report.changed_rows} changed rows and "
        f"{report.labels} labels ({report.positives} churned)"
    )


def _seed(engine: sa.Engine, n: int) -> float:
    began = time.perf_counter()
    customer_db.seed(engine, TABLES, generate(n, seed=11), DAY1)
    with engine.begin() as conn:  # spread signup days over the month (tenure ticks daily)
        conn.execute(sa.text("SELECT setseed(0.11)"))
        conn.execute(
            sa.text("UPDATE customers SET signup_date = signup_date - floor(random() * 31)::int")
        )
        conn.execute(sa.text("ANALYZE"))
    return time.perf_counter() - began


def _day2(engine: sa.Engine, n: int) -> dict[str, int]:
    counts = {}
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT setseed(0.22)"))
        for name, sql in CHANGES:
            counts[name] = conn.execute(sa.text(sql), {"d2": DAY2}).rowcount
    joiners = generate(max(1, n // 500), seed=12)
    joiners[ENTITY_KEY] = [f"NEW-{i:07d}" for i in range(len(joiners))]
    joiners["tenure"], joiners["total_charges"] = 0, 0.0
    customer_db.add_customers(engine, TABLES, joiners, DAY2)
    counts["joined"] = len(joiners)
    return counts


def main(argv: list[str] | None = None) -> int:
    """Seed, day 1, day 2's changes, day 2; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="churn-db-bench-"))
    home.chmod(0o711)  # as root PostgreSQL runs as the postgres user
    os.environ.update(
        {
            "CHURN_HOME": str(home / "churn"),
            "CHURN_REDIS_HOST": "127.0.0.1",
            "CHURN_REDIS_PORT": str(free_port()),
            "CHURN_REDIS_PASSWORD": f"bench-{secrets.token_hex(8)}",
            "CHURN_REDIS_DB": "0",
        }
    )
    get_settings.cache_clear()
    settings = get_settings()
    pg = twin.TwinConfig(
        home=home / "pg", redis_port=0, postgres_port=free_port(), s3_port=0, mlflow_port=0
    )
    redis_cfg = redis_local.config_from_settings(settings)
    try:
        url = customer_db.start(pg)
        redis_local.start(redis_cfg)
        engine = create_engine(url)
        source = DatabaseSnapshotSource(
            url_secret=None, tables=TABLES, label_horizon_days=1, error_budget=0.01
        )
        print(f"seed {args.customers} customers: {_seed(engine, args.customers):.1f} s", flush=True)
        store = get_store(settings=settings)
        apply_repo(store, settings=settings)
        print(_line(run_day(engine, source, DAY1, settings, store), f"day 1 {DAY1} (initial load)"))
        began = time.perf_counter()
        counts = _day2(engine, args.customers)
        print(f"day 2's changes in the database {counts}: {time.perf_counter() - began:.1f} s")
        print(
            _line(
                run_day(engine, source, DAY2, settings, get_store(settings=settings)),
                f"day 2 {DAY2} (daily run)",
            )
        )
        engine.dispose()
    finally:
        redis_local.stop(redis_cfg)
        customer_db.stop(pg)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
