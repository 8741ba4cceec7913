"""Batch inference and drift monitoring, end to end through `zenml pipeline run`.

Real components: the parquet offline store and Feast's registry (features read with
get_historical_features, point in time), MLflow on SQLite (registry, champion alias,
serving model and drift detector artifacts), ZenML's local store and orchestrator,
and a real `zenml pipeline run` of the training pipeline when drift asks to retrain.
Redis is not involved: both pipelines read the offline store, as batch jobs should.

State is isolated: this module has its own CHURN_HOME (offline store, Feast registry,
MLflow database, predictions, reports) and its own ZENML_CONFIG_PATH, so it neither
sees nor disturbs the other integration modules' data.

Data: three snapshots of synthetic customers. January (3000, the champion's training
data), February "shifted" (3000; mostly month-to-month contracts, monthly charges
x 1.2) and March "reference-like" (the first 2000 customers again, drawn afresh from
the same generator). The champion is trained and registered directly with churn.models
(the fast path: seconds instead of a training pipeline run).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from zenml_support import edited_config, zenml

from churn.data.contract import validate
from churn.data.offline import write_offline_store
from churn.data.synthetic import generate
from churn.drift import fit_detector
from churn.features.derived import add_derived
from churn.features.names import FEATURE_SERVICE
from churn.features.pipeline import apply_features
from churn.models.candidates import train_candidate
from churn.models.evaluate import evaluate
from churn.models.fingerprint import data_fingerprint, evaluation_fingerprint
from churn.models.registry import (
    DRIFT_ARTIFACT,
    load_serving_model,
    log_candidate,
    promote_if_better,
    register,
    use_tracking,
)
from churn.models.serialize import ServingModel, save_model
from churn.models.split import split_frame
from churn.monitoring.batch import latest_predictions, predictions_root
from churn.monitoring.drift_report import drift_reports_root
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, LABEL, model_input_names
from churn.settings import Settings, get_settings
from configs import evaluation_terms

MODEL_NAME = "churn-classifier-monitoring"
JAN = datetime(2025, 1, 1, tzinfo=UTC)
FEB = datetime(2025, 2, 1, tzinfo=UTC)
MAR = datetime(2025, 3, 1, tzinfo=UTC)
BATCH = "pipelines.batch_inference_pipeline.batch_inference_pipeline"
DRIFT = "pipelines.drift_monitoring_pipeline.drift_monitoring_pipeline"
FEBRUARY_WINDOW = {"kind": "snapshot", "snapshot_time": FEB.isoformat()}


@pytest.fixture(scope="module")
def monitoring_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """This module's own CHURN_HOME and ZenML store (restored afterwards)."""
    home = tmp_path_factory.mktemp("monitoring_home")
    zenml_config = tmp_path_factory.mktemp("monitoring_zenml")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHURN_HOME", str(home))
        mp.setenv("ZENML_CONFIG_PATH", str(zenml_config))
        mp.setenv("ZENML_ANALYTICS_OPT_IN", "false")
        mp.setenv("ZENML_LOGGING_VERBOSITY", "INFO")  # the batch progress lines are INFO
        mp.setenv("AUTO_OPEN_DASHBOARD", "false")
        get_settings.cache_clear()
        try:
            yield get_settings()
        finally:
            get_settings.cache_clear()
    get_settings.cache_clear()


