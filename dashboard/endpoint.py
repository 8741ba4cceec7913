"""The inference endpoint, called over HTTP exactly as a client application calls it
(churn.inference, the V2 client contract): live predictions, health, live drift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from churn.inference import (
    ErrorCode,
    Prediction,
    ResponseFormatError,
    infer_path,
    parse_error,
    request_body,
)
from churn.inference import parse_response as parse_v2_response
from dashboard.errors import (
    BadInput,
    DashboardError,
    ServerUnavailable,
    ServingFailed,
    StoreUnavailable,
    UnknownCustomer,
)
from dashboard.settings import DashboardSettings

# ----------------------------------------------------------------- live predictions


# The endpoint's answer per customer, and its reason codes: the client contract's types.
LivePrediction = Prediction


def clean_customer_id(text: str) -> str:
    """The id as typed, trimmed; BadInput when nothing is left."""
    cid = text.strip()
    if not cid:
        raise BadInput("Enter a customer id (for example 7590-VHVEG).")
    return cid


def error_from_response(response: requests.Response, url: str) -> DashboardError:
    """The DashboardError for a non-200 answer, chosen by the server's error code."""
    error = parse_error(response.status_code, response.text)
    status, message = error.status, error.message
    if error.code is ErrorCode.STORE_UNAVAILABLE:
        return StoreUnavailable(
            f"The online feature store (Redis) is unavailable, so the server cannot read "
            f"this customer's features: {message}. Start it with `make redis-start`."
        )
    if error.code in (ErrorCode.UNKNOWN_CUSTOMER, ErrorCode.INCOMPLETE_FEATURES):
        return UnknownCustomer(f"Unknown customer: {message}")
    if status == 503:
        return ServerUnavailable(f"The inference server at {url} is not ready (503): {message}")
    if status == 404:  # MLServer's own answer: no such model here
        return ServerUnavailable(
            f"The inference server at {url} does not serve this model (404): {message}. "
            "Deploy it with `make deployment-pipeline`."
        )
    return ServingFailed(f"The inference server answered HTTP {status}: {message}")


def parse_response(customer_ids: Sequence[str], payload: Mapping[str, Any]) -> list[Prediction]:
    """One prediction per requested id; ServingFailed when the answer is not the contract's."""
    try:
        return parse_v2_response(customer_ids, payload)
    except ResponseFormatError as e:
        raise ServingFailed(f"the endpoint's answer is not the churn model's: {e}") from e


def predict_live(
    customer_id: str, settings: DashboardSettings, session: requests.Session | None = None
) -> LivePrediction:
    """Ask the inference endpoint for one customer, with reason codes."""
    cid = clean_customer_id(customer_id)
    base = settings.endpoint_url()
    url = base + infer_path(settings.model_path())
    http = session or requests.Session()
    try:
        response = http.post(
            url, json=request_body([cid], top_k=settings.top_k), timeout=settings.timeout_s
        )
    except requests.ConnectionError as e:
        raise ServerUnavailable(
            f"The inference server at {base} is not reachable (connection refused or "
            "dropped). Start it with `make deployment-pipeline` (or `python -m "
            "deployment.local_server start <bundle>`)."
        ) from e
    except requests.Timeout as e:
        raise ServerUnavailable(
            f"The inference server at {base} did not answer within {settings.timeout_s} s."
        ) from e
    if response.status_code != 200:
        raise error_from_response(response, base)
    return parse_response([cid], response.json())[0]


@dataclass(frozen=True)
class ServerHealth:
    """Liveness of the server and readiness of the model, for the sidebar."""

    url: str
    live: bool
    ready: bool


def server_health(settings: DashboardSettings, timeout_s: float = 1.0) -> ServerHealth:
    """GET /v2/health/live and /v2/models/<model>/ready; never raises for a down server."""
    base = settings.endpoint_url()

    def ok(path: str) -> bool:
        try:
            return requests.get(f"{base}{path}", timeout=timeout_s).status_code == 200
        except requests.RequestException:
            return False

    live = ok("/v2/health/live")
    ready = live and ok(f"/v2/models/{settings.model_path()}/ready")
    return ServerHealth(url=base, live=live, ready=ready)


def live_drift_status(settings: DashboardSettings) -> dict[str, Any]:
    """The served model's latest drift check (GET /v2/models/<model>/drift)."""
    base = settings.endpoint_url()
    try:
        response = requests.get(
            f"{base}/v2/models/{settings.model_path()}/drift", timeout=settings.timeout_s
        )
    except requests.RequestException as e:
        raise ServerUnavailable(
            f"The inference server at {base} is not reachable, so its live drift status is unknown."
        ) from e
    if response.status_code != 200:
        raise error_from_response(response, base)
    status: dict[str, Any] = response.json()
    return status
