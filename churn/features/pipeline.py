"""The feature pipeline as step-shaped functions: load -> validate -> write -> apply -> materialize.

Each function takes typed inputs and returns typed outputs, holds no global state and
is what one ZenML step wraps (steps/data, steps/features) and what `churn features
run` chains without ZenML, so both paths run the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, Field

from churn.data.contract import validate
from churn.data.database import SourceTables, create_engine, read_snapshot
from churn.data.offline import OfflineWriteResult, write_offline_store
from churn.data.synthetic import generate
from churn.data.telco import load_telco
from churn.data.timestamps import DEFAULT_SNAPSHOT_TIME, assign_event_time
from churn.features.store import (
    ApplyReport,
    MaterializationReport,
    apply_repo,
    get_store,
    materialize,
)
from churn.schema import EVENT_TIMESTAMP
from churn.settings import FEATURE_REPO, Settings, get_settings


class DataSource(BaseModel):
    """Where customer data comes from; every field is a tunable of configs/*.yaml.

    kind "telco" reads the IBM Telco CSV (csv_path, else CHURN_TELCO_CSV, else a
    download of CHURN_TELCO_URL verified by sha256); "synthetic" generates customers
    with a seed. snapshot_time stamps the single Telco snapshot. "database" reads the
    customers active on snapshot_time's day from the customer database
    (CHURN_CUSTOMER_DB_URL; `tables` names its tables; churn.data.database); daily
    runs with quarantine and labels are pipelines/daily_snapshot_pipeline.py's.
    """

    kind: Literal["telco", "synthetic", "database"] = "synthetic"
    tables: SourceTables | None = None
    csv_path: Path | None = None
    n_customers: int = Field(default=10_000, ge=1, le=5_000_000)
    n_snapshots: int = Field(default=1, ge=1)
    seed: int = 0
    snapshot_time: datetime = DEFAULT_SNAPSHOT_TIME


class OutcomeSource(BaseModel):
    """Realized outcomes to ingest (configs/feature_pipeline*.yaml: parameters.outcomes).

    `path`: a .parquet or .csv of labels-table rows (churn.data.outcomes), e.g. a CRM
    export or the loop demo's simulated outcomes. `prediction_log_uri`: the log whose
    predictions the outcomes must not predate (None: CHURN_HOME/prediction_log).
    """

    path: Path
    prediction_log_uri: str | None


def load_customers(source: DataSource) -> pd.DataFrame:
    """Customers with features, label and event timestamps, from the configured source."""
    if source.kind == "telco":
        return assign_event_time(load_telco(source.csv_path), source.snapshot_time)
    if source.kind == "database":
        return load_database(source)
    return generate(
        source.n_customers,
        seed=source.seed,
        n_snapshots=source.n_snapshots,
        start=source.snapshot_time,
    )


def load_database(source: DataSource) -> pd.DataFrame:
    """The database snapshot of snapshot_time's day (UTC), event time that day 00:00."""
    url = get_settings().customer_db_url
    if source.tables is None or url is None:
        raise ValueError("source kind 'database' needs `tables` and CHURN_CUSTOMER_DB_URL")
    engine = create_engine(url.get_secret_value())
    try:
        return read_snapshot(engine, source.tables, source.snapshot_time.astimezone(UTC).date())
    finally:
        engine.dispose()


def validate_customers(customers: pd.DataFrame) -> pd.DataFrame:
    """The frame unchanged when it meets the data contract; DataContractError otherwise."""
    return validate(customers, require_timestamps=True)


def write_offline(customers: pd.DataFrame, settings: Settings | None = None) -> OfflineWriteResult:
    """Merge validated customers into the parquet offline store (idempotent)."""
    return write_offline_store(customers, (settings or get_settings()).offline_dir)


def apply_features(settings: Settings | None = None, repo_path: Path = FEATURE_REPO) -> ApplyReport:
    """`feast apply` of feature_repo/ against the configured registry."""
    return apply_repo(get_store(repo_path, settings), repo_path)


@dataclass(frozen=True)
class MaterializeWindow:
    """The event-time window to load into the online store."""

    start: datetime
    end: datetime


def materialize_window(customers: pd.DataFrame) -> MaterializeWindow:
    """The window covering every row of `customers`.

    Feast loads rows with start <= event_timestamp < end, so end is one second past
    the newest row.
    """
    times = customers[EVENT_TIMESTAMP]
    return MaterializeWindow(
        start=times.min().to_pydatetime(), end=times.max().to_pydatetime() + timedelta(seconds=1)
    )


def materialize_online(
    window: MaterializeWindow, settings: Settings | None = None, repo_path: Path = FEATURE_REPO
) -> MaterializationReport:
    """`feast materialize START END` into the Redis online store."""
    return materialize(get_store(repo_path, settings), window.start, window.end)


@dataclass(frozen=True)
class FeaturePipelineResult:
    """What one feature pipeline run did, for printing and for tests."""

    rows: int
    customers: int
    offline: OfflineWriteResult
    applied: ApplyReport
    materialized: MaterializationReport


def run_feature_pipeline(
    source: DataSource, settings: Settings | None = None
) -> FeaturePipelineResult:
    """The whole feature pipeline without ZenML (same functions as the ZenML steps)."""
    settings = settings or get_settings()
    customers = validate_customers(load_customers(source))
    offline = write_offline(customers, settings)
    applied = apply_features(settings)
    materialized = materialize_online(materialize_window(customers), settings)
    return FeaturePipelineResult(
        rows=len(customers),
        customers=int(customers["customer_id"].nunique()),
        offline=offline,
        applied=applied,
        materialized=materialized,
    )
