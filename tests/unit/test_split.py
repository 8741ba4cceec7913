"""Train/test split: stratified keeps the churn rate; time split never leaks a customer."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from churn.data.synthetic import generate
from churn.models.split import split_frame
from churn.schema import EVENT_TIMESTAMP, LABEL, LABEL_OBSERVED_AT


def test_stratified_split_is_seeded_and_keeps_churn_rate() -> None:
    frame = generate(2000, seed=3)
    train, test = split_frame(frame, strategy="stratified", test_size=0.25, seed=7)
    again, _ = split_frame(frame, strategy="stratified", test_size=0.25, seed=7)
    assert len(test) == 500 and len(train) == 1500
    assert abs(train[LABEL].mean() - test[LABEL].mean()) < 0.01
    pd.testing.assert_frame_equal(train, again)


def test_time_split_trains_only_on_labels_known_at_the_cutoff() -> None:
    frame = generate(2000, seed=1, n_snapshots=3, start=datetime(2025, 1, 1, tzinfo=UTC))
    train, test = split_frame(frame, strategy="time", test_size=0.3, seed=0)
    cutoff = test[EVENT_TIMESTAMP].min()
    assert train[EVENT_TIMESTAMP].max() < cutoff
    assert (train[LABEL_OBSERVED_AT] <= cutoff).all()
    # snapshot 2's labels (observed 30 days later) are not known yet at snapshot 3
    assert train[EVENT_TIMESTAMP].nunique() == 1
    # the churn rate stays representative (not only churners, as dropping customers gave)
    assert abs(train[LABEL].mean() - test[LABEL].mean()) < 0.1


def test_bad_test_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="test_size"):
        split_frame(generate(1000, seed=0), strategy="stratified", test_size=1.5, seed=0)
