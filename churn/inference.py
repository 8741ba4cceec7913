"""The churn model's client contract over the Open Inference Protocol (V2), for callers.

One home for what a client and the server must agree on: the input's name, the
outputs' names and datatypes, the request body, how an answer and an error are
read, and how a reason value is shown to a person. The server side
(serving.contract, serving.errors) builds its answers from these names; the bundle
writes them into model-settings.json; the CLI, the dashboard and the benchmark
send and read them. Nothing here imports MLServer, so a client needs only this
module and an HTTP library.

Errors: the server's body is `{"error": "[<code>] <message>"}`; the code is one of
ErrorCode, so clients branch on it, never on the wording of a message. Errors
MLServer raises itself (an unknown model, a body that is not V2 JSON) have no code.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from churn.schema import ENTITY_KEY, INTEGER_FEATURES

DEFAULT_MODEL_NAME: Final = "churn"
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_HTTP_PORT: Final = 8480
INPUT_NAME: Final = ENTITY_KEY
PROBABILITY: Final = "churn_probability"
LABEL: Final = "churn_label"
MODEL_VERSION: Final = "model_version"
EVENT_TIME: Final = "feature_event_time"
REASONS: Final = "reasons"
# Every output of a prediction, with its V2 datatype, in response order.
OUTPUTS: Final[tuple[tuple[str, str], ...]] = (
    (PROBABILITY, "FP64"),
    (LABEL, "BOOL"),
    (MODEL_VERSION, "BYTES"),
    (EVENT_TIME, "BYTES"),
    (REASONS, "BYTES"),
)
REQUIRED_OUTPUTS: Final = (PROBABILITY, LABEL, MODEL_VERSION)
DEFAULT_TOP_K: Final = 3
_CODED = re.compile(r"^\[(?P<code>[a-z_]+)\] (?P<message>.*)$", re.DOTALL)


class ErrorCode(StrEnum):
    """What went wrong, as the server names it in every error it raises itself."""

    BAD_REQUEST = "bad_request"
    UNKNOWN_CUSTOMER = "unknown_customer"
    INCOMPLETE_FEATURES = "incomplete_features"
    STORE_UNAVAILABLE = "store_unavailable"
    FEATURE_DATA = "feature_data_error"
    MODEL_UNAVAILABLE = "model_unavailable"
    LOAD_ERROR = "load_error"
    DRIFT_CHECK = "drift_check_error"
    STREAMING_UNSUPPORTED = "streaming_unsupported"
    INTERNAL = "internal_error"


class EndpointSettings(BaseSettings):
    """Where a client finds the churn model: the CHURN_SERVING_* variables the server
    itself is configured with (serving.settings), so both sides read the same values."""

    model_config = SettingsConfigDict(
        env_prefix="CHURN_SERVING_", extra="ignore", protected_namespaces=()
    )

    model_name: str = Field(default=DEFAULT_MODEL_NAME, description="Model name in the URL.")
    host: str = Field(default=DEFAULT_HOST, description="Interface the local MLServer listens on.")
    http_port: int = Field(default=DEFAULT_HTTP_PORT, description="Local MLServer REST port.")

    def base_url(self) -> str:
        """The REST base URL of the local server."""
        return local_base_url(self.host, self.http_port)


def local_base_url(host: str, port: int) -> str:
    """The URL a client on this machine uses for a server listening on `host:port`
    (a server bound to every interface is reached over the loopback)."""
    reachable = DEFAULT_HOST if host in ("0.0.0.0", "") else host
    return f"http://{reachable}:{port}"


def coded_message(code: ErrorCode, message: str) -> str:
    """The error text the server sends: the code in brackets, then the message."""
    return f"[{code.value}] {message}"


def infer_path(model_name: str) -> str:
    """The V2 inference path of a model."""
    return f"/v2/models/{model_name}/infer"


def tensor_settings() -> dict[str, list[dict[str, Any]]]:
    """The `inputs` and `outputs` entries of the churn model's model-settings.json."""
    return {
        "inputs": [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": n, "datatype": d, "shape": [-1]} for n, d in OUTPUTS],
    }


def request_body(
    customer_ids: Sequence[str],
    *,
    reasons: bool = True,
    top_k: int = DEFAULT_TOP_K,
    features: bool = False,
) -> dict[str, Any]:
    """A V2 request for the churn model: the ids and what to return."""
    parameters: dict[str, Any] = {"reasons": reasons, "top_k": top_k}
    if features:
        parameters["features"] = True
    return {
        "inputs": [
            {
                "name": INPUT_NAME,
                "datatype": "BYTES",
                "shape": [len(customer_ids)],
                "data": list(customer_ids),
            }
        ],
        "parameters": parameters,
    }


class ResponseFormatError(ValueError):
    """An answer with status 200 that is not the churn model's V2 response."""


@dataclass(frozen=True)
class Reason:
    """One reason code: a feature, its served value and its push towards churn."""

    feature: str
    value: Any
    contribution: float

    def describe(self) -> str:
        """For people: `contract=Month-to-month (+0.52)`; JSON keeps full precision."""
        return f"{self.feature}={format_value(self.feature, self.value)} ({self.contribution:+.2f})"


@dataclass(frozen=True)
class Prediction:
    """The endpoint's answer for one customer."""

    customer_id: str
    probability: float
    label: bool
    threshold: float | None
    model_version: str
    feature_event_time: str
    reasons: tuple[Reason, ...]
    reason_units: str | None


def format_value(feature: str, value: Any) -> str:
    """A feature value as a person reads it: integers whole, other numbers to 4 digits."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if feature in INTEGER_FEATURES or (isinstance(value, float) and value.is_integer()):
        return str(int(value)) if math.isfinite(value) else str(value)
    return f"{value:.4g}"


def parse_reasons(text: str | None) -> tuple[Reason, ...]:
    """Reason codes from the `reasons` output's JSON string (empty when not asked for)."""
    if not text:
        return ()
    try:
        items = json.loads(text)
        return tuple(Reason(str(r["feature"]), r["value"], float(r["contribution"])) for r in items)
    except (ValueError, KeyError, TypeError) as e:
        raise ResponseFormatError(f"output {REASONS!r} is not a JSON list of reasons: {e}") from e


def _outputs(payload: Mapping[str, Any]) -> dict[str, list[Any]]:
    try:
        return {str(o["name"]): list(o["data"]) for o in payload["outputs"]}
    except (KeyError, TypeError) as e:
        raise ResponseFormatError(f"the answer is not a V2 response: {e!r}") from e


def parse_response(customer_ids: Sequence[str], payload: Mapping[str, Any]) -> list[Prediction]:
    """One Prediction per requested id, in request order, from a V2 response body."""
    out = _outputs(payload)
    missing = [name for name in REQUIRED_OUTPUTS if name not in out]
    if missing:
        raise ResponseFormatError(f"the answer lacks outputs {missing}")
    n = len(customer_ids)
    if any(len(out[name]) != n for name in REQUIRED_OUTPUTS):
        raise ResponseFormatError(f"asked for {n} customers, got {len(out[PROBABILITY])} values")
    params = payload.get("parameters") or {}
    threshold = params.get("threshold")
    reasons = out.get(REASONS, [None] * n)
    times = out.get(EVENT_TIME, [""] * n)
    return [
        Prediction(
            customer_id=cid,
            probability=float(out[PROBABILITY][i]),
            label=bool(out[LABEL][i]),
            threshold=float(threshold) if threshold is not None else None,
            model_version=str(out[MODEL_VERSION][i]),
            feature_event_time=str(times[i]),
            reasons=parse_reasons(reasons[i]),
            reason_units=params.get("reason_units"),
        )
        for i, cid in enumerate(customer_ids)
    ]


@dataclass(frozen=True)
class InferenceError:
    """A non-200 answer: its status, the server's code (None when MLServer raised it)
    and the message without the code."""

    status: int
    code: ErrorCode | None
    message: str


def parse_error(status: int, body: str) -> InferenceError:
    """Read an error answer: `{"error": "[code] message"}`, FastAPI's `detail`, or text."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    text = body.strip()[:500] or f"HTTP {status}"
    if isinstance(parsed, dict):
        for key in ("error", "detail"):
            if key in parsed:
                value = parsed[key]
                text = value if isinstance(value, str) else json.dumps(value)[:500]
                break
    match = _CODED.match(text)
    if match is None:
        return InferenceError(status, None, text)
    try:
        code = ErrorCode(match["code"])
    except ValueError:
        return InferenceError(status, None, text)
    return InferenceError(status, code, match["message"])