def shifted(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Mostly month-to-month contracts, monthly (and total) charges x 1.2: still valid data."""
    out = frame.copy()
    moved = np.random.default_rng(seed).random(len(out)) < 0.85
    out.loc[moved, "contract"] = "Month-to-month"
    out["monthly_charges"] = (out["monthly_charges"] * 1.2).round(2)
    out["total_charges"] = (out["total_charges"] * 1.2).round(2)
    return validate(out, require_timestamps=True)


@dataclass(frozen=True)
class Store:
    """The three snapshots as written to the offline store (raw features + labels)."""

    january: pd.DataFrame
    february: pd.DataFrame
    march: pd.DataFrame


@pytest.fixture(scope="module")
def store(monitoring_env: Settings) -> Store:
    data = Store(
        january=generate(3000, seed=41, start=JAN),
        february=shifted(generate(3000, seed=42, start=FEB), seed=42),
        march=generate(2000, seed=43, start=MAR),
    )
    for frame in (data.january, data.february, data.march):
        write_offline_store(frame, monitoring_env.offline_dir)
    apply_features(monitoring_env)
    return data


@dataclass(frozen=True)
class Registered:
    version: str
    model: ServingModel
    threshold: float


@pytest.fixture(scope="module")
def champion(store: Store, monitoring_env: Settings) -> Registered:
    """XGBoost on January, logged with its drift detector, registered and promoted."""
    inputs = model_input_names()
    january = add_derived(store.january)
    train, test = split_frame(january, strategy="stratified", test_size=0.2, seed=0)
    grid = [{"n_estimators": 100, "max_depth": 3, "learning_rate": 0.1}]
    candidate = train_candidate("xgboost", train[inputs], train[LABEL], grid, seed=0, cv_folds=3)
    evaluation = evaluate(candidate.pipeline, test[inputs], test[LABEL], **evaluation_terms())
    work = Path(tempfile.mkdtemp(prefix="champion-", dir=monitoring_env.home))
    save_model(
        candidate.pipeline,
        work / "serving",
        metadata={"threshold": evaluation.threshold, "feature_service": FEATURE_SERVICE},
    )
    fit_detector(train, seed=0).save(work / "detector")
    run_id = log_candidate(
        experiment="churn-monitoring-test",
        candidate=candidate,
        evaluation=evaluation,
        X_example=test[inputs],
        serving_dir=work / "serving",
        plots={},
        feast_feature_service=FEATURE_SERVICE,
        data_fingerprint=data_fingerprint(train),
        heldout_fingerprint=evaluation_fingerprint(test[inputs], test[LABEL]),
    )
    use_tracking().log_artifacts(run_id, str(work / "detector"), DRIFT_ARTIFACT)
    version = register(run_id, MODEL_NAME)
    decision = promote_if_better(MODEL_NAME, version, "roc_auc", evaluation.roc_auc, True)
    assert decision.promoted, decision.reason
    return Registered(version, load_serving_model(MODEL_NAME, version), evaluation.threshold)


def _run(pipeline: str, config: Path) -> subprocess.CompletedProcess[str]:
    return zenml("pipeline", "run", pipeline, "-c", str(config))


def _latest_report(settings: Settings, before: set[Path]) -> tuple[Path, dict[str, Any]]:
    """The one report directory written since `before` was listed."""
    root = drift_reports_root(settings)
    new = sorted(set(root.iterdir()) - before) if root.exists() else []
    assert len(new) == 1, f"expected one new drift report under {root}, found {new}"
    return new[0], json.loads((new[0] / "report.json").read_text())


def _reports(settings: Settings) -> set[Path]:
    root = drift_reports_root(settings)
    return set(root.iterdir()) if root.exists() else set()


def test_batch_pipeline_scores_every_customer_like_the_champion(
    store: Store, champion: Registered, monitoring_env: Settings, tmp_path: Path
) -> None:
    edit = {"model_name": MODEL_NAME, "chunk_size": 1000, "n_threads": 1}
    config = edited_config("batch_inference_pipeline", tmp_path, edit)
    result = _run(BATCH, config)
    assert "scored chunk 3/3: 3000/3000 customers" in result.stdout + result.stderr

    out = latest_predictions(predictions_root(monitoring_env))
    assert out is not None and out.name.endswith(f"_{MODEL_NAME}-v{champion.version}")
    predictions = pd.read_parquet(out / "predictions.parquet")
    summary = json.loads((out / "summary.json").read_text())

    # Every customer once, at their own latest snapshot: March for the first 2000,
    # February for the 1000 that March does not list.
    expected = pd.concat(
        [store.march, store.february[~store.february[ENTITY_KEY].isin(store.march[ENTITY_KEY])]]
    )
    expected = add_derived(expected).set_index(ENTITY_KEY).loc[predictions[ENTITY_KEY]]
    assert len(predictions) == 3000 and predictions[ENTITY_KEY].is_unique
    assert (predictions["snapshot_time"].to_numpy() == expected[EVENT_TIMESTAMP].to_numpy()).all()

    # The same numbers as the registry's champion on the same features (computed here
    # from the generated rows, not through Feast).
    p = champion.model.predict_proba(expected.reset_index())
    assert np.max(np.abs(predictions["churn_probability"].to_numpy() - p)) < 1e-9
    assert (predictions["churn_label"].to_numpy() == (p >= champion.threshold)).all()
    monthly = expected["monthly_charges"].to_numpy()
    np.testing.assert_allclose(predictions["expected_loss"], p * monthly, rtol=1e-12)

    # Ranked by expected loss, highest first; reasons are model inputs.
    loss = predictions["expected_loss"].to_numpy()
    assert (np.diff(loss) <= 0).all()
    assert predictions["rank"].tolist() == list(range(1, 3001))
    assert set(predictions["reason_1"]) <= set(model_input_names())
    assert (predictions["model_version"] == f"{MODEL_NAME}-v{champion.version}").all()

    assert summary["rows"] == 3000
    assert summary["at_risk"] == int(predictions["churn_label"].sum()) > 0
    csv = pd.read_csv(out / "predictions.csv")
    assert csv[ENTITY_KEY].tolist() == predictions[ENTITY_KEY].tolist()


def test_batch_pipeline_makes_a_campaign_with_a_control_group_and_logs_every_customer(
    store: Store, champion: Registered, monitoring_env: Settings, tmp_path: Path
) -> None:
    from churn.loop.campaign import campaigns_root
    from churn.loop.predlog import read_log

    campaign = {
        "enabled": True, "kind": "top_n", "top_n": 600, "min_probability": 0.5,
        "control_share": 0.25, "seed": 3, "strata": 10,
    }  # fmt: skip
    log_root = tmp_path / "prediction_log"
    edit = {
        "model_name": MODEL_NAME, "chunk_size": 1000, "n_threads": 1,
        "campaign": campaign, "prediction_log_uri": str(log_root),
    }  # fmt: skip
    _run(BATCH, edited_config("batch_inference_pipeline", tmp_path, edit))
    out = latest_predictions(predictions_root(monitoring_env))
    assert out is not None
    predictions = pd.read_parquet(out / "predictions.parquet").set_index(ENTITY_KEY)
    run = json.loads((out / "summary.json").read_text())["pipeline_run"]

    # The prediction log: every scored customer once, with the scored probability.
    log = read_log(str(log_root)).set_index(ENTITY_KEY)
    assert len(log) == 3000 and log.index.is_unique and set(log["request_id"]) == {run}
    assert set(log["source"]) == {"batch"}
    np.testing.assert_allclose(
        log["probability"], predictions.loc[log.index, "churn_probability"], rtol=1e-12
    )

    # The campaign: the 600 highest expected losses, a quarter held out in each decile.
    root = campaigns_root(monitoring_env)
    latest = json.loads((root / "latest.json").read_text())["name"]
    table = pd.read_parquet(root / latest / "campaign.parquet")
    assert len(table) == 600 and table[ENTITY_KEY].is_unique
    top = predictions["expected_loss"].nlargest(600)
    assert set(table[ENTITY_KEY]) == set(top.index)
    per_decile = table.groupby("risk_decile")["arm"].agg(lambda a: ((a == "control").sum(), len(a)))
    for control, n in per_decile:
        assert control == int(np.floor(0.25 * n + 0.5))
    assert set(table["model_version"]) == {f"{MODEL_NAME}-v{champion.version}"}
    contacts = pd.read_csv(root / latest / "contacts.csv")
    treated = set(table.loc[table["arm"] == "treated", ENTITY_KEY])
    assert set(contacts[ENTITY_KEY].astype(str)) == treated and len(treated) > 0
    assert set(contacts["reason_1"]) <= set(model_input_names())


def test_drift_pipeline_finds_no_drift_in_a_reference_like_snapshot(
    store: Store, champion: Registered, monitoring_env: Settings, tmp_path: Path
) -> None:
    """Default window: the newest snapshot (March). Action "fail" does not fire."""
    before = _reports(monitoring_env)
    edit = {"model_name": MODEL_NAME, "action": "fail"}
    config = edited_config("drift_monitoring_pipeline", tmp_path, edit)
    _run(DRIFT, config)
    directory, report = _latest_report(monitoring_env, before)
    assert report["source"]["snapshot_time"] == MAR.isoformat()
    assert report["current_rows"] == 2000 and report["windows"] == 4
    assert report["model_version"] == f"{MODEL_NAME}-v{champion.version}"
    assert not report["is_drift"]
    assert report["drifted_features"] == []
    assert "No drift" in (directory / "report.html").read_text()


def test_drift_pipeline_fails_on_a_shifted_snapshot_naming_the_features(
    store: Store, champion: Registered, monitoring_env: Settings, tmp_path: Path
) -> None:
    before = _reports(monitoring_env)
    edit = {"model_name": MODEL_NAME, "action": "fail", "window": FEBRUARY_WINDOW}
    config = edited_config("drift_monitoring_pipeline", tmp_path, edit)
    result = zenml("pipeline", "run", DRIFT, "-c", str(config), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "DriftDetectedError" in output
    directory, report = _latest_report(monitoring_env, before)  # written before failing
    assert report["is_drift"] and report["windows_drifted"] == report["windows"] == 6
    assert {"contract", "monthly_charges"} <= set(report["drifted_features"])
    assert f"drifted features: {', '.join(report['drifted_features'])}" in output
    page = (directory / "report.html").read_text()
    assert "Drift detected in 6 of 6 windows" in page
    assert page.count("data:image/png;base64,") == len(model_input_names())


def test_drift_pipeline_retrains_when_asked(
    store: Store, champion: Registered, monitoring_env: Settings, tmp_path: Path
) -> None:
    """Action "retrain": the drift run starts `zenml pipeline run` of the training
    pipeline (small grid), which registers a new version of the model."""
    training = edited_config(
        "training_pipeline",
        tmp_path,
        {
            "model_name": MODEL_NAME,
            "experiment": "churn-monitoring-retrain",
            "cv_folds": 3,
            "param_grid": {
                "xgboost": [{"n_estimators": 100, "max_depth": 3, "learning_rate": 0.1}]
            },
        },
    )
    edit = {
        "model_name": MODEL_NAME,
        "action": "retrain",
        "training_config": str(training),
        "window": FEBRUARY_WINDOW,
    }
    config = edited_config("drift_monitoring_pipeline", tmp_path, edit)
    client = use_tracking()
    versions_before = {v.version for v in client.search_model_versions(f"name='{MODEL_NAME}'")}
    result = _run(DRIFT, config)
    versions_after = {v.version for v in client.search_model_versions(f"name='{MODEL_NAME}'")}
    assert len(versions_after - versions_before) == 1, result.stdout[-2000:]
    assert "starting the training pipeline" in result.stdout + result.stderr
