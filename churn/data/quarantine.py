"""Bad rows never stop the world silently: the quarantine table and the error budget.

Why: a daily ingestion from an operational database meets a few broken rows (a
customer without a billing row, a charge typed in cents, add-ons on a line without
internet) every so often. Failing the whole day for one row would leave the online
store stale for every customer; dropping it silently would hide a broken upstream.
So `split()` judges each row against the same data contract as every other source
(churn.data.contract) and:

- rows that pass go on, cast to the contract's dtypes;
- rows that fail go to the quarantine table, one record per (row, failed check):
  customer_id, the snapshot's event time, column, check, the offending value, and
  the whole row as JSON (so it can be fixed and replayed);
- `enforce_budget()` fails the run when the quarantined share of the day's rows is
  above the error budget (configs: `error_budget`, 1% by default), naming the
  checks that failed most; under it, the run proceeds and reports the count.

The quarantine table is parquet under CHURN_HOME/quarantine (one file per source),
merged on (customer_id, event_timestamp, column, check), so a re-run of the same day
adds nothing. Rows quarantined are not written to the offline store: their
customers keep their last good snapshot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pandera.errors as pa_errors

from churn.data.contract import CROSS_FIELD_RULES, build_schema
from churn.data.offline import write_parquet_atomic
from churn.data.timestamps import UTC_DTYPE
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, FEATURES, Kind
from churn.settings import Settings

QUARANTINE_COLUMNS: Final = [
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    "column",
    "check",
    "value",
    "row",
    "quarantined_at",
]
QUARANTINE_KEYS: Final = [ENTITY_KEY, EVENT_TIMESTAMP, "column", "check"]
NOT_NULL: Final = "not_null"
_RULE_COLUMN: Final = {rule.name: rule.column for rule in CROSS_FIELD_RULES}
_TOP: Final = 5


class ErrorBudgetExceededError(RuntimeError):
    """More rows failed the contract than the error budget allows; nothing was ingested."""


@dataclass(frozen=True)
class Split:
    """The day's rows judged: those that pass (typed), and one record per failure."""

    valid: pd.DataFrame
    quarantined: pd.DataFrame
    rows: int

    @property
    def bad_rows(self) -> int:
        """Distinct rows quarantined (a row can fail several checks)."""
        return int(self.quarantined[ENTITY_KEY].nunique()) if len(self.quarantined) else 0

    @property
    def share(self) -> float:
        """Quarantined rows / all rows of the day (0 for an empty day)."""
        return self.bad_rows / self.rows if self.rows else 0.0

    def counts(self) -> dict[str, int]:
        """Quarantined rows per "column/check", most frequent first."""
        if not len(self.quarantined):
            return {}
        keys = self.quarantined["column"].astype(str) + "/" + self.quarantined["check"]
        return {str(k): int(v) for k, v in keys.value_counts().items()}


def quarantine_path(settings: Settings, source: str) -> Path:
    """The quarantine table of one source (e.g. "customer_db")."""
    return settings.home / "quarantine" / f"{source}.parquet"


def split(customers: pd.DataFrame, *, quarantined_at: pd.Timestamp) -> Split:
    """Judge every row (decoded, object columns) against the data contract.

    First nulls (a value missing or undecodable), then the pandera contract on the
    rows without nulls, cast to its dtypes: range, category, cross-field and
    uniqueness failures are per row, so each names its customer.
    """
    frame = customers.reset_index(drop=True)
    names = [f.name for f in FEATURES]
    records = [_null_records(frame, names)]
    complete = frame[~frame[names].isna().any(axis=1) & frame[ENTITY_KEY].notna()]
    typed = _cast(complete)
    records.append(_contract_records(typed))
    failures = pd.concat(records, ignore_index=True)
    bad = set(failures["index"].tolist())
    valid = typed[~typed.index.isin(bad)].reset_index(drop=True)
    return Split(
        valid=valid, quarantined=_records(frame, failures, quarantined_at), rows=len(frame)
    )


