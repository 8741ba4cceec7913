"""Train/test split of a point-in-time training frame.

"stratified": a seeded split that keeps the churn rate equal in both parts (single
snapshot data such as Telco). "time": the newest snapshots are the test set and
training keeps only rows whose label was already observed at the test cut-off, as
in production, where the model is trained on what is known today and judged on
what happens next. A customer may appear on both sides at different times: that is
the deployment situation (scoring existing customers' future), not a leak. Dropping
such customers from training instead was measured to leave mostly churners there
(churn rate 0.71 vs 0.23 on 4 synthetic snapshots), because those who stay reappear.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
from sklearn.model_selection import train_test_split

from churn.schema import EVENT_TIMESTAMP, LABEL, LABEL_OBSERVED_AT

SplitStrategy = Literal["stratified", "time"]


def split_frame(
    frame: pd.DataFrame, *, strategy: SplitStrategy, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) with fresh indexes; ValueError when a part would be empty."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    if strategy == "stratified":
        train, test = train_test_split(
            frame, test_size=test_size, random_state=seed, stratify=frame[LABEL]
        )
    elif strategy == "time":
        train, test = _time_split(frame, test_size)
    else:
        raise ValueError(f"unknown split strategy {strategy!r}; expected 'stratified' or 'time'")
    if train.empty or test.empty:
        raise ValueError(f"split {strategy!r} left an empty part ({len(train)}/{len(test)} rows)")
    return train.reset_index(drop=True), test.reset_index(drop=True)


def _time_split(frame: pd.DataFrame, test_size: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test = rows at or after the (1 - test_size) quantile of event time; train =
    earlier rows whose label was observed by then (label_observed_at <= cut-off)."""
    times = frame[EVENT_TIMESTAMP]
    cutoff = times.sort_values().iloc[int(len(times) * (1.0 - test_size))]
    test = frame[times >= cutoff]
    known = frame[LABEL_OBSERVED_AT] <= cutoff
    train = frame[(times < cutoff) & known]
    return train, test
