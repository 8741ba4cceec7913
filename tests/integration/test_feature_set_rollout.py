"""Rolling out feature set 2 on a real MLflow registry (SQLite in tmp_path, no mocks).

The v1 champion stays in place while a v2 challenger trains; the challenger is judged
against it on the same held-out customers, the champion re-scored with its OWN set's
features (a v1 challenger's frame lacks v2's derived features, which are a function of
the raw ones every set carries); whichever wins, the champion's artifacts name its
FeatureService, and the bundle built from them serves that set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn.data.telco import load_telco
from churn.features.derived import add_derived
from churn.features.names import FEATURE_SERVICES
from churn.models import registry
from churn.models.candidates import TrainedCandidate, train_candidate
from churn.models.evaluate import evaluate, save_plots
from churn.models.fingerprint import data_fingerprint, evaluation_fingerprint
from churn.models.promotion import NoiseRule
from churn.models.serialize import load_model, save_model
from churn.models.split import split_frame
from churn.schema import LABEL, model_input_names
from configs import evaluation_terms
from deployment.bundle import build_bundle
from serving.bundle import read_manifest

pytestmark = pytest.mark.integration

NOISE = NoiseRule(n_bootstrap=300, confidence=0.95, seed=0)
XGB = [{"n_estimators": 150, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8}]
LOGREG = [{"C": 0.1}]


@dataclass(frozen=True)
class Data:
    train: pd.DataFrame  # every set's derived columns, label included
    test: pd.DataFrame


@pytest.fixture(scope="module")
def data(telco_csv: Path) -> Data:
    frame = add_derived(load_telco(telco_csv))
    train, test = split_frame(frame, strategy="stratified", test_size=0.2, seed=42)
    return Data(train.reset_index(drop=True), test.reset_index(drop=True))


@pytest.fixture()
def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _train(kind: str, version: int, data: Data) -> TrainedCandidate:
    return train_candidate(
        kind,  # type: ignore[arg-type]
        data.train[model_input_names(version)],
        data.train[LABEL],
        XGB if kind == "xgboost" else LOGREG,
        seed=0,
        cv_folds=3,
        feature_version=version,
    )


def _register(
    name: str, candidate: TrainedCandidate, version: int, data: Data, uri: str, tmp: Path
) -> tuple[str, np.ndarray]:
    """Log and register `candidate` with its FeatureService as the pipeline does."""
    X_test = data.test[model_input_names(version)]  # noqa: N806
    evaluation = evaluate(candidate.model, X_test, data.test[LABEL], **evaluation_terms())
    service = FEATURE_SERVICES[version]
    save_model(
        candidate.pipeline,
        tmp / "serving",
        {"threshold": evaluation.threshold, "feature_service": service},
        candidate.calibrator,
    )
    run_id = registry.log_candidate(
        experiment="churn-rollout-tests",
        candidate=candidate,
        evaluation=evaluation,
        X_example=X_test,
        serving_dir=tmp / "serving",
        plots=save_plots(evaluation, candidate.pipeline, tmp / "plots"),
        feast_feature_service=service,
        data_fingerprint=data_fingerprint(data.train[model_input_names(version)]),
        heldout_fingerprint=evaluation_fingerprint(X_test, data.test[LABEL]),
        tracking_uri=uri,
    )
    return registry.register(run_id, name, uri), evaluation.scores


def _promote(
    name: str,
    version: str,
    scores: np.ndarray,
    X: pd.DataFrame,  # noqa: N803
    data: Data,
    uri: str,
) -> registry.PromotionDecision:
    y = data.test[LABEL].to_numpy()
    return registry.promote_if_better(
        name, version, "roc_auc", registry.SCORERS["roc_auc"][0](y, scores), True,
        evaluation_data=(X, y), tracking_uri=uri, noise=NOISE, challenger_scores=scores,
        min_improvement=-1.0,  # any challenger wins: the test is about the sets, not the noise
    )  # fmt: skip


@pytest.mark.parametrize(("champion_set", "challenger_set"), [(1, 2), (2, 1)])
def test_a_challenger_of_another_set_is_judged_on_the_champions_own_features(
    champion_set: int, challenger_set: int, data: Data, tracking_uri: str, tmp_path: Path
) -> None:
    name = f"churn-rollout-{champion_set}-{challenger_set}"
    champion = _train("xgboost", champion_set, data)
    champion_version, champion_scores = _register(
        name, champion, champion_set, data, tracking_uri, tmp_path / "a"
    )
    X_champion = data.test[model_input_names(champion_set)]  # noqa: N806
    assert _promote(
        name, champion_version, champion_scores, X_champion, data, tracking_uri
    ).promoted

    challenger = _train("logreg", challenger_set, data)
    version, scores = _register(
        name, challenger, challenger_set, data, tracking_uri, tmp_path / "b"
    )
    X_challenger = data.test[model_input_names(challenger_set)]  # noqa: N806
    decision = _promote(name, version, scores, X_challenger, data, tracking_uri)
    assert decision.champion_rescored and decision.promoted
    # the champion's score is its own model on its own set's features, exactly
    expected = registry.SCORERS["roc_auc"][0](data.test[LABEL].to_numpy(), champion_scores)
    assert decision.champion_score == pytest.approx(expected, abs=1e-12)

    artifacts = registry.fetch_champion(name, tmp_path / "fetched", tracking_uri)
    assert artifacts.version == version
    assert artifacts.feature_service == FEATURE_SERVICES[challenger_set]
    assert load_model(artifacts.model_dir).feature_version == challenger_set
    manifest = build_bundle(
        tmp_path / "bundle",
        model_dir=artifacts.model_dir,
        model_version=artifacts.version,
        threshold=artifacts.threshold,
        feature_service=artifacts.feature_service,
    )
    assert manifest.feature_version == challenger_set
    assert read_manifest(tmp_path / "bundle").feature_order == tuple(
        model_input_names(challenger_set)
    )
