"""MLServer runtime of the drift detector: served feature rows in, drift verdicts out.

Why a second model: in a Seldon Core v2 Pipeline the churn model answers the client
and its outputs flow on, asynchronously (Kafka), to the next step; a drift model there
is off the request path by construction, scales on its own, and its verdicts land on
its own output topic (`seldon pipeline inspect`). The chain is

    client -> churn (serving.runtime, with CHURN_SERVING_EMIT_FEATURES=true)
           -> churn.outputs: churn_probability, ..., one tensor per feature
           -> <model>-drift (this runtime) -> is_drift, p-values per window

so the detector sees exactly the feature values the model scored, never a second read
of the online store. deployment.seldon renders that Pipeline. (Without a Pipeline, e.g.
on a local MLServer or Seldon Core v1, the churn runtime's own background monitor,
serving.drift, does the same job in-process.)

Request: the V2 tabular layout, one input per feature named as in the bundle's model
inputs (churn.schema.model_input_names of its feature set; BYTES for categorical
features, any numeric datatype for numeric ones), each of shape [n] or [n, 1]; other
inputs (churn_probability, customer_id, ...) are ignored, so the churn step's whole
output can be wired in.

Windowing: one row says nothing about drift; rows accumulate in a
churn.drift.DriftWindow of CHURN_SERVING_DRIFT_WINDOW rows, and every window a
request completes is tested (alibi-detect TabularDrift, in a worker thread). The
response holds one entry per completed window, usually none or one: outputs
is_drift (BOOL), p_value and threshold (FP64), n_rows (INT64), and p_values,
distances, drifted_features (BYTES, JSON). Each verdict also goes to the Prometheus
gauges of serving.metrics, to the log, and to GET /v2/models/<name>/drift. (The Seldon
Pipeline step's `batch`, deployment.seldon, only makes the calls fewer: it groups
messages, while the window here counts feature rows and spans calls.)

Errors: a missing or mistyped feature input, or a value the schema does not know ->
400 naming the input, before anything is added to the window (a bad request never
poisons a window); a detector that raises -> 500 (DriftCheckError), counted. Neither
can reach the churn model's answer: in the Pipeline this step is not on the output
path.

The drift model's artifact, a copy of the serving bundle whose model-settings.json
names this runtime, is built by deployment.drift_model (not here: the builder does
not belong in the inference server).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
from mlserver import MLModel
from mlserver.handlers.custom import CustomHandler, register_custom_handler
from mlserver.types import InferenceRequest, InferenceResponse, Parameters, ResponseOutput
from mlserver.utils import get_model_uri

from churn.drift.base import DriftDetector, DriftResult
from churn.drift.encoding import DriftInputError, FeatureEncoder
from churn.drift.window import DriftWindow
from churn.inference import ErrorCode
from churn.schema import categorical_names
from serving.bundle import (
    DRIFT_DIR,
    BundleError,
    BundleManifest,
    read_manifest,
)
from serving.drift import publish_drift_result
from serving.errors import BadRequestError, ModelLoadError, ModelUnavailableError, ServingError
from serving.metrics import ServingMetrics, serving_metrics
from serving.settings import ServingSettings, get_serving_settings

logger = logging.getLogger(__name__)

NUMERIC_DATATYPES: Final = frozenset(
    {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32",
     "UINT64"}
)  # fmt: skip
OUTCOMES: Final = ("ok", "bad_request", "error")


class DriftCheckError(ServingError):
    """The detector failed on a full window; the window's rows are not checked."""

    outcome: ClassVar[str] = "error"
    status: ClassVar[int] = 500
    code: ClassVar[ErrorCode] = ErrorCode.DRIFT_CHECK


# ------------------------------------------------------------------ request / response


def _flat(data: Any, field: str) -> list[Any]:
    """Tensor data as a flat list: [v, ...] or rows of one value [[v], ...]."""
    if not isinstance(data, list):
        raise BadRequestError(field, "data must be a JSON array")
    if data and isinstance(data[0], list):
        if not all(isinstance(row, list) and len(row) == 1 for row in data):
            raise BadRequestError(field, "nested data must be rows of one value each")
        return [row[0] for row in data]
    return data


