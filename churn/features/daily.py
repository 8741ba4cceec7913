"""Daily snapshots from the customer database: one run per day D, idempotent, with backfill.

What a run for day D does (`run_day`):

1. read: the source's shape is checked (churn.data.database.check_source_schema),
   then the customers active on D (signed up on or before D, not churned on or
   before D: a customer who left is never snapshotted after their churn date) and
   the lifecycle dates the labels need;
2. validate: decoded onto the schema, new categories fail the run (schema drift),
   every row is judged by the data contract; failing rows go to the quarantine table
   and the run fails when their share is above the error budget
   (churn.data.quarantine);
3. write: the snapshot of D, event time D 00:00 UTC, holds the rows that CHANGED
   since each customer's latest stored row before D (new customers, plan or price
   changes, tenure ticking over a month). Unchanged customers are not rewritten:
   their latest row stays the point-in-time answer for D (the feature views' ttl
   is 0), so a day costs what changed, not the whole base, and so does its
   materialization. Then the labels observed on D: every customer of the snapshot
   of S = D - label_horizon_days (active on S, with a stored row at or before S)
   gets churn = 1 when their churn date falls in (S, D], else 0, with
   event_timestamp S and label_observed_at D - so the churn events of D land in the
   labels table on D, as the positives of S (with horizon 1: exactly the churners
   of D);
4. materialize: `materialize-incremental` up to D (churn.features.store), which loads
   only rows newer than the last run, i.e. the changed rows. A first run (no
   materialization yet) loads the stored history with `materialize` instead (with
   ttl 0 Feast's incremental would look back 52 weeks from now, not from D); a
   re-run of a day already materialized loads that day's window again only if it
   wrote something (Feast's Redis writes keep the newer row of a customer).

Idempotent: comparing with the latest row strictly before D makes a re-run of D find
the same changes, and the offline store's merge (churn.data.offline) and the
quarantine's keyed merge add nothing the second time. `backfill` runs D1..D2 in
order, each day once.

A source that keeps only current state (as the demo's tables do) reconstructs past
days from the signup and churn dates with today's attributes; point `tables` at
views over a history (SCD2) table for an exact backfill.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
from feast import FeatureStore
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from churn.data.database import (
    CHURN_DATE,
    SIGNUP_DATE,
    SourceTables,
    read_lifecycle,
    read_snapshot,
    snapshot_time,
)
from churn.data.offline import table_columns, table_path, write_labels, write_offline_store
from churn.data.quarantine import (
    Split,
    enforce_budget,
    quarantine_path,
    split,
    write_quarantine,
)
from churn.data.timestamps import UTC_DTYPE
from churn.features.store import MaterializationReport, materialize, materialize_incremental
from churn.schema import (
    CREATED_TIMESTAMP,
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    LABEL,
    LABEL_OBSERVED_AT,
    Group,
)
from churn.settings import Settings

QUARANTINE_SOURCE = "customer_db"


class DatabaseSnapshotSource(BaseModel):
    """The customer database source of the daily snapshot pipeline (configs/*.yaml).

    `url_secret`: name of a ZenML secret whose key `url` holds the SQLAlchemy URL; None
    reads CHURN_CUSTOMER_DB_URL. `label_horizon_days`: a snapshot's label is whether
    the customer left within this many days after it. `error_budget`: the largest
    share of a day's rows that may fail the contract before the run fails.
    """

    url_secret: str | None
    tables: SourceTables
    label_horizon_days: int = Field(ge=1)
    error_budget: float = Field(ge=0.0, le=1.0)


@dataclass
class DayReport:
    """What one day's run did, with the seconds each stage took."""

    day: date
    rows_read: int
    quarantined_rows: int
    quarantine_share: float
    quarantine_new_records: int
    quarantine_counts: dict[str, int]
    changed_rows: int
    offline_changed: dict[str, int]
    labels: int
    positives: int
    materialized: MaterializationReport | None
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        """JSON-able figures (ZenML metadata, printed lines)."""
        return {
            "day": self.day.isoformat(),
            "rows_read": self.rows_read,
            "quarantined_rows": self.quarantined_rows,
            "quarantine_share": round(self.quarantine_share, 6),
            "quarantine_new_records": self.quarantine_new_records,
            "quarantine_counts": self.quarantine_counts,
            "changed_rows": self.changed_rows,
            "labels": self.labels,
            "positives": self.positives,
            "materialized_views": self.materialized.views if self.materialized else [],
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    began = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - began


def days(start: date, end: date) -> list[date]:
    """Every day from start to end, both included; ValueError when end is before start."""
    if end < start:
        raise ValueError(f"backfill end {end} is before its start {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def run_day(
    engine: Engine,
    source: DatabaseSnapshotSource,
    day: date,
    settings: Settings,
    store: FeatureStore | None = None,
) -> DayReport:
    """The snapshot and labels of `day` (see the module docstring); materialized when a
    store is given. Raises DatabaseUnavailableError / SchemaDriftError before anything
    is written, ErrorBudgetExceededError after writing only the quarantine records."""
    seconds: dict[str, float] = {}
    label_day = day - timedelta(days=source.label_horizon_days)
    with _timed(seconds, "read"):
        customers = read_snapshot(engine, source.tables, day)
        lifecycle = read_lifecycle(engine, source.tables, label_day, day)
    with _timed(seconds, "validate"):
        judged = split(customers, quarantined_at=pd.Timestamp.now(tz="UTC"))
        new_records = write_quarantine(
            judged.quarantined, quarantine_path(settings, QUARANTINE_SOURCE)
        )
        enforce_budget(judged, source.error_budget)
    with _timed(seconds, "write"):
        changed = changed_rows(judged.valid, settings.offline_dir, snapshot_time(day))
        offline = write_offline_store(changed, settings.offline_dir).changed if len(changed) else {}
        labels = labels_observed(lifecycle, settings.offline_dir, label_day, day)
        if len(labels):
            offline.update(write_labels(labels, settings.offline_dir).changed)
    materialized = None
    if store is not None:
        with _timed(seconds, "materialize"):
            wrote = any(offline.get(group.value, 0) for group in Group)
            materialized = materialize_day(store, day, settings.offline_dir, wrote=wrote)
    return _report(day, judged, new_records, changed, offline, labels, materialized, seconds)


def _report(
    day: date,
    judged: Split,
    new_records: int,
    changed: pd.DataFrame,
    offline: dict[str, int],
    labels: pd.DataFrame,
    materialized: MaterializationReport | None,
    seconds: dict[str, float],
) -> DayReport:
    return DayReport(
        day=day,
        rows_read=judged.rows,
        quarantined_rows=judged.bad_rows,
        quarantine_share=judged.share,
        quarantine_new_records=new_records,
        quarantine_counts=judged.counts(),
        changed_rows=len(changed),
        offline_changed=offline,
        labels=len(labels),
        positives=int(labels[LABEL].sum()) if len(labels) else 0,
        materialized=materialized,
        seconds=seconds,
    )


def backfill(
    engine: Engine,
    source: DatabaseSnapshotSource,
    start: date,
    end: date,
    settings: Settings,
    store: FeatureStore | None = None,
    on_day: Callable[[DayReport], None] | None = None,
) -> list[DayReport]:
    """run_day for each day from start to end in order (each day once)."""
    reports = []
    for day in days(start, end):
        report = run_day(engine, source, day, settings, store)
        if on_day is not None:
            on_day(report)
        reports.append(report)
    return reports


# ------------------------------------------------------------------------- changes


def latest_rows(offline_dir: Path, before: pd.Timestamp) -> pd.DataFrame:
    """Each customer's latest stored feature values with event time before `before`,
    indexed by customer_id (empty when nothing is stored)."""
    parts = []
    for group in Group:
        path = table_path(group.value, offline_dir)
        if not path.exists():
            return pd.DataFrame()
        columns = [c for c in table_columns(group.value) if c != CREATED_TIMESTAMP]
        table = pd.read_parquet(path, columns=columns, filters=[(EVENT_TIMESTAMP, "<", before)])
        table = table.sort_values(EVENT_TIMESTAMP, kind="stable")
        table = table.drop_duplicates(ENTITY_KEY, keep="last").set_index(ENTITY_KEY)
        parts.append(table.drop(columns=EVENT_TIMESTAMP))
    return pd.concat(parts, axis=1, join="outer")


def changed_rows(valid: pd.DataFrame, offline_dir: Path, at: pd.Timestamp) -> pd.DataFrame:
    """The rows of `valid` that differ from their customer's latest stored row before
    `at` in any feature (all rows of customers with none)."""
    previous = latest_rows(offline_dir, at)
    if previous.empty:
        return valid
    aligned = previous.reindex(valid[ENTITY_KEY].to_numpy())
    differs = pd.Series(False, index=valid.index)
    for column in previous.columns:
        before = aligned[column].to_numpy()
        now = valid[column].to_numpy()
        differs |= pd.Series((before != now) | pd.isna(before), index=valid.index)
    return valid[differs.to_numpy()].reset_index(drop=True)


# -------------------------------------------------------------------------- labels


def labels_observed(
    lifecycle: pd.DataFrame, offline_dir: Path, label_day: date, day: date
) -> pd.DataFrame:
    """Label rows of the snapshot of `label_day`, observed on `day` (module docstring)."""
    signup, churned = lifecycle[SIGNUP_DATE], lifecycle[CHURN_DATE]
    at_label = pd.Timestamp(label_day)
    active = (signup <= at_label) & (churned.isna() | (churned > at_label))
    candidates = lifecycle[active]
    stored = stored_customers(offline_dir, snapshot_time(label_day))
    candidates = candidates[candidates[ENTITY_KEY].isin(stored)]
    churn = (candidates[CHURN_DATE].notna() & (candidates[CHURN_DATE] <= pd.Timestamp(day))).astype(
        "int64"
    )
    labels = pd.DataFrame(
        {
            ENTITY_KEY: candidates[ENTITY_KEY].astype(object).to_numpy(),
            EVENT_TIMESTAMP: snapshot_time(label_day),
            LABEL: churn.to_numpy(),
            LABEL_OBSERVED_AT: snapshot_time(day),
        }
    )
    for column in (EVENT_TIMESTAMP, LABEL_OBSERVED_AT):
        labels[column] = labels[column].astype(UTC_DTYPE)
    return labels


def stored_customers(offline_dir: Path, at: pd.Timestamp) -> set[str]:
    """Customers with a stored feature row at or before `at` (their features at `at`)."""
    path = table_path(Group.ACCOUNT.value, offline_dir)
    if not path.exists():
        return set()
    ids = pd.read_parquet(path, columns=[ENTITY_KEY], filters=[(EVENT_TIMESTAMP, "<=", at)])
    return set(ids[ENTITY_KEY].tolist())


# --------------------------------------------------------------------- materialize


def materialize_day(
    store: FeatureStore, day: date, offline_dir: Path, *, wrote: bool
) -> MaterializationReport | None:
    """Bring the online store up to the end of `day`'s snapshot (module docstring, 4).

    None when there was nothing to load (a re-run of a day already materialized).
    """
    end = snapshot_time(day).to_pydatetime() + timedelta(seconds=1)
    views = [v for v in store.list_feature_views() if v.online]
    ends = [v.most_recent_end_time for v in views]
    if any(e is None for e in ends):
        return materialize(store, earliest_stored(offline_dir, end), end)
    if all(e is not None and e >= end for e in ends):
        if not wrote:
            return None
        return materialize(store, snapshot_time(day).to_pydatetime(), end)
    return materialize_incremental(store, end)


def earliest_stored(offline_dir: Path, default: datetime) -> datetime:
    """The oldest event time in the offline store (`default` when it is empty)."""
    path = table_path(Group.ACCOUNT.value, offline_dir)
    if not path.exists():
        return default
    times = pd.read_parquet(path, columns=[EVENT_TIMESTAMP])[EVENT_TIMESTAMP]
    return default if times.empty else min(times.min().to_pydatetime(), default)
