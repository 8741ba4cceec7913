"""The closed loop through real pipeline runs: outcomes, business KPIs, alarms, retraining.

Real components: `zenml pipeline run` of the training, batch (with a campaign),
feature (outcomes) and business KPI pipelines in this module's own ZenML store; the
parquet offline store and Feast's point-in-time reads; MLflow on SQLite (registry,
champion, held-out figures, the KPI runs); the prediction log and campaign files.
The stages are churn.loop.demo's (what `make loop-demo` runs), on fewer customers.

Known truth: outcomes are simulated by the generator from each customer's true churn
risk, with relative risk 0.7 for the campaign's treated arm.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churn.data.offline import LABELS_TABLE, table_path
from churn.features.derived import add_derived
from churn.features.store import get_store
from churn.loop import prediction_log_root
from churn.loop.campaign import campaigns_root, read_campaigns
from churn.loop.demo import DemoConfig, LoopRun, write_outcomes_file
from churn.loop.kpi_report import REPORT_HTML, REPORT_JSON, kpi_reports_root
from churn.loop.predlog import BATCH, PredictionBatch, read_log, write_log
from churn.models.registry import champion_ref, load_champion_serving, use_tracking
from churn.monitoring.current import log_rows
from churn.monitoring.drift_report import drift_reports_root
from churn.runs import pipeline_config
from churn.schema import ENTITY_KEY, LABEL, model_input_names
from churn.settings import Settings, get_settings

MODEL = "churn-classifier-loop"
RELATIVE_RISK = 0.7
TRAINING = {
    "model_name": MODEL,
    "experiment": "churn-loop-test",
    "cv_folds": 3,
    # Logistic regression only: seconds to fit, and monotone in tenure, so the model
    # gates (directional tests) pass on any draw of this small data.
    "param_grid": {"logreg": [{"C": 1.0}]},
}
CONFIG = DemoConfig(
    customers=4000,
    snapshots=3,
    seed=23,
    relative_risk=RELATIVE_RISK,
    outcome_seed=5,
    pipelines={
        "training_pipeline": TRAINING,
        "batch_inference_pipeline": {
            "model_name": MODEL,
            "n_threads": 1,
            "campaign": {
                "enabled": True,
                "kind": "top_n",
                "top_n": 2000,
                "min_probability": 0.5,
                "control_share": 0.5,
                "seed": 4,
                "strata": 10,
            },
        },
        "business_kpi_pipeline": {
            "model_name": MODEL,
            "experiment": "churn-loop-test-kpis",
            "bootstrap": {"n_resamples": 100, "confidence": 0.95, "seed": 0},
        },
    },
)


@dataclass(frozen=True)
class Loop:
    """The loop's runner and what its first stages produced."""

    run: LoopRun
    today: pd.DataFrame
    outcomes: pd.DataFrame
    report: dict[str, Any]
    report_dir: Path

    @property
    def settings(self) -> Settings:
        return self.run.settings


def _reports(settings: Settings) -> list[Path]:
    root = kpi_reports_root(settings)
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    """t0 snapshots -> train -> batch + campaign -> outcomes at t1 -> KPI report ("fail",
    which a good model must not trigger)."""
    home = tmp_path_factory.mktemp("loop_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHURN_HOME", str(home))
        get_settings.cache_clear()
        t0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        run = LoopRun(CONFIG, get_settings(), t0)
        today = run.snapshots()
        run.train()
        run.score()
        path, _ = write_outcomes_file(CONFIG, today, run.t1, run.settings)
        run.ingest(path)
        run.kpis({"action": "fail"})
        (report_dir,) = _reports(run.settings)
        report = json.loads((report_dir / REPORT_JSON).read_text())
        try:
            yield Loop(run, today, pd.read_parquet(path), report, report_dir)
        finally:
            get_settings.cache_clear()
    get_settings.cache_clear()