def feature_columns(
    payload: InferenceRequest, features: Sequence[str], categorical: frozenset[str]
) -> dict[str, Any]:
    """The request's feature columns (lists of str, float64 arrays); 400 naming the input.

    Inputs not in `features` are ignored; every feature must be present exactly once,
    with a matching datatype, a [n] or [n, 1] shape and the same n as the others.
    """
    by_name: dict[str, int] = {}
    for i, tensor in enumerate(payload.inputs):
        if tensor.name in by_name:
            raise BadRequestError(f"inputs[{i}].name", f"input {tensor.name!r} given twice")
        by_name[tensor.name] = i
    missing = [name for name in features if name not in by_name]
    if missing:
        raise BadRequestError(
            "inputs", f"feature inputs missing: {missing} (one input per feature is expected)"
        )
    columns: dict[str, Any] = {}
    n_rows: int | None = None
    first = features[0]
    for name in features:
        i = by_name[name]
        tensor = payload.inputs[i]
        field = f"inputs[{i}] ({name})"
        datatype = getattr(tensor.datatype, "value", tensor.datatype)
        values = _flat(tensor.data.root, f"{field}.data")
        if name in categorical:
            if datatype != "BYTES":
                raise BadRequestError(
                    f"{field}.datatype", f"categorical: expected 'BYTES', got {datatype!r}"
                )
            decoded = [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]
            if not all(isinstance(v, str) for v in decoded):
                raise BadRequestError(f"{field}.data", "categorical values must be strings")
            columns[name] = decoded
        else:
            if datatype not in NUMERIC_DATATYPES:
                raise BadRequestError(
                    f"{field}.datatype", f"numeric: expected a numeric datatype, got {datatype!r}"
                )
            try:
                columns[name] = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise BadRequestError(f"{field}.data", f"not numbers: {e}") from e
        n = len(values)
        if tensor.shape not in ([n], [n, 1]):
            raise BadRequestError(f"{field}.shape", f"expected [{n}] for {n} values")
        if n_rows is None:
            n_rows = n
        elif n != n_rows:
            raise BadRequestError(f"{field}.data", f"{n} rows, {first!r} has {n_rows}")
    if not n_rows:
        raise BadRequestError("inputs", "empty batch: no feature rows to check")
    return columns


def build_drift_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    results: Sequence[DriftResult],
    parameters: dict[str, Any],
) -> InferenceResponse:
    """One value per window completed by the request, in every output (possibly none)."""
    summaries = [r.to_dict() for r in results]
    k = len(results)

    def out(name: str, datatype: str, data: list[Any]) -> ResponseOutput:
        return ResponseOutput(name=name, shape=[k], datatype=datatype, data=data)

    return InferenceResponse(
        model_name=model_name,
        model_version=model_version,
        id=request_id,
        parameters=Parameters(**parameters),
        outputs=[
            out("is_drift", "BOOL", [s["is_drift"] for s in summaries]),
            out("p_value", "FP64", [s["p_value"] for s in summaries]),
            out("threshold", "FP64", [s["threshold"] for s in summaries]),
            out("n_rows", "INT64", [s["n_rows"] for s in summaries]),
            out("p_values", "BYTES", [json.dumps(s["p_values"]) for s in summaries]),
            out("distances", "BYTES", [json.dumps(s["distances"]) for s in summaries]),
            out(
                "drifted_features", "BYTES", [json.dumps(s["drifted_features"]) for s in summaries]
            ),
        ],
    )


# ------------------------------------------------------------------ runtime


@dataclass
class _Loaded:
    """What load() prepares; predict() only reads it (the window is thread-safe)."""

    path: Path
    manifest: BundleManifest
    detector: DriftDetector
    encoder: FeatureEncoder
    window: DriftWindow


