"""Threshold rules, business figures, slices and plots on small, hand-checkable inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from churn.data.synthetic import generate
from churn.features.derived import add_derived
from churn.models.candidates import build_pipeline
from churn.models.evaluate import (
    Costs,
    Revenue,
    ThresholdRule,
    calibration_bins,
    choose_threshold,
    evaluate,
    evaluate_scores,
    feature_importance,
    save_plots,
    tenure_bucket,
    threshold_curve,
)
from configs import evaluation_terms

Y = np.array([1, 0, 1, 1, 0, 0])
S = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])


class FixedScores:
    """Returns preset scores, whatever the input (a single-function test double)."""

    def __init__(self, scores: npt.NDArray[np.float64]) -> None:
        self.scores = scores

    def predict_proba(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:  # noqa: N803
        return np.column_stack([1 - self.scores, self.scores])


def test_recall_target_picks_the_highest_threshold_meeting_the_target() -> None:
    assert choose_threshold(Y, S, ThresholdRule("recall_target", 0.6)) == 0.7  # recall 2/3
    assert choose_threshold(Y, S, ThresholdRule("recall_target", 0.3)) == 0.9  # recall 1/3
    assert choose_threshold(Y, S, ThresholdRule("recall_target", 1.0)) == 0.6


def test_threshold_curve_handles_tied_scores() -> None:
    thresholds, tps, fps = threshold_curve([1, 0, 1, 0], [0.5, 0.5, 0.2, 0.1])
    assert thresholds.tolist() == [0.5, 0.2, 0.1]
    assert tps.tolist() == [1, 2, 2] and fps.tolist() == [1, 1, 2]


def test_min_cost_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    s = np.clip(y * 0.3 + rng.random(400) * 0.7, 0, 1)
    costs = Costs(cost_missed_churner=300.0, cost_unneeded_intervention=70.0)
    chosen = choose_threshold(y, s, ThresholdRule("min_cost"), costs)

    def cost(t: float) -> float:
        flagged = s >= t
        return float(((~flagged) & (y == 1)).sum() * 300.0 + (flagged & (y == 0)).sum() * 70.0)

    assert cost(chosen) == min(cost(t) for t in np.r_[np.unique(s), 1.1])


def test_min_cost_flags_nobody_when_interventions_cost_more_than_churn() -> None:
    y, s = np.array([0, 1]), np.array([0.9, 0.1])  # the riskiest-looking customer stays
    chosen = choose_threshold(y, s, ThresholdRule("min_cost"), Costs(1.0, 1000.0))
    assert chosen > s.max()


def test_business_figures_follow_the_documented_formulas() -> None:
    X = pd.DataFrame(  # noqa: N806
        {
            "contract": ["Month-to-month"] * 6,
            "tenure": [1, 5, 20, 30, 50, 60],
            "senior_citizen": [0, 0, 1, 1, 0, 0],
            "internet_service": ["DSL"] * 6,
            "monthly_charges": [100.0, 50.0, 80.0, 60.0, 40.0, 20.0],
        }
    )
    e = evaluate_scores(
        X,
        Y,
        S,
        threshold=0.55,  # flags rows 0-3: TP rows 0, 2, 3; FP row 1; FN none
        costs=Costs(cost_missed_churner=500.0, cost_unneeded_intervention=100.0),
        revenue=Revenue(retention_success_rate=0.5, horizon_months=12, intervention_cost=10.0),
    )
    assert (e.tp, e.fp, e.tn, e.fn) == (3, 1, 2, 0)
    assert e.confusion_matrix.tolist() == [[2, 1], [0, 3]]
    assert e.precision == 0.75 and e.recall == 1.0 and e.f1 == pytest.approx(6 / 7)
    assert e.business_cost == 100.0
    assert e.retained_revenue == pytest.approx(0.5 * (100 + 80 + 60) * 12)
    assert e.intervention_spend == 40.0
    assert e.net_revenue_impact == pytest.approx(1440.0 - 40.0)
    assert e.threshold_rule == "fixed"
    flat = e.to_flat_metrics(prefix="test_")
    assert flat["test_recall"] == 1.0
    assert "test_slice.tenure_bucket.0-12.n" in flat
    assert all(" " not in k for k in flat)


def test_tenure_buckets_are_inclusive() -> None:
    assert tenure_bucket([0, 12, 13, 24, 25, 48, 49, 200]).tolist() == [
        "0-12",
        "0-12",
        "13-24",
        "13-24",
        "25-48",
        "25-48",
        "49+",
        "49+",
    ]


def test_calibration_bins_cover_every_row() -> None:
    rng = np.random.default_rng(1)
    s = rng.random(500)
    y = (rng.random(500) < s).astype(int)
    bins = calibration_bins(y, s)
    assert sum(b.count for b in bins) == 500
    assert all(b.lower <= b.mean_predicted <= b.upper for b in bins)


def test_evaluate_a_real_pipeline_and_write_every_plot(tmp_path: Path) -> None:
    frame = add_derived(generate(600, seed=2))
    model = build_pipeline("logreg", {"C": 1.0}, seed=0).fit(frame, frame["churn"])
    e = evaluate(
        model,
        frame,
        frame["churn"],
        **evaluation_terms(threshold_rule=ThresholdRule("recall_target", 0.8)),
    )
    assert e.recall >= 0.8 and 0.5 < e.roc_auc <= 1.0
    assert {s.feature for s in e.slices} == {
        "contract",
        "tenure_bucket",
        "senior_citizen",
        "internet_service",
    }
    top = feature_importance(model)
    assert len(top) == len(model.steps[0][1].feature_names_out())
    assert abs(top[0][1]) >= abs(top[-1][1])
    paths = save_plots(e, model, tmp_path / "plots")
    assert set(paths) == {"roc", "pr", "calibration", "confusion_matrix", "feature_importance"}
    for path in paths.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_single_class_labels_are_rejected() -> None:
    with pytest.raises(ValueError, match="both classes"):
        evaluate(
            FixedScores(S),
            pd.DataFrame({"monthly_charges": [1.0] * 6}),
            np.zeros(6),
            **evaluation_terms(),
        )
