# ruff: noqa: F811  (the tests take test_http's `server` fixture, imported, by name)
"""The served Open Inference Protocol API, fuzzed with schemathesis over HTTP.

The OpenAPI document is the one the running MLServer serves (/v2/docs/dataplane.json),
with its one non-standard type fixed (`"type": "bytes"` -> string, format byte).
Cases are generated from it (positive and negative, derandomized, a bounded number
per operation) and sent to the real server of test_http's `server` fixture (one
MLServer for this module, real runtime, real Redis), twice: with model_name pinned to
the served model, so that bodies reach the runtime, and with any other name.

What must hold: no answer >= 500 and every 4xx a JSON body, and no metric series for
a model this server does not serve (serving.metrics filters MLServer's per-model
series, which MLServer labels with the URL's name before it looks the model up).

Streaming: POST .../infer_stream and .../generate_stream are answered by the churn
front (serving.server) with a 400 JSON error naming /infer, for any body and any
model. MLServer 1.7.1 itself starts a 200 StreamingResponse before it looks the model
up, so any failure there became a text/plain 500 (6 of ~800 generated cases); the
churn model does not stream, so the front refuses those routes before MLServer.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Summary as PromSummary
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import GenerationMode
from schemathesis.schemas import APIOperation, BaseSchema
from test_http import FAULTY, MODEL, Server, body, infer, server  # noqa: F401

from churn.inference import ErrorCode, parse_error
from serving.metrics import MLSERVER_MODEL_COLLECTORS, UNVERSIONED, ServedModelSeries, served_series

pytestmark = pytest.mark.integration

SERVED = frozenset({MODEL, FAULTY})
STREAMING = ("/infer_stream", "/generate_stream")
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# Most cases per operation and mode (generation costs ~0.1 s a case): POSTs carry the
# body, GETs only path parameters (parameterless ones have one case). ~360 cases for
# the non-streaming operations (~40 s), 48 for the streaming ones.
POST_EXAMPLES = 25
GET_EXAMPLES = 8
UNKNOWN_EXAMPLES = 15
STREAMING_EXAMPLES = 6
# -------------------------------------------------------------- the spec


def fix_bytes_type(node: Any) -> None:
    """Replace MLServer's `"type": "bytes"` (not an OpenAPI type) by a base64 string."""
    if isinstance(node, dict):
        if node.get("type") == "bytes":
            node["type"] = "string"
            node["format"] = "byte"
        for value in node.values():
            fix_bytes_type(value)
    elif isinstance(node, list):
        for value in node:
            fix_bytes_type(value)


@pytest.fixture(scope="module")
def openapi(server: Server) -> dict[str, Any]:
    """The served OpenAPI document, made valid."""
    response = requests.get(f"{server.url}/v2/docs/dataplane.json", timeout=10)
    assert response.status_code == 200, response.text
    spec: dict[str, Any] = response.json()
    fix_bytes_type(spec)
    return spec


def with_model_name(spec: dict[str, Any], name_schema: dict[str, Any]) -> BaseSchema:
    """A schemathesis schema of `spec` whose model_name path parameter follows name_schema."""
    spec = copy.deepcopy(spec)
    for path in spec["paths"].values():
        for parameter in path.get("parameters", []):
            if parameter["name"] == "model_name":
                parameter["schema"] = copy.deepcopy(name_schema)
    return schemathesis.openapi.from_dict(spec)


def pinned_to(name: str) -> dict[str, Any]:
    return {"type": "string", "enum": [name]}


# Any other name: never one of the served models (and never empty, which is no route).
OTHER_NAMES: dict[str, Any] = {"type": "string", "minLength": 1, "not": {"enum": sorted(SERVED)}}


# -------------------------------------------------------------- fuzzing


@dataclass(frozen=True)
class Answer:
    """One generated case and the server's answer."""

    operation: str
    mode: str
    model_name: str
    status: int
    content_type: str
    text: str


def operations(schema: BaseSchema, streaming: bool) -> list[APIOperation]:
    """The schema's operations, the streaming ones or the others."""
    ops = [result.ok() for result in schema.get_all_operations()]
    return [op for op in ops if op.path.endswith(STREAMING) == streaming]


