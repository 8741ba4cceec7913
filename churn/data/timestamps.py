"""Event and label timestamps for single-snapshot data such as the Telco CSV.

The Telco CSV has no timestamps: every row describes a customer as of one unknown
day, and its `Churn` label says whether the customer left in the following month.
Point-in-time joins need a time on each row, so ingestion stamps the whole file with
one snapshot time:

- every feature row gets `event_timestamp = snapshot time`;
- the label row (its own table, see churn.data.offline) gets the SAME
  `event_timestamp`, so a Feast point-in-time join "as of" the label row returns the
  features of that snapshot (Feast's join takes feature rows with
  `event_timestamp <= entity timestamp`, so equal times match). A label stamped
  earlier than its features would be DROPPED by Feast's file offline store, which
  discards entity rows whose feature rows are all later (docs/decisions.md, 7). Checked with
  Feast 0.49's file offline store: the 7043 Telco label rows as entity frame come
  back as 7043 rows, none null;
- `label_observed_at = snapshot time + label_delay` records when the label became
  known (the end of the churn window). It is never a model input; it tells a
  training pipeline which labels existed at a given cut-off date.

Times are always timezone-aware UTC, the form Feast's file sources expect.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from typing import Final

import pandas as pd

from churn.schema import EVENT_TIMESTAMP, LABEL_OBSERVED_AT

# A fixed default snapshot time for demos and tests: never now(), so repeated runs
# produce identical offline tables and identical training sets.
DEFAULT_SNAPSHOT_TIME: Final = datetime(2025, 1, 1, tzinfo=UTC)
# Telco's label means "left within the last month": the label is known a month later.
DEFAULT_LABEL_DELAY: Final = timedelta(days=30)
# pandas dtype of every timestamp column we write.
UTC_DTYPE: Final = pd.DatetimeTZDtype("ns", "UTC")


def as_utc(moment: datetime, *, what: str = "timestamp") -> datetime:
    """`moment` converted to UTC; a naive datetime is rejected.

    A naive datetime is ambiguous (local time? UTC?) and a wrong guess shifts every
    point-in-time join by hours, so the caller must say which zone it means.
    """
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        raise ValueError(f"{what} must be timezone-aware (e.g. tzinfo=UTC), got naive {moment!r}")
    return moment.astimezone(UTC)


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` moved by whole calendar months, clamping the day (Jan 31 + 1 -> Feb 28/29).

    Monthly snapshots fall on the same day of each month, as billing cycles do.
    """
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def assign_event_time(
    df: pd.DataFrame,
    event_time: datetime,
    label_delay: timedelta = DEFAULT_LABEL_DELAY,
) -> pd.DataFrame:
    """A copy of a single-snapshot frame stamped with `event_time`.

    Adds `event_timestamp` (= event_time, UTC) to every row and
    `label_observed_at` (= event_time + label_delay). See the module docstring for
    why the label shares the features' timestamp. Existing columns of those names
    are replaced.
    """
    if label_delay < timedelta(0):
        raise ValueError(f"label_delay must not be negative, got {label_delay}")
    moment = as_utc(event_time, what="event_time")
    out = df.copy()
    out[EVENT_TIMESTAMP] = pd.Series(pd.Timestamp(moment), index=out.index, dtype=UTC_DTYPE)
    out[LABEL_OBSERVED_AT] = pd.Series(
        pd.Timestamp(moment + label_delay), index=out.index, dtype=UTC_DTYPE
    )
    return out