def test_outcomes_reached_the_labels_table_through_the_feature_pipeline(loop: Loop) -> None:
    labels = pd.read_parquet(table_path(LABELS_TABLE, loop.settings.offline_dir))
    assert len(labels) == 3 * CONFIG.customers  # two labelled snapshots + t0's outcomes
    latest = labels[labels["event_timestamp"] == labels["event_timestamp"].max()]
    merged = latest.merge(loop.outcomes, on=ENTITY_KEY, suffixes=("", "_sent"))
    assert len(merged) == CONFIG.customers and (merged[LABEL] == merged[f"{LABEL}_sent"]).all()


def test_the_kpi_report_recovers_the_simulated_effect(loop: Loop) -> None:
    (effect,) = loop.report["campaigns"]
    # Half of each risk decile held out (rounded per decile): about 1000 each.
    assert effect["n_treated"] + effect["n_control"] == 2000
    assert abs(effect["n_treated"] - effect["n_control"]) <= 10
    assert effect["relative_risk_low"] <= RELATIVE_RISK <= effect["relative_risk_high"]
    assert effect["relative_risk_high"] < 1.0  # the effect is detected, not just covered
    assert effect["customers_saved"] > 0
    assert effect["campaign_cost"] == effect["n_treated"] * 5.0
    assert not loop.report["is_alarm"]  # a good model: "fail" did not fire
    page = (loop.report_dir / REPORT_HTML).read_text()
    assert page.count("data:image/png;base64,") == 3  # deciles, calibration, uplift
    assert "relative risk [95%]" in page


def test_realized_auc_agrees_with_the_model_on_the_outcomes(loop: Loop) -> None:
    """The pipeline's realized AUC (log + outcomes + Feast) against the champion's own
    scores of t0's features, computed here: the treated arm left out, each control
    customer counted for the targets of its risk decile (churn.loop.kpi)."""
    (row,) = loop.report["performance"]
    campaign = read_campaigns(campaigns_root(loop.settings))
    cells = campaign.groupby("risk_decile")["arm"]
    stands_for = cells.size() / cells.apply(lambda arm: (arm == "control").sum())
    weight = campaign["risk_decile"].map(stands_for).where(campaign["arm"] == "control", 0.0)
    weights = pd.Series(weight.to_numpy(), index=campaign[ENTITY_KEY])
    weights = weights.reindex(loop.today[ENTITY_KEY]).fillna(1.0)
    kept = loop.today[(weights > 0).to_numpy()].reset_index(drop=True)
    scores = load_champion_serving(MODEL).predict_proba(add_derived(kept))
    outcomes = loop.outcomes.set_index(ENTITY_KEY).loc[kept[ENTITY_KEY], LABEL]
    direct = roc_auc_score(outcomes.to_numpy(), scores, sample_weight=weights[weights > 0])
    assert row["n"] == len(kept) == CONFIG.customers - (weights == 0).sum()
    assert abs(row["roc_auc"] - direct) < 0.01
    assert row["model_version"] == f"{MODEL}-v{champion_ref(MODEL).version}"
    assert row["offline"]["roc_auc"] is not None  # the held-out figure from MLflow


def test_the_kpi_run_is_logged_to_mlflow(loop: Loop) -> None:
    client = use_tracking()
    experiment = client.get_experiment_by_name("churn-loop-test-kpis")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    (effect,) = loop.report["campaigns"]
    key = f"campaign.{effect['campaign_id']}.relative_risk"
    assert any(r.data.metrics.get(key) == pytest.approx(effect["relative_risk"]) for r in runs)


def test_bad_outcomes_fail_the_feature_pipeline_and_write_nothing(
    loop: Loop, tmp_path: Path
) -> None:
    labels = table_path(LABELS_TABLE, loop.settings.offline_dir)
    before = labels.read_bytes()
    bad = loop.outcomes.head(20).copy()
    bad.loc[3, ENTITY_KEY] = "SYN-NOBODY"
    bad = pd.concat([bad, bad.iloc[[5]].assign(**{LABEL: 1 - bad[LABEL].iat[5]})])
    path = tmp_path / "bad_outcomes.parquet"
    bad.to_parquet(path, index=False)
    with pytest.raises(RuntimeError) as caught:
        loop.run.ingest(path, tmp_path)
    message = str(caught.value)
    assert "DataContractError" in message and "SYN-NOBODY" in message
    assert "duplicate_outcome" in message
    assert labels.read_bytes() == before


