"""Reason codes: one-hot contributions summed per feature, top features per customer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn.data.synthetic import generate
from churn.features.derived import add_derived
from churn.models.candidates import build_pipeline
from churn.models.reasons import aggregation_matrix, feature_contributions, top_reasons
from churn.models.serialize import ServingModel, load_model, save_model
from churn.schema import model_input_names


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return add_derived(generate(400, seed=8))


@pytest.fixture(scope="module", params=["logreg", "xgboost"])
def model(
    request: pytest.FixtureRequest, frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> ServingModel:
    params: dict[str, dict[str, Any]] = {
        "xgboost": {"n_estimators": 20, "max_depth": 3},
        "logreg": {"C": 1.0},
    }
    pipeline = build_pipeline(request.param, params[request.param], seed=0)
    pipeline.fit(frame, frame["churn"])
    directory: Path = tmp_path_factory.mktemp(request.param)
    save_model(pipeline, directory)
    return load_model(directory)


def test_aggregation_sums_one_hot_columns_and_drops_the_bias() -> None:
    matrix = aggregation_matrix(
        ["contract=One year", "contract=Two year", "tenure", "bias"], ["tenure", "contract"]
    )
    np.testing.assert_array_equal(matrix, [[0, 1], [0, 1], [1, 0], [0, 0]])


def test_aggregation_names_an_unknown_encoded_column() -> None:
    with pytest.raises(ValueError, match="shoe_size"):
        aggregation_matrix(["shoe_size"], ["tenure"])


def test_feature_contributions_add_up_to_the_models_log_odds(
    model: ServingModel, frame: pd.DataFrame
) -> None:
    values, names = feature_contributions(model, frame)
    assert names == model_input_names()
    raw, _ = model.contributions(frame)
    bias = raw[:, -1]
    p = model.predict_proba(frame)
    np.testing.assert_allclose(values.sum(axis=1) + bias, np.log(p / (1 - p)), atol=1e-4)


def test_top_reasons_pick_the_largest_pushes_with_values() -> None:
    frame = pd.DataFrame(
        {
            "tenure": [1, 40],
            "contract": ["Month-to-month", "Two year"],
            "monthly_charges": [99.5, 20.0],
        }
    )
    contributions = np.array([[1.0, 0.5, -0.2], [-1.0, -0.5, 0.3]])
    out = top_reasons(contributions, ["tenure", "contract", "monthly_charges"], frame, top_k=2)
    assert out["reason_1"].tolist() == ["tenure", "monthly_charges"]
    assert out["reason_1_value"].tolist() == ["1", "20"]
    assert out["reason_2"].tolist() == ["contract", "contract"]
    assert out["reason_2_value"].tolist() == ["Month-to-month", "Two year"]
    np.testing.assert_array_equal(out["reason_2_contribution"], [0.5, -0.5])


def test_top_reasons_with_more_reasons_than_features_and_bad_k() -> None:
    frame = pd.DataFrame({"tenure": [3]})
    out = top_reasons(np.array([[0.1]]), ["tenure"], frame, top_k=3)
    assert sorted(out) == ["reason_1", "reason_1_contribution", "reason_1_value"]
    with pytest.raises(ValueError, match="top_k"):
        top_reasons(np.array([[0.1]]), ["tenure"], frame, top_k=0)
    with pytest.raises(ValueError, match="2 features"):
        top_reasons(np.array([[0.1]]), ["tenure", "contract"], frame, top_k=1)
