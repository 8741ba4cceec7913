"""Realized outcomes: the outcome contract names bad rows and nothing is written.

The stores are real files: an offline store written by write_offline_store in a tmp
directory (a labelled January, an unlabelled February), and prediction-log rows as
churn.loop.predlog writes and reads them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn.data.contract import DataContractError
from churn.data.offline import LABELS_TABLE, read_offline_table, table_path, write_offline_store
from churn.data.outcomes import (
    OUTCOME_COLUMNS,
    ingest_outcomes,
    read_outcomes,
    stored_labels,
)
from churn.data.synthetic import generate, simulate_outcomes
from churn.data.timestamps import UTC_DTYPE
from churn.loop.predlog import BATCH, PredictionBatch, read_log, write_log
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, LABEL, LABEL_OBSERVED_AT

JAN = datetime(2025, 1, 1, tzinfo=UTC)
FEB = datetime(2025, 2, 1, tzinfo=UTC)
PREDICTED = FEB + timedelta(hours=3)
MAR = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> dict[str, object]:
    """Offline store: January labelled, February features only; February scored and logged."""
    frame = generate(300, seed=4, n_snapshots=2, start=JAN)
    february = frame[frame[EVENT_TIMESTAMP] == pd.Timestamp(FEB)].reset_index(drop=True)
    offline_dir = tmp_path / "offline"
    write_offline_store(frame[frame[EVENT_TIMESTAMP] == pd.Timestamp(JAN)], offline_dir)
    write_offline_store(february.drop(columns=[LABEL, LABEL_OBSERVED_AT]), offline_dir)
    log_root = str(tmp_path / "log")
    write_log(
        log_root,
        [
            PredictionBatch(
                request_id="run-1",
                customer_ids=february[ENTITY_KEY].tolist(),
                model_name="m",
                model_version="m-v1",
                probabilities=np.full(len(february), 0.4),
                threshold=0.3,
                event_times=np.full(len(february), FEB.timestamp()),
                predicted_at=PREDICTED.timestamp(),
                source=BATCH,
            )
        ],
    )
    outcomes = simulate_outcomes(february, treated=[], relative_risk=1.0, seed=1, observed_at=MAR)
    return {"dir": offline_dir, "log": read_log(log_root), "outcomes": outcomes}


def _labels_file(offline_dir: Path) -> bytes:
    return table_path(LABELS_TABLE, offline_dir).read_bytes()


def _failure(error: DataContractError, check: str) -> str:
    found = [str(f) for f in error.failures if f.check == check]
    assert len(found) == 1, [str(f) for f in error.failures]
    return found[0]


def test_good_outcomes_join_the_labels_table_once(store: dict[str, object]) -> None:
    outcomes, offline_dir = store["outcomes"], store["dir"]
    assert isinstance(outcomes, pd.DataFrame) and isinstance(offline_dir, Path)
    result = ingest_outcomes(outcomes, store["log"], offline_dir)  # type: ignore[arg-type]
    assert result.changed == {LABELS_TABLE: 300} and result.rows == {LABELS_TABLE: 600}
    labels = read_offline_table(LABELS_TABLE, offline_dir)
    february = labels[labels[EVENT_TIMESTAMP] == pd.Timestamp(FEB)].reset_index(drop=True)
    pd.testing.assert_frame_equal(february, outcomes[list(OUTCOME_COLUMNS)], check_like=False)
    # Sending the same outcomes again changes nothing (idempotent), and is no error.
    again = ingest_outcomes(outcomes, store["log"], offline_dir)  # type: ignore[arg-type]
    assert again.changed == {LABELS_TABLE: 0}


@pytest.mark.parametrize(
    ("corrupt", "check", "named"),
    [
        ("unknown", "known_customer_snapshot", "customer_id='SYN-9999999' value='row 3:"),
        ("no_snapshot", "known_customer_snapshot", "value='row 5: event_timestamp 2025-03-01"),
        ("duplicate", "duplicate_outcome", "value='row 300:"),
        ("conflict", "duplicate_of_stored_outcome", "value='row 0:"),
        (
            "early",
            "observed_before_prediction",
            "before the prediction of 2025-02-01T03:00:00+00:00",
        ),
    ],
)
def test_bad_outcomes_are_refused_naming_rows_and_nothing_is_written(
    store: dict[str, object], corrupt: str, check: str, named: str
) -> None:
    outcomes = store["outcomes"]
    offline_dir = store["dir"]
    assert isinstance(outcomes, pd.DataFrame) and isinstance(offline_dir, Path)
    bad = outcomes.copy()
    if corrupt == "unknown":
        bad.loc[3, ENTITY_KEY] = "SYN-9999999"
    elif corrupt == "no_snapshot":
        bad.loc[5, EVENT_TIMESTAMP] = pd.Timestamp(MAR)
        bad.loc[5, LABEL_OBSERVED_AT] = pd.Timestamp(MAR + timedelta(days=30))
    elif corrupt == "duplicate":
        bad = pd.concat([bad, bad.iloc[[7]].assign(**{LABEL: 1 - bad[LABEL].iat[7]})])
    elif corrupt == "conflict":
        january = stored_labels(offline_dir)
        first = january.iloc[[0]].assign(**{LABEL: 1 - january[LABEL].iat[0]})
        bad = pd.concat([first, bad])
    elif corrupt == "early":
        bad[LABEL_OBSERVED_AT] = pd.Series(
            pd.Timestamp(FEB + timedelta(hours=1)), index=bad.index, dtype=UTC_DTYPE
        )
    before = _labels_file(offline_dir)
    with pytest.raises(DataContractError) as caught:
        ingest_outcomes(bad, store["log"], offline_dir)  # type: ignore[arg-type]
    assert named in _failure(caught.value, check)
    assert _labels_file(offline_dir) == before


def test_every_broken_rule_is_reported_at_once(store: dict[str, object]) -> None:
    outcomes = store["outcomes"]
    assert isinstance(outcomes, pd.DataFrame)
    bad = pd.concat([outcomes, outcomes.iloc[[1]]], ignore_index=True)
    bad.loc[0, ENTITY_KEY] = "NOBODY"
    bad.loc[2, LABEL_OBSERVED_AT] = pd.Timestamp(FEB + timedelta(hours=1))
    with pytest.raises(DataContractError) as caught:
        ingest_outcomes(bad, store["log"], store["dir"])  # type: ignore[arg-type]
    checks = {f.check for f in caught.value.failures}
    assert checks == {"known_customer_snapshot", "duplicate_outcome", "observed_before_prediction"}


def test_schema_failures_come_first_and_name_the_column(store: dict[str, object]) -> None:
    outcomes = store["outcomes"]
    assert isinstance(outcomes, pd.DataFrame)
    bad = outcomes.copy()
    bad[LABEL] = bad[LABEL].replace({1: 2})
    bad.loc[4, LABEL_OBSERVED_AT] = pd.Timestamp(JAN)
    with pytest.raises(DataContractError) as caught:
        ingest_outcomes(bad, store["log"], store["dir"])  # type: ignore[arg-type]
    columns = {(f.column, f.check) for f in caught.value.failures}
    assert ("churn", "isin([0, 1])") in columns
    assert (LABEL_OBSERVED_AT, "label_observed_at_not_before_event_timestamp") in columns


def test_csv_outcomes_read_back_as_the_parquet_ones(
    store: dict[str, object], tmp_path: Path
) -> None:
    outcomes = store["outcomes"]
    assert isinstance(outcomes, pd.DataFrame)
    csv = tmp_path / "outcomes.csv"
    outcomes.to_csv(csv, index=False)
    parquet = tmp_path / "outcomes.parquet"
    # Written in microseconds, as other tools do: read back as the store's nanoseconds.
    outcomes.astype({LABEL_OBSERVED_AT: "datetime64[us, UTC]"}).to_parquet(parquet, index=False)
    pd.testing.assert_frame_equal(read_outcomes(csv), outcomes)
    pd.testing.assert_frame_equal(read_outcomes(parquet), outcomes)
    with pytest.raises(ValueError, match=r"must be \.parquet or \.csv"):
        read_outcomes(tmp_path / "outcomes.json")


def test_simulated_outcomes_follow_the_true_risk_and_the_effect() -> None:
    snapshot = generate(40_000, seed=8, start=JAN)
    treated = snapshot[ENTITY_KEY].iloc[::2]
    outcomes = simulate_outcomes(
        snapshot, treated=treated, relative_risk=0.6, seed=3, observed_at=FEB
    )
    is_treated = outcomes[ENTITY_KEY].isin(treated)
    ratio = outcomes.loc[is_treated, LABEL].mean() / outcomes.loc[~is_treated, LABEL].mean()
    assert 0.52 < ratio < 0.68
    assert (outcomes[LABEL_OBSERVED_AT] == pd.Timestamp(FEB)).all()
    same = simulate_outcomes(snapshot, treated=treated, relative_risk=0.6, seed=3, observed_at=FEB)
    pd.testing.assert_frame_equal(outcomes, same)
    with pytest.raises(ValueError, match="before the snapshot"):
        simulate_outcomes(
            snapshot, treated=[], relative_risk=1.0, seed=3, observed_at=JAN - timedelta(days=1)
        )
    with pytest.raises(ValueError, match="leave"):
        simulate_outcomes(snapshot, treated=treated, relative_risk=40.0, seed=3, observed_at=FEB)
