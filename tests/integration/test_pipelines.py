"""ZenML end to end, as users run it: `zenml stack import` of both stacks and
`zenml pipeline run` of the feature and training pipelines, in an isolated ZenML
store, against the session's real Redis and a SQLite MLflow under CHURN_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
import requests
from isolation import serving_ports_env
from zenml_support import edited_config, zenml

from churn.models.registry import CHAMPION
from churn.settings import PROJECT_ROOT, Settings
from churn.stacks import StackConfigError, register_stack
from deployment import local_server
from serving.settings import get_serving_settings

MODEL_NAME = "churn-classifier-test"


@pytest.fixture(scope="module")
def zenml_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh ZenML global config (its own SQLite store) for this module."""
    path = tmp_path_factory.mktemp("zenml")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZENML_CONFIG_PATH", str(path))
        mp.setenv("ZENML_ANALYTICS_OPT_IN", "false")
        mp.setenv("ZENML_LOGGING_VERBOSITY", "WARN")
        mp.setenv("AUTO_OPEN_DASHBOARD", "false")
        for name, value in serving_ports_env(path / "serving").items():
            mp.setenv(name, value)
        get_serving_settings.cache_clear()
        try:
            yield path
        finally:
            local_server.stop(get_serving_settings())
            get_serving_settings.cache_clear()


def test_both_stacks_register_without_a_cluster(zenml_home: Path, churn_env: Settings) -> None:
    """The EKS stack (Kubernetes orchestrator, S3, ECR, remote MLflow) registers here,
    with no cluster, bucket or registry reachable: ZenML checks them only at run time."""
    eks_env = {
        "EKS_KUBE_CONTEXT": "arn:aws:eks:eu-west-1:123456789012:cluster/churn",
        "AWS_ACCOUNT_ID": "123456789012",
        "AWS_REGION": "eu-west-1",
        "CHURN_S3_BUCKET": "churn-artifacts",
        "CHURN_MLFLOW_TRACKING_URI": "https://mlflow.example.internal",
        "MLFLOW_TRACKING_USERNAME": "ci",
        "MLFLOW_TRACKING_PASSWORD": "not-a-real-password",
    }
    assert register_stack("local", churn_env) is True
    assert register_stack("eks", churn_env, eks_env) is True
    # again, unchanged: both are recognised as the same stacks (secret references included)
    assert register_stack("local", churn_env) is False
    assert register_stack("eks", churn_env, eks_env) is False
    eks = zenml("stack", "describe", "eks")
    described = eks.stdout + eks.stderr  # zenml's rich console writes to either
    for component in ("eks_orchestrator", "s3_artifacts", "ecr", "mlflow_eks"):
        assert component in described
    local = zenml("stack", "describe", "local")
    assert "mlflow_local" in local.stdout + local.stderr


def test_a_stack_registered_from_another_checkout_is_refused(
    zenml_home: Path, churn_env: Settings, tmp_path: Path
) -> None:
    """Same stack name, another MLflow database: reusing it would send this
    checkout's runs elsewhere, so registration fails naming the difference."""
    register_stack("local", churn_env)  # no-op when the test above ran first
    other = churn_env.model_copy(update={"mlflow_tracking_uri": f"sqlite:///{tmp_path}/m.db"})
    with pytest.raises(StackConfigError, match=r"experiment_tracker\.tracking_uri") as err:
        register_stack("local", other)
    assert churn_env.tracking_uri in str(err.value) and "zenml stack delete local" in str(err.value)


def _champion_metrics(settings: Settings) -> tuple[str, dict[str, float]]:
    client = mlflow.MlflowClient(
        tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri
    )
    version = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    return str(version.version), client.get_run(version.run_id).data.metrics


def test_feature_and_training_pipelines_run_and_are_reproducible(
    zenml_home: Path, redis_server: Any, churn_env: Settings, tmp_path: Path
) -> None:
    features = edited_config(
        "feature_pipeline",
        tmp_path,
        {"source": {"kind": "synthetic", "n_customers": 3000, "seed": 5,
                    "snapshot_time": "2025-01-01T00:00:00+00:00"}},
    )  # fmt: skip
    zenml("pipeline", "run", "pipelines.feature_pipeline.feature_pipeline", "-c", str(features))
    assert churn_env.offline_table("labels").is_file()

    training = edited_config(
        "training_pipeline",
        tmp_path,
        {
            "model_name": MODEL_NAME,
            "experiment": "churn-training-test",
            "cv_folds": 3,
            "param_grid": {
                "logreg": [{"C": 1.0}],
                "xgboost": [{"n_estimators": 100, "max_depth": 3, "learning_rate": 0.1}],
            },
        },
    )
    args = ("pipeline", "run", "pipelines.training_pipeline.training_pipeline", "-c", str(training))
    run = zenml(*args)
    # every artifact has a materializer of its own: ZenML warns when it falls back to pickle
    assert "Pickle materializer" not in run.stdout + run.stderr
    first_version, first = _champion_metrics(churn_env)
    assert first["test_roc_auc"] >= 0.80

    zenml(*args)  # same data, same seed
    second_version, _ = _champion_metrics(churn_env)
    client = mlflow.MlflowClient(
        tracking_uri=churn_env.tracking_uri, registry_uri=churn_env.tracking_uri
    )
    newest = max(int(v.version) for v in client.search_model_versions(f"name='{MODEL_NAME}'"))
    rerun = client.get_run(client.get_model_version(MODEL_NAME, str(newest)).run_id).data.metrics
    # identical metrics on a rerun, and an equal challenger does not displace the champion
    for key in ("test_roc_auc", "test_pr_auc", "test_recall", "test_precision", "test_threshold"):
        assert rerun[key] == first[key], key
    assert newest == int(first_version) + 1
    assert second_version == first_version


