"""churn.inference, the client contract: request body, answers, coded errors, display."""

from __future__ import annotations

import json

import pytest

from churn import inference
from churn.inference import ErrorCode, Reason


def test_request_body_is_the_readme_contract() -> None:
    body = inference.request_body(["a", "b"], top_k=2)
    assert body["inputs"] == [
        {"name": "customer_id", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]}
    ]
    assert body["parameters"] == {"reasons": True, "top_k": 2}
    assert inference.request_body(["a"], features=True)["parameters"]["features"] is True


def test_model_settings_tensors_are_the_outputs_clients_read() -> None:
    tensors = inference.tensor_settings()
    assert [t["name"] for t in tensors["inputs"]] == [inference.INPUT_NAME]
    names = [t["name"] for t in tensors["outputs"]]
    assert names[:3] == list(inference.REQUIRED_OUTPUTS)
    assert inference.REASONS in names and inference.EVENT_TIME in names


def answer(n: int = 1) -> dict[str, object]:
    reasons = json.dumps([{"feature": "tenure", "value": 1.0, "contribution": 0.5}])
    return {
        "parameters": {"threshold": 0.4, "reason_units": "log-odds"},
        "outputs": [
            {"name": "churn_probability", "data": [0.7] * n},
            {"name": "churn_label", "data": [True] * n},
            {"name": "model_version", "data": ["m-v1"] * n},
            {"name": "reasons", "data": [reasons] * n},
        ],
    }


def test_parse_response_and_its_refusals() -> None:
    (p,) = inference.parse_response(["c1"], answer())
    assert (p.customer_id, p.probability, p.label, p.threshold) == ("c1", 0.7, True, 0.4)
    assert p.reasons == (Reason("tenure", 1.0, 0.5),) and p.reason_units == "log-odds"
    with pytest.raises(inference.ResponseFormatError, match="asked for 2 customers"):
        inference.parse_response(["c1", "c2"], answer())
    with pytest.raises(inference.ResponseFormatError, match="not a V2 response"):
        inference.parse_response(["c1"], {"detail": "nope"})
    with pytest.raises(inference.ResponseFormatError, match="reasons"):
        inference.parse_reasons("[{]")


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            '{"error": "[unknown_customer] 1 unknown id"}',
            ErrorCode.UNKNOWN_CUSTOMER,
            "1 unknown id",
        ),
        ('{"error": "Model x not found"}', None, "Model x not found"),  # MLServer's own
        ('{"error": "[no_such_code] text"}', None, "[no_such_code] text"),
        ('{"detail": [{"msg": "bad"}]}', None, '[{"msg": "bad"}]'),
        ("<html>oops</html>", None, "<html>oops</html>"),
        ("", None, "HTTP 500"),
    ],
)
def test_parse_error_reads_the_code_never_the_wording(
    body: str, code: ErrorCode | None, message: str
) -> None:
    error = inference.parse_error(500, body)
    assert (error.status, error.code, error.message) == (500, code, message)


def test_coded_message_round_trips() -> None:
    text = inference.coded_message(ErrorCode.STORE_UNAVAILABLE, "redis down")
    error = inference.parse_error(503, json.dumps({"error": text}))
    assert error.code is ErrorCode.STORE_UNAVAILABLE and error.message == "redis down"


@pytest.mark.parametrize(
    ("feature", "value", "shown"),
    [
        ("avg_monthly_spend", 111.19257575757575, "111.2"),
        ("charges_trend", -0.07499999999999574, "-0.075"),
        ("tenure", 12.0, "12"),
        ("contract", "Month-to-month", "Month-to-month"),
        ("senior_citizen", True, "True"),
    ],
)
def test_reason_values_are_formatted_for_people(feature: str, value: object, shown: str) -> None:
    assert inference.format_value(feature, value) == shown


def test_describe_keeps_json_precision_but_shows_short_values() -> None:
    reason = Reason("avg_monthly_spend", 111.19257575757575, 0.523456)
    assert reason.describe() == "avg_monthly_spend=111.2 (+0.52)"
    assert reason.value == 111.19257575757575


def test_endpoint_settings_come_from_the_servers_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHURN_SERVING_HTTP_PORT", "9123")
    monkeypatch.setenv("CHURN_SERVING_HOST", "0.0.0.0")
    monkeypatch.setenv("CHURN_SERVING_MODEL_NAME", "churn-b")
    endpoint = inference.EndpointSettings()
    assert endpoint.base_url() == "http://127.0.0.1:9123"
    assert inference.infer_path(endpoint.model_name) == "/v2/models/churn-b/infer"