def test_a_degraded_model_alarms_and_retraining_registers_a_new_version(
    loop: Loop, tmp_path: Path
) -> None:
    """The champion's predictions with shuffled scores, in a log of their own: the
    KPI pipeline fails with "fail", and with "retrain" trains a new version."""
    log = read_log(prediction_log_root(None, loop.settings))
    shuffled = np.random.default_rng(0).permutation(log["probability"].to_numpy())
    root = str(tmp_path / "degraded_log")
    write_log(
        root,
        [
            PredictionBatch(
                request_id="degraded",
                customer_ids=log[ENTITY_KEY].tolist(),
                model_name=MODEL,
                model_version=str(log["model_version"].iat[0]),
                probabilities=shuffled,
                threshold=float(log["threshold"].iat[0]),
                event_times=(log["feature_event_time"] - pd.Timestamp(0, tz="UTC"))
                .dt.total_seconds()
                .to_numpy(),
                predicted_at=datetime.now(UTC).timestamp(),
                source=BATCH,
            )
        ],
    )
    with pytest.raises(RuntimeError) as failed:
        loop.run.kpis({"prediction_log_uri": root, "action": "fail"}, tmp_path)
    assert "RealizedPerformanceError" in str(failed.value)
    assert "realized roc_auc" in str(failed.value)
    report = json.loads((_reports(loop.settings)[-1] / REPORT_JSON).read_text())
    assert report["is_alarm"] and report["performance"][0]["roc_auc"] < 0.6

    training = pipeline_config("training_pipeline", TRAINING, tmp_path / "training", {})
    client = use_tracking()
    before = {v.version for v in client.search_model_versions(f"name='{MODEL}'")}
    loop.run.kpis(
        {"prediction_log_uri": root, "action": "retrain", "training_config": str(training)},
        tmp_path,
    )
    after = {v.version for v in client.search_model_versions(f"name='{MODEL}'")}
    assert len(after - before) == 1


def test_the_drift_pipeline_tests_what_the_log_recorded(loop: Loop, tmp_path: Path) -> None:
    """Window kind "prediction_log": every batch record of t0, its inputs read from
    Feast as of the record's feature_event_time (the batch path logs no features)."""
    window = {"kind": "prediction_log", "source": "batch"}
    loop.run.pipeline(
        "drift_monitoring_pipeline",
        {"model_name": MODEL, "window": window, "action": "alert"},
        tmp_path,
    )
    (directory,) = sorted(drift_reports_root(loop.settings).iterdir())
    report = json.loads((directory / "report.json").read_text())
    assert report["source"]["kind"] == "prediction_log"
    assert report["current_rows"] == CONFIG.customers == report["source"]["rows"]
    assert report["source"]["with_logged_features"] == 0


def test_logged_features_equal_what_feast_serves_for_the_record(loop: Loop) -> None:
    """The two ways a log record becomes model inputs agree: values the server logged
    (here: t0's features as generated) and Feast's point-in-time read."""
    log = read_log(prediction_log_root(None, loop.settings)).head(300)
    inputs = add_derived(loop.today).set_index(ENTITY_KEY).loc[log[ENTITY_KEY]]
    logged = log.copy()
    logged["features"] = [
        json.dumps({c: row[c] for c in model_input_names()})
        for row in inputs[model_input_names()].to_dict("records")
    ]
    from_feast = log_rows(log, get_store())
    from_log = log_rows(logged, None)
    for column in model_input_names():
        left, right = from_feast[column].to_numpy(), from_log[column].to_numpy()
        if left.dtype.kind in "fi":
            np.testing.assert_allclose(left.astype(float), right.astype(float), err_msg=column)
        else:
            assert (left == right).all(), column
