"""The search, the sampling switch, calibration and the repeated evaluation on Telco-format
data (real when at hand): what they choose, and that they are reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from model_support import SEED, Split

from churn.models.calibration import (
    Calibrator,
    brier,
    choose_calibration,
    expected_calibration_error,
    fit_calibrator,
)
from churn.models.candidates import fold_ids, train_candidate
from churn.models.repeated import METRICS, RepeatedConfig, repeated_evaluation
from churn.models.sampling import Sampling, stratified_rows
from churn.models.search import SearchBudget
from churn.models.serialize import CALIBRATION_FILE, ModelFormatError, load_model, save_model

SPACE = {
    "logreg": {"C": {"low": 0.001, "high": 10.0, "log": True}},
    "lightgbm": {
        "n_estimators": {"low": 50, "high": 200, "step": 50},
        "num_leaves": {"low": 3, "high": 16},
    },
}


def test_the_search_starts_from_the_grid_and_runs_its_trial_budget(split: Split) -> None:
    budget = SearchBudget(n_trials=6, timeout_s=300, space=SPACE)
    grid = [{"C": 0.5}]
    first = train_candidate(
        "logreg", split.X_train, split.y_train, grid, seed=SEED, cv_folds=3, search=budget
    )
    assert first.search["trials"] == 6 and first.search["stopped_by"] == "trials"
    assert first.cv_results[0].params == {"C": 0.5}  # the grid point is trial 0
    assert first.cv_auc == max(r.mean_auc for r in first.cv_results)
    again = train_candidate(
        "logreg", split.X_train, split.y_train, grid, seed=SEED, cv_folds=3, search=budget
    )
    assert [r.params for r in again.cv_results] == [r.params for r in first.cv_results]
    np.testing.assert_array_equal(again.oof_scores, first.oof_scores)


def test_a_grid_point_outside_the_space_is_refused(split: Split) -> None:
    budget = SearchBudget(n_trials=2, timeout_s=60, space=SPACE)
    with pytest.raises(ValueError, match="outside"):
        train_candidate(
            "lightgbm",
            split.X_train,
            split.y_train,
            [{"num_leaves": 64}],
            seed=SEED,
            cv_folds=3,
            search=budget,
        )
    with pytest.raises(ValueError, match="max_depth"):
        train_candidate(
            "lightgbm",
            split.X_train,
            split.y_train,
            [{"max_depth": 3}],
            seed=SEED,
            cv_folds=3,
            search=budget,
        )


def test_the_clock_stops_a_study_and_says_so(split: Split) -> None:
    budget = SearchBudget(n_trials=1000, timeout_s=0.5, space=SPACE)
    candidate = train_candidate(
        "logreg", split.X_train, split.y_train, [{"C": 1.0}], seed=SEED, cv_folds=3, search=budget
    )
    assert candidate.search["stopped_by"] == "timeout"
    assert 1 <= candidate.search["trials"] < 1000


def test_sampling_caps_the_search_and_the_fit_and_keeps_the_churn_rate(split: Split) -> None:
    rows = stratified_rows(split.y_train, 1000, SEED)
    assert len(rows) == 1000 and np.all(np.diff(rows) > 0)
    assert abs(split.y_train[rows].mean() - split.y_train.mean()) < 0.002
    assert len(stratified_rows(split.y_train, None, SEED)) == len(split.y_train)
    candidate = train_candidate(
        "lightgbm",
        split.X_train,
        split.y_train,
        [{"n_estimators": 100, "num_leaves": 8}],
        seed=SEED,
        cv_folds=3,
        sampling=Sampling(tune_max_rows=1500, fit_max_rows=2500),
    )
    assert (candidate.tune_rows, candidate.fit_rows) == (1500, 2500)
    assert candidate.oof_scores.shape == candidate.oof_labels.shape == (1500,)
    with pytest.raises(ValueError, match="tune_max_rows"):
        Sampling(tune_max_rows=10, fit_max_rows=None)


def test_calibration_repairs_a_distorted_score_and_is_kept_only_when_it_helps(
    split: Split,
) -> None:
    base = train_candidate(
        "logreg", split.X_train, split.y_train, [{"C": 1.0}], seed=SEED, cv_folds=5
    )
    folds = fold_ids(base.oof_labels, 5, SEED)
    # class_weight=balanced inflates every probability: a real, large miscalibration
    raw_brier = brier(base.oof_labels, base.oof_scores)
    calibrator, report = choose_calibration(
        base.oof_scores, base.oof_labels, folds, ["sigmoid", "isotonic"]
    )
    assert report.chosen in ("sigmoid", "isotonic")
    assert report.brier[report.chosen] < raw_brier
    assert report.ece[report.chosen] < report.ece["none"]
    assert calibrator.method == report.chosen
    fitted = calibrator.apply(base.oof_scores)
    assert expected_calibration_error(base.oof_labels, fitted) < report.ece["none"]
    # monotone: the ranking of distinct scores is kept
    order = np.argsort(base.oof_scores)
    assert np.all(np.diff(fitted[order]) >= -1e-12)
    # no method tried: the raw probabilities stay
    none, empty = choose_calibration(base.oof_scores, base.oof_labels, folds, [])
    assert none.method == "none" and empty.chosen == "none"


def test_a_calibrated_model_round_trips_and_a_bad_map_is_refused(
    split: Split, tmp_path: Path
) -> None:
    candidate = train_candidate(
        "logreg",
        split.X_train,
        split.y_train,
        [{"C": 1.0}],
        seed=SEED,
        cv_folds=3,
        calibration=["sigmoid", "isotonic"],
    )
    # On the real data the search picks a map for logistic regression; synthetic
    # customers (a fresh clone without the CSV) can come out calibrated already, and
    # the round trip still needs a map: then an explicit one.
    calibrator = candidate.calibrator
    if calibrator.method == "none":
        calibrator = Calibrator("sigmoid", a=1.5, b=-0.3)
    save_model(candidate.pipeline, tmp_path / "m", {"threshold": 0.3}, calibrator)
    loaded = load_model(tmp_path / "m")
    expected = calibrator.apply(candidate.pipeline.predict_proba(split.X_test)[:, 1])
    columns = {c: split.X_test[c].to_numpy() for c in split.X_test.columns}
    np.testing.assert_allclose(loaded.predict_proba(columns), expected, rtol=0, atol=1e-12)
    assert np.max(np.abs(expected - candidate.pipeline.predict_proba(split.X_test)[:, 1])) > 1e-3
    path = tmp_path / "m" / CALIBRATION_FILE
    assert Calibrator.from_json(json.loads(path.read_text())) == calibrator
    path.write_text(json.dumps({"method": "sigmoid", "a": 1.0, "b": 0.5}))
    with pytest.raises(ModelFormatError, match="sha256"):
        load_model(tmp_path / "m")
    with pytest.raises(ValueError, match="knots"):
        Calibrator("isotonic", x=(0.5,), y=(0.5,))
    assert fit_calibrator("none", [0.2], [1]).apply([0.2]).tolist() == [0.2]


def test_repeated_evaluation_reports_every_metric_over_every_fold(split: Split) -> None:
    config = RepeatedConfig(n_splits=3, n_repeats=2, recall_target=0.8)
    summary = repeated_evaluation(
        "logreg", {"C": 1.0}, "sigmoid", split.X_train, split.y_train, config, SEED
    )
    assert summary["folds"] == 6 and summary["rows"] == len(split.y_train)
    for metric in METRICS:
        values = summary[metric]["values"]
        assert len(values) == 6 and all(0.0 <= v <= 1.0 for v in values), metric
        assert summary[metric]["mean"] == pytest.approx(np.mean(values))
    assert summary["recall"]["mean"] >= 0.8  # the operating point meets the target per fold
    assert summary["roc_auc"]["sd"] > 0.0  # folds differ: the spread is measured, not assumed
    again = repeated_evaluation(
        "logreg", {"C": 1.0}, "sigmoid", split.X_train, split.y_train, config, SEED
    )
    assert again["roc_auc"]["values"] == summary["roc_auc"]["values"]