class DriftRuntime(MLModel):  # type: ignore[misc]  # MLServer ships no type hints
    """Windows of served feature rows -> the bundle's drift detector -> verdicts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: _Loaded | None = None
        self._settings_serving: ServingSettings = get_serving_settings()
        self._metrics: ServingMetrics = serving_metrics()
        self._outcome = {o: self._metrics.requests.labels(self.name, o) for o in OUTCOMES}
        self._windows = {
            r: self._metrics.drift_windows.labels(self.name, r)
            for r in ("drift", "no_drift", "error")
        }
        self._status: dict[str, Any] = {"model": self.name, "enabled": False}
        # GET /v2/models/<name>/drift, registered per instance like ChurnRuntime's.
        status = self.status

        async def drift_status() -> dict[str, Any]:
            return status()

        register_custom_handler(
            CustomHandler(rest_path=f"/v2/models/{self.name}/drift", rest_method="GET"),
            drift_status,
        )
        self.drift_status = drift_status

    def status(self) -> dict[str, Any]:
        """The last verdict and counters (JSON types only)."""
        loaded = self._loaded
        pending = {"rows_pending": loaded.window.pending} if loaded is not None else {}
        return {**self._status, **pending}

    async def load(self) -> bool:
        """Verify the artifact and load the detector; ModelLoadError (never ready) on failure."""
        try:
            # Not CHURN_SERVING_MODEL_URI: that names the churn model's bundle, and both
            # models may share a server (and its environment).
            uri = await get_model_uri(self.settings)
            self._loaded = await asyncio.to_thread(self._load, Path(uri))
        except Exception as e:
            raise ModelLoadError(f"drift model {self.name!r} failed to load: {e}") from e
        loaded = self._loaded
        self._metrics.drift_detector_loaded.labels(self.name).set(1)
        self._status = {
            "model": self.name,
            "enabled": True,
            "detector": loaded.detector.name,
            "source_model_version": loaded.manifest.model_version,
            "window_size": loaded.window.size,
            "features": list(loaded.detector.feature_names),
            "windows_checked": 0,
            "errors": 0,
            "last_error": None,
            "last_result": None,
        }
        logger.info(
            "loaded drift model %s for %s version %s (%s, windows of %d rows) from %s",
            self.name, loaded.manifest.model_name, loaded.manifest.model_version,
            loaded.detector.name, loaded.window.size, loaded.path,
        )  # fmt: skip
        return True

    def _load(self, path: Path) -> _Loaded:
        manifest = read_manifest(path)
        if not manifest.has_drift_detector:
            raise BundleError(f"{path} has no drift detector ({DRIFT_DIR}/)")
        detector = self.load_detector(path / DRIFT_DIR, manifest.feature_order)
        features = detector.feature_names
        return _Loaded(
            path=path,
            manifest=manifest,
            detector=detector,
            encoder=FeatureEncoder.from_schema(features),
            window=DriftWindow(self._settings_serving.drift_window, features),
        )

    def load_detector(self, path: Path, features: Sequence[str]) -> DriftDetector:
        """The saved detector at `path`, checking exactly `features` (the bundle's model
        inputs) (blocking). The seam a test overrides."""
        from churn.drift.base import load_detector

        return load_detector(path, features=features)

    async def unload(self) -> bool:
        """Drop the detector and the rows of an incomplete window."""
        # (No metric reset: on a reload MLServer unloads the old instance after the new
        # one has loaded under the same name.)
        self._loaded = None
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Add the request's rows to the window; test every window they complete."""
        loaded = self._loaded
        if loaded is None:
            raise ModelUnavailableError(f"drift model {self.name!r} is not loaded")
        try:
            results = await self._check(loaded, payload)
        except ServingError as e:
            self._outcome[e.outcome if e.outcome in self._outcome else "error"].inc()
            raise
        except Exception:
            self._outcome["error"].inc()
            raise
        self._outcome["ok"].inc()
        return build_drift_response(
            model_name=self.name,
            model_version=loaded.manifest.model_version,
            request_id=payload.id,
            results=results,
            parameters={
                "window_size": loaded.window.size,
                "rows_pending": loaded.window.pending,
                "windows_checked": int(self._status.get("windows_checked", 0)),
                "detector": loaded.detector.name,
            },
        )

    async def _check(self, loaded: _Loaded, payload: InferenceRequest) -> list[DriftResult]:
        features = loaded.detector.feature_names
        columns = feature_columns(payload, features, frozenset(categorical_names()))
        try:
            loaded.encoder.encode(columns)  # unknown categories, NaN: refused before buffering
        except DriftInputError as e:
            raise BadRequestError("inputs", str(e)) from e
        results = []
        for window in loaded.window.append(columns):
            started = time.perf_counter()
            try:
                result = await asyncio.to_thread(loaded.detector.predict, window)
            except Exception as e:
                self._record_error(e)
                raise DriftCheckError(
                    f"drift detector {loaded.detector.name!r} failed on a window of "
                    f"{loaded.window.size} rows: {e}"
                ) from e
            self._publish(result, time.perf_counter() - started)
            results.append(result)
        return results

    def _publish(self, result: DriftResult, seconds: float) -> None:
        summary = publish_drift_result(self._metrics, self._windows, self.name, result, seconds)
        self._status["windows_checked"] = int(self._status.get("windows_checked", 0)) + 1
        self._status["last_result"] = summary
        self._status["last_checked_at"] = time.time()

    def _record_error(self, error: Exception) -> None:
        self._windows["error"].inc()
        logger.error("drift check by %s failed: %r", self.name, error, exc_info=error)
        self._status["errors"] = int(self._status.get("errors", 0)) + 1
        self._status["last_error"] = f"{type(error).__name__}: {error}"
