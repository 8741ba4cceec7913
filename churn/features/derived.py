"""Derived features, computed the same way offline, in Feast and in serving.

The Feast on-demand feature view (feature_repo/) and the serving runtime both call
derive(), so the model never sees a derived value computed two different ways.
Works column-wise on numpy arrays: one call per batch, no per-row Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from churn.schema import INTERNET_ADDONS

# Inputs derive() needs; the FeatureService must carry all of them (Feast raises
# KeyError offline when an on-demand view lacks a source feature).
DERIVED_INPUTS: tuple[str, ...] = (
    "tenure",
    "monthly_charges",
    "total_charges",
    "phone_service",
    "multiple_lines",
    "internet_service",
    *INTERNET_ADDONS,
)


# One input column: a list (Feast python mode), a numpy array or a pandas Series.
Column = Sequence[Any] | np.ndarray[Any, Any] | pd.Series


def _as_array(values: Column, dtype: type | None = None) -> np.ndarray[Any, Any]:
    return np.asarray(values, dtype=dtype)


def derive(
    columns: Mapping[str, Column] | pd.DataFrame,
) -> dict[str, np.ndarray[Any, Any]]:
    """Compute every DERIVED_FEATURES column from raw feature columns.

    `columns` maps raw feature names to equal-length sequences (a pandas DataFrame,
    a dict of lists from Feast's python-mode transformation, or numpy arrays).
    """
    missing = [name for name in DERIVED_INPUTS if name not in columns]
    if missing:
        raise KeyError(f"derive() needs raw features {missing}")
    tenure = _as_array(columns["tenure"], np.float64)
    monthly = _as_array(columns["monthly_charges"], np.float64)
    total = _as_array(columns["total_charges"], np.float64)
    services = [
        columns["phone_service"],
        columns["multiple_lines"],
        *(columns[c] for c in INTERNET_ADDONS),
    ]
    num_services = sum((_as_array(s) == "Yes").astype(np.int64) for s in services)
    num_services = num_services + (_as_array(columns["internet_service"]) != "No").astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        avg = np.where(tenure > 0, total / np.maximum(tenure, 1.0), monthly)
    out = {
        "num_services": np.asarray(num_services, dtype=np.int64),
        "avg_monthly_spend": avg.astype(np.float64),
        "charges_trend": (monthly - avg).astype(np.float64),
    }
    return out


def add_derived(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` with the derived feature columns appended."""
    out = frame.copy()
    for name, values in derive(frame).items():
        out[name] = values
    return out
