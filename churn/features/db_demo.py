"""make db-demo: the customer database end to end, in minutes, on the laptop.

1. start the twin's PostgreSQL (churn.data.customer_db) and seed a database with the
   Telco customers (CHURN_TELCO_CSV / CHURN_TELCO_URL) or synthetic ones, as of day 1;
2. the daily snapshot pipeline for day 1 (`zenml pipeline run`, like cron would);
3. day 2 happens in the database: the customers the seed data labels as churners
   leave, new customers join, some change plan, a few rows arrive broken;
4. the daily snapshot pipeline for day 2: changed rows only, the broken rows in the
   quarantine (under the 1% budget), day 1's labels (horizon 1 day: who left on day 2);
5. the training pipeline on the result.

State lives in CHURN_HOME/db-demo (its own ZenML store, offline and online stores),
rebuilt on every run, and in the database `database` of configs/db_demo.yaml,
reseeded on every run. Each stage prints its wall time.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import yaml

from churn import console, redis_local
from churn.data import customer_db
from churn.data.database import Role, SourceTables, create_engine
from churn.data.quarantine import quarantine_path, read_quarantine
from churn.data.synthetic import generate
from churn.features.daily import QUARANTINE_SOURCE
from churn.loop.demo import champion_lines
from churn.runs import isolated_environment, pipeline_config, run_pipeline
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, LABEL
from churn.settings import PROJECT_ROOT, Settings, get_settings

DEMO_CONFIG: Final = PROJECT_ROOT / "configs" / "db_demo.yaml"
DAILY_CONFIG: Final = PROJECT_ROOT / "configs" / "daily_snapshot_pipeline.yaml"
TRAINING_CONFIG: Final = PROJECT_ROOT / "configs" / "training_pipeline.yaml"
DEMO_DIR: Final = "db-demo"


@dataclass(frozen=True)
class DbDemoConfig:
    """configs/db_demo.yaml."""

    database: str
    synthetic_customers: int
    seed: int
    day1: date
    new_customers: int
    plan_changes: int
    broken_rows: int
    redis_port: int
    pipelines: dict[str, dict[str, Any]]


def load_config(path: Path = DEMO_CONFIG) -> DbDemoConfig:
    """The demo's YAML (unknown keys are an error)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["day1"] = date.fromisoformat(str(raw["day1"]))
    return DbDemoConfig(**raw)


def day_two(
    engine: Any, tables: SourceTables, seeded: pd.DataFrame, config: DbDemoConfig, day: date
) -> dict[str, int]:
    """Day 2 in the database: churners leave, customers join, plans change, rows break."""
    rng = np.random.default_rng(config.seed)
    churners = seeded.loc[seeded[LABEL] == 1, ENTITY_KEY].tolist()
    customer_db.mark_churned(engine, tables, churners, day)
    stayers = seeded.loc[seeded[LABEL] == 0, ENTITY_KEY].to_numpy()
    picked = rng.choice(stayers, size=config.plan_changes + config.broken_rows, replace=False)
    contracts = seeded.set_index(ENTITY_KEY)["contract"]
    for cid in picked[: config.plan_changes]:  # month-to-month -> one year, else back
        contract = "One year" if contracts[cid] == "Month-to-month" else "Month-to-month"
        customer_db.update_columns(
            engine, tables, Role.SUBSCRIPTIONS, str(cid), {"contract_type": contract}
        )
    for cid in picked[config.plan_changes :]:  # a charge typed in cents: out of range
        customer_db.update_columns(
            engine, tables, Role.BILLING, str(cid), {"monthly_charges": 4999.0}
        )
    joiners = generate(config.new_customers, seed=config.seed + 1)
    joiners[ENTITY_KEY] = [f"NEW-{day:%Y%m%d}-{i:05d}" for i in range(len(joiners))]
    joiners["tenure"] = 0
    joiners["total_charges"] = 0.0
    customer_db.add_customers(engine, tables, joiners, day)
    return {
        "churned": len(churners),
        "plan_changes": config.plan_changes,
        "broken": config.broken_rows,
        "joined": len(joiners),
    }


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main() -> int:
    """Run the demo; print each stage's wall time and what the stores hold."""
    console.install()
    began = time.perf_counter()
    config = load_config()
    home = get_settings().home / DEMO_DIR
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    url = customer_db.start(database=config.database)
    # Its own home and Redis: the demo's customers and days never reach the stores
    # that `make demo` and serving use.
    os.environ["CHURN_HOME"] = str(home)
    os.environ["CHURN_REDIS_PORT"] = str(config.redis_port)
    get_settings.cache_clear()
    settings = get_settings()
    redis = redis_local.config_from_settings(settings)
    redis_local.start(redis)
    try:
        return _run(config, settings, url, home, began)
    finally:
        redis_local.stop(redis)


