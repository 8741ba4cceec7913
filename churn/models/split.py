"""Train/test split of a point-in-time training frame.

"stratified": a seeded split that keeps the churn rate equal in both parts (single
snapshot data such as Telco). "time": the newest snapshots are the test set, so a
model is judged on customers it has never seen at a time after its training data,
and no customer's later snapshot leaks into training.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
from sklearn.model_selection import train_test_split

from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, LABEL

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
    """Test = rows at or after the (1 - test_size) quantile of event time; customers
    that appear in the test period are removed from training (no identity leak)."""
    times = frame[EVENT_TIMESTAMP]
    cutoff = times.sort_values().iloc[int(len(times) * (1.0 - test_size))]
    test = frame[times >= cutoff]
    train = frame[(times < cutoff) & ~frame[ENTITY_KEY].isin(test[ENTITY_KEY])]
    return train, test
