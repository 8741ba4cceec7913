"""Serving bundles: what build_bundle writes, and every way load refuses a bad bundle."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from ports import free_port
from serving_support import THRESHOLD, make_bundle
from sklearn.pipeline import Pipeline

from churn.data.telco import load_telco
from churn.features.derived import add_derived
from churn.models.encoding import schema_fingerprint
from churn.schema import model_input_names
from deployment import local_server
from deployment.bundle import CHURN_IMPLEMENTATION, build_bundle
from serving.bundle import MANIFEST, MODEL_DIR, BundleError, load_bundle, read_manifest
from serving.settings import ServingSettings


@pytest.fixture(scope="module")
def bundle(
    tmp_path_factory: pytest.TempPathFactory, churn_model: Pipeline, drift_detector_dir: Path
) -> Path:
    path = tmp_path_factory.mktemp("bundles") / "v7"
    make_bundle(path, churn_model, "7", drift_detector_dir)
    return path


def copy_of(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(bundle, target)
    return target


def test_bundle_holds_model_detector_manifest_and_mlserver_settings(bundle: Path) -> None:
    manifest = read_manifest(bundle)
    assert manifest.model_name == "churn" and manifest.model_version == "7"
    assert manifest.threshold == THRESHOLD and manifest.model_kind == "xgboost"
    assert manifest.feature_service == "churn_model_v1"
    assert manifest.schema_fingerprint == schema_fingerprint()
    assert list(manifest.feature_order) == model_input_names()
    assert manifest.has_drift_detector and "drift/churn_drift.json" in manifest.files
    assert f"{MODEL_DIR}/booster.ubj" in manifest.files
    settings = json.loads((bundle / "model-settings.json").read_text())
    assert settings["implementation"] == CHURN_IMPLEMENTATION
    assert settings["parameters"] == {"uri": "."}  # relocatable: resolved against the file
    assert "version" not in settings["parameters"]  # see serving.bundle: zero-downtime reloads
    server = json.loads((bundle / "settings.json").read_text())
    assert server["parallel_workers"] == 0 and server["metrics_endpoint"] == "/metrics"


def test_loaded_bundle_scores_like_the_trained_pipeline(
    bundle: Path, churn_model: Pipeline, telco_csv: Path
) -> None:
    frame = add_derived(load_telco(telco_csv)).head(500)
    loaded = load_bundle(bundle)
    expected = churn_model.predict_proba(frame[model_input_names()])[:, 1]
    assert np.max(np.abs(loaded.model.predict_proba(frame) - expected)) < 1e-6
    assert loaded.drift_dir == bundle / "drift"


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _rewrite_manifest(bundle: Path, **changes: object) -> None:
    raw = json.loads((bundle / MANIFEST).read_text())
    raw.update(changes)
    (bundle / MANIFEST).write_text(json.dumps(raw))


CORRUPTIONS: dict[str, tuple[Callable[[Path], object], str]] = {
    "flipped model byte": (lambda b: _flip_byte(b / MODEL_DIR / "booster.ubj"), "sha256 differs"),
    "missing model file": (lambda b: (b / MODEL_DIR / "booster.ubj").unlink(), "missing"),
    "flipped detector byte": (lambda b: _flip_byte(b / "drift" / "x_ref.npy"), "sha256 differs"),
    "unlisted extra file": (
        lambda b: (b / MODEL_DIR / "extra.bin").write_bytes(b"x"),
        "not listed",
    ),
    "no manifest": (lambda b: (b / MANIFEST).unlink(), "no manifest.json"),
    "manifest not JSON": (lambda b: (b / MANIFEST).write_text("{"), "not valid JSON"),
    "other format": (lambda b: _rewrite_manifest(b, format_version=99), "expected"),
    "other schema": (lambda b: _rewrite_manifest(b, schema_fingerprint="0" * 64), "rebuild"),
    "threshold out of range": (lambda b: _rewrite_manifest(b, threshold=1.5), "threshold"),
    "file outside bundle": (
        lambda b: _rewrite_manifest(b, files={"../x": "0", "model/booster.ubj": "0"}),
        "outside the bundle",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_a_damaged_bundle_is_refused_naming_the_problem(
    bundle: Path, tmp_path: Path, case: str
) -> None:
    damage, message = CORRUPTIONS[case]
    target = copy_of(bundle, tmp_path)
    damage(target)
    with pytest.raises(BundleError, match=message):
        load_bundle(target)


def test_a_missing_bundle_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nowhere")


def test_build_refuses_bad_inputs_and_leaves_nothing_behind(bundle: Path, tmp_path: Path) -> None:
    model_dir = bundle / MODEL_DIR
    with pytest.raises(BundleError, match="threshold"):
        build_bundle(tmp_path / "a", model_dir=model_dir, model_version="1", threshold=0.0)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "x").write_text("x")
    with pytest.raises(BundleError, match="not an empty directory"):
        build_bundle(occupied, model_dir=model_dir, model_version="1", threshold=0.5)
    broken = copy_of(bundle, tmp_path) / MODEL_DIR
    _flip_byte(broken / "booster.ubj")
    with pytest.raises(BundleError, match="does not load"):
        build_bundle(tmp_path / "b", model_dir=broken, model_version="1", threshold=0.5)
    with pytest.raises(BundleError, match="drift detector"):
        build_bundle(
            tmp_path / "c",
            model_dir=model_dir,
            model_version="1",
            threshold=0.5,
            drift_dir=tmp_path,
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert not (tmp_path / "c").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_install_points_the_repository_at_the_bundle(bundle: Path, tmp_path: Path) -> None:
    settings = ServingSettings(home=tmp_path / "serving", http_port=18999)
    repo = local_server.install(bundle, settings)
    entry = json.loads((repo / "churn" / "model-settings.json").read_text())
    assert entry["parameters"]["uri"] == str(bundle.resolve())
    assert json.loads((repo / "settings.json").read_text())["http_port"] == 18999
    damaged = copy_of(bundle, tmp_path)
    _flip_byte(damaged / MODEL_DIR / "booster.ubj")
    with pytest.raises(BundleError):
        local_server.install(damaged, settings)
    with pytest.raises(BundleError):  # verified before any server is contacted
        local_server.reload(damaged, settings)


def test_a_stale_pid_file_is_not_a_running_server(tmp_path: Path) -> None:
    settings = ServingSettings(home=tmp_path / "serving")
    paths = local_server.paths(settings)
    paths.root.mkdir(parents=True)
    paths.pid_file.write_text("1\n")  # pid 1 exists but is not our mlserver
    assert local_server.running_pid(settings) is None
    assert local_server.stop(settings) is False
    assert not paths.pid_file.exists()


class _AlwaysReady(BaseHTTPRequestHandler):
    """Another process's server on the port: answers 200 to every path, /ready included."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def test_start_refuses_a_port_another_server_holds(bundle: Path, tmp_path: Path) -> None:
    """A server of another checkout on the port would answer the readiness poll for a
    model this one never loaded; start must fail naming the port, starting nothing."""
    other = ThreadingHTTPServer(("127.0.0.1", 0), _AlwaysReady)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        port = other.server_address[1]
        settings = ServingSettings(
            home=tmp_path / "serving", host="127.0.0.1", http_port=port,
            grpc_port=free_port(), metrics_port=free_port(),
        )  # fmt: skip
        assert local_server.model_ready(settings)  # what the readiness poll would see
        with pytest.raises(local_server.ServerError, match=f"http port {port} .* taken"):
            local_server.start(bundle, settings)
        assert local_server.running_pid(settings) is None
        assert not local_server.paths(settings).pid_file.exists()
    finally:
        other.shutdown()
        other.server_close()


def test_the_implementation_paths_deployment_writes_are_the_runtime_classes() -> None:
    """deployment names the runtimes by import path (it never imports MLServer code);
    a rename of either class must fail here, not in a cluster."""
    import importlib

    from deployment.bundle import CHURN_IMPLEMENTATION, DRIFT_IMPLEMENTATION
    from serving.drift_runtime import DriftRuntime
    from serving.runtime import ChurnRuntime

    for path, cls in ((CHURN_IMPLEMENTATION, ChurnRuntime), (DRIFT_IMPLEMENTATION, DriftRuntime)):
        module, name = path.rsplit(".", 1)
        assert getattr(importlib.import_module(module), name) is cls
