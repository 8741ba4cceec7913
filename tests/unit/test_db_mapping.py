"""The customer database mapping, decoding, quarantine rules and schedule merge, without
a server (the server-side behaviour is tests/integration/test_db_ingest.py's)."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml

from churn.data.database import (
    MAPPING,
    Role,
    SchemaDriftError,
    check_categories,
    decode,
    encode,
    months_since,
    snapshot_time,
    unmapped_features,
)
from churn.data.quarantine import NOT_NULL, ErrorBudgetExceededError, Split, enforce_budget, split
from churn.data.synthetic import generate
from churn.schedule import merge_schedule
from churn.schema import ENTITY_KEY, feature_names

DAY = date(2025, 3, 10)


def _as_database_text(customers: pd.DataFrame) -> pd.DataFrame:
    """encode() then the text PostgreSQL's COPY gives back: one row per customer."""
    parts = encode(customers, DAY)
    joined = parts[Role.CUSTOMERS]
    for role in (Role.SUBSCRIPTIONS, Role.BILLING):
        joined = joined.merge(parts[role], on=ENTITY_KEY)
    out = pd.DataFrame({ENTITY_KEY: joined[ENTITY_KEY]})
    for column in MAPPING:
        values = joined[column.column]
        if values.dtype == bool:
            out[column.feature] = values.map({True: "t", False: "f"})
        else:
            out[column.feature] = values.map(lambda v: None if v is None else str(v))
    return out


def test_every_schema_feature_is_mapped_exactly_once() -> None:
    assert unmapped_features() == []
    counts = Counter(c.feature for c in MAPPING)
    assert [name for name, n in counts.items() if n > 1] == []
    assert sorted(counts) == sorted(feature_names())


def test_encode_then_decode_gives_the_schema_rows_back() -> None:
    customers = generate(500, seed=3)
    decoded = decode(_as_database_text(customers), DAY)
    for name in feature_names():
        assert decoded[name].tolist() == customers[name].tolist(), name
    assert decoded["tenure"].dtype == "int64" and decoded["monthly_charges"].dtype == "float64"
    assert set(decoded["event_timestamp"]) == {snapshot_time(DAY)}


@pytest.mark.parametrize(
    ("signup", "day", "months"),
    [
        ("2025-01-31", date(2025, 2, 27), 0),
        ("2025-01-31", date(2025, 2, 28), 1),  # the anniversary clamped to the month's end
        ("2025-01-31", date(2025, 3, 30), 1),
        ("2025-01-31", date(2025, 3, 31), 2),
        ("2024-03-10", date(2025, 3, 10), 12),
        ("2025-03-10", date(2025, 3, 10), 0),
    ],
)
def test_tenure_counts_whole_months_from_the_signup_date(
    signup: str, day: date, months: int
) -> None:
    assert months_since(pd.Series([signup]), day).tolist() == [months]


def test_undecodable_values_become_nulls_that_the_quarantine_names() -> None:
    raw = _as_database_text(generate(20, seed=1))
    raw.loc[3, "partner"] = "maybe"  # not a boolean
    raw.loc[4, "tenure"] = None  # no signup date
    judged = split(decode(raw, DAY), quarantined_at=pd.Timestamp("2025-03-10", tz="UTC"))
    assert (judged.rows, judged.bad_rows, len(judged.valid)) == (20, 2, 18)
    records = judged.quarantined.set_index(ENTITY_KEY)
    assert records.loc[raw.loc[3, ENTITY_KEY], ["column", "check"]].tolist() == [
        "partner",
        NOT_NULL,
    ]
    assert records.loc[raw.loc[4, ENTITY_KEY], ["column", "check"]].tolist() == ["tenure", NOT_NULL]


def test_duplicate_customers_are_quarantined_both() -> None:
    raw = _as_database_text(generate(10, seed=2))
    raw = pd.concat([raw, raw.iloc[[5]]], ignore_index=True)
    judged = split(decode(raw, DAY), quarantined_at=pd.Timestamp("2025-03-10", tz="UTC"))
    assert judged.bad_rows == 1 and len(judged.valid) == 9
    assert set(judged.quarantined["column"]) == {ENTITY_KEY}


def test_a_new_category_is_schema_drift_naming_column_and_value() -> None:
    raw = _as_database_text(generate(10, seed=2))
    raw.loc[0, "payment_method"] = "Crypto"
    with pytest.raises(
        SchemaDriftError, match=r"'payment_method' \(source billing\.payment_method\).*'Crypto': 1"
    ):
        check_categories(decode(raw, DAY))


def test_the_error_budget_is_a_share_of_rows() -> None:
    records = pd.DataFrame(
        {ENTITY_KEY: ["a", "a", "b"], "column": ["x", "y", "x"], "check": ["c"] * 3}
    )
    at_budget = Split(valid=pd.DataFrame(), quarantined=records, rows=200)  # 2 rows: 1%
    enforce_budget(at_budget, 0.01)
    over = Split(valid=pd.DataFrame(), quarantined=records, rows=199)
    with pytest.raises(ErrorBudgetExceededError, match=r"2 of 199 rows \(1\.01%\).*'x/c': 2"):
        enforce_budget(over, 0.01)


def test_a_schedule_file_is_laid_over_the_config(tmp_path: Path) -> None:
    base = {"parameters": {"source": {"url_secret": None, "tables": {"a": 1}}, "day": None}}
    schedule = tmp_path / "s.yaml"
    schedule.write_text(
        yaml.safe_dump(
            {
                "schedule": {"cron_expression": "0 3 * * *"},
                "parameters": {"source": {"url_secret": "db"}},
            }
        )
    )
    merged = merge_schedule(base, schedule)
    assert merged["parameters"] == {"source": {"url_secret": "db", "tables": {"a": 1}}, "day": None}
    assert merged["schedule"] == {"cron_expression": "0 3 * * *"}
    schedule.write_text(yaml.safe_dump({"schedule": {"name": "x"}}))
    with pytest.raises(ValueError, match=r"no schedule\.cron_expression"):
        merge_schedule(base, schedule)
