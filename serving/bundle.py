"""Serving bundles: the directory format MLServer (and Seldon Core) serve, and its reader.

Layout:

    <bundle>/
      manifest.json         what is served: model name and version, threshold, Feast
                            FeatureService and its Redis layout, schema fingerprint,
                            feature order, and the sha256 of every other file
      model/                churn.models.serialize.save_model output (no pickle)
      drift/                optional: a saved churn.drift detector
      model-settings.json   MLServer: implementation serving.runtime.ChurnRuntime,
                            parameters.uri "." (the bundle itself, wherever it is mounted)
      settings.json         MLServer server settings, for `mlserver start <bundle>`

This module is the request path's half: the format, `read_manifest` and
`load_bundle`, which the runtimes call inside MLServer. Building bundles is
deployment's job (deployment.bundle), so the inference server never carries the
builder and the builder never imports MLServer.

`load_bundle` verifies the manifest (format, schema fingerprint, checksums) before
loading anything, and every failure is a BundleError naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from churn.files import file_sha256
from churn.models.encoding import schema_fingerprint
from churn.schema import FEATURE_VERSIONS, model_input_names

if TYPE_CHECKING:
    from churn.models.serialize import ServingModel

FORMAT: Final = "churn-serving-bundle"
FORMAT_VERSION: Final = 1
MANIFEST: Final = "manifest.json"
MODEL_DIR: Final = "model"
DRIFT_DIR: Final = "drift"
MODEL_SETTINGS: Final = "model-settings.json"
SERVER_SETTINGS: Final = "settings.json"


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
    # serving.online.OnlineLayout.to_json() of feature_service, resolved at build time
    # from the Feast registry: with it the server needs no registry, only Redis.
    feature_layout: dict[str, Any] | None = None
    # The model's churn.schema feature set (1 for bundles written before there were sets).
    feature_version: int = 1

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
            "feature_layout": self.feature_layout,
            "feature_version": self.feature_version,
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


def checksums(root: Path, sub: str) -> dict[str, str]:
    """sha256 of every file under `root/sub`, keyed by its path relative to `root`."""
    base = root / sub
    return {
        path.relative_to(root).as_posix(): file_sha256(path)
        for path in sorted(base.rglob("*"))
        if path.is_file()
    }


def _require(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    if key not in raw:
        raise BundleError(f"{path}: manifest has no {key!r}")
    value = raw[key]
    if not isinstance(value, kind):
        raise BundleError(f"{path}: manifest {key!r} has type {type(value).__name__}")
    return value


def _optional_layout(raw: Mapping[str, Any], path: Path) -> dict[str, Any] | None:
    layout = raw.get("feature_layout")
    if layout is not None and not isinstance(layout, dict):
        raise BundleError(f"{path}: manifest 'feature_layout' has type {type(layout).__name__}")
    return layout


def _feature_version(raw: Mapping[str, Any], path: Path) -> int:
    version = raw.get("feature_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version not in FEATURE_VERSIONS:
        raise BundleError(
            f"{path}: manifest 'feature_version' {version!r} is not a feature set of "
            f"churn.schema {FEATURE_VERSIONS}"
        )
    return version


def read_manifest(bundle_dir: Path, *, verify_files: bool = True) -> BundleManifest:
    """Parse and verify `<bundle_dir>/manifest.json`.

    Checks the format, that the bundle was built for the current churn.schema
    (its feature set's fingerprint and feature order), and (verify_files) that every
    listed file exists with its recorded sha256. Raises BundleError naming the file
    and the problem.
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
        feature_layout=_optional_layout(raw, path),
        feature_version=_feature_version(raw, path),
    )
    version = manifest.feature_version
    if manifest.schema_fingerprint != schema_fingerprint(version):
        raise BundleError(
            f"{path}: bundle built for schema {manifest.schema_fingerprint}, churn.schema's "
            f"feature set {version} is now {schema_fingerprint(version)}; rebuild the bundle "
            "from a model trained on it"
        )
    if list(manifest.feature_order) != model_input_names(version):
        raise BundleError(
            f"{path}: feature_order differs from churn.schema.model_input_names({version})"
        )
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
        if file_sha256(file) != digest:
            raise BundleError(f"{file}: sha256 differs from the manifest (corrupt or modified)")
    for sub in (MODEL_DIR, DRIFT_DIR):
        for extra in sorted(set(checksums(bundle_dir, sub)) - set(manifest.files)):
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
    if model.feature_version != manifest.feature_version:
        raise BundleError(
            f"{bundle_dir / MANIFEST}: says feature set {manifest.feature_version}, the model "
            f"directory holds a model of feature set {model.feature_version}"
        )
    return LoadedBundle(path=bundle_dir, manifest=manifest, model=model)