def examples_of(op: APIOperation, budget: int) -> int:
    return budget if op.method.upper() == "POST" else min(budget, GET_EXAMPLES)


def has_inputs(op: APIOperation) -> bool:
    """False for operations with nothing to get wrong (a negative case cannot exist)."""
    return "{" in op.path or op.method.upper() == "POST"


def fuzz(
    server: Server,
    ops: Iterable[APIOperation],
    budget: int,
    modes: Iterable[GenerationMode] = MODES,
) -> list[Answer]:
    """Send up to `budget` derandomized cases per operation and mode; every answer."""
    answers: list[Answer] = []
    session = requests.Session()
    for op in ops:
        for mode in modes:
            if mode is GenerationMode.NEGATIVE and not has_inputs(op):
                continue
            run = _runner(server, op, mode, examples_of(op, budget), session, answers.append)
            run()
    return answers


def _runner(
    server: Server,
    op: APIOperation,
    mode: GenerationMode,
    examples: int,
    session: requests.Session,
    record: Callable[[Answer], None],
) -> Callable[[], None]:
    """A hypothesis test sending `examples` cases of `op` (no shrinking, no database)."""

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=server.url, session=session, timeout=10)
        record(
            Answer(
                operation=op.label,
                mode=mode.value,
                model_name=str((case.path_parameters or {}).get("model_name", "")),
                status=response.status_code,
                content_type=(response.headers.get("content-type") or [""])[0],
                text=response.content[:200].decode(errors="replace"),
            )
        )

    return run


def summary(answers: list[Answer]) -> str:
    """Status counts per operation, for a failure message."""
    counts = Counter((a.operation, a.status) for a in answers)
    return "\n".join(f"  {op} -> {status}: {n}" for (op, status), n in sorted(counts.items()))


def server_errors(answers: list[Answer]) -> list[Answer]:
    return [a for a in answers if a.status >= 500]


def non_json_4xx(answers: list[Answer]) -> list[Answer]:
    return [
        a
        for a in answers
        if 400 <= a.status < 500 and not a.content_type.startswith("application/json")
    ]


# -------------------------------------------------------------- metrics


def model_series(server: Server) -> set[tuple[str, str, str]]:
    """(metric, model, version) of every /metrics sample that has a model label."""
    text = requests.get(server.metrics_url, timeout=5).text
    return {
        (family.name, sample.labels["model"], sample.labels.get("version", ""))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "model" in sample.labels
    }


def foreign_series(server: Server) -> set[tuple[str, str, str]]:
    """Series of models the server does not serve, or of versions it does not have."""
    return {
        (metric, model, version)
        for metric, model, version in model_series(server)
        if model not in SERVED
        or (metric.startswith(MLSERVER_MODEL_COLLECTORS) and version != UNVERSIONED)
    }


# -------------------------------------------------------------- the fuzz tests


def test_fuzzed_requests_never_get_5xx_and_create_no_foreign_series(
    server: Server, openapi: dict[str, Any]
) -> None:
    started = time.monotonic()
    served = with_model_name(openapi, pinned_to(MODEL))
    others = with_model_name(openapi, OTHER_NAMES)
    answers = fuzz(server, operations(served, streaming=False), POST_EXAMPLES)
    answers += fuzz(
        server, operations(others, streaming=False), UNKNOWN_EXAMPLES, [GenerationMode.POSITIVE]
    )
    elapsed = time.monotonic() - started
    print(f"\n{len(answers)} fuzzed cases in {elapsed:.1f} s:\n{summary(answers)}")
    assert len(answers) >= 300, summary(answers)
    assert any(a.status == 200 for a in answers), summary(answers)
    assert any(a.status == 404 and a.model_name not in SERVED for a in answers)
    assert not server_errors(answers), server_errors(answers)[:5]
    assert not non_json_4xx(answers), non_json_4xx(answers)[:5]
    assert not foreign_series(server), sorted(foreign_series(server))[:10]


