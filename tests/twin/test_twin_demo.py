"""`make twin-demo` on the test twin, checked against the services it ran on.

One demo run (deployment.twin_demo.TwinDemo, what `make twin-demo` runs, with a
smaller data set and parameter grid) serves the module: the laptop path and the
twin's feature, training and deployment pipelines, the agent's path into MLServer,
the MLflow restart. Each test then asks the real processes (ZenML's stores, the
MLflow server and its PostgreSQL, the S3 twin, both MLServers) what happened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests
from containers_support import engine_or_skip, inspect
from mlflow.tracking import MlflowClient

from churn import twin
from churn.inference import DEFAULT_MODEL_NAME, infer_path, parse_response, request_body
from churn.models.registry import CHAMPION
from churn.settings import PROJECT_ROOT
from deployment import local_server, twin_agent
from deployment.containers import Engine
from deployment.deploy import read_manifests
from deployment.twin_demo import TOLERANCE, DemoOptions, DemoReport, TwinDemo, zenml_env
from deployment.twin_images import (
    AGENT_MODELS_DIR,
    CA_FILE,
    MLSERVER_IMAGE,
    STEPS_IMAGE,
    TwinImages,
)

# The demo's own configs/ files, smaller: 3000 synthetic customers, two candidates.
SMALL = DemoOptions(
    feature_overrides={
        "source.kind": "synthetic",
        "source.n_customers": "3000",
        "source.seed": "5",
    },
    training_overrides={
        "cv_folds": "3",
        "param_grid": "{logreg: [{C: 1.0}], "
        "xgboost: [{n_estimators: 100, max_depth: 3, learning_rate: 0.1}]}",
    },
)
PIPELINES = {"feature_pipeline", "training_pipeline", "deployment_pipeline"}
CHURN_SERVED = twin_agent.versioned_name(DEFAULT_MODEL_NAME, 1)


@pytest.fixture(scope="module")
def demo(
    twin_config: twin.TwinConfig, twin_up: twin.Credentials, twin_images: TwinImages | None
) -> Iterator[TwinDemo]:
    """The demo, run once on the session's twin (on the images where there are some);
    its servers stop after the module."""
    running = TwinDemo(twin_config, twin_config.home / "demo", SMALL, twin_images)
    try:
        running.run()
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def report(demo: TwinDemo) -> DemoReport:
    """What the demo measured."""
    return demo.report


def _zenml_runs(store: Path) -> list[dict[str, Any]]:
    """Every pipeline run in a ZenML store, as `zenml pipeline runs list` reports it."""
    zenml = str(Path(sys.executable).with_name("zenml"))
    result = subprocess.run(
        [zenml, "pipeline", "runs", "list", "-o", "json", "-c", "pipeline,status,stack"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **zenml_env(store)},
        capture_output=True,
        text=True,
        check=True,
    )
    items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
    return items


def test_every_pipeline_completed_once_on_each_stack(
    demo: TwinDemo, twin_config: twin.TwinConfig
) -> None:
    """The twin's store holds runs on the `twin` stack (S3 artifact store, MLflow
    server), the laptop's on `local`; one completed run of each pipeline."""
    for store, stack in (
        (twin_config.home / "zenml", "twin"),
        (demo.work / "laptop" / "zenml", "local"),
    ):
        runs = _zenml_runs(store)
        assert sorted(r["pipeline"] for r in runs) == sorted(PIPELINES), (stack, runs)
        assert {(r["status"], r["stack"]) for r in runs} == {("completed", stack)}, runs


