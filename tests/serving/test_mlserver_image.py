"""The MLServer image, run as its manifests run it, on a real bundle and a real Redis.

What only a running container shows: a broken COPY, a missing shared library or
module, a wrong entry point, a write to the read-only root, a bundle the image's
user cannot read, a health check on the wrong port. The container runs:

- as the image's user (uid 1000), with a read-only root file system, every capability
  dropped and no privilege escalation (the manifests' securityContext), and writable
  tmpfs only where the image says it writes (/tmp, HOME, the working directory):
  the places k8s/ mounts emptyDirs (tests/infra/test_docker.py checks that side);
- with the bundle mounted read-only at /mnt/models and nothing else of the host:
  no Feast registry, since the bundle records its feature layout;
- on the host network, reaching this module's own Redis with the Telco features.

Its own HEALTHCHECK must pass, and its answers must equal the local server's on the
same bundle (|dP| < 1e-6). A missing bundle or a corrupt one must never turn healthy.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from containers_support import (
    engine_or_skip,
    healthy,
    image,
    image_config,
    logs,
    running,
    state,
    wait_healthy,
)
from ports import free_port
from serving_support import THRESHOLD, ServingEnv
from sklearn.pipeline import Pipeline

from churn.data.telco import load_telco
from churn.features.derived import add_derived
from churn.features.names import FEATURE_SERVICE
from churn.inference import parse_response, request_body
from churn.models.calibration import fit_calibrator
from churn.models.candidates import train_candidate
from churn.models.serialize import load_model
from churn.schema import ENTITY_KEY, LABEL, model_input_names
from deployment import local_server
from deployment.bundle import build_bundle_from_pipeline, feature_layout_of
from deployment.containers import Engine, manifest_run_args
from serving.bundle import MODEL_DIR
from serving.metrics import PREFIX

pytestmark = pytest.mark.integration

IMAGE = "churn-mlserver"
N_CUSTOMERS = 300
HEALTHY_WITHIN_S = 120.0
# A bad bundle is watched this long: a healthy check in that time is a failure.
NEVER_HEALTHY_S = 40.0


@dataclass(frozen=True)
class Run:
    """How to start the image like its manifests: user, read-only root, writable dirs."""

    engine: Engine
    ref: str
    user: str
    writable: tuple[str, ...]

    def args(
        self, bundle: Path, http_port: int, metrics_port: int | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """`run` arguments and environment for serving `bundle` on `http_port`."""
        args = manifest_run_args(self.user, self.writable, [(bundle, "/mnt/models", "ro")])
        env = {
            "MLSERVER_HTTP_PORT": str(http_port),
            "MLSERVER_GRPC_PORT": str(free_port()),
            "MLSERVER_METRICS_PORT": str(metrics_port or free_port()),
            "CHURN_SERVING_PREDICTION_LOG_URI": "/tmp/prediction_log",
        }
        return args, env


@pytest.fixture(scope="module")
def mlserver_image() -> Run:
    """The built image (built now if missing) and how its config says to run it."""
    engine = engine_or_skip()
    ref = image(engine, IMAGE)
    config = image_config(engine, ref)
    env = config["Env"]
    assert isinstance(env, dict)
    user = str(config.get("User") or "")
    writable = ("/tmp", env["HOME"], str(config["WorkingDir"]))
    return Run(engine, ref, user, writable)


@pytest.fixture(scope="module")
def image_bundle(serving_env: ServingEnv, churn_model: Pipeline, drift_detector_dir: Path) -> Path:
    """A bundle as the deployment pipeline builds it: with its recorded feature layout."""
    path = serving_env.settings.home / "bundles" / "image"
    build_bundle_from_pipeline(
        path,
        churn_model,
        model_version="image-1",
        threshold=THRESHOLD,
        drift_dir=drift_detector_dir,
        feature_layout=feature_layout_of(FEATURE_SERVICE, serving_env.serving),
    )
    return path


def redis_env(env: ServingEnv) -> dict[str, str]:
    """How the container reaches this module's Redis (feature_store.yaml's variables)."""
    return {
        "CHURN_REDIS_HOST": env.redis.host,
        "CHURN_REDIS_PORT": str(env.redis.port),
        "CHURN_REDIS_PASSWORD": env.settings.redis_password.get_secret_value(),
        "CHURN_REDIS_DB": str(env.settings.redis_db),
    }


def probabilities(base_url: str, ids: list[str]) -> dict[str, float]:
    """customer id -> served probability, over HTTP like any client."""
    response = requests.post(
        f"{base_url}/v2/models/churn/infer", json=request_body(ids, reasons=False), timeout=30
    )
    assert response.status_code == 200, response.text
    return {p.customer_id: p.probability for p in parse_response(ids, response.json())}


@pytest.fixture(scope="module")
def container(
    mlserver_image: Run, image_bundle: Path, serving_env: ServingEnv
) -> Iterator[tuple[str, str, str]]:
    """The image serving image_bundle; yields (name, base URL, metrics URL) once healthy."""
    port, metrics_port = free_port(), free_port()
    args, env = mlserver_image.args(image_bundle, port, metrics_port)
    with running(
        mlserver_image.engine, mlserver_image.ref, *args, env={**env, **redis_env(serving_env)}
    ) as name:
        wait_healthy(mlserver_image.engine, name, HEALTHY_WITHIN_S)
        yield name, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"


def test_image_serves_the_bundle_like_the_local_server(
    container: tuple[str, str, str], image_bundle: Path, serving_env: ServingEnv
) -> None:
    _, url, _ = container
    ids = load_telco(serving_env.telco_csv)[ENTITY_KEY].tolist()[:N_CUSTOMERS]
    served = probabilities(url, ids)
    assert sorted(served) == sorted(ids)
    local_server.start(image_bundle, serving_env.serving)
    try:
        local = probabilities(f"http://127.0.0.1:{serving_env.serving.http_port}", ids)
    finally:
        local_server.stop(serving_env.serving)
    delta = np.abs(np.array([served[i] for i in ids]) - np.array([local[i] for i in ids]))
    assert delta.max() < 1e-6, delta.max()
    assert 0.0 < min(served.values()) < max(served.values()) < 1.0


def test_image_runs_as_uid_1000_on_a_read_only_root(
    container: tuple[str, str, str], mlserver_image: Run
) -> None:
    name, url, metrics_url = container
    engine = mlserver_image.engine
    assert engine.run("exec", name, "id", "-u").stdout.strip() == "1000"
    wrote = engine.run("exec", name, "touch", "/app/written", check=False)
    assert wrote.returncode != 0 and "Read-only file system" in wrote.stderr, wrote
    # the drift detector (alibi-detect, numba) loaded too: every import the runtimes need
    # is in the image, and nothing they write lands on the read-only root
    assert requests.get(f"{url}/v2/models/churn", timeout=5).status_code == 200
    metrics = requests.get(metrics_url, timeout=5).text
    loaded = f'{PREFIX}_drift_detector_loaded{{model="churn"}} 1.0'
    assert loaded in metrics, logs(engine, name, tail=400)


def _never_healthy(run: Run, bundle: Path, serving_env: ServingEnv) -> str:
    """Run the image on `bundle`; fail if it is ever healthy; return its log."""
    args, env = run.args(bundle, free_port())
    with running(run.engine, run.ref, *args, env={**env, **redis_env(serving_env)}) as name:
        deadline = time.monotonic() + NEVER_HEALTHY_S
        while time.monotonic() < deadline:
            assert not healthy(run.engine, name), logs(run.engine, name)
            if state(run.engine, name).get("Status") == "exited":
                break
            time.sleep(1.0)
        return logs(run.engine, name, tail=200)


def test_image_without_a_bundle_never_turns_healthy(
    mlserver_image: Run, serving_env: ServingEnv, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o755)
    log = _never_healthy(mlserver_image, empty, serving_env)
    assert "manifest.json" in log, log


def test_image_with_a_corrupt_bundle_never_turns_healthy(
    mlserver_image: Run, image_bundle: Path, serving_env: ServingEnv, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt"
    shutil.copytree(image_bundle, corrupt)
    model_file = next(p for p in sorted((corrupt / MODEL_DIR).rglob("*")) if p.is_file())
    model_file.write_bytes(model_file.read_bytes()[:-16] + b"\0" * 16)
    log = _never_healthy(mlserver_image, corrupt, serving_env)
    assert "sha256 differs" in log, log


def test_image_serves_a_calibrated_lightgbm_bundle(
    mlserver_image: Run, serving_env: ServingEnv
) -> None:
    """LightGBM links the system's libgomp.so.1: the image's base must carry it, or the
    model never loads (its wheel, unlike XGBoost's and scikit-learn's, brings none)."""
    frame = add_derived(load_telco(serving_env.telco_csv))
    candidate = train_candidate(
        "lightgbm",
        frame[model_input_names()],
        frame[LABEL],
        [{"n_estimators": 100, "num_leaves": 8}],
        seed=0,
        cv_folds=3,
    )
    bundle = serving_env.settings.home / "bundles" / "image-lightgbm"
    build_bundle_from_pipeline(
        bundle,
        candidate.pipeline,
        model_version="image-lgbm-1",
        threshold=THRESHOLD,
        calibrator=fit_calibrator("sigmoid", candidate.oof_scores, candidate.oof_labels),
        feature_layout=feature_layout_of(FEATURE_SERVICE, serving_env.serving),
    )
    port = free_port()
    args, env = mlserver_image.args(bundle, port)
    with running(
        mlserver_image.engine, mlserver_image.ref, *args, env={**env, **redis_env(serving_env)}
    ) as name:
        wait_healthy(mlserver_image.engine, name, HEALTHY_WITHIN_S)
        ids = frame[ENTITY_KEY].tolist()[:N_CUSTOMERS]
        served = probabilities(f"http://127.0.0.1:{port}", ids)
    expected = load_model(bundle / MODEL_DIR).predict_proba(frame.head(N_CUSTOMERS))
    delta = np.abs(np.array([served[i] for i in ids]) - expected)
    assert delta.max() < 1e-6, delta.max()
