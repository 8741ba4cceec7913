"""The parquet offline store that Feast's file sources read.

One table per feature group (churn.schema.Group) with columns customer_id,
event_timestamp, created_timestamp and that group's features, plus a separate
labels table (customer_id, event_timestamp, churn, label_observed_at) that training
uses as its entity frame. Keeping labels apart means the feature tables can be
served and materialised without ever carrying the target.

Writes are:
- validated first: the whole frame must pass the data contract, or nothing is written;
- idempotent: rows are merged with the existing table on (customer_id,
  event_timestamp). A row identical to the stored one is kept as stored (with its
  original created_timestamp), so writing the same frame twice leaves identical
  tables; a changed row replaces the stored one when its created_timestamp is
  later (Feast's own tie-break); new keys are appended;
- atomic per table: written to a temporary file in the same directory and renamed
  over the old one (os.replace), so a crash leaves either the old or the new file,
  never half of one. A crash between tables leaves some tables updated and some
  not; re-running the same write completes it (idempotence).

Timestamps are stored timezone-aware UTC (nanoseconds), as Feast's file sources expect.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from churn.data.contract import (
    DataContractError,
    build_labels_schema,
    schema_failures,
    validate,
)
from churn.data.timestamps import UTC_DTYPE, as_utc
from churn.schema import (
    CREATED_TIMESTAMP,
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    LABEL,
    LABEL_OBSERVED_AT,
    Group,
    feature_names,
)
from churn.settings import get_settings

LABELS_TABLE: Final = "labels"
KEYS: Final = (ENTITY_KEY, EVENT_TIMESTAMP)


class OfflineStoreError(RuntimeError):
    """An existing offline table cannot be merged with (wrong columns, unreadable)."""


@dataclass(frozen=True)
class OfflineWriteResult:
    """What a write did: the file of each table, its row count after the write, rows added.

    Keys are table names: each Group value ("demographics", ...) and "labels" (only
    when the frame carried labels). `changed` counts rows appended or replaced by
    this write; 0 everywhere means the write was a no-op.
    """

    paths: dict[str, Path]
    rows: dict[str, int]
    changed: dict[str, int]


def table_columns(name: str) -> list[str]:
    """Columns of an offline table, in stored order: a Group value or "labels"."""
    if name == LABELS_TABLE:
        return [ENTITY_KEY, EVENT_TIMESTAMP, LABEL, LABEL_OBSERVED_AT]
    return [ENTITY_KEY, EVENT_TIMESTAMP, CREATED_TIMESTAMP, *feature_names(Group(name))]


def table_path(name: str, offline_dir: Path | None = None) -> Path:
    """File of one offline table; file names come from settings.offline_table."""
    default = get_settings().offline_table(name)
    return default if offline_dir is None else offline_dir / default.name


def read_offline_table(name: str, offline_dir: Path | None = None) -> pd.DataFrame:
    """One stored table as a frame; FileNotFoundError names the file if never written."""
    path = table_path(name, offline_dir)
    if not path.exists():
        raise FileNotFoundError(f"offline table {name!r} not written yet: {path}")
    return pd.read_parquet(path)


def write_offline_store(
    df: pd.DataFrame,
    offline_dir: Path | None = None,
    *,
    created_at: datetime | None = None,
) -> OfflineWriteResult:
    """Validate `df` and merge it into every offline table (see the module docstring).

    `df` needs customer_id, every feature and event_timestamp; with a `churn` column
    it also needs label_observed_at and the labels table is written too.
    `offline_dir` defaults to settings.offline_dir; `created_at` (timezone-aware)
    defaults to the time of this call and stamps created_timestamp of new rows.
    Raises churn.data.contract.DataContractError, before writing anything, when `df`
    breaks the contract.
    """
    created = as_utc(created_at, what="created_at") if created_at is not None else datetime.now(UTC)
    validate(df, require_timestamps=True)
    tables = {group.value: _feature_rows(df, group, created) for group in Group}
    if LABEL in df.columns:
        tables[LABELS_TABLE] = df[table_columns(LABELS_TABLE)].reset_index(drop=True)
    return _write_tables(tables, offline_dir)


def write_labels(labels: pd.DataFrame, offline_dir: Path | None = None) -> OfflineWriteResult:
    """Merge label rows (outcomes that arrived later) into the labels table alone.

    Why apart from write_offline_store: realized churn arrives weeks after the
    snapshot whose features are already stored; the outcome rows carry only the
    labels table's columns. Validated first against the labels contract
    (churn.data.contract.build_labels_schema; DataContractError, nothing written);
    merged like every table (idempotent, atomic). Checks against the stores (known
    customers, duplicates, prediction times) are churn.data.outcomes'.
    """
    failures = schema_failures(build_labels_schema(), labels)
    if failures:
        raise DataContractError(failures)
    rows = labels[table_columns(LABELS_TABLE)].reset_index(drop=True)
    return _write_tables({LABELS_TABLE: rows}, offline_dir)


def _write_tables(tables: dict[str, pd.DataFrame], offline_dir: Path | None) -> OfflineWriteResult:
    """Merge each validated frame into its table; rewrite only the tables that changed."""
    paths: dict[str, Path] = {}
    rows: dict[str, int] = {}
    changed: dict[str, int] = {}
    for name, new in tables.items():
        path = table_path(name, offline_dir)
        stored = _read_existing(path, name)
        merged, changed[name] = _merge(stored, new)
        if stored is None or changed[name]:  # an unchanged table is not rewritten
            path.parent.mkdir(parents=True, exist_ok=True)
            write_parquet_atomic(merged, path)
        paths[name], rows[name] = path, len(merged)
    return OfflineWriteResult(paths=paths, rows=rows, changed=changed)


def _feature_rows(df: pd.DataFrame, group: Group, created: datetime) -> pd.DataFrame:
    """The rows of one feature group's table for a validated frame."""
    out = df[[ENTITY_KEY, EVENT_TIMESTAMP, *feature_names(group)]].reset_index(drop=True)
    out.insert(
        2, CREATED_TIMESTAMP, pd.Series(pd.Timestamp(created), index=out.index, dtype=UTC_DTYPE)
    )
    return out


