"""Serving bundles: one self-contained directory MLServer (and Seldon Core) can serve.

Layout:

    <bundle>/
      manifest.json         what is served: model name and version, threshold, Feast
                            FeatureService, schema fingerprint, feature order, and the
                            sha256 of every other file in the bundle
      model/                churn.models.serialize.save_model output (no pickle)
      drift/                optional: a saved churn.drift detector
      model-settings.json   MLServer: implementation serving.runtime.ChurnRuntime,
                            parameters.uri "." (the bundle itself, wherever it is mounted)
      settings.json         MLServer server settings, for `mlserver start <bundle>`

Decisions (measured on MLServer 1.7.1, see serving/README or the report):

- parallel_workers = 0: with one inference worker process a trivial runtime served
  552 requests/s against 957-1351 in-process on 2 cores (the extra hop costs more
  than it parallelises), and the runtime's Redis connection, drift thread and
  metrics live in the server process.
- No `parameters.version` in model-settings.json: MLServer reloads a model WITHOUT a
  version by loading the new instance first and swapping it in (no downtime), but
  registers a new VERSION before loading it, so requests fail with "not ready"
  during the load. The model version travels in manifest.json and in every
  response (`model_version`).

`load_bundle` verifies the manifest (format, schema fingerprint, checksums) before
loading anything, and every failure is a BundleError naming the file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from churn.features.names import FEATURE_SERVICE
from churn.models.encoding import schema_fingerprint
from churn.schema import model_input_names
from serving.settings import DEFAULT_MODEL_NAME, ServingSettings, get_serving_settings

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from churn.models.serialize import ServingModel

FORMAT: Final = "churn-serving-bundle"
FORMAT_VERSION: Final = 1
MANIFEST: Final = "manifest.json"
MODEL_DIR: Final = "model"
DRIFT_DIR: Final = "drift"
MODEL_SETTINGS: Final = "model-settings.json"
SERVER_SETTINGS: Final = "settings.json"
IMPLEMENTATION: Final = "serving.runtime.ChurnRuntime"


class BundleError(ValueError):
    """A bundle directory is missing, incomplete, tampered with, or for another schema."""


@dataclass(frozen=True)
class BundleManifest:
    """The parsed manifest.json of a bundle."""

    model_name: str
    model_version: str
    model_kind: str
    threshold: float
    feature_service: str
    schema_fingerprint: str
    feature_order: tuple[str, ...]
    files: dict[str, str]
    has_drift_detector: bool
    created_at: str
    metadata: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to disk."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_kind": self.model_kind,
            "threshold": self.threshold,
            "feature_service": self.feature_service,
            "schema_fingerprint": self.schema_fingerprint,
            "feature_order": list(self.feature_order),
            "files": dict(sorted(self.files.items())),
            "has_drift_detector": self.has_drift_detector,
            "created_at": self.created_at,
            "metadata": self.metadata,
        }


@dataclass(frozen=True)
class LoadedBundle:
    """A verified bundle with its model loaded; the detector is loaded by the caller."""

    path: Path
    manifest: BundleManifest
    model: ServingModel

    @property
    def drift_dir(self) -> Path | None:
        """The saved detector's directory, if the bundle has one."""
        return self.path / DRIFT_DIR if self.manifest.has_drift_detector else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checksums(root: Path, sub: str) -> dict[str, str]:
    base = root / sub
    return {
        path.relative_to(root).as_posix(): _sha256(path)
        for path in sorted(base.rglob("*"))
        if path.is_file()
    }


def model_settings(
    model_name: str = DEFAULT_MODEL_NAME, uri: str = ".", *, implementation: str = IMPLEMENTATION
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
        "inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": "churn_probability", "datatype": "FP64", "shape": [-1]},
            {"name": "churn_label", "datatype": "BOOL", "shape": [-1]},
            {"name": "model_version", "datatype": "BYTES", "shape": [-1]},
            {"name": "feature_event_time", "datatype": "BYTES", "shape": [-1]},
            {"name": "reasons", "datatype": "BYTES", "shape": [-1]},
        ],
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


def write_json(path: Path, content: Mapping[str, Any]) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(content, indent=2) + "\n")
    tmp.replace(path)


T = TypeVar("T")