def test_mlflow_server_keeps_the_runs_in_postgresql_and_artifacts_in_s3(
    report: DemoReport, twin_config: twin.TwinConfig, twin_up: twin.Credentials
) -> None:
    """One run per candidate through the server, rows in PostgreSQL, the champion's
    model under the server's S3 artifact destination."""
    client = MlflowClient(tracking_uri=twin_config.mlflow_uri, registry_uri=twin_config.mlflow_uri)
    experiment = client.get_experiment_by_name("churn-training")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["model_kind"] for r in runs) == ["logreg", "xgboost"]
    assert all(r.data.metrics["test_roc_auc"] > 0.5 for r in runs)
    with psycopg2.connect(twin.postgres_uri(twin_config, twin_up)) as conn, conn.cursor() as cur:
        cur.execute("SELECT run_uuid FROM runs")
        assert {row[0] for row in cur.fetchall()} == report.runs_after_restart
    champion = client.get_model_version_by_alias(report.model_name, CHAMPION)
    assert champion.run_id in {r.info.run_id for r in runs}
    keys = {
        o["Key"]
        for page in twin.s3_client(twin_config, twin_up)
        .get_paginator("list_objects_v2")
        .paginate(Bucket=twin.BUCKET, Prefix="mlflow/")
        for o in page.get("Contents", [])
    }
    experiment_dir = f"mlflow/{experiment.experiment_id}"
    run_dir = f"{experiment_dir}/{champion.run_id}/artifacts"
    assert f"{run_dir}/drift_detector/config.toml" in keys, sorted(keys)[:20]
    model_id = champion.source.removeprefix("models:/")
    assert f"{experiment_dir}/models/{model_id}/artifacts/MLmodel" in keys, champion.source


def test_the_models_storage_uris_hold_the_bundle_and_the_drift_model(
    report: DemoReport, twin_config: twin.TwinConfig, twin_up: twin.Credentials
) -> None:
    """What the deployment uploaded is where the written Models point, flat (a folder
    with model-settings.json at its top, as the agent needs)."""
    assert report.manifests is not None
    models = {m["metadata"]["name"]: m for m in read_manifests(report.manifests, "Model")}
    assert set(models) == {DEFAULT_MODEL_NAME, f"{DEFAULT_MODEL_NAME}-drift"}
    s3 = twin.s3_client(twin_config, twin_up)
    for name, model in models.items():
        uri = model["spec"]["storageUri"]
        assert uri.startswith(f"s3://{twin.BUCKET}/serving/{report.twin_model_version}/"), uri
        assert model["spec"]["secretName"] == "churn-rclone"
        prefix = uri.removeprefix(f"s3://{twin.BUCKET}/") + "/"
        listed = s3.list_objects_v2(Bucket=twin.BUCKET, Prefix=prefix).get("Contents", [])
        top = {o["Key"].removeprefix(prefix) for o in listed if "/" not in o["Key"][len(prefix) :]}
        assert "model-settings.json" in top, (name, top)


def test_mlserver_loaded_each_model_with_the_settings_the_agent_writes(demo: TwinDemo) -> None:
    """Through the repository API, under Seldon's versioned names, from the files the
    agent rewrote (no inputs/outputs, name and version set)."""
    agent = demo.agent
    assert agent is not None
    index = requests.post(f"{agent.base_url}/v2/repository/index", json={}, timeout=10).json()
    assert {(m["name"], m["state"]) for m in index} == {
        (CHURN_SERVED, "READY"),
        (f"{DEFAULT_MODEL_NAME}-drift_1", "READY"),
    }
    written = json.loads(
        (agent.models_dir / CHURN_SERVED / "1" / "model-settings.json").read_text()
    )
    assert written["name"] == CHURN_SERVED and written["parameters"]["version"] == "1"
    assert "inputs" not in written and "outputs" not in written


def test_the_twin_serves_the_laptop_path_probability(demo: TwinDemo, report: DemoReport) -> None:
    """A fresh V2 request to both servers: same model version, |delta p| < 1e-6."""
    assert demo.agent is not None and demo.laptop_serving is not None
    ids = report.customer_ids
    assert len(ids) == SMALL.customers
    body = request_body(ids, reasons=False)
    answers = {}
    for label, url in (
        ("twin", f"{demo.agent.base_url}{infer_path(CHURN_SERVED)}"),
        (
            "laptop",
            f"{local_server.base_url(demo.laptop_serving)}{infer_path(DEFAULT_MODEL_NAME)}",
        ),
    ):
        response = requests.post(url, json=body, timeout=30)
        assert response.status_code == 200, (label, response.text)
        answers[label] = parse_response(ids, response.json())
    twin_p = [p.probability for p in answers["twin"]]
    laptop_p = [p.probability for p in answers["laptop"]]
    assert max(abs(a - b) for a, b in zip(twin_p, laptop_p, strict=True)) < TOLERANCE
    assert {p.model_version for p in answers["twin"]} == {f"{report.model_name}-v1"}
    assert {p.model_version for p in answers["laptop"]} == {f"{report.model_name}-v1"}
    assert twin_p == report.twin_probabilities and len(set(twin_p)) > 1


