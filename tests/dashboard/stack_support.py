"""A real local stack for the dashboard and monitoring tests: Redis, Feast, MLflow, MLServer.

`running_stack()` builds what `make demo` builds, in a temporary CHURN_HOME with its
own Redis (port and password of its own) and its own MLServer ports:

1. the real Telco CSV through the real feature pipeline (offline store, feast apply,
   materialize into Redis);
2. an XGBoost model trained on the real data (one grid point: ~2 s) and, with
   `registry=True`, logged, registered and promoted to "champion" in a SQLite
   MLflow exactly as the training pipeline's register/promote steps do (metrics,
   plots, serving model with threshold and feature service, drift detector);
   with `monitoring_outputs=True` also a real batch-scoring run and drift report;
3. a serving bundle of that model (the champion's, through deployment.deploy, when the
   registry is used) started in a real MLServer.

Its environment (CHURN_*) is set for the caller's process and restored afterwards,
so a Streamlit subprocess started inside sees the same stack.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from isolation import stack_env as isolated_stack_env
from sklearn.pipeline import Pipeline

from churn import redis_local
from churn.data.telco import load_telco
from churn.features.derived import add_derived
from churn.features.names import FEATURE_SERVICE
from churn.features.pipeline import DataSource, run_feature_pipeline
from churn.models.candidates import train_candidate
from churn.models.evaluate import evaluate, save_plots
from churn.models.fingerprint import data_fingerprint, evaluation_fingerprint
from churn.models.registry import ChampionArtifacts
from churn.models.serialize import save_model
from churn.schema import ENTITY_KEY, LABEL, model_input_names
from churn.settings import Settings, get_settings
from configs import evaluation_terms, pipeline_parameters
from deployment import local_server
from deployment.bundle import build_bundle_from_pipeline
from serving.settings import ServingSettings, get_serving_settings

REGISTERED_MODEL = "churn-classifier"
EXPERIMENT = "churn-dashboard-tests"
# Small drift windows so the few hundred rows a test sends complete several checks.
DRIFT_WINDOW = 10


@dataclass(frozen=True)
class Stack:
    """A running stack: settings, the Redis it owns, the served model version."""

    settings: Settings
    serving: ServingSettings
    redis: redis_local.RedisServerConfig
    url: str
    metrics_url: str
    model_version: str
    customer_ids: list[str]
    registry_version: str | None
    risky_customer: str  # month-to-month, tenure 1 (7590-VHVEG in the real file)


def risky_customer(customers: pd.DataFrame) -> str:
    """The first month-to-month customer in their first billed month: a clear churn risk
    whose top reason is tenure (7590-VHVEG, the first row of the real file)."""
    risky = customers[(customers["contract"] == "Month-to-month") & (customers["tenure"] == 1)]
    return str(risky[ENTITY_KEY].iloc[0])


def stack_env(home: Path) -> dict[str, str]:
    """CHURN_* variables of an isolated stack under `home`."""
    return {
        **isolated_stack_env(home, "dash"),
        "CHURN_SERVING_DRIFT_WINDOW": str(DRIFT_WINDOW),
        "CHURN_SERVING_STARTUP_TIMEOUT_S": "90",
    }


def train_model(telco_csv: Path) -> Pipeline:
    """XGBoost on every Telco customer: one grid point, 2-fold CV."""
    frame = add_derived(load_telco(telco_csv))
    return train_candidate(
        "xgboost",
        frame[model_input_names()],
        frame[LABEL],
        [{"n_estimators": 120, "max_depth": 3, "learning_rate": 0.1, "subsample": 0.9}],
        seed=0,
        cv_folds=2,
    ).pipeline


def fit_detector_dir(telco_csv: Path, out: Path) -> Path:
    """The default alibi-detect detector fitted on the Telco features, saved in `out`."""
    from churn.drift import fit_detector

    fit_detector(add_derived(load_telco(telco_csv))).save(out)
    return out


def register_champion(telco_csv: Path, work: Path, tracking_uri: str, drift_dir: Path) -> str:
    """Train, evaluate, log, register and promote a model as the training pipeline does.

    Returns the registered version (now the champion). Held-out set: a seeded 20%.
    The drift detector is logged on the run, as the register step does.
    """
    from churn.models import registry

    frame = add_derived(load_telco(telco_csv))
    rng = np.random.default_rng(0)
    held_out = rng.random(len(frame)) < 0.2
    train, test = frame[~held_out], frame[held_out]
    candidate = train_candidate(
        "xgboost",
        train[model_input_names()],
        train[LABEL],
        [{"n_estimators": 120, "max_depth": 3, "learning_rate": 0.1, "subsample": 0.9}],
        seed=0,
        cv_folds=2,
    )
    X_test, y_test = test[model_input_names()], test[LABEL].to_numpy(dtype=np.int64)  # noqa: N806
    evaluation = evaluate(candidate.pipeline, X_test, y_test, **evaluation_terms())
    plots = save_plots(evaluation, candidate.pipeline, work / "plots")
    save_model(
        candidate.pipeline,
        work / "serving_model",
        {"threshold": evaluation.threshold, "feature_service": FEATURE_SERVICE},
    )
    run_id = registry.log_candidate(
        experiment=EXPERIMENT,
        candidate=candidate,
        evaluation=evaluation,
        X_example=X_test,
        serving_dir=work / "serving_model",
        plots=plots,
        feast_feature_service=FEATURE_SERVICE,
        data_fingerprint=data_fingerprint(train[model_input_names()]),
        heldout_fingerprint=evaluation_fingerprint(X_test, y_test),
        tracking_uri=tracking_uri,
    )
    registry.use_tracking(tracking_uri).log_artifacts(
        run_id, str(drift_dir), registry.DRIFT_ARTIFACT
    )
    version = registry.register(run_id, REGISTERED_MODEL, tracking_uri)
    decision = registry.promote_if_better(
        REGISTERED_MODEL, version, "roc_auc", evaluation.roc_auc, True, tracking_uri=tracking_uri
    )
    assert decision.promoted, decision.reason
    return version


def write_monitoring_outputs(telco_csv: Path, champion: ChampionArtifacts) -> None:
    """A real batch-scoring run and a real drift report, as the monitoring pipelines write them.

    Batch: every customer at their latest snapshot, scored by the champion through Feast
    (churn.monitoring.batch). Drift: the champion's detector against the Telco customers
    with monthly charges raised 30% (total charges with them), so the report has drift.
    """
    from churn.drift.base import load_detector
    from churn.features.store import get_store
    from churn.models.serialize import load_model
    from churn.monitoring import batch, drift_report
    from churn.monitoring.snapshots import select_entities

    version = f"{champion.model_name}-v{champion.version}"
    scorer = batch.Champion(
        model=load_model(champion.model_dir),
        model_version=version,
        threshold=champion.threshold,
        feature_service=champion.feature_service,
    )
    predictions = batch.score_customers(get_store(), select_entities(None), scorer)
    batch.write_predictions(predictions, scorer.threshold)
    assert champion.drift_dir is not None
    raised = load_telco(telco_csv)
    raised["monthly_charges"] *= 1.3
    raised["total_charges"] *= 1.3
    report = drift_report.build_drift_report(
        load_detector(champion.drift_dir, features=model_input_names()),
        drift_report.reference_frame(champion.drift_dir),
        add_derived(raised),
        model_version=version,
        source={"kind": "test", "shift": "monthly and total charges x1.3"},
        window_size=500,
        max_windows=6,
        drift_share=pipeline_parameters("drift_monitoring_pipeline")["drift_share"],
    )
    drift_report.write_drift_report(report.to_dict())


def _clear_caches() -> None:
    get_settings.cache_clear()
    get_serving_settings.cache_clear()
    from dashboard.data import get_dashboard_settings

    get_dashboard_settings.cache_clear()


@contextmanager
def running_stack(
    home: Path, telco_csv: Path, *, registry: bool, monitoring_outputs: bool = False
) -> Iterator[Stack]:
    """Start Redis, load features, (register a champion, write batch scores and a drift
    report,) serve a bundle; stop everything afterwards."""
    env = stack_env(home)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        # MLServer imports serving.runtime and churn from the checkout.
        root = str(Path(__file__).resolve().parents[2])
        mp.setenv("PYTHONPATH", os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
        _clear_caches()
        settings = get_settings()
        serving = get_serving_settings()
        cfg = redis_local.config_from_settings(settings)
        redis_local.start(cfg)
        try:
            customers = load_telco(telco_csv)
            features = run_feature_pipeline(DataSource(kind="telco", csv_path=telco_csv), settings)
            assert features.customers == len(customers), features
            registry_version = None
            drift_dir = fit_detector_dir(telco_csv, home / "drift_detector")
            if registry:
                from churn.models.registry import fetch_champion
                from deployment.deploy import bundle_champion, bundle_dir_for

                registry_version = register_champion(
                    telco_csv, home / "training", settings.tracking_uri, drift_dir
                )
                champion = fetch_champion(REGISTERED_MODEL, home / "champion")
                bundle = bundle_dir_for(champion, home / "bundles")
                manifest = bundle_champion(champion, bundle, serving)
                if monitoring_outputs:
                    write_monitoring_outputs(telco_csv, champion)
            else:
                bundle = home / "bundles" / "v1"
                manifest = build_bundle_from_pipeline(
                    bundle, train_model(telco_csv), model_version="churn-classifier-v1",
                    threshold=0.35, feature_service=FEATURE_SERVICE, drift_dir=drift_dir,
                )  # fmt: skip
            local_server.start(bundle, serving)
            try:
                yield Stack(
                    settings=settings,
                    serving=serving,
                    redis=cfg,
                    url=local_server.base_url(serving),
                    metrics_url=f"http://127.0.0.1:{serving.metrics_port}/metrics",
                    model_version=manifest.model_version,
                    customer_ids=customers[ENTITY_KEY].tolist(),
                    registry_version=registry_version,
                    risky_customer=risky_customer(customers),
                )
            finally:
                local_server.stop(serving)
        finally:
            if redis_local.is_running(cfg):
                redis_local.stop(cfg)
            _clear_caches()
    _clear_caches()