def assemble_dir(out_dir: Path, fill: Callable[[Path], T]) -> T:
    """Build `out_dir` (absent or empty) with `fill(staging)`, then rename it into place.

    The staging directory sits next to `out_dir`, so the rename is atomic: readers
    (MLServer, Seldon's agent, an upload) see a complete directory or none, and a
    failure in `fill` leaves nothing behind. Returns what `fill` returns.
    """
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise BundleError(f"{out_dir} exists and is not an empty directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        value = fill(staging)
        if out_dir.exists():
            out_dir.rmdir()
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return value


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
) -> BundleManifest:
    """Assemble a bundle in `out_dir` (new or empty) from a saved model (+ detector).

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
    if drift_dir is not None:
        _check_detector_dir(drift_dir)
    created_at = datetime.now(UTC).isoformat()

    def fill(staging: Path) -> BundleManifest:
        shutil.copytree(model_dir, staging / MODEL_DIR)
        if drift_dir is not None:
            shutil.copytree(drift_dir, staging / DRIFT_DIR)
        files = _checksums(staging, MODEL_DIR)
        if drift_dir is not None:
            files.update(_checksums(staging, DRIFT_DIR))
        manifest = BundleManifest(
            model_name=model_name,
            model_version=str(model_version),
            model_kind=model.kind,
            threshold=float(threshold),
            feature_service=feature_service,
            schema_fingerprint=schema_fingerprint(),
            feature_order=tuple(model_input_names()),
            files=files,
            has_drift_detector=drift_dir is not None,
            created_at=created_at,
            metadata=dict(metadata or {}),
        )
        write_json(staging / MANIFEST, manifest.to_json())
        write_json(staging / MODEL_SETTINGS, model_settings(model_name))
        write_json(staging / SERVER_SETTINGS, server_settings(settings))
        return manifest

    return assemble_dir(out_dir, fill)


def build_bundle_from_pipeline(
    out_dir: Path,
    pipeline: Pipeline,
    *,
    model_version: str,
    threshold: float,
    drift_dir: Path | None = None,
    **kwargs: Any,
) -> BundleManifest:
    """build_bundle for a fitted pipeline: saves it with churn.models.serialize first."""
    from churn.models.serialize import save_model

    with tempfile.TemporaryDirectory(prefix="churn-model-") as tmp:
        model_dir = Path(tmp) / MODEL_DIR
        save_model(pipeline, model_dir, {"model_version": model_version, "threshold": threshold})
        return build_bundle(
            out_dir,
            model_dir=model_dir,
            model_version=model_version,
            threshold=threshold,
            drift_dir=drift_dir,
            **kwargs,
        )


def _check_detector_dir(path: Path) -> None:
    from churn.drift.base import DetectorMismatchError, read_sidecar

    try:
        read_sidecar(path)
    except DetectorMismatchError as e:
        raise BundleError(f"drift detector directory {path}: {e}") from e


def _require(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    if key not in raw:
        raise BundleError(f"{path}: manifest has no {key!r}")
    value = raw[key]
    if not isinstance(value, kind):
        raise BundleError(f"{path}: manifest {key!r} has type {type(value).__name__}")
    return value


def read_manifest(bundle_dir: Path, *, verify_files: bool = True) -> BundleManifest:
    """Parse and verify `<bundle_dir>/manifest.json`.

    Checks the format, that the bundle was built for the current churn.schema
    (fingerprint and feature order), and (verify_files) that every listed file exists
    with its recorded sha256. Raises BundleError naming the file and the problem.
    """
    path = bundle_dir / MANIFEST
    if not bundle_dir.is_dir():
        raise BundleError(f"bundle directory {bundle_dir} does not exist")
    if not path.is_file():
        raise BundleError(f"{bundle_dir} is not a serving bundle: no {MANIFEST}")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(raw, dict):
        raise BundleError(f"{path} must hold a JSON object")
    if raw.get("format") != FORMAT or raw.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path}: format {raw.get('format')!r} v{raw.get('format_version')!r}, "
            f"expected {FORMAT!r} v{FORMAT_VERSION}"
        )
    threshold = float(_require(raw, "threshold", (int, float), path))
    if not 0.0 < threshold < 1.0:
        raise BundleError(f"{path}: threshold {threshold} is not in (0, 1)")
    manifest = BundleManifest(
        model_name=_require(raw, "model_name", str, path),
        model_version=_require(raw, "model_version", str, path),
        model_kind=_require(raw, "model_kind", str, path),
        threshold=threshold,
        feature_service=_require(raw, "feature_service", str, path),
        schema_fingerprint=_require(raw, "schema_fingerprint", str, path),
        feature_order=tuple(_require(raw, "feature_order", list, path)),
        files=dict(_require(raw, "files", dict, path)),
        has_drift_detector=bool(_require(raw, "has_drift_detector", bool, path)),
        created_at=str(raw.get("created_at", "")),
        metadata=dict(raw.get("metadata") or {}),
    )
    if manifest.schema_fingerprint != schema_fingerprint():
        raise BundleError(
            f"{path}: bundle built for schema {manifest.schema_fingerprint}, churn.schema is "
            f"now {schema_fingerprint()}; rebuild the bundle from a model trained on it"
        )
    if list(manifest.feature_order) != model_input_names():
        raise BundleError(f"{path}: feature_order differs from churn.schema.model_input_names()")
    if not any(name.startswith(f"{MODEL_DIR}/") for name in manifest.files):
        raise BundleError(f"{path}: lists no file under {MODEL_DIR}/")
    if verify_files:
        _verify_files(bundle_dir, manifest)
    return manifest


def _verify_files(bundle_dir: Path, manifest: BundleManifest) -> None:
    for name, digest in manifest.files.items():
        file = bundle_dir / name
        if not file.resolve().is_relative_to(bundle_dir.resolve()):
            raise BundleError(f"{bundle_dir / MANIFEST}: file {name!r} is outside the bundle")
        if not file.is_file():
            raise BundleError(f"{file}: listed in the manifest but missing")
        if _sha256(file) != digest:
            raise BundleError(f"{file}: sha256 differs from the manifest (corrupt or modified)")
    for sub in (MODEL_DIR, DRIFT_DIR):
        for extra in sorted(set(_checksums(bundle_dir, sub)) - set(manifest.files)):
            raise BundleError(f"{bundle_dir / extra}: not listed in the manifest")


def load_bundle(bundle_dir: Path, *, n_threads: int = 1) -> LoadedBundle:
    """Verify a bundle and load its model; BundleError for any problem.

    The drift detector is not loaded here (it is optional and slow to import); see
    LoadedBundle.drift_dir.
    """
    from churn.models.serialize import ModelFormatError, load_model

    manifest = read_manifest(bundle_dir)
    try:
        model = load_model(bundle_dir / MODEL_DIR, n_threads=n_threads)
    except (ModelFormatError, OSError, ValueError) as e:
        raise BundleError(f"model in {bundle_dir / MODEL_DIR} does not load: {e}") from e
    if model.kind != manifest.model_kind:
        raise BundleError(
            f"{bundle_dir / MANIFEST}: says model kind {manifest.model_kind!r}, the model "
            f"directory holds {model.kind!r}"
        )
    return LoadedBundle(path=bundle_dir, manifest=manifest, model=model)
