"""The request/response contract of the churn model over the Open Inference Protocol (V2).

Request: one BYTES input named "customer_id" with 1..max_batch ids, shape [n] (or
[n, 1]); optional request parameters "reasons" (bool), "top_k" (int) and "features"
(bool):

    {"inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [2],
                 "data": ["7590-VHVEG", "5575-GNVDE"]}],
     "parameters": {"reasons": true, "top_k": 3}}

Response outputs, one value per requested id, in request order:
churn_probability (FP64), churn_label (BOOL, probability >= the bundle's threshold),
model_version (BYTES), feature_event_time (BYTES, ISO-8601 UTC: the oldest snapshot
among the customer's feature views) and, when asked for, reasons (BYTES: a JSON list
of {"feature", "value", "contribution"}, largest push towards churn first). Response
parameters carry the threshold and the feature service.

When asked for ("features": true, or CHURN_SERVING_EMIT_FEATURES), the response also
carries the feature rows the scores were computed from: one output per model input,
named after the feature (churn.schema.model_input_names(), derived ones included),
BYTES for categorical features and FP64 for numeric ones. This is the tabular layout
of the V2 protocol (one tensor per column) and what a chained drift model consumes
(serving.drift_runtime; a Seldon Core v2 Pipeline step with `inputs: [churn.outputs]`).

Pure functions of MLServer's pydantic types: unit-testable without a server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from mlserver.types import InferenceRequest, InferenceResponse, Parameters, ResponseOutput

from churn.inference import EVENT_TIME, INPUT_NAME, LABEL, MODEL_VERSION, PROBABILITY, REASONS
from churn.models.reasons import reason_records
from churn.schema import categorical_names
from serving.errors import BadRequestError

MAX_ID_LENGTH: Final = 256
FIELD: Final = "inputs[0]"


@dataclass(frozen=True)
class ChurnRequest:
    """A validated request: the ids and what to return."""

    customer_ids: list[str]
    reasons: bool
    top_k: int
    features: bool = False


def _request_parameter(payload: InferenceRequest, name: str) -> Any:
    params = payload.parameters
    if params is None or not params.model_extra:
        return None
    return params.model_extra.get(name)


def parse_request(
    payload: InferenceRequest,
    *,
    max_batch: int,
    reasons_default: bool,
    top_k_default: int,
    features_default: bool = False,
) -> ChurnRequest:
    """Validate a V2 request for the churn model; BadRequestError names the field."""
    if len(payload.inputs) != 1:
        raise BadRequestError(
            "inputs", f"expected exactly one input named {INPUT_NAME!r}, got {len(payload.inputs)}"
        )
    tensor = payload.inputs[0]
    if tensor.name != INPUT_NAME:
        raise BadRequestError(f"{FIELD}.name", f"expected {INPUT_NAME!r}, got {tensor.name!r}")
    datatype = getattr(tensor.datatype, "value", tensor.datatype)
    if datatype != "BYTES":
        raise BadRequestError(
            f"{FIELD}.datatype", f"customer ids are strings: expected 'BYTES', got {datatype!r}"
        )
    data = tensor.data.root
    if not isinstance(data, list):
        raise BadRequestError(f"{FIELD}.data", "must be a JSON array of customer id strings")
    if data and isinstance(data[0], list):  # nested [[id], [id]] form of shape [n, 1]
        if not all(isinstance(row, list) and len(row) == 1 for row in data):
            raise BadRequestError(f"{FIELD}.data", "nested data must be rows of one id each")
        data = [row[0] for row in data]
    n = len(data)
    if n == 0:
        raise BadRequestError(f"{FIELD}.data", f"empty batch: send 1 to {max_batch} customer ids")
    if n > max_batch:
        raise BadRequestError(
            f"{FIELD}.data", f"batch of {n} customer ids exceeds the maximum of {max_batch}"
        )
    if tensor.shape not in ([n], [n, 1]):
        raise BadRequestError(f"{FIELD}.shape", f"expected [{n}] for {n} ids, got {tensor.shape}")
    for i, cid in enumerate(data):
        if not isinstance(cid, str) or not cid or len(cid) > MAX_ID_LENGTH:
            raise BadRequestError(
                f"{FIELD}.data[{i}]",
                f"customer ids are non-empty strings of at most {MAX_ID_LENGTH} characters, "
                f"got {cid!r:.80}",
            )
    reasons = _request_parameter(payload, "reasons")
    if reasons is None:
        reasons = reasons_default
    elif not isinstance(reasons, bool):
        raise BadRequestError("parameters.reasons", f"expected true or false, got {reasons!r}")
    top_k = _request_parameter(payload, "top_k")
    if top_k is None:
        top_k = top_k_default
    elif isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 50:
        raise BadRequestError("parameters.top_k", f"expected an integer in [1, 50], got {top_k!r}")
    features = _request_parameter(payload, "features")
    if features is None:
        features = features_default
    elif not isinstance(features, bool):
        raise BadRequestError("parameters.features", f"expected true or false, got {features!r}")
    return ChurnRequest(customer_ids=data, reasons=reasons, top_k=top_k, features=features)


class TimeFormatter:
    """Epoch seconds -> ISO-8601 UTC, memoised (a store holds few distinct snapshot times)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._cache: dict[float, str] = {}
        self._limit = limit

    def __call__(self, seconds: npt.NDArray[np.float64]) -> list[str]:
        cache = self._cache
        out = []
        for value in seconds.tolist():
            text = cache.get(value)
            if text is None:
                if len(cache) > self._limit:
                    cache.clear()
                text = cache[value] = datetime.fromtimestamp(value, UTC).isoformat()
            out.append(text)
        return out


