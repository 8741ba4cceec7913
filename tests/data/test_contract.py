"""The data contract accepts real and synthetic data and rejects each kind of corruption.

Every rejection must name the offending column (and the check), so that whoever
feeds bad data can fix it from the message alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn.data.contract import MAX_EXAMPLES, DataContractError, build_schema, validate
from churn.data.offline import write_offline_store
from churn.data.synthetic import generate
from churn.data.timestamps import DEFAULT_SNAPSHOT_TIME, assign_event_time
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, LABEL, LABEL_OBSERVED_AT

Corruption = Callable[[pd.DataFrame], pd.DataFrame]


@pytest.fixture(scope="module")
def stamped(telco_df: pd.DataFrame) -> pd.DataFrame:
    """The Telco-format data as ingestion stores it: one snapshot time, label timestamps."""
    return assign_event_time(telco_df, DEFAULT_SNAPSHOT_TIME)


def _first(df: pd.DataFrame, mask: pd.Series) -> int:
    """Index label of the first row matching `mask` (fails the test if none)."""
    hits = df.index[mask]
    assert len(hits), "the fixture data has no row to corrupt"
    return int(hits[0])


def _set(
    column: str, value: Any, where: Callable[[pd.DataFrame], pd.Series] | None = None
) -> Corruption:
    """A corruption setting `column` to `value` in the first row matching `where`."""

    def corrupt(df: pd.DataFrame) -> pd.DataFrame:
        row = _first(df, where(df)) if where else int(df.index[0])
        df.loc[row, column] = value
        return df

    return corrupt


def _wrong_dtype(df: pd.DataFrame) -> pd.DataFrame:
    df["tenure"] = df["tenure"].astype("float64")
    return df


def _null_id(df: pd.DataFrame) -> pd.DataFrame:
    df[ENTITY_KEY] = df[ENTITY_KEY].astype(object)
    df.loc[df.index[0], ENTITY_KEY] = None
    return df


def _duplicate_id(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[df.index[1], ENTITY_KEY] = df.loc[df.index[0], ENTITY_KEY]
    return df


def _inconsistent_total(df: pd.DataFrame) -> pd.DataFrame:
    row = _first(df, df["tenure"] > 12)
    df.loc[row, "total_charges"] = df.loc[row, "monthly_charges"]  # ~1 month billed, not 12+
    return df


def _naive_timestamps(df: pd.DataFrame) -> pd.DataFrame:
    df[EVENT_TIMESTAMP] = df[EVENT_TIMESTAMP].dt.tz_convert(None)
    return df


def _label_before_event(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[df.index[0], LABEL_OBSERVED_AT] = df.loc[df.index[0], EVENT_TIMESTAMP] - pd.Timedelta(
        days=1
    )
    return df


def _has_internet(df: pd.DataFrame) -> pd.Series:
    return df["internet_service"] != "No"


def _no_internet(df: pd.DataFrame) -> pd.Series:
    return df["internet_service"] == "No"


def _no_phone(df: pd.DataFrame) -> pd.Series:
    return df["phone_service"] == "No"


# (id, corruption, column the error must name, text the check name must contain)
CORRUPTIONS: list[tuple[str, Corruption, str, str]] = [
    ("wrong_dtype", _wrong_dtype, "tenure", "dtype"),
    ("unknown_category", _set("contract", "Three year"), "contract", "isin"),
    ("negative_tenure", _set("tenure", -1), "tenure", "in_range"),
    ("null_customer_id", _null_id, ENTITY_KEY, "not_nullable"),
    ("empty_customer_id", _set(ENTITY_KEY, ""), ENTITY_KEY, "non_empty_str"),
    ("duplicate_id_same_time", _duplicate_id, ENTITY_KEY, "uniqueness"),
    ("missing_column", lambda df: df.drop(columns=["payment_method"]), "payment_method", "column"),
    ("monthly_charges_out_of_range", _set("monthly_charges", 500.0), "monthly_charges", "in_range"),
    ("negative_total_charges", _set("total_charges", -5.0), "total_charges", "in_range"),
    ("null_monthly_charges", _set("monthly_charges", np.nan), "monthly_charges", "not_nullable"),
    ("inconsistent_total_charges", _inconsistent_total, "total_charges", "consistent"),
    (
        "addon_without_internet",
        _set("online_security", "Yes", _no_internet),
        "online_security",
        "internet_service",
    ),
    (
        "no_internet_addon_with_internet",
        _set("streaming_tv", "No internet service", _has_internet),
        "streaming_tv",
        "internet_service",
    ),
    (
        "lines_without_phone",
        _set("multiple_lines", "Yes", _no_phone),
        "multiple_lines",
        "phone_service",
    ),
    ("label_not_binary", _set(LABEL, 2), LABEL, "isin"),
    ("naive_event_timestamp", _naive_timestamps, EVENT_TIMESTAMP, "dtype"),
    ("label_before_event", _label_before_event, LABEL_OBSERVED_AT, "not_before"),
]


def test_accepts_cleaned_real_data(real_telco_df: pd.DataFrame) -> None:
    assert validate(real_telco_df) is real_telco_df


def test_accepts_cleaned_telco_format_data(telco_df: pd.DataFrame) -> None:
    assert validate(telco_df) is telco_df


def test_accepts_stamped_telco_format_data(stamped: pd.DataFrame) -> None:
    validate(stamped, require_timestamps=True, require_label=True)


def test_accepts_synthetic_snapshots() -> None:
    df = generate(3000, seed=7, n_snapshots=3)
    validate(df, require_timestamps=True, require_label=True)


@pytest.mark.parametrize(
    ("corrupt", "column", "check"),
    [pytest.param(c, col, chk, id=name) for name, c, col, chk in CORRUPTIONS],
)
def test_rejects_corruption(
    stamped: pd.DataFrame, corrupt: Corruption, column: str, check: str
) -> None:
    bad = corrupt(stamped.copy())
    with pytest.raises(DataContractError) as err:
        validate(bad)
    named = [f for f in err.value.failures if f.column == column]
    assert named, f"no failure names {column!r}: {err.value}"
    assert any(check in f.check for f in named), str(err.value)
    assert repr(column) in str(err.value)


def test_failure_lists_offending_customers(stamped: pd.DataFrame) -> None:
    bad = stamped.copy()
    rows = bad.index[:12]
    bad.loc[rows, "gender"] = "Unknown"
    with pytest.raises(DataContractError) as err:
        validate(bad)
    (failure,) = [f for f in err.value.failures if f.column == "gender"]
    assert failure.count == 12
    assert len(failure.examples) == MAX_EXAMPLES
    assert failure.examples[0] == (bad.loc[rows[0], ENTITY_KEY], "Unknown")
    assert bad.loc[rows[0], ENTITY_KEY] in str(err.value)


def test_all_failures_are_reported_at_once(stamped: pd.DataFrame) -> None:
    bad = _set("tenure", -3)(_set("contract", "Forever")(stamped.copy()))
    with pytest.raises(DataContractError) as err:
        validate(bad)
    assert {"tenure", "contract"} <= {f.column for f in err.value.failures}
    assert isinstance(err.value, ValueError)


def test_same_customer_at_two_times_is_not_a_duplicate(stamped: pd.DataFrame) -> None:
    later = stamped.copy()
    later[EVENT_TIMESTAMP] = later[EVENT_TIMESTAMP] + pd.Timedelta(days=31)
    later[LABEL_OBSERVED_AT] = later[LABEL_OBSERVED_AT] + pd.Timedelta(days=31)
    validate(pd.concat([stamped, later], ignore_index=True))


def test_non_unique_index_still_names_rows(stamped: pd.DataFrame) -> None:
    contract = stamped["contract"].to_numpy().copy()
    contract[5] = "Lifetime"
    bad = stamped.assign(contract=contract)
    bad.index = pd.Index(np.zeros(len(bad), dtype=int))  # e.g. after a careless concat
    with pytest.raises(DataContractError) as err:
        validate(bad)
    (failure,) = [f for f in err.value.failures if f.column == "contract"]
    assert failure.examples == ((stamped.iloc[5][ENTITY_KEY], "Lifetime"),)


def test_requirements_follow_the_schema_flags(telco_df: pd.DataFrame) -> None:
    schema = build_schema(require_timestamps=True, require_label=True)
    assert {EVENT_TIMESTAMP, LABEL, LABEL_OBSERVED_AT} <= set(schema.columns)
    assert LABEL not in build_schema(require_timestamps=False, require_label=False).columns
    with pytest.raises(DataContractError) as err:
        validate(telco_df, require_timestamps=True)
    assert EVENT_TIMESTAMP in {f.column for f in err.value.failures}
    unlabeled = telco_df.drop(columns=[LABEL])
    validate(unlabeled)
    with pytest.raises(DataContractError):
        validate(unlabeled, require_label=True)


def test_untimed_frame_requires_unique_customer_ids(telco_df: pd.DataFrame) -> None:
    bad = pd.concat([telco_df, telco_df.iloc[[0]]], ignore_index=True)
    with pytest.raises(DataContractError) as err:
        validate(bad)
    assert any(f.column == ENTITY_KEY and "uniqueness" in f.check for f in err.value.failures)


def test_nothing_is_written_for_invalid_input(stamped: pd.DataFrame, tmp_path: Path) -> None:
    offline = tmp_path / "offline"
    bad = _set("tenure", -1)(stamped.copy())
    with pytest.raises(DataContractError):
        write_offline_store(bad, offline)
    assert not offline.exists() or list(offline.iterdir()) == []
    # And an existing store is left untouched by a rejected write.
    write_offline_store(stamped, offline)
    before = {p.name: p.read_bytes() for p in offline.iterdir()}
    with pytest.raises(DataContractError):
        write_offline_store(bad, offline)
    assert {p.name: p.read_bytes() for p in offline.iterdir()} == before