_LOAD_TRAINING_ARTIFACTS = """
import json, sys
import mlflow
from zenml.client import Client
from churn.schema import model_input_names
run = Client().get_pipeline("training_pipeline").last_run
challenger = run.steps["gate_model"].outputs["challenger"][0]
evaluations = run.steps["evaluate_candidates"].outputs["evaluations"][0].load()
candidate = challenger.load()
inputs = model_input_names(candidate.pipeline.steps[0][1].feature_version)
test = run.steps["split_data"].outputs["test"][0].load()[inputs]
registered = mlflow.sklearn.load_model(sys.argv[1])
print(json.dumps({
    "materializer": challenger.materializer.import_path,
    "kind": candidate.kind,
    "oof": len(candidate.oof_scores),
    "fold_aucs": [list(r.fold_aucs) for r in candidate.cv_results],
    "proba": candidate.pipeline.predict_proba(test)[:, 1].tolist(),
    "registered_proba": registered.predict_proba(test)[:, 1].tolist(),
    "roc_auc": {k: e.roc_auc for k, e in evaluations.items()},
    "scores": {k: len(e.scores) for k, e in evaluations.items()},
}))
"""


def test_training_artifacts_load_back_through_zenml(
    zenml_home: Path, redis_server: Any, churn_env: Settings
) -> None:
    """Runs after the training test (module order). In a fresh process, as a later
    step or a notebook would: the challenger and the evaluations come back from the
    ZenML store through the project's materializers (no pickle fallback), and the
    reloaded model scores the test split exactly as the version MLflow registered."""
    client = mlflow.MlflowClient(
        tracking_uri=churn_env.tracking_uri, registry_uri=churn_env.tracking_uri
    )
    newest = max(int(v.version) for v in client.search_model_versions(f"name='{MODEL_NAME}'"))
    run_id = client.get_model_version(MODEL_NAME, str(newest)).run_id
    metrics = client.get_run(run_id).data.metrics  # the last training run registered it
    uri = f"models:/{MODEL_NAME}/{newest}"
    uris = {
        "MLFLOW_TRACKING_URI": churn_env.tracking_uri,
        "MLFLOW_REGISTRY_URI": churn_env.tracking_uri,
    }
    env = {**os.environ, **uris}
    script = zenml_home / "load_training_artifacts.py"  # ZenML needs a file as __main__
    script.write_text(_LOAD_TRAINING_ARTIFACTS)
    result = subprocess.run(
        [sys.executable, str(script), uri],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["materializer"] == "steps.materializers.TrainedCandidateMaterializer"
    assert loaded["oof"] > 0 and all(len(f) == 3 for f in loaded["fold_aucs"])
    assert loaded["proba"] == loaded["registered_proba"]
    assert loaded["roc_auc"][loaded["kind"]] == metrics["test_roc_auc"]
    assert set(loaded["scores"].values()) == {len(loaded["proba"])}


def _infer(ids: list[str]) -> requests.Response:
    body = {
        "inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [len(ids)], "data": ids}]
    }
    url = f"{local_server.base_url(get_serving_settings())}/v2/models/churn/infer"
    return requests.post(url, json=body, timeout=10)


def test_deployment_pipeline_serves_the_champion_and_reloads(
    zenml_home: Path, redis_server: Any, churn_env: Settings
) -> None:
    """Runs after the training test (module order): the champion it promoted is served
    by a local MLServer that the pipeline starts, then hot-reloads on a second run."""
    champion_version, _ = _champion_metrics(churn_env)
    config = edited_config("deployment_pipeline", zenml_home, {"model_name": MODEL_NAME})
    args = (
        "pipeline",
        "run",
        "pipelines.deployment_pipeline.deployment_pipeline",
        "-c",
        str(config),
    )
    zenml(*args)
    labels = pd.read_parquet(churn_env.offline_table("labels"))
    ids = labels["customer_id"].head(5).tolist()
    first = _infer(ids)
    assert first.status_code == 200, first.text
    outputs = {o["name"]: o["data"] for o in first.json()["outputs"]}
    assert outputs["model_version"] == [f"{MODEL_NAME}-v{champion_version}"] * 5
    assert all(0.0 <= p <= 1.0 for p in outputs["churn_probability"])
    assert _infer(["NO-SUCH-CUSTOMER"]).status_code == 404

    zenml(*args)  # the server is up: this run reloads through the repository API
    again = _infer(ids)
    assert again.status_code == 200
    reloaded = {o["name"]: o["data"] for o in again.json()["outputs"]}
    assert reloaded["churn_probability"] == outputs["churn_probability"]