def _null_records(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    nulls = frame[[ENTITY_KEY, *names]].isna()
    rows, cols = np.nonzero(nulls.to_numpy())
    columns = np.array([ENTITY_KEY, *names], dtype=object)
    return pd.DataFrame(
        {"index": frame.index[rows], "column": columns[cols], "check": NOT_NULL, "value": None}
    )


def _cast(frame: pd.DataFrame) -> pd.DataFrame:
    """The contract's dtypes: int64, float64 for numbers; categories stay object."""
    out = frame.copy()
    for feat in FEATURES:
        if feat.kind is Kind.INT:
            out[feat.name] = out[feat.name].astype("int64")
        elif feat.kind is Kind.FLOAT:
            out[feat.name] = out[feat.name].astype("float64")
    return out


def _contract_records(typed: pd.DataFrame) -> pd.DataFrame:
    empty = pd.DataFrame({"index": [], "column": [], "check": [], "value": []})
    if typed.empty:
        return empty
    try:
        build_schema(require_timestamps=True, require_label=False).validate(typed, lazy=True)
    except pa_errors.SchemaErrors as e:
        if e.failure_cases["index"].isna().any():  # a whole column broke: not a row problem
            raise
        cases = e.failure_cases.copy()
    else:
        return empty
    rules = cases["check"].isin(list(_RULE_COLUMN))
    cases.loc[rules, "column"] = cases.loc[rules, "check"].map(_RULE_COLUMN)
    duplicates = cases["check"].astype(str).str.contains("unique|duplicate", regex=True)
    cases.loc[duplicates, "column"] = ENTITY_KEY
    cases = cases.drop_duplicates(subset=["index", "column", "check"])
    out = pd.DataFrame(
        {
            "index": cases["index"].astype("int64").to_numpy(),
            "column": cases["column"].astype(str).to_numpy(),
            "check": cases["check"].astype(str).to_numpy(),
        }
    )
    out["value"] = [
        _json_value(typed.at[i, c]) if c in typed.columns else None
        for i, c in zip(out["index"], out["column"], strict=True)
    ]
    return out


def _json_value(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def _records(frame: pd.DataFrame, failures: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """One quarantine record per failure, with the offending row as JSON."""
    if failures.empty:
        return empty_quarantine()
    rows = frame.loc[failures["index"].to_numpy()]
    row_json = [
        json.dumps({k: _json_value(v) for k, v in row.items() if k != EVENT_TIMESTAMP})
        for row in rows.to_dict("records")
    ]
    out = pd.DataFrame(
        {
            ENTITY_KEY: rows[ENTITY_KEY].astype(object).to_numpy(),
            EVENT_TIMESTAMP: rows[EVENT_TIMESTAMP].to_numpy(),
            "column": failures["column"].to_numpy(),
            "check": failures["check"].to_numpy(),
            "value": failures["value"].to_numpy(),
            "row": row_json,
        }
    )
    out[EVENT_TIMESTAMP] = out[EVENT_TIMESTAMP].astype(UTC_DTYPE)
    out["quarantined_at"] = pd.Series(at, index=out.index, dtype=UTC_DTYPE)
    return out[QUARANTINE_COLUMNS]


def empty_quarantine() -> pd.DataFrame:
    """A quarantine frame with no records, typed like a stored one."""
    out = pd.DataFrame({c: pd.Series(dtype=object) for c in QUARANTINE_COLUMNS})
    out[EVENT_TIMESTAMP] = out[EVENT_TIMESTAMP].astype(UTC_DTYPE)
    out["quarantined_at"] = out["quarantined_at"].astype(UTC_DTYPE)
    return out


def enforce_budget(result: Split, budget: float) -> None:
    """ErrorBudgetExceededError when the quarantined share of rows is above `budget`."""
    if result.share > budget:
        top = dict(list(result.counts().items())[:_TOP])
        raise ErrorBudgetExceededError(
            f"{result.bad_rows} of {result.rows} rows ({result.share:.2%}) failed the data "
            f"contract, above the error budget of {budget:.2%}; most frequent failures "
            f"(column/check: rows): {top}. They are in the quarantine table; nothing was "
            "ingested for this day."
        )


def write_quarantine(records: pd.DataFrame, path: Path) -> int:
    """Merge records into the quarantine table; returns how many were new.

    A record already stored under the same (customer_id, event_timestamp, column,
    check) keeps its first quarantined_at, so re-running a day adds nothing.
    """
    stored = read_quarantine(path)
    if records.empty:
        return 0
    key = stored[QUARANTINE_KEYS].astype(str).agg("|".join, axis=1) if len(stored) else None
    new_key = records[QUARANTINE_KEYS].astype(str).agg("|".join, axis=1)
    fresh = records if key is None else records[~new_key.isin(set(key))]
    fresh = fresh.drop_duplicates(subset=QUARANTINE_KEYS)
    if fresh.empty:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    merged = pd.concat([stored, fresh], ignore_index=True) if len(stored) else fresh
    write_parquet_atomic(merged.reset_index(drop=True), path)
    return len(fresh)


def read_quarantine(path: Path) -> pd.DataFrame:
    """The stored quarantine table (empty when nothing was ever quarantined)."""
    if not path.exists():
        return empty_quarantine()
    return pd.read_parquet(path)
