"""The V2 request/response contract as pure functions (no server): parsing and encoding."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from mlserver.types import InferenceRequest

from churn.models.encoding import encoded_feature_names
from churn.models.serialize import BIAS, aggregation_matrix
from churn.schema import model_input_names
from serving.contract import TimeFormatter, build_response, parse_request, reason_codes
from serving.errors import BadRequestError

LIMITS: dict[str, Any] = {"max_batch": 3, "reasons_default": False, "top_k_default": 3}


def request(data: Any, shape: list[int] | None = None, **parameters: Any) -> InferenceRequest:
    payload: dict[str, Any] = {
        "inputs": [
            {
                "name": "customer_id",
                "datatype": "BYTES",
                "shape": shape if shape is not None else [len(data)],
                "data": data,
            }
        ]
    }
    if parameters:
        payload["parameters"] = parameters
    return InferenceRequest.model_validate(payload)


def test_a_valid_request_yields_ids_and_options() -> None:
    parsed = parse_request(request(["a", "b"], reasons=True, top_k=2), **LIMITS)
    assert parsed.customer_ids == ["a", "b"] and parsed.reasons and parsed.top_k == 2
    defaults = parse_request(request(["a"]), **LIMITS)
    assert defaults.reasons is False and defaults.top_k == 3


def test_nested_rows_of_one_id_are_accepted_with_shape_n_by_1() -> None:
    parsed = parse_request(request([["a"], ["b"]], shape=[2, 1]), **LIMITS)
    assert parsed.customer_ids == ["a", "b"]


@pytest.mark.parametrize(
    ("data", "shape", "params", "field"),
    [
        ([], [0], {}, "inputs[0].data"),
        (["a", "b", "c", "d"], None, {}, "inputs[0].data"),
        (["a"], [2], {}, "inputs[0].shape"),
        (["a", None], None, {}, "inputs[0].data[1]"),
        (["a", "x" * 257], None, {}, "inputs[0].data[1]"),
        ([["a", "b"]], [1, 2], {}, "inputs[0].data"),
        (["a"], None, {"reasons": 1}, "parameters.reasons"),
        (["a"], None, {"top_k": True}, "parameters.top_k"),
        (["a"], None, {"top_k": 51}, "parameters.top_k"),
    ],
)
def test_invalid_requests_name_the_field(
    data: Any, shape: list[int] | None, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(BadRequestError) as error:
        parse_request(request(data, shape, **params), **LIMITS)
    assert error.value.field == field
    assert error.value.status_code == 400 and field in str(error.value)


def test_response_has_one_value_per_customer_in_every_output() -> None:
    response = build_response(
        model_name="churn",
        model_version="4",
        request_id="r1",
        probabilities=np.array([0.2, 0.5, 0.9]),
        threshold=0.5,
        event_times=["t"] * 3,
        reasons=None,
        parameters={"threshold": 0.5},
    )
    out = {o.name: (o.datatype, o.shape, list(o.data)) for o in response.outputs}
    assert out["churn_probability"] == ("FP64", [3], [0.2, 0.5, 0.9])
    assert out["churn_label"] == ("BOOL", [3], [False, True, True])  # >= threshold
    assert out["model_version"][2] == ["4", "4", "4"]
    assert "reasons" not in out and response.id == "r1" and response.model_version == "4"


def test_reason_codes_rank_pushes_towards_churn_first() -> None:
    contributions = np.array([[0.1, -0.5, 0.7], [0.0, 0.2, -0.1]])
    features = ["tenure", "contract", "monthly_charges"]
    values = {
        "tenure": np.array([1.0, 2.0]),  # an integer feature, served as floats
        "contract": ["Month-to-month", "Two year"],
        "monthly_charges": np.array([3.5, 4.5]),
    }
    codes = reason_codes(contributions, features, values, 2)
    rows = [json.loads(r) for r in codes]
    assert [r["feature"] for r in rows[0]] == ["monthly_charges", "tenure"]
    assert rows[0][1]["value"] == 1 and isinstance(rows[0][1]["value"], int)
    assert [r["feature"] for r in rows[1]] == ["contract", "tenure"]
    assert rows[0][0] == {"feature": "monthly_charges", "value": 3.5, "contribution": 0.7}


def test_contribution_map_sums_one_hot_columns_into_their_feature() -> None:
    names = [*encoded_feature_names(), BIAS]
    mapping = aggregation_matrix(names, model_input_names())
    assert mapping.shape == (len(names), len(model_input_names()))
    assert np.all(mapping[-1] == 0)  # the bias belongs to no feature
    assert np.all(mapping[:-1].sum(axis=1) == 1)  # every encoded column to exactly one
    contract = model_input_names().index("contract")
    assert mapping[:, contract].sum() == 3  # Month-to-month, One year, Two year


def test_time_formatter_is_iso_utc() -> None:
    fmt = TimeFormatter()
    assert fmt(np.array([1735689600.0, 0.0])) == [
        "2025-01-01T00:00:00+00:00",
        "1970-01-01T00:00:00+00:00",
    ]