def reason_codes(
    contributions: npt.NDArray[np.float64],
    features: Sequence[str],
    values: Mapping[str, Any],
    top_k: int,
) -> list[str]:
    """Per row, the `reasons` output: churn.models.reasons.reason_records as JSON text.

    `contributions` is (rows, features) in the model's units, already aggregated to
    raw features (one-hot columns summed back to their feature).
    """
    return [json.dumps(items) for items in reason_records(contributions, features, values, top_k)]


def feature_outputs(columns: Mapping[str, Any]) -> list[ResponseOutput]:
    """One output per served feature column: BYTES for categorical features, FP64 otherwise."""
    categorical = frozenset(categorical_names())
    outputs = []
    for name, column in columns.items():
        values = column.tolist() if isinstance(column, np.ndarray) else list(column)
        if name in categorical:
            outputs.append(
                ResponseOutput(name=name, shape=[len(values)], datatype="BYTES", data=values)
            )
        else:
            data = [float(v) for v in values]
            outputs.append(ResponseOutput(name=name, shape=[len(data)], datatype="FP64", data=data))
    return outputs


def build_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    probabilities: npt.NDArray[np.float64],
    threshold: float,
    event_times: list[str],
    reasons: list[str] | None,
    parameters: dict[str, Any],
    features: Mapping[str, Any] | None = None,
) -> InferenceResponse:
    """The V2 response: one value per customer in every output, in request order.

    `features` (feature name -> the served column, in output order) adds one output per
    feature; see the module docstring.
    """
    n = len(probabilities)
    outputs = [
        ResponseOutput(
            name=PROBABILITY, shape=[n], datatype="FP64", data=probabilities.tolist()
        ),
        ResponseOutput(
            name=LABEL, shape=[n], datatype="BOOL",
            data=(probabilities >= threshold).tolist(),
        ),
        ResponseOutput(name=MODEL_VERSION, shape=[n], datatype="BYTES", data=[model_version] * n),
        ResponseOutput(name=EVENT_TIME, shape=[n], datatype="BYTES", data=event_times),
    ]  # fmt: skip
    if reasons is not None:
        outputs.append(ResponseOutput(name=REASONS, shape=[n], datatype="BYTES", data=reasons))
    if features is not None:
        outputs.extend(feature_outputs(features))
    return InferenceResponse(
        model_name=model_name,
        model_version=model_version,
        id=request_id,
        parameters=Parameters(**parameters),
        outputs=outputs,
    )