def test_a_restarted_mlflow_server_kept_every_run_and_the_champion(
    report: DemoReport, twin_config: twin.TwinConfig
) -> None:
    assert len(report.runs_before_restart) >= 2
    assert report.runs_after_restart == report.runs_before_restart
    assert report.champion_after_restart == report.champion_before_restart == "1"
    assert twin.status(twin_config)["mlflow"]


# ------------------------------------------------------------------ the images (issue 12)


def _container(engine: Engine, name: str, ref: str) -> dict[str, Any]:
    """The running container `name`: of image `ref`, as the manifests run pods (uid
    1000, read-only root, no capabilities)."""
    found = inspect(engine, name)
    assert found["State"]["Status"] == "running", found["State"]
    image_name = found.get("ImageName") or found["Config"]["Image"]  # podman, docker
    assert image_name.removeprefix("localhost/") == ref
    assert engine.run("exec", name, "id", "-u").stdout.strip() == "1000"
    assert found["HostConfig"]["ReadonlyRootfs"] is True
    wrote = engine.run("exec", name, "touch", "/written", check=False)
    assert wrote.returncode != 0 and "Read-only file system" in wrote.stderr, wrote
    return found


def _name(argv: tuple[str, ...]) -> str:
    """The container name a wrapped command runs under."""
    return argv[argv.index("--name") + 1]


def test_the_mlflow_server_runs_in_the_steps_image_and_kept_every_run_across_its_restart(
    report: DemoReport, twin_config: twin.TwinConfig, twin_images: TwinImages | None
) -> None:
    """The demo tracked to MLflow in churn-steps (PostgreSQL through the image's
    psycopg2, artifacts to S3) and restarted it: a new container, nothing lost."""
    engine = engine_or_skip()
    assert twin_images is not None and twin_config.mlflow_container is not None
    name = _name(twin_config.mlflow_container(twin.mlflow_command(twin_config), {}).argv)
    assert twin.mlflow_in_container(twin_config)
    _container(engine, name, twin_images.ref(STEPS_IMAGE))
    assert len(report.runs_before_restart) >= 2
    assert report.runs_after_restart == report.runs_before_restart
    assert report.champion_after_restart == report.champion_before_restart
    # what the restart started (the pid churn.twin recorded) is that container's run
    pid = (twin_config.dir("mlflow") / "mlflow.pid").read_text().strip()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[0].decode() == engine.executable and name.encode() in cmdline, cmdline


def test_the_agents_mlserver_runs_in_the_mlserver_image_with_the_laptop_probability(
    demo: TwinDemo, report: DemoReport, twin_config: twin.TwinConfig
) -> None:
    """The Server's MLServer in churn-mlserver, the agent's models folder and the twin's
    CA mounted read-only, TLS Redis reached: the laptop path's probability."""
    engine = engine_or_skip()
    assert demo.images is not None and demo.agent is not None
    wrapped = demo.agent.container
    assert wrapped is not None
    name = _name(wrapped.argv)
    found = _container(engine, name, demo.images.ref(MLSERVER_IMAGE))
    mounts = {m["Destination"]: m for m in found["Mounts"]}
    assert mounts[AGENT_MODELS_DIR]["Source"] == str(demo.agent.models_dir)
    assert mounts[CA_FILE]["Source"] == str(twin_config.ca_file)
    assert not mounts[AGENT_MODELS_DIR]["RW"] and not mounts[CA_FILE]["RW"]
    assert f"SSL_CERT_FILE={CA_FILE}" in found["Config"]["Env"]
    assert report.twin_model_version == report.laptop_model_version
    assert report.max_delta < TOLERANCE and len(set(report.twin_probabilities)) > 1
