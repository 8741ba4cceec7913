"""Reason codes for batch predictions: the features that push a customer hardest to churn.

The model's contributions are per encoded column (one per category of a one-hot
feature); a marketer asks about features ("contract"), so one-hot columns are summed
back to their feature, as the serving runtime does for its `reasons` output. Units
are the model's (`ServingModel.contribution_units`: log-odds for XGBoost and the
logistic regression, probability for the forest). Column-wise numpy: a 50k-row chunk
needs one contributions call and a few vectorised passes, no per-row Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from churn.models.serialize import ServingModel, aggregation_matrix
from churn.schema import DERIVED_FEATURES, FEATURES, Kind, model_input_names

FloatArray = npt.NDArray[np.float64]

# Reported as whole numbers (Feast may hand integers back as floats).
INTEGER_FEATURES = frozenset(
    [f.name for f in FEATURES if f.kind is Kind.INT]
    + [d.name for d in DERIVED_FEATURES if d.kind is Kind.INT]
)


def feature_contributions(
    model: ServingModel, frame: pd.DataFrame, features: Sequence[str] | None = None
) -> tuple[FloatArray, list[str]]:
    """(rows x features) contributions summed per feature, and the feature names."""
    names = list(features) if features is not None else model_input_names()
    values, encoded = model.contributions(frame)
    return values @ aggregation_matrix(encoded, names), names


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

    reason_1 is the feature with the largest contribution towards churn on that row
    (ties: the earlier feature in model input order); its value is the customer's
    value of that feature, as text.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k} (skip top_reasons for none)")
    n_rows, n_features = contributions.shape
    if n_features != len(features):
        raise ValueError(f"{n_features} contribution columns but {len(features)} features")
    k = min(top_k, n_features)
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    rows = np.arange(n_rows)
    names = np.asarray(features, dtype=object)
    out: dict[str, Any] = {}
    for rank in range(k):
        picked = order[:, rank]
        text = np.empty(n_rows, dtype=object)
        for j in np.unique(picked).tolist():
            mask = picked == j
            text[mask] = format_values(frame[features[j]][mask], features[j])
        out[f"reason_{rank + 1}"] = names[picked]
        out[f"reason_{rank + 1}_value"] = text
        out[f"reason_{rank + 1}_contribution"] = contributions[rows, picked]
    return out