def test_fuzzed_stream_requests_never_get_5xx(server: Server, openapi: dict[str, Any]) -> None:
    served = with_model_name(openapi, pinned_to(MODEL))
    answers = fuzz(server, operations(served, streaming=True), STREAMING_EXAMPLES)
    print(f"\n{len(answers)} fuzzed stream cases:\n{summary(answers)}")
    assert not foreign_series(server), sorted(foreign_series(server))[:10]
    assert not server_errors(answers), summary(answers)


# -------------------------------------------------------------- plain HTTP

WRONG_INPUT = {"inputs": [{"name": "customer", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}


def post(server: Server, path: str, payload: Any) -> requests.Response:
    return requests.post(f"{server.url}{path}", json=payload, timeout=10)


def test_a_malformed_infer_body_is_a_400_json_error(server: Server) -> None:
    response = post(server, f"/v2/models/{MODEL}/infer", WRONG_INPUT)
    assert response.status_code == 400
    assert "inputs[0].name" in response.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        f"/v2/models/{MODEL}/infer_stream",
        f"/v2/models/{MODEL}/generate_stream",
        f"/v2/models/{MODEL}/versions/v1/infer_stream",
        "/v2/models/no-such-model/generate_stream",
    ],
)
@pytest.mark.parametrize("payload", [WRONG_INPUT, "valid"], ids=["malformed", "valid"])
def test_stream_requests_get_a_400_json_error_naming_infer(
    server: Server, path: str, payload: Any
) -> None:
    """The churn model does not stream: the front answers before MLServer, whose own
    stream endpoint would start a 200 and then fail with a 500 (module docstring)."""
    sent = body(server.ids[:2]) if payload == "valid" else payload
    response = post(server, path, sent)
    assert response.status_code == 400, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    error = parse_error(response.status_code, response.text)
    assert error.code is ErrorCode.STREAMING_UNSUPPORTED
    assert "/infer instead" in error.message
    # and the same model still answers on /infer
    assert post(server, f"/v2/models/{MODEL}/infer", body(server.ids[:1])).status_code == 200


GARBAGE_NAME = "no-such\x01model"


def test_requests_for_unknown_models_create_no_metric_series(server: Server) -> None:
    outcome = infer(server, body(server.ids[:1]))
    assert outcome.status_code == 200, outcome.text
    for path in (
        f"/v2/models/{quote(GARBAGE_NAME)}/infer",
        f"/v2/models/{quote(GARBAGE_NAME)}/versions/1/infer",
        f"/v2/models/{MODEL}/versions/no-such-version/infer",
    ):
        response = post(server, path, body(server.ids[:1]))
        assert response.status_code == 404, (path, response.text)
        assert "not found" in response.json()["error"]
    series = model_series(server)
    assert not {s for s in series if "no-such" in s[1] or "no-such" in s[2]}
    assert not foreign_series(server), sorted(foreign_series(server))[:10]
    # served models keep MLServer's series
    assert ("model_infer_request_success", MODEL, UNVERSIONED) in series
    assert ("model_infer_request_duration", MODEL, UNVERSIONED) in series


def test_the_series_filter_drops_unknown_models_from_memory_too() -> None:
    """ServedModelSeries in isolation: what it renders and what it leaves in the counter."""
    registry = CollectorRegistry()
    requests_ = PromCounter("r", "runtime requests", ["model", "outcome"], registry=registry)
    success = PromCounter("s", "success", ["model", "version"], registry=registry)
    duration = PromSummary("d", "duration", ["model", "version"], registry=registry)
    requests_.labels(MODEL, "ok")
    success.labels(MODEL, "7").inc()
    for model, version in [(MODEL, UNVERSIONED), (MODEL, "7"), (MODEL, "x"), ("nope", "None")]:
        duration.labels(model, version).observe(0.1)
    view = ServedModelSeries(duration, lambda: served_series(requests_, success))

    def keys(families: Iterable[Any]) -> set[tuple[str, str]]:
        return {(s.labels["model"], s.labels["version"]) for f in families for s in f.samples}

    assert keys(view.collect()) == {(MODEL, UNVERSIONED), (MODEL, "7")}
    assert keys(duration.collect()) == {(MODEL, UNVERSIONED), (MODEL, "7")}
