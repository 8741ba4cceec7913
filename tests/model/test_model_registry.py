"""MLflow tracking + registry with a real SQLite backend in tmp_path (no mocks).

One registry for the module; the tests run in file order and build on each other
like the pipeline does: log -> register -> promote / keep -> rollback -> load.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from model_support import SEED, Split

from churn.models import registry
from churn.models.candidates import TrainedCandidate, train_candidate
from churn.models.evaluate import evaluate, save_plots
from churn.models.fingerprint import data_fingerprint, evaluation_fingerprint
from churn.models.serialize import save_model
from configs import evaluation_terms

# name -> (run id, registered version, held-out ROC-AUC)
Versions = dict[str, tuple[str, str, float]]
NAME = "churn-test"
EXPERIMENT = "churn-model-tests"


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    return f"sqlite:///{db}"


@pytest.fixture(scope="module")
def weak(split: Split) -> TrainedCandidate:
    """A genuinely worse model: logistic regression on 300 rows, heavily regularised."""
    return train_candidate(
        "logreg",
        split.X_train.head(300),
        split.y_train[:300],
        [{"C": 0.001}],
        seed=SEED,
        cv_folds=3,
    )


def _log(
    candidate: TrainedCandidate,
    X: pd.DataFrame,  # noqa: N803
    y: npt.NDArray[np.int64],
    tracking_uri: str,
    tmp: Path,
    train: pd.DataFrame,
) -> tuple[str, float]:
    evaluation = evaluate(candidate.pipeline, X, y, **evaluation_terms())
    plots = save_plots(evaluation, candidate.pipeline, tmp / "plots")
    save_model(candidate.pipeline, tmp / "serving", {"threshold": evaluation.threshold})
    run_id = registry.log_candidate(
        experiment=EXPERIMENT,
        candidate=candidate,
        evaluation=evaluation,
        X_example=X,
        serving_dir=tmp / "serving",
        plots=plots,
        feast_feature_service="churn_model_v1",
        data_fingerprint=data_fingerprint(train),
        heldout_fingerprint=evaluation_fingerprint(X, y),
        tracking_uri=tracking_uri,
    )
    return run_id, evaluation.roc_auc


@pytest.fixture(scope="module")
def versions(
    candidates: dict[str, TrainedCandidate],
    weak: TrainedCandidate,
    split: Split,
    tracking_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[str, str, float]]:
    """name -> (run id, registered version, held-out ROC-AUC), all on the same test set."""
    out = {}
    for key, candidate in (
        ("xgboost", candidates["xgboost"]),
        ("logreg", candidates["logreg"]),
        ("weak", weak),
    ):
        run_id, auc = _log(
            candidate,
            split.X_test,
            split.y_test,
            tracking_uri,
            tmp_path_factory.mktemp(key),
            split.X_train,
        )
        out[key] = (run_id, registry.register(run_id, NAME, tracking_uri), auc)
    return out


def test_a_run_holds_params_metrics_tags_plots_and_both_models(
    versions: dict[str, tuple[str, str, float]], tracking_uri: str, split: Split
) -> None:
    run_id, version, auc = versions["xgboost"]
    client = registry.use_tracking(tracking_uri)
    run = client.get_run(run_id)
    assert run.data.params["model_kind"] == "xgboost"
    assert run.data.metrics["test_roc_auc"] == pytest.approx(auc)
    assert "test_slice.contract.Month-to-month.roc_auc" in run.data.metrics
    assert run.data.tags["feast_feature_service"] == "churn_model_v1"
    assert run.data.tags["data_fingerprint"] == data_fingerprint(split.X_train)
    assert run.data.tags["heldout_fingerprint"] == evaluation_fingerprint(
        split.X_test, split.y_test
    )
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"plots", "serving_model", "evaluation.json"} <= artifacts
    plots = {Path(a.path).name for a in client.list_artifacts(run_id, "plots")}
    assert plots == {
        "roc.png",
        "pr.png",
        "calibration.png",
        "confusion_matrix.png",
        "feature_importance.png",
    }
    # Artifacts live next to the SQLite file, never in a CWD-relative ./mlruns.
    db_dir = Path(tracking_uri.removeprefix("sqlite:///")).parent
    assert run.info.artifact_uri.startswith((db_dir / "artifacts").as_uri())
    assert client.get_model_version(NAME, version).run_id == run_id


def _ordered(versions: Versions) -> tuple[str, str]:
    """(worse, better) of the two real families by held-out ROC-AUC on this split."""
    low, high = sorted(("xgboost", "logreg"), key=lambda k: versions[k][2])
    assert versions[high][2] > versions[low][2]
    return low, high


def test_first_model_becomes_champion(versions: Versions, tracking_uri: str) -> None:
    low, _ = _ordered(versions)
    _, version, auc = versions[low]
    decision = registry.promote_if_better(
        NAME, version, "roc_auc", auc, True, tracking_uri=tracking_uri
    )
    assert decision.promoted and decision.champion_version is None
    assert registry.champion_version(NAME, tracking_uri) == version


def test_worse_challenger_leaves_champion_in_place(versions: Versions, tracking_uri: str) -> None:
    low, _ = _ordered(versions)
    _, champion, champion_auc = versions[low]
    _, version, auc = versions["weak"]
    assert auc < champion_auc
    decision = registry.promote_if_better(
        NAME, version, "roc_auc", auc, True, tracking_uri=tracking_uri
    )
    assert not decision.promoted and "does not beat" in decision.reason
    assert decision.champion_score == pytest.approx(champion_auc) and not decision.champion_rescored
    assert registry.champion_version(NAME, tracking_uri) == champion


def test_failed_gates_block_even_a_better_challenger(versions: Versions, tracking_uri: str) -> None:
    low, high = _ordered(versions)
    decision = registry.promote_if_better(
        NAME, versions[high][1], "roc_auc", 0.99, False, tracking_uri=tracking_uri
    )
    assert not decision.promoted and "gates failed" in decision.reason
    assert registry.champion_version(NAME, tracking_uri) == versions[low][1]


def test_better_challenger_moves_champion_and_keeps_previous(
    versions: Versions, tracking_uri: str
) -> None:
    low, high = _ordered(versions)
    old, new, new_auc = versions[low][1], versions[high][1], versions[high][2]
    decision = registry.promote_if_better(
        NAME, new, "roc_auc", new_auc, True, tracking_uri=tracking_uri
    )
    assert decision.promoted and decision.champion_version == old and "beats" in decision.reason
    client = registry.use_tracking(tracking_uri)
    assert str(client.get_model_version_by_alias(NAME, registry.CHAMPION).version) == new
    assert str(client.get_model_version_by_alias(NAME, registry.PREVIOUS_CHAMPION).version) == old


def test_rollback_restores_the_previous_champion(versions: Versions, tracking_uri: str) -> None:
    low, high = _ordered(versions)
    assert registry.rollback(NAME, tracking_uri) == versions[low][1]
    assert registry.champion_version(NAME, tracking_uri) == versions[low][1]
    client = registry.use_tracking(tracking_uri)
    assert client.get_model_version(NAME, versions[high][1]).tags["rolled_back"] == "true"
    with pytest.raises(ValueError, match="previous-champion"):
        registry.rollback(NAME, tracking_uri)  # nothing further back


def test_loaded_champion_is_the_champion_model(
    versions: Versions, candidates: dict[str, TrainedCandidate], split: Split, tracking_uri: str
) -> None:
    low, _ = _ordered(versions)
    expected = candidates[low].pipeline.predict_proba(split.X_test)[:, 1]
    pipeline = registry.load_champion(NAME, tracking_uri)
    np.testing.assert_allclose(pipeline.predict_proba(split.X_test)[:, 1], expected, atol=1e-12)
    serving = registry.load_champion_serving(NAME, tracking_uri)
    columns = {c: split.X_test[c].to_numpy() for c in split.X_test.columns}
    np.testing.assert_allclose(serving.predict_proba(columns), expected, atol=1e-6)


def test_champion_from_other_held_out_data_is_rescored(
    versions: Versions,
    candidates: dict[str, TrainedCandidate],
    split: Split,
    tracking_uri: str,
    tmp_path: Path,
) -> None:
    """The champion was evaluated on the full test set; a challenger evaluated on half of
    it cannot be compared with the champion's logged metric: the champion is re-scored."""
    low, _ = _ordered(versions)
    half_X, half_y = split.X_test.iloc[::2], split.y_test[::2]  # noqa: N806
    run_id, auc = _log(
        candidates["random_forest"], half_X, half_y, tracking_uri, tmp_path, split.X_train
    )
    version = registry.register(run_id, NAME, tracking_uri)
    with pytest.raises(ValueError, match="evaluation_data"):
        registry.promote_if_better(NAME, version, "roc_auc", auc, True, tracking_uri=tracking_uri)
    with pytest.raises(ValueError, match="not the challenger's held-out set"):
        registry.promote_if_better(
            NAME,
            version,
            "roc_auc",
            auc,
            True,
            evaluation_data=(split.X_test, split.y_test),
            tracking_uri=tracking_uri,
        )
    decision = registry.promote_if_better(
        NAME,
        version,
        "roc_auc",
        auc,
        True,
        evaluation_data=(half_X, half_y),
        tracking_uri=tracking_uri,
    )
    champion_on_half = evaluate(
        candidates[low].pipeline, half_X, half_y, **evaluation_terms()
    ).roc_auc
    assert decision.champion_rescored
    assert decision.champion_score == pytest.approx(champion_on_half, abs=1e-6)
    assert decision.promoted == (auc > champion_on_half)


def test_the_decision_is_recorded_on_the_challenger_version(
    versions: Versions, tracking_uri: str
) -> None:
    _, version, auc = versions["weak"]
    decision = registry.PromotionDecision(
        promoted=False, name=NAME, challenger_version=version, champion_version="1",
        metric="roc_auc", challenger_score=auc, champion_score=0.9, champion_rescored=False,
        reason=f"roc_auc {auc:.5f} does not beat champion v1's 0.90000",
    )  # fmt: skip
    registry.record_promotion(decision, tracking_uri)
    tags = registry.use_tracking(tracking_uri).get_model_version(NAME, version).tags
    assert tags[registry.TAG_PROMOTION] == decision.reason and tags["promoted"] == "false"