def _run(config: DbDemoConfig, settings: Settings, url: str, home: Path, began: float) -> int:
    """The demo's stages, in the demo's home (main() set it up)."""
    env = {**isolated_environment(home), "CHURN_CUSTOMER_DB_URL": url}
    daily = yaml.safe_load(DAILY_CONFIG.read_text())["parameters"]
    source = {**daily["source"], **config.pipelines["daily_snapshot_pipeline"]}
    tables = SourceTables(**source["tables"])
    engine = create_engine(url)
    day1, day2 = config.day1, config.day1 + timedelta(days=1)
    log = home / "pipelines.log"

    def stage(name: str, seconds: float) -> None:
        _say(f"[{time.perf_counter() - began:6.1f} s] {name}: {seconds:.1f} s")

    def snapshot(day: date) -> float:
        path = pipeline_config(
            "daily_snapshot_pipeline",
            {},
            home / "configs",
            {"source": source, "day": day.isoformat(), "backfill_from": None},
        )
        return run_pipeline("daily_snapshot_pipeline", path, env, log=log)

    mark = time.perf_counter()
    seeded = customer_db.seed_customers(config.synthetic_customers, config.seed)
    customer_db.seed(engine, tables, seeded, day1)
    stage(f"seed {len(seeded)} customers into {config.database}", time.perf_counter() - mark)
    stage(f"daily snapshot of {day1}", snapshot(day1))
    mark = time.perf_counter()
    changes = day_two(engine, tables, seeded, config, day2)
    stage(f"day 2 in the database {changes}", time.perf_counter() - mark)
    stage(f"daily snapshot of {day2}", snapshot(day2))
    path = pipeline_config(
        "training_pipeline", config.pipelines["training_pipeline"], home / "configs", {}
    )
    stage("training pipeline", run_pipeline("training_pipeline", path, env, log=log))
    engine.dispose()

    labels = pd.read_parquet(settings.offline_table("labels"))
    account = pd.read_parquet(settings.offline_table("account"))
    quarantined = read_quarantine(quarantine_path(settings, QUARANTINE_SOURCE))
    per_day = account[EVENT_TIMESTAMP].dt.date.value_counts().sort_index()
    _say(
        "\noffline store, account rows per snapshot day: "
        + ", ".join(f"{day}: {count}" for day, count in per_day.items())
    )
    churned = int(labels[LABEL].sum())
    _say(f"labels: {len(labels)} rows of {day1} observed on {day2}, {churned} churned")
    checks = (quarantined["column"] + "/" + quarantined["check"]).value_counts().to_dict()
    _say(f"quarantine: {quarantined[ENTITY_KEY].nunique()} rows; failures {checks}")
    model_name = str(yaml.safe_load(TRAINING_CONFIG.read_text())["parameters"]["model_name"])
    _say("\n".join(champion_lines(model_name, settings)))
    _say(f"\ndb demo: {time.perf_counter() - began:.0f} s in total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
