"""labels_known_by(): the cut-off filter of the training pipeline's entity dataframe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, LABEL, LABEL_OBSERVED_AT
from steps.features.load_entity_df import labels_known_by

OBSERVED = pd.to_datetime(
    ["2025-01-31T00:00Z", "2025-03-03T00:00Z", "2025-03-31T00:00Z", "2025-04-30T00:00Z"]
)


def _labels() -> pd.DataFrame:
    """Four labels of one customer, observed 30 days after monthly snapshots; the index
    is not 0..n-1, as after a filter upstream."""
    return pd.DataFrame(
        {
            ENTITY_KEY: ["C-1"] * 4,
            EVENT_TIMESTAMP: OBSERVED - pd.Timedelta(days=30),
            LABEL: [0, 0, 1, 0],
            LABEL_OBSERVED_AT: OBSERVED,
        },
        index=[10, 11, 12, 13],
    )


def test_no_cutoff_keeps_every_label_with_a_fresh_index() -> None:
    out = labels_known_by(_labels(), None)
    assert out[LABEL_OBSERVED_AT].tolist() == OBSERVED.tolist()
    assert out.index.tolist() == [0, 1, 2, 3]


def test_boundary_is_inclusive() -> None:
    exactly = datetime(2025, 3, 31, tzinfo=UTC)  # the third label's observation time
    out = labels_known_by(_labels(), exactly)
    assert out[LABEL_OBSERVED_AT].tolist() == OBSERVED[:3].tolist()
    assert out[LABEL].tolist() == [0, 0, 1]
    assert out.index.tolist() == [0, 1, 2]
    just_before = exactly - timedelta(microseconds=1)
    assert len(labels_known_by(_labels(), just_before)) == 2


def test_cutoff_in_another_zone_is_compared_as_the_same_instant() -> None:
    """2025-03-31 01:00 at UTC+02:00 is 2025-03-30 23:00 UTC: before the third label."""
    plus_two = datetime(2025, 3, 31, 1, tzinfo=timezone(timedelta(hours=2)))
    assert len(labels_known_by(_labels(), plus_two)) == 2
    minus_one = datetime(2025, 3, 30, 23, tzinfo=timezone(timedelta(hours=-1)))  # 00:00 UTC
    assert len(labels_known_by(_labels(), minus_one)) == 3


def test_cutoff_before_every_label_leaves_an_empty_frame_with_the_columns() -> None:
    out = labels_known_by(_labels(), datetime(2024, 1, 1, tzinfo=UTC))
    assert out.empty
    assert list(out.columns) == list(_labels().columns)


def test_naive_cutoff_is_rejected_naming_it() -> None:
    with pytest.raises(ValueError, match="labels_known_by cut-off must be timezone-aware"):
        labels_known_by(_labels(), datetime(2025, 3, 31))


def test_naive_label_times_are_rejected_naming_the_column() -> None:
    labels = _labels().assign(**{LABEL_OBSERVED_AT: OBSERVED.tz_convert(None)})
    with pytest.raises(ValueError, match=f"{LABEL_OBSERVED_AT} must be timezone-aware"):
        labels_known_by(labels, datetime(2025, 3, 31, tzinfo=UTC))


def test_a_frame_without_observation_times_is_not_a_labels_table() -> None:
    with pytest.raises(KeyError, match=LABEL_OBSERVED_AT):
        labels_known_by(_labels().drop(columns=LABEL_OBSERVED_AT), None)
