"""DriftResult serialisation and the schema encoding, on hand-made rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from churn import schema
from churn.drift import DriftInputError, DriftResult, FeatureEncoder


def _result(**p_values: float) -> DriftResult:
    names = tuple(p_values)
    return DriftResult(
        is_drift=min(p_values.values()) < 0.01,
        p_value=min(p_values.values()),
        threshold=0.01,
        distances={n: np.float32(0.5) for n in names},  # type: ignore[misc]
        p_values={n: np.float32(p) for n, p in p_values.items()},  # type: ignore[misc]
        n_rows=np.int64(200),  # type: ignore[arg-type]
        detector="test",
        feature_names=names,
    )


def test_to_dict_is_strict_json_and_lists_drifted_features_by_significance() -> None:
    result = _result(gender=0.5, contract=1e-6, tenure=0.001, total_charges=float("nan"))
    text = json.dumps(result.to_dict(), allow_nan=False)
    back = json.loads(text)
    assert back["drifted_features"] == ["contract", "tenure"]
    assert back["p_values"]["total_charges"] is None
    assert back["is_drift"] is True
    assert back["n_rows"] == 200
    assert back["feature_names"] == ["gender", "contract", "tenure", "total_charges"]
    assert back["p_value"] == pytest.approx(1e-6)


def test_encoder_uses_schema_category_order_and_accepts_plain_lists() -> None:
    encoder = FeatureEncoder.from_schema(["contract", "tenure", "senior_citizen"])
    x = encoder.encode(
        {
            "contract": ["Two year", "Month-to-month", "One year"],
            "tenure": [1, 72, 0],
            "senior_citizen": np.array([True, False, True]),
            "ignored": ["anything", None, 3],
        }
    )
    assert x.dtype == np.float64
    np.testing.assert_array_equal(x, [[2, 1, 1], [0, 72, 0], [1, 0, 1]])
    assert encoder.categorical_columns() == {0: schema.feature("contract").categories}


def test_encoder_errors_name_the_feature() -> None:
    encoder = FeatureEncoder.from_schema(["partner", "monthly_charges"])
    with pytest.raises(DriftInputError, match=r"'partner': 2 rows .* None, 'yes'"):
        encoder.encode({"partner": [None, "yes", "No"], "monthly_charges": [1.0, 2.0, 3.0]})
    with pytest.raises(DriftInputError, match="'monthly_charges' must be numeric"):
        encoder.encode({"partner": ["No"], "monthly_charges": ["lots"]})
    with pytest.raises(DriftInputError, match="'monthly_charges' has 1 rows, 'partner' has 2"):
        encoder.encode({"partner": ["No", "Yes"], "monthly_charges": [1.0]})
    with pytest.raises(DriftInputError, match="'partner' must be one-dimensional"):
        encoder.encode({"partner": [["No"]], "monthly_charges": [1.0]})
    with pytest.raises(DriftInputError, match="'monthly_charges': 1 rows are missing"):
        encoder.encode({"partner": ["No"], "monthly_charges": [float("inf")]})
    with pytest.raises(KeyError, match="'shoe_size' is not defined"):
        FeatureEncoder.from_schema(["shoe_size"])
    with pytest.raises(ValueError, match=r"more than once: \['tenure'\]"):
        FeatureEncoder.from_schema(["tenure", "tenure"])


def test_fingerprint_depends_on_order_and_features() -> None:
    names = schema.model_input_names()
    base = FeatureEncoder.from_schema(names).fingerprint()
    assert base == FeatureEncoder.from_schema(list(names)).fingerprint()
    assert base != FeatureEncoder.from_schema(names[::-1]).fingerprint()
    assert base != FeatureEncoder.from_schema(names[:-1]).fingerprint()
