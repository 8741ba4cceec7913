"""Reason codes: the features that push a customer hardest towards churn.

One home for how reasons are computed and ranked, for every caller: the serving
runtime's `reasons` output, batch scoring's reason columns and the dashboard's
what-if. The model's contributions are per encoded column (one per category of a
one-hot feature); a marketer asks about features ("contract"), so one-hot columns
are summed back to their feature. Units are the model's
(`ServingModel.contribution_units`: log-odds for XGBoost and the logistic
regression, probability for the forest). Ties go to the earlier feature in model
input order. Column-wise numpy: a 50k-row chunk needs one contributions call and a
few vectorised passes, no per-row Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from churn.models.serialize import ServingModel, aggregation_matrix
from churn.schema import INTEGER_FEATURES

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


def feature_contributions(
    model: ServingModel,
    frame: pd.DataFrame | Mapping[str, Any],
    features: Sequence[str] | None = None,
) -> tuple[FloatArray, list[str]]:
    """(rows x features) contributions summed per feature, and the feature names.

    `frame` is a DataFrame or columns by name (what the model's encoder accepts);
    `features` defaults to the model's own inputs.
    """
    names = list(features) if features is not None else model.input_names
    values, encoded = model.contributions(frame)
    return values @ aggregation_matrix(encoded, names), names


def rank_features(contributions: FloatArray, n_features: int, top_k: int) -> IntArray:
    """Per row, the column indexes of the top_k largest contributions, largest first.

    The one ranking rule of the project (stable: ties keep model input order).
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k} (ask for no reasons instead)")
    if contributions.ndim != 2 or contributions.shape[1] != n_features:
        raise ValueError(
            f"{contributions.shape[-1]} contribution columns but {n_features} features"
        )
    k = min(top_k, n_features)
    return np.argsort(-contributions, axis=1, kind="stable")[:, :k]


def reason_records(
    contributions: FloatArray,
    features: Sequence[str],
    values: Mapping[str, Any],
    top_k: int,
) -> list[list[dict[str, Any]]]:
    """Per row, [{"feature", "value", "contribution"}, ...] for the top_k features.

    `values` maps each feature to its column of served values; integer features are
    reported as integers, contributions rounded to 6 decimals (the JSON contract).
    """
    order = rank_features(contributions, len(features), top_k)
    out = []
    for row, columns in enumerate(order.tolist()):
        items = []
        for j in columns:
            name = features[j]
            value = values[name][row]
            if isinstance(value, np.generic):
                value = value.item()
            if name in INTEGER_FEATURES:
                value = int(value)
            items.append(
                {
                    "feature": name,
                    "value": value,
                    "contribution": round(float(contributions[row, j]), 6),
                }
            )
        out.append(items)
    return out


def format_values(values: pd.Series, feature: str) -> npt.NDArray[np.object_]:
    """Feature values as short strings for a CSV: integers whole, floats to 6 digits."""
    if feature in INTEGER_FEATURES:
        return np.asarray([str(int(v)) for v in values.to_numpy()], dtype=object)
    if pd.api.types.is_float_dtype(values.dtype):
        return np.asarray([f"{float(v):.6g}" for v in values.to_numpy()], dtype=object)
    return values.astype(str).to_numpy(dtype=object)


def top_reasons(
    contributions: FloatArray, features: Sequence[str], frame: pd.DataFrame, top_k: int
) -> dict[str, Any]:
    """Columns reason_{k}, reason_{k}_value, reason_{k}_contribution for k = 1..top_k.

    reason_1 is the feature with the largest contribution towards churn on that row;
    its value is the customer's value of that feature, as text.
    """
    order = rank_features(contributions, len(features), top_k)
    n_rows = contributions.shape[0]
    rows = np.arange(n_rows)
    names = np.asarray(features, dtype=object)
    out: dict[str, Any] = {}
    for rank in range(order.shape[1]):
        picked = order[:, rank]
        text = np.empty(n_rows, dtype=object)
        for j in np.unique(picked).tolist():
            mask = picked == j
            text[mask] = format_values(frame[features[j]][mask], features[j])
        out[f"reason_{rank + 1}"] = names[picked]
        out[f"reason_{rank + 1}_value"] = text
        out[f"reason_{rank + 1}_contribution"] = contributions[rows, picked]
    return out
