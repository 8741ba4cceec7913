"""Noise-aware promotion on a real MLflow registry (SQLite in tmp_path, no mocks).

A challenger that is the champion's recipe trained again with another seed differs
from it by noise only: it must not be promoted, whichever of the two point
estimates happens to be higher. A clearly better model must be.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from model_support import SEED, Split

from churn.models import registry
from churn.models.candidates import TrainedCandidate, train_candidate
from churn.models.evaluate import evaluate, save_plots
from churn.models.fingerprint import data_fingerprint, evaluation_fingerprint
from churn.models.promotion import NoiseRule, paired_bootstrap
from churn.models.serialize import save_model
from configs import evaluation_terms

NOISE = NoiseRule(n_bootstrap=500, confidence=0.95, seed=0)
XGB = [{"n_estimators": 200, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8}]


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _register(
    name: str, candidate: TrainedCandidate, split: Split, tracking_uri: str, tmp: Path
) -> tuple[str, np.ndarray]:
    """Log and register `candidate` (calibrated serving model); (version, held-out scores)."""
    evaluation = evaluate(candidate.model, split.X_test, split.y_test, **evaluation_terms())
    save_model(
        candidate.pipeline, tmp / "serving", {"threshold": evaluation.threshold},
        candidate.calibrator,
    )  # fmt: skip
    run_id = registry.log_candidate(
        experiment="churn-promotion-tests",
        candidate=candidate,
        evaluation=evaluation,
        X_example=split.X_test,
        serving_dir=tmp / "serving",
        plots=save_plots(evaluation, candidate.pipeline, tmp / "plots"),
        feast_feature_service="churn_model_v1",
        data_fingerprint=data_fingerprint(split.X_train),
        heldout_fingerprint=evaluation_fingerprint(split.X_test, split.y_test),
        tracking_uri=tracking_uri,
    )
    return registry.register(run_id, name, tracking_uri), evaluation.scores


def _promote(
    name: str, version: str, scores: np.ndarray, split: Split, tracking_uri: str
) -> registry.PromotionDecision:
    auc = registry.SCORERS["roc_auc"][0](split.y_test, scores)
    return registry.promote_if_better(
        name,
        version,
        "roc_auc",
        auc,
        True,
        evaluation_data=(split.X_test, split.y_test),
        tracking_uri=tracking_uri,
        noise=NOISE,
        challenger_scores=scores,
    )


def _train(split: Split, seed: int, **options: object) -> TrainedCandidate:
    return train_candidate(
        "xgboost", split.X_train, split.y_train, XGB, seed=seed, cv_folds=3,
        calibration=["sigmoid", "isotonic"], **options,  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_challenger_equal_to_the_champion_up_to_noise_is_not_promoted(
    split: Split, tracking_uri: str, tmp_path: Path
) -> None:
    name = "churn-noise"
    champion, champion_scores = _register(
        name, _train(split, SEED), split, tracking_uri, tmp_path / "a"
    )
    first = _promote(name, champion, champion_scores, split, tracking_uri)
    assert first.promoted and first.champion_version is None
    twin, twin_scores = _register(
        name, _train(split, SEED + 1), split, tracking_uri, tmp_path / "b"
    )
    assert not np.array_equal(twin_scores, champion_scores)  # another model, same recipe
    decision = _promote(name, twin, twin_scores, split, tracking_uri)
    assert not decision.promoted, decision.reason
    assert decision.difference_low is not None and decision.difference_high is not None
    assert decision.difference_low <= 0.0 <= decision.difference_high
    assert "within the noise" in decision.reason and "champion stays" in decision.reason
    # the champion was re-scored through its served (calibrated) model, not looked up
    assert decision.champion_rescored
    assert decision.champion_score == pytest.approx(
        registry.SCORERS["roc_auc"][0](split.y_test, champion_scores), abs=1e-9
    )
    assert registry.champion_version(name, tracking_uri) == champion


def test_a_clearly_better_challenger_is_promoted(
    split: Split, tracking_uri: str, tmp_path: Path
) -> None:
    name = "churn-better"
    # a genuinely weak champion: a linear model that saw 300 customers
    weak = train_candidate(
        "logreg", split.X_train.head(300), split.y_train[:300], [{"C": 0.001}], seed=SEED,
        cv_folds=3,
    )  # fmt: skip
    champion, champion_scores = _register(name, weak, split, tracking_uri, tmp_path / "a")
    assert _promote(name, champion, champion_scores, split, tracking_uri).promoted
    better, better_scores = _register(
        name, _train(split, SEED), split, tracking_uri, tmp_path / "b"
    )
    decision = _promote(name, better, better_scores, split, tracking_uri)
    assert decision.promoted, decision.reason
    assert decision.difference_low is not None and decision.difference_low > 0.0
    assert registry.champion_version(name, tracking_uri) == better
    client = registry.use_tracking(tracking_uri)
    previous = client.get_model_version_by_alias(name, registry.PREVIOUS_CHAMPION)
    assert str(previous.version) == champion


def test_the_paired_bootstrap_of_a_model_against_itself_is_exactly_zero(split: Split) -> None:
    scores = np.linspace(0.01, 0.99, len(split.y_test))
    scorer, higher = registry.SCORERS["roc_auc"]
    same = paired_bootstrap(split.y_test, scores, scores, scorer, higher, NOISE)
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
    brier, lower_better = registry.SCORERS["brier"]
    worse = paired_bootstrap(split.y_test, scores, scores * 0.5, brier, lower_better, NOISE)
    assert worse.n == len(split.y_test) and worse.low <= worse.difference <= worse.high
    with pytest.raises(ValueError, match="n_bootstrap"):
        NoiseRule(n_bootstrap=10, confidence=0.95, seed=0)
