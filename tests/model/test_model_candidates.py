"""Candidate training on Telco-format data; held-out quality floors on the REAL file.

Honest targets (docs/decisions.md, 8): published held-out ROC-AUC on this data is about
0.84-0.85 and, at recall 0.80, precision about 0.50. These tests hold the models to
that, print every family's figures, and check that training is reproducible.
"""

from __future__ import annotations

import numpy as np
import pytest
from model_support import CV_FOLDS, SEED, Split

from churn.models.candidates import (
    MODEL_KINDS,
    TrainedCandidate,
    best_candidate,
    build_pipeline,
    train_candidate,
)
from churn.models.evaluate import ThresholdRule, choose_threshold, evaluate
from configs import evaluation_terms

RECALL_TARGET = ThresholdRule("recall_target", recall_target=0.80)
# Any Telco-format data with signal (real or synthetic): far above a coin's 0.5.
CHANCE_BY_FAR = 0.7


def test_every_family_trains_and_beats_chance_by_far(
    candidates: dict[str, TrainedCandidate], split: Split
) -> None:
    assert set(candidates) == set(MODEL_KINDS)
    for kind, candidate in candidates.items():
        assert candidate.kind == kind
        assert candidate.cv_auc > CHANCE_BY_FAR, f"{kind}: CV ROC-AUC {candidate.cv_auc:.4f}"
        assert len(candidate.cv_results) >= 1
        assert candidate.oof_scores.shape == (len(split.y_train),)
        assert np.all((candidate.oof_scores >= 0) & (candidate.oof_scores <= 1))


@pytest.mark.usefixtures("real_telco_csv")  # the candidates are trained on the real file
def test_every_family_reaches_the_published_cv_auc_on_telco(
    candidates: dict[str, TrainedCandidate],
) -> None:
    for kind, candidate in candidates.items():
        assert candidate.cv_auc > 0.82, f"{kind}: CV ROC-AUC {candidate.cv_auc:.4f}"


@pytest.mark.usefixtures("real_telco_csv")
def test_best_model_meets_auc_and_recall_targets_on_held_out(
    candidates: dict[str, TrainedCandidate], split: Split
) -> None:
    best = best_candidate(candidates)  # chosen on training CV only
    held_out = evaluate(
        best.pipeline, split.X_test, split.y_test, **evaluation_terms(threshold_rule=RECALL_TARGET)
    )
    assert held_out.roc_auc >= 0.84, f"{best.kind}: held-out ROC-AUC {held_out.roc_auc:.4f}"
    assert held_out.recall >= 0.80
    # The threshold chosen on out-of-fold TRAINING scores is the honest one: on data it
    # never saw it lands within a few points of the 0.80 target.
    honest = evaluate(
        best.pipeline,
        split.X_test,
        split.y_test,
        threshold=choose_threshold(split.y_train, best.oof_scores, RECALL_TARGET),
        **evaluation_terms(),
    )
    assert honest.recall >= 0.75, f"OOF-threshold held-out recall {honest.recall:.4f}"


@pytest.mark.usefixtures("real_telco_csv")
def test_report_every_family(candidates: dict[str, TrainedCandidate], split: Split) -> None:
    """Prints the figures the README reports (run with -s to see them)."""
    lines = [
        f"held-out Telco, seed {SEED}, {len(split.y_test)} rows, {split.y_test.sum()} churners"
    ]
    for kind, candidate in candidates.items():
        oof_threshold = choose_threshold(split.y_train, candidate.oof_scores, RECALL_TARGET)
        for label, kwargs in (
            ("recall>=0.8 (thr on test)", {"threshold_rule": RECALL_TARGET}),
            ("recall>=0.8 (thr on OOF)", {"threshold": oof_threshold}),
            ("min cost (thr on test)", {"threshold_rule": ThresholdRule("min_cost")}),
        ):
            e = evaluate(
                candidate.pipeline, split.X_test, split.y_test, **evaluation_terms(**kwargs)
            )
            lines.append(
                f"{kind:14s} {label:26s} cv_auc={candidate.cv_auc:.4f} auc={e.roc_auc:.4f} "
                f"pr_auc={e.pr_auc:.4f} thr={e.threshold:.3f} precision={e.precision:.3f} "
                f"recall={e.recall:.3f} f1={e.f1:.3f} brier={e.brier:.4f} "
                f"cost={e.business_cost:.0f} net_revenue={e.net_revenue_impact:.0f} "
                f"params={candidate.params}"
            )
            assert e.roc_auc > 0.82 and 0.0 < e.precision < 1.0
    print("\n" + "\n".join(lines))


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_same_data_and_seed_give_identical_metrics(
    kind: str, candidates: dict[str, TrainedCandidate], split: Split
) -> None:
    first = candidates[kind]
    again = train_candidate(
        first.kind, split.X_train, split.y_train, [first.params], seed=SEED, cv_folds=CV_FOLDS
    )
    assert again.cv_auc == first.cv_auc
    np.testing.assert_array_equal(again.oof_scores, first.oof_scores)
    a = evaluate(first.pipeline, split.X_test, split.y_test, **evaluation_terms()).to_flat_metrics()
    b = evaluate(again.pipeline, split.X_test, split.y_test, **evaluation_terms()).to_flat_metrics()
    assert a == b


def test_a_different_seed_changes_a_stochastic_model(split: Split) -> None:
    """Guards the determinism test against a seed that is silently ignored."""
    params = {"n_estimators": 20, "max_depth": 6}
    one = build_pipeline("random_forest", params, seed=1).fit(split.X_train, split.y_train)
    two = build_pipeline("random_forest", params, seed=2).fit(split.X_train, split.y_train)
    assert not np.array_equal(one.predict_proba(split.X_test), two.predict_proba(split.X_test))


def test_unknown_kind_and_empty_grid_are_rejected(split: Split) -> None:
    with pytest.raises(ValueError, match="gbm"):
        build_pipeline("gbm", {}, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty parameter grid"):
        train_candidate("logreg", split.X_train, split.y_train, [], seed=0)
