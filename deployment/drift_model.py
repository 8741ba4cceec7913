"""The drift model's folder: a copy of a serving bundle whose model-settings.json
names the drift runtime (serving.drift_runtime.DriftRuntime).

Why a folder of its own: Seldon Core v2 downloads a Model's storageUri as one folder
and serves the model-settings.json at its top, so the churn model and its detector
need two folders; copying the bundle keeps the manifest's checksum and schema
checks (serving.bundle.read_manifest) for the detector too.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from churn.files import assemble_dir, write_json_atomic
from churn.schema import categorical_names
from deployment.bundle import DRIFT_IMPLEMENTATION
from serving.bundle import (
    DRIFT_DIR,
    MANIFEST,
    MODEL_DIR,
    MODEL_SETTINGS,
    BundleError,
    BundleManifest,
    read_manifest,
)

# The drift model of model <m> is called <m>-drift (Seldon Model and Pipeline step name).
NAME_SUFFIX: Final = "-drift"


def drift_model_name(model_name: str) -> str:
    """Name of the drift model that watches `model_name`."""
    return f"{model_name}{NAME_SUFFIX}"


def drift_model_settings(
    model_name: str, features: Sequence[str], uri: str = "."
) -> dict[str, Any]:
    """model-settings.json of a drift model reading `features` (the served model's inputs);
    `uri` "." is the folder of the file itself."""
    return {
        "name": model_name,
        "implementation": DRIFT_IMPLEMENTATION,
        "parameters": {"uri": uri},
        "inputs": [
            {
                "name": name,
                "datatype": "BYTES" if name in categorical_names() else "FP64",
                "shape": [-1],
            }
            for name in features
        ],
        "outputs": [
            {"name": "is_drift", "datatype": "BOOL", "shape": [-1]},
            {"name": "p_value", "datatype": "FP64", "shape": [-1]},
            {"name": "threshold", "datatype": "FP64", "shape": [-1]},
            {"name": "n_rows", "datatype": "INT64", "shape": [-1]},
            {"name": "p_values", "datatype": "BYTES", "shape": [-1]},
            {"name": "distances", "datatype": "BYTES", "shape": [-1]},
            {"name": "drifted_features", "datatype": "BYTES", "shape": [-1]},
        ],
    }


def build_drift_model(
    bundle_dir: Path, out_dir: Path, *, model_name: str | None = None
) -> BundleManifest:
    """Write the drift model's folder for the serving bundle at `bundle_dir`.

    `out_dir` (new or empty) receives the bundle's manifest, model/ and drift/ (verified
    before and after the copy) and a model-settings.json naming DriftRuntime, called
    `model_name` (default: "<bundle's model name>-drift"). It is assembled next to
    `out_dir` and renamed into place, so `out_dir` is complete or absent. Raises
    BundleError when the bundle is invalid or has no drift detector.
    """
    manifest = read_manifest(bundle_dir)
    if not manifest.has_drift_detector:
        raise BundleError(f"{bundle_dir} has no drift detector ({DRIFT_DIR}/): no drift model")
    name = model_name or drift_model_name(manifest.model_name)

    def fill(staging: Path) -> None:
        shutil.copy2(bundle_dir / MANIFEST, staging / MANIFEST)
        for sub in (MODEL_DIR, DRIFT_DIR):
            shutil.copytree(bundle_dir / sub, staging / sub)
        write_json_atomic(
            staging / MODEL_SETTINGS, drift_model_settings(name, manifest.feature_order)
        )
        read_manifest(staging)

    try:
        assemble_dir(out_dir, fill)
    except FileExistsError as e:
        raise BundleError(str(e)) from e
    return manifest
