"""Batch scoring functions: expected loss, ranking, scoring a frame, atomic output files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn.data.synthetic import generate
from churn.features.derived import add_derived
from churn.models.candidates import build_pipeline
from churn.models.serialize import load_model, save_model
from churn.monitoring import batch
from churn.monitoring.batch import (
    Champion,
    expected_loss,
    latest_predictions,
    prediction_columns,
    rank_by_expected_loss,
    score_frame,
    write_predictions,
)
from churn.schema import model_input_names

NOW = datetime(2025, 3, 1, 10, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    """Point-in-time-like features: raw + derived, customer_id and event_timestamp."""
    return add_derived(generate(600, seed=21))


@pytest.fixture(scope="module")
def champion(features: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Champion:
    pipeline = build_pipeline("xgboost", {"n_estimators": 30, "max_depth": 3}, seed=0)
    pipeline.fit(features, features["churn"])
    directory = tmp_path_factory.mktemp("model")
    save_model(pipeline, directory, {"threshold": 0.3})
    return Champion(load_model(directory), "churn-classifier-v7", threshold=0.3)


def test_expected_loss_is_probability_times_monthly_revenue() -> None:
    np.testing.assert_allclose(expected_loss([0.5, 0.1, 1.0], [100.0, 20.0, 0.0]), [50.0, 2.0, 0])


@pytest.mark.parametrize(
    ("probability", "charges", "match"),
    [
        ([1.2], [10.0], "churn_probability"),
        ([np.nan], [10.0], "churn_probability"),
        ([0.5], [-1.0], "monthly_charges"),
        ([0.5], [np.inf], "monthly_charges"),
        ([0.5, 0.2], [10.0], "monthly charges"),
    ],
)
def test_expected_loss_rejects_bad_inputs(probability: Any, charges: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        expected_loss(probability, charges)


def test_ranking_puts_the_largest_expected_loss_first_and_breaks_ties() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "churn_probability": [0.9, 0.5, 0.25, 0.5],
            "expected_loss": [18.0, 50.0, 25.0, 50.0],
        }
    )
    ranked = rank_by_expected_loss(frame)
    # a likely leaver on a cheap plan (a) ranks below less likely ones on dear plans
    assert ranked["customer_id"].tolist() == ["b", "d", "c", "a"]
    assert ranked["rank"].tolist() == [1, 2, 3, 4]
    assert ranked.columns[0] == "rank"


def test_ranking_names_missing_columns() -> None:
    with pytest.raises(KeyError, match="expected_loss"):
        rank_by_expected_loss(pd.DataFrame({"customer_id": ["a"], "churn_probability": [0.1]}))


def test_score_frame_matches_the_model_and_its_threshold(
    features: pd.DataFrame, champion: Champion
) -> None:
    out = score_frame(features, champion, top_k=3)
    expected = champion.model.predict_proba(features)
    np.testing.assert_array_equal(out["churn_probability"].to_numpy(), expected)
    np.testing.assert_array_equal(out["churn_label"].to_numpy(), expected >= 0.3)
    np.testing.assert_allclose(
        out["expected_loss"], expected * features["monthly_charges"].to_numpy(), rtol=0, atol=0
    )
    assert (out["model_version"] == "churn-classifier-v7").all()
    assert out["snapshot_time"].equals(features["event_timestamp"].rename("snapshot_time"))
    assert set(out.columns) == set(prediction_columns(3)) - {"rank"}
    assert set(out["reason_1"]) <= set(model_input_names())


def test_score_frame_without_reasons_has_no_reason_columns(
    features: pd.DataFrame, champion: Champion
) -> None:
    out = score_frame(features.head(10), champion, top_k=0)
    assert list(out.columns) == prediction_columns(0)[1:]


def test_score_frame_names_missing_columns(features: pd.DataFrame, champion: Champion) -> None:
    with pytest.raises(KeyError, match="event_timestamp"):
        score_frame(features.drop(columns=["event_timestamp"]), champion)


def _predictions(features: pd.DataFrame, champion: Champion) -> pd.DataFrame:
    return rank_by_expected_loss(score_frame(features, champion))


def test_write_predictions_publishes_parquet_csv_and_summary(
    features: pd.DataFrame, champion: Champion, tmp_path: Path
) -> None:
    predictions = _predictions(features, champion)
    summary = write_predictions(predictions, 0.3, root=tmp_path, now=NOW, seconds=2.0)
    out = Path(summary.path)
    assert out == tmp_path / "20250301T101500Z_churn-classifier-v7"
    assert sorted(p.name for p in out.iterdir()) == [
        "predictions.csv",
        "predictions.parquet",
        "summary.json",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    parquet = pd.read_parquet(summary.parquet)
    pd.testing.assert_frame_equal(parquet, predictions)
    csv = pd.read_csv(summary.csv, float_precision="round_trip")
    assert csv["customer_id"].tolist() == predictions["customer_id"].tolist()
    # the CSV keeps every float exactly (shortest round-trip repr)
    np.testing.assert_array_equal(csv["churn_probability"], predictions["churn_probability"])
    assert csv["snapshot_time"].iloc[0] == "2025-01-01T00:00:00+00:00"
    assert summary.rows == len(features)
    assert summary.at_risk == int(predictions["churn_label"].sum()) > 0
    assert summary.rows_per_second == pytest.approx(len(features) / 2.0)
    assert summary.snapshot == "2025-01-01T00:00:00+00:00"
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["at_risk"] == summary.at_risk
    assert on_disk["expected_loss_total"] == pytest.approx(predictions["expected_loss"].sum())
    assert latest_predictions(tmp_path) == out


def test_write_predictions_says_where_the_at_risk_list_went(
    features: pd.DataFrame, champion: Champion, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    predictions = _predictions(features, champion)
    with caplog.at_level("INFO", logger="churn.monitoring.batch"):
        summary = write_predictions(predictions, 0.3, root=tmp_path, now=NOW)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("at-risk list")]
    assert len(lines) == 1
    assert summary.csv in lines[0]
    assert f"{summary.at_risk} of {summary.rows} customers" in lines[0]


def test_a_second_run_in_the_same_second_never_overwrites(
    features: pd.DataFrame, champion: Champion, tmp_path: Path
) -> None:
    predictions = _predictions(features.head(50), champion)
    first = write_predictions(predictions, 0.3, root=tmp_path, now=NOW)
    second = write_predictions(predictions, 0.3, root=tmp_path, now=NOW)
    assert Path(second.path).name == Path(first.path).name + "-2"
    assert latest_predictions(tmp_path) == Path(second.path)
    assert len(pd.read_parquet(first.parquet)) == 50


def test_a_failed_write_leaves_nothing_behind(
    features: pd.DataFrame, champion: Champion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictions = _predictions(features.head(20), champion)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        write_predictions(predictions, 0.3, root=tmp_path, now=NOW)
    assert list(tmp_path.iterdir()) == []
    assert latest_predictions(tmp_path) is None


def test_latest_per_customer_snapshots_are_described(champion: Champion) -> None:
    times = pd.to_datetime(["2025-01-01", "2025-02-01"], utc=True)
    frame = pd.DataFrame({"snapshot_time": times})
    assert batch.describe_snapshot(frame) == (
        "latest per customer (2025-01-01T00:00:00+00:00 .. 2025-02-01T00:00:00+00:00)"
    )


def test_mixed_model_versions_are_refused(
    features: pd.DataFrame, champion: Champion, tmp_path: Path
) -> None:
    predictions = _predictions(features.head(4), champion)
    predictions.loc[0, "model_version"] = "churn-classifier-v6"
    with pytest.raises(ValueError, match="mix model versions"):
        write_predictions(predictions, 0.3, root=tmp_path, now=NOW)


def test_batch_predictions_are_recorded_in_the_prediction_log(tmp_path: Path) -> None:
    from churn.loop.predlog import read_log

    predictions = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            batch.SNAPSHOT_TIME: pd.to_datetime(["2025-02-01", "2025-01-01"], utc=True),
            "churn_probability": [0.9, 0.1],
            "model_version": "churn-classifier-v3",
        }
    )
    n = batch.log_batch_predictions(
        predictions, model_name="churn-classifier", threshold=0.5, run_id="run-1",
        root=str(tmp_path), predicted_at=NOW,
    )  # fmt: skip
    log = read_log(str(tmp_path)).set_index("customer_id")
    assert n == 2 and len(log) == 2
    assert log.loc["a", "label"] and not log.loc["b", "label"]
    assert log.loc["b", "feature_event_time"] == pd.Timestamp("2025-01-01", tz="UTC")
    assert set(log["source"]) == {"batch"} and set(log["request_id"]) == {"run-1"}
    assert (tmp_path / "date=2025-03-01" / "model_version=churn-classifier-v3").is_dir()
