"""Realized outcomes: churn observed after a prediction, checked before it is stored.

An outcome is a row of the labels table (customer_id, event_timestamp, churn,
label_observed_at): "the customer of the snapshot taken at event_timestamp left (1)
or stayed (0) in the churn window that followed, as known at label_observed_at".
Its event_timestamp is the snapshot a prediction was made from, so the outcome
joins that prediction (the prediction log's feature_event_time) for the business
KPIs, and the features the model saw for retraining (Feast's point-in-time join).

Outcomes arrive weeks after the snapshot, from a CRM export or (for the demo) the
synthetic generator's simulate_outcomes, and go through the feature pipeline
(steps/data/validate_outcomes.py, write_outcomes.py). On top of the labels schema
(churn.data.contract.build_labels_schema: types, 0/1, not observed before its
snapshot) an outcome batch must not hold:

- outcomes for unknown customers: the id has no row in the offline store at that
  event_timestamp (never seen, or not in that snapshot). Such a label evaluates no
  prediction and the point-in-time join of training would silently drop it;
- duplicate outcomes: the same (customer, snapshot) twice in the batch, or a stored
  outcome of that key with another value. Re-sending an identical outcome is not an
  error (writes are idempotent); a changed one is a conflict a person must resolve;
- outcomes observed before the prediction they would evaluate: label_observed_at
  earlier than the first logged prediction of that customer from that snapshot. A
  prediction cannot be evaluated by what was known before it was made (the outcome's
  times are wrong, or it belongs to another snapshot).

Every broken rule is reported at once (DataContractError, rows named by position and
customer id) and nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, cast

import numpy as np
import pandas as pd

from churn.data.contract import (
    MAX_EXAMPLES,
    ContractFailure,
    DataContractError,
    build_labels_schema,
    schema_failures,
)
from churn.data.offline import (
    LABELS_TABLE,
    OfflineWriteResult,
    table_columns,
    table_path,
    write_labels,
)
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, LABEL, LABEL_OBSERVED_AT, Group

OUTCOME_COLUMNS: Final = tuple(table_columns(LABELS_TABLE))
# Columns of the prediction log the time check reads (churn.loop.predlog.SCHEMA).
FEATURE_EVENT_TIME: Final = "feature_event_time"
PREDICTED_AT: Final = "predicted_at"
# Every customer row is written to every feature-group table, so one lists them all.
_SNAPSHOT_TABLE: Final = Group.ACCOUNT.value


def read_outcomes(path: Path) -> pd.DataFrame:
    """An outcome file (.parquet, or .csv with ISO-8601 times) as a frame of OUTCOME_COLUMNS.

    CSV times are parsed as UTC; an unparseable one becomes NaT, which the contract
    reports with its row. Timezone-aware times become UTC nanoseconds whatever unit
    the file used. Types are otherwise left for the contract to judge.
    """
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix == ".csv":
        frame = pd.read_csv(path, dtype={ENTITY_KEY: object})
        for column in (EVENT_TIMESTAMP, LABEL_OBSERVED_AT):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce")
    else:
        raise ValueError(f"outcomes file must be .parquet or .csv, got {path}")
    # Other writers store microseconds or milliseconds; the offline store keeps ns.
    for column in (EVENT_TIMESTAMP, LABEL_OBSERVED_AT):
        if column in frame and isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").dt.as_unit("ns")
    return frame


def stored_snapshots(offline_dir: Path | None = None) -> pd.DataFrame:
    """(customer_id, event_timestamp) of every customer row in the offline store."""
    path = table_path(_SNAPSHOT_TABLE, offline_dir)
    if not path.exists():
        return pd.DataFrame({ENTITY_KEY: [], EVENT_TIMESTAMP: []})
    return pd.read_parquet(path, columns=[ENTITY_KEY, EVENT_TIMESTAMP])


def stored_labels(offline_dir: Path | None = None) -> pd.DataFrame:
    """The labels table, empty (with its columns) when none was written yet."""
    path = table_path(LABELS_TABLE, offline_dir)
    if not path.exists():
        return pd.DataFrame({column: [] for column in OUTCOME_COLUMNS})
    return pd.read_parquet(path)


def _nanoseconds(times: pd.Series) -> np.ndarray[Any, np.dtype[np.int64]]:
    """UTC epoch nanoseconds, whatever the unit (s, us, ns) the column was stored with."""
    utc = pd.to_datetime(times, utc=True).dt.tz_convert(None).dt.as_unit("ns")
    return np.asarray(utc.astype("int64").to_numpy(), dtype=np.int64)


def _keys(frame: pd.DataFrame, time_column: str = EVENT_TIMESTAMP) -> pd.MultiIndex:
    """(customer_id as str, time as UTC nanoseconds) per row, comparable across frames."""
    return pd.MultiIndex.from_arrays(
        [frame[ENTITY_KEY].astype(str).to_numpy(), _nanoseconds(frame[time_column])],
        names=["id", "t"],
    )


def _failure(
    check: str, column: str, outcomes: pd.DataFrame, rows: np.ndarray[Any, Any], detail: Any
) -> ContractFailure:
    """One ContractFailure naming the first offending rows by position and customer id."""
    shown = rows[:MAX_EXAMPLES]
    examples = tuple(
        (str(outcomes[ENTITY_KEY].iat[i]), f"row {i}: {detail(i)}") for i in shown.tolist()
    )
    return ContractFailure(column, check, len(rows), examples)


def outcome_failures(
    outcomes: pd.DataFrame,
    *,
    snapshots: pd.DataFrame,
    stored: pd.DataFrame,
    predictions: pd.DataFrame,
) -> list[ContractFailure]:
    """The store-level rules of the module docstring, for a frame that passed the schema.

    `snapshots`: (customer_id, event_timestamp) rows of the offline store;
    `stored`: the labels table; `predictions`: prediction-log rows (customer_id,
    feature_event_time, predicted_at), online and batch alike.
    """
    failures: list[ContractFailure] = []
    keys = _keys(outcomes)
    at = outcomes[EVENT_TIMESTAMP]

    def when(i: int) -> str:
        return f"event_timestamp {pd.Timestamp(cast(Any, at.iat[i])).isoformat()}"

    unknown = np.flatnonzero(~keys.isin(_keys(snapshots)))
    if len(unknown):
        failures.append(_failure("known_customer_snapshot", ENTITY_KEY, outcomes, unknown, when))

    repeated = np.flatnonzero(keys.duplicated(keep=False))
    if len(repeated):
        failures.append(_failure("duplicate_outcome", ENTITY_KEY, outcomes, repeated, when))

    if len(stored):
        previous = pd.Series(stored[LABEL].to_numpy(np.int64), index=_keys(stored))
        previous = previous[~previous.index.duplicated()]
        position = previous.index.get_indexer(keys)
        seen = position >= 0
        churn = outcomes[LABEL].to_numpy(np.int64)
        conflict = np.flatnonzero(seen & (previous.to_numpy()[np.maximum(position, 0)] != churn))
        if len(conflict):
            stored_value = previous.to_numpy()[position]
            failures.append(
                _failure(
                    "duplicate_of_stored_outcome",
                    LABEL,
                    outcomes,
                    conflict,
                    lambda i: f"{when(i)}, churn {churn[i]} but {stored_value[i]} is stored",
                )
            )

    if len(predictions):
        made = pd.Series(
            _nanoseconds(predictions[PREDICTED_AT]), index=_keys(predictions, FEATURE_EVENT_TIME)
        )
        first = made.groupby(level=[0, 1]).min()
        first_ns = first.reindex(keys).to_numpy(dtype=np.float64)  # NaN: no prediction
        observed_ns = _nanoseconds(outcomes[LABEL_OBSERVED_AT]).astype(np.float64)
        early = np.flatnonzero(~np.isnan(first_ns) & (observed_ns < first_ns))

        def iso(nanoseconds: float) -> str:
            return pd.Timestamp(int(nanoseconds), unit="ns", tz="UTC").isoformat()

        if len(early):
            failures.append(
                _failure(
                    "observed_before_prediction",
                    LABEL_OBSERVED_AT,
                    outcomes,
                    early,
                    lambda i: (
                        f"observed {iso(float(observed_ns[i]))} before the "
                        f"prediction of {iso(float(first_ns[i]))} ({when(i)})"
                    ),
                )
            )
    return failures


def validate_outcomes(
    outcomes: pd.DataFrame,
    *,
    snapshots: pd.DataFrame,
    stored: pd.DataFrame,
    predictions: pd.DataFrame,
) -> pd.DataFrame:
    """`outcomes` unchanged when every rule holds; else one DataContractError listing all.

    The store-level rules run only on a frame whose columns passed the schema (they
    would report nonsense on wrong types); the schema's failures come first.
    """
    frame = outcomes.reset_index(drop=True)
    failures = schema_failures(build_labels_schema(), frame)
    if not failures:
        failures = outcome_failures(
            frame, snapshots=snapshots, stored=stored, predictions=predictions
        )
    if failures:
        raise DataContractError(failures)
    return outcomes


def ingest_outcomes(
    outcomes: pd.DataFrame, predictions: pd.DataFrame, offline_dir: Path | None = None
) -> OfflineWriteResult:
    """Validate outcomes against the offline store and the prediction log, then write
    them to the labels table (nothing is written when any rule breaks)."""
    validate_outcomes(
        outcomes,
        snapshots=stored_snapshots(offline_dir),
        stored=stored_labels(offline_dir),
        predictions=predictions,
    )
    return write_labels(outcomes[list(OUTCOME_COLUMNS)], offline_dir)