def _read_existing(path: Path, name: str) -> pd.DataFrame | None:
    """The stored table, or None; OfflineStoreError if its columns are not this table's."""
    if not path.exists():
        return None
    stored = pd.read_parquet(path)
    expected = table_columns(name)
    if list(stored.columns) != expected:
        raise OfflineStoreError(
            f"{path} has columns {list(stored.columns)}, expected {expected}: the schema "
            "changed since it was written; move the file away and re-ingest"
        )
    return stored


def _merge(stored: pd.DataFrame | None, new: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Stored rows updated with `new` on (customer_id, event_timestamp); rows changed.

    A new row equal to the stored row of its key (created_timestamp aside) is
    dropped, so re-writes change nothing; a differing one replaces the stored row
    unless the stored row was created later (Feast's tie-break; tables without
    created_timestamp: the new row wins); a new key is appended. Rows are compared
    column-wise on numpy arrays: no per-row Python, no all-column joins.
    """
    if stored is None or stored.empty:
        return _canonical_order(new), len(new)
    position = _key_positions(stored, new)
    matched = np.flatnonzero(position >= 0)
    stored_at = position[matched]
    same = np.ones(len(matched), dtype=bool)
    for column in new.columns:
        if column not in KEYS and column != CREATED_TIMESTAMP:
            same &= _values(stored[column])[stored_at] == _values(new[column])[matched]
    differing, stored_differing = matched[~same], stored_at[~same]
    if CREATED_TIMESTAMP in new.columns:
        newer = (
            _values(new[CREATED_TIMESTAMP])[differing]
            >= _values(stored[CREATED_TIMESTAMP])[stored_differing]
        )
        differing, stored_differing = differing[newer], stored_differing[newer]
    take = position < 0
    take[differing] = True
    changed = int(take.sum())
    if not changed:
        return stored, 0
    keep = np.ones(len(stored), dtype=bool)
    keep[stored_differing] = False
    merged = pd.concat([stored[keep], new[take]], ignore_index=True)
    return _canonical_order(merged), changed


def _key_positions(stored: pd.DataFrame, new: pd.DataFrame) -> np.ndarray[Any, Any]:
    """For each new row, the position of the stored row with its key, or -1.

    Keys become one int64 per row (joint, unsorted factorisation of both frames), so
    matching is one integer hash lookup; a MultiIndex would sort the string ids.
    """
    codes = []
    for column in KEYS:
        both = np.concatenate([_values(stored[column]), _values(new[column])])
        codes.append(pd.factorize(both, sort=False)[0].astype(np.int64))
    n_times = int(codes[1].max()) + 1
    composite = codes[0] * n_times + codes[1]
    stored_keys = pd.Index(composite[: len(stored)])
    if not stored_keys.is_unique:
        raise OfflineStoreError(f"stored table has duplicate {KEYS} keys; re-ingest it")
    positions: np.ndarray[Any, Any] = stored_keys.get_indexer(composite[len(stored) :])
    return positions


def _values(column: pd.Series) -> np.ndarray[Any, Any]:
    """A column as a numpy array for element-wise comparison.

    Timezone-aware timestamps become UTC datetime64[ns]: their default to_numpy()
    builds one Timestamp object per row, 100x slower.
    """
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return np.asarray(column.to_numpy(dtype="datetime64[ns]"))
    return np.asarray(column.to_numpy())


def _canonical_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by (event_timestamp, customer_id): same content, same file, whatever
    the order of earlier writes."""
    times, ids = _values(frame[EVENT_TIMESTAMP]), frame[ENTITY_KEY].to_numpy()
    later = times[1:] > times[:-1]
    in_order = later | ((times[1:] == times[:-1]) & (ids[1:] > ids[:-1]))
    if in_order.all():  # the usual case (a new snapshot appended): skip the string sort
        return frame.reset_index(drop=True)
    return frame.sort_values([EVENT_TIMESTAMP, ENTITY_KEY], kind="stable").reset_index(drop=True)


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write `frame` to `path` via a temporary file and os.replace (never a partial file).

    Public because every parquet table of the project's data home (the offline store,
    the quarantine) must be replaced this way: Feast and the pipelines read them while
    a run writes.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        frame.to_parquet(tmp, index=False)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.replace(path)  # atomic on POSIX: readers see the old file or the new one
    finally:
        tmp.unlink(missing_ok=True)
