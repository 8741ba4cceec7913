"""Build serving bundles: a saved model (+ drift detector) into the directory MLServer serves.

The format and its reader are serving.bundle (the runtimes need them); this module
writes it. Decisions (measured on MLServer 1.7.1, docs/decisions.md):

- parallel_workers = 0: with one inference worker process a trivial runtime served
  552 requests/s against 957-1351 in-process on 2 cores (the extra hop costs more
  than it parallelises), and the runtime's Redis connection, drift thread and
  metrics live in the server process.
- No `parameters.version` in model-settings.json: MLServer reloads a model WITHOUT a
  version by loading the new instance first and swapping it in (no downtime), but
  registers a new VERSION before loading it, so requests fail with "not ready"
  during the load. The model version travels in manifest.json and in every
  response (`model_version`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from churn.features.names import FEATURE_SERVICE, FEATURE_SERVICES, service_version
from churn.files import assemble_dir, write_json_atomic
from churn.inference import DEFAULT_MODEL_NAME, tensor_settings
from churn.models.encoding import schema_fingerprint
from serving.bundle import (
    DRIFT_DIR,
    MANIFEST,
    MODEL_DIR,
    MODEL_SETTINGS,
    SERVER_SETTINGS,
    BundleError,
    BundleManifest,
    checksums,
)
from serving.settings import ServingSettings, get_serving_settings

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from churn.models.calibration import Calibrator

# The runtime classes, by import path: what model-settings.json names (MLServer
# imports them); deployment never imports them itself.
CHURN_IMPLEMENTATION: Final = "serving.runtime.ChurnRuntime"
DRIFT_IMPLEMENTATION: Final = "serving.drift_runtime.DriftRuntime"


def model_settings(
    model_name: str = DEFAULT_MODEL_NAME,
    uri: str = ".",
    *,
    implementation: str = CHURN_IMPLEMENTATION,
) -> dict[str, Any]:
    """MLServer model-settings.json content for a churn bundle at `uri`.

    `uri` "." means the folder of the model-settings file itself (MLServer resolves a
    relative uri against it), which keeps the bundle relocatable (Seldon mounts it at
    its own path).
    """
    return {
        "name": model_name,
        "implementation": implementation,
        "parameters": {"uri": uri},
        **tensor_settings(),
    }


def server_settings(settings: ServingSettings | None = None) -> dict[str, Any]:
    """MLServer settings.json content: ports, metrics, single-process inference."""
    s = settings or get_serving_settings()
    return {
        "host": s.host,
        "http_port": s.http_port,
        "grpc_port": s.grpc_port,
        "metrics_port": s.metrics_port,
        "metrics_endpoint": "/metrics",
        "parallel_workers": 0,
        "debug": False,
        "load_models_at_startup": True,
    }


def build_bundle(
    out_dir: Path,
    *,
    model_dir: Path,
    model_version: str,
    threshold: float,
    model_name: str = DEFAULT_MODEL_NAME,
    feature_service: str = FEATURE_SERVICE,
    drift_dir: Path | None = None,
    metadata: Mapping[str, Any] | None = None,
    settings: ServingSettings | None = None,
    feature_layout: Mapping[str, Any] | None = None,
) -> BundleManifest:
    """Assemble a bundle in `out_dir` (new or empty) from a saved model (+ detector).

    `feature_layout` (serving.online.OnlineLayout.to_json(), see feature_layout_of)
    lets the server run without the Feast registry; without it the server resolves
    the FeatureService in the registry at load.

    The model is loaded once to prove it loads under the current schema before
    anything is written; the bundle is assembled in a temporary sibling directory and
    renamed into place, so `out_dir` is either complete or absent.
    """
    from churn.models.serialize import ModelFormatError, load_model

    if not 0.0 < threshold < 1.0:
        raise BundleError(f"threshold must be in (0, 1), got {threshold}")
    if not model_version:
        raise BundleError("model_version must not be empty")
    try:
        model = load_model(model_dir)
    except (ModelFormatError, OSError) as e:
        raise BundleError(f"model directory {model_dir} does not load: {e}") from e
    _check_feature_set(feature_service, feature_layout, model.feature_version)
    if drift_dir is not None:
        _check_detector_dir(drift_dir, model.input_names)
    created_at = datetime.now(UTC).isoformat()

    def fill(staging: Path) -> BundleManifest:
        shutil.copytree(model_dir, staging / MODEL_DIR)
        if drift_dir is not None:
            shutil.copytree(drift_dir, staging / DRIFT_DIR)
        files = checksums(staging, MODEL_DIR)
        if drift_dir is not None:
            files.update(checksums(staging, DRIFT_DIR))
        manifest = BundleManifest(
            model_name=model_name,
            model_version=str(model_version),
            model_kind=model.kind,
            threshold=float(threshold),
            feature_service=feature_service,
            schema_fingerprint=schema_fingerprint(model.feature_version),
            feature_order=tuple(model.input_names),
            files=files,
            has_drift_detector=drift_dir is not None,
            created_at=created_at,
            metadata=dict(metadata or {}),
            feature_layout=dict(feature_layout) if feature_layout is not None else None,
            feature_version=model.feature_version,
        )
        write_json_atomic(staging / MANIFEST, manifest.to_json())
        write_json_atomic(staging / MODEL_SETTINGS, model_settings(model_name))
        write_json_atomic(staging / SERVER_SETTINGS, server_settings(settings))
        return manifest

    try:
        return assemble_dir(out_dir, fill)
    except FileExistsError as e:
        raise BundleError(str(e)) from e


def _check_feature_set(service: str, layout: Mapping[str, Any] | None, model_version: int) -> None:
    """BundleError unless the service (and its recorded layout) serve the model's feature set.

    Why: a v1 model bundled with churn_model_v2 would load and then read the wrong
    columns; the runtime checks it again at load, but a bundle must never be written so.
    A service name this project does not define is left to the registry at load.
    """
    from serving.online import LayoutError, layout_from_json

    served: list[tuple[str, int]] = []
    if service in FEATURE_SERVICES.values():
        served.append((f"feature service {service!r}", service_version(service)))
    if layout is not None:
        try:
            served.append(("the recorded layout", layout_from_json(layout).feature_version))
        except LayoutError as e:
            raise BundleError(f"feature_layout: {e}") from e
    for what, version in served:
        if version != model_version:
            raise BundleError(
                f"{what} serves feature set {version}, the model consumes feature set "
                f"{model_version}: bundle it with {FEATURE_SERVICES.get(model_version)!r}"
            )


def feature_layout_of(service: str, settings: ServingSettings | None = None) -> dict[str, Any]:
    """The Redis layout of FeatureService `service`, from the Feast registry serving would read.

    Checked against churn.schema (serving.online.layout_from_store): a bundle never
    records a layout its runtime would refuse.
    """
    from churn.features.store import get_store
    from serving.online import layout_from_store

    s = settings or get_serving_settings()
    store = get_store(s.feature_repo, yaml_file=s.feature_store_yaml)
    return layout_from_store(store, service).to_json()


def build_bundle_from_pipeline(
    out_dir: Path,
    pipeline: Pipeline,
    *,
    model_version: str,
    threshold: float,
    drift_dir: Path | None = None,
    calibrator: Calibrator | None = None,
    **kwargs: Any,
) -> BundleManifest:
    """build_bundle for a fitted pipeline (and its calibration): saves it with
    churn.models.serialize first."""
    from churn.models.serialize import save_model

    with tempfile.TemporaryDirectory(prefix="churn-model-") as tmp:
        model_dir = Path(tmp) / MODEL_DIR
        save_model(
            pipeline,
            model_dir,
            {"model_version": model_version, "threshold": threshold},
            calibrator=calibrator,
        )
        return build_bundle(
            out_dir,
            model_dir=model_dir,
            model_version=model_version,
            threshold=threshold,
            drift_dir=drift_dir,
            **kwargs,
        )


def _check_detector_dir(path: Path, features: list[str]) -> None:
    """BundleError unless `path` holds a detector of exactly the model's input features."""
    from churn.drift.base import DetectorMismatchError, check_features, read_sidecar

    try:
        saved = read_sidecar(path).get("features", [])
        check_features(path, [str(f) for f in saved], features)
    except DetectorMismatchError as e:
        raise BundleError(f"drift detector directory {path}: {e}") from e
