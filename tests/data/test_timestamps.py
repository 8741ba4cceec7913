"""Event/label timestamps for untimed (single-snapshot) data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from churn.data.timestamps import DEFAULT_SNAPSHOT_TIME, add_months, as_utc, assign_event_time
from churn.schema import EVENT_TIMESTAMP, LABEL_OBSERVED_AT


def test_stamps_every_row_in_utc(telco_df: pd.DataFrame) -> None:
    when = datetime(2025, 6, 1, 12, tzinfo=UTC)
    out = assign_event_time(telco_df, when)
    assert str(out[EVENT_TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert (out[EVENT_TIMESTAMP] == pd.Timestamp(when)).all()
    assert (out[LABEL_OBSERVED_AT] == pd.Timestamp(when + timedelta(days=30))).all()
    assert EVENT_TIMESTAMP not in telco_df.columns  # the input is not modified
    assert list(out.columns[: len(telco_df.columns)]) == list(telco_df.columns)


def test_other_zones_are_converted_and_naive_is_refused(telco_df: pd.DataFrame) -> None:
    plus_two = datetime(2025, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    out = assign_event_time(telco_df.head(3), plus_two, label_delay=timedelta(days=7))
    assert (out[EVENT_TIMESTAMP] == pd.Timestamp("2025-01-01T00:00Z")).all()
    assert (out[LABEL_OBSERVED_AT] == pd.Timestamp("2025-01-08T00:00Z")).all()
    with pytest.raises(ValueError, match="event_time"):
        assign_event_time(telco_df, datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="label_delay"):
        assign_event_time(telco_df, DEFAULT_SNAPSHOT_TIME, label_delay=timedelta(days=-1))


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(datetime(2025, 1, 31, tzinfo=UTC), 1) == datetime(2025, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2024, 1, 31, tzinfo=UTC), 1) == datetime(2024, 2, 29, tzinfo=UTC)
    assert add_months(datetime(2025, 11, 15, tzinfo=UTC), 14) == datetime(2027, 1, 15, tzinfo=UTC)
    assert as_utc(DEFAULT_SNAPSHOT_TIME) == datetime(2025, 1, 1, tzinfo=UTC)
