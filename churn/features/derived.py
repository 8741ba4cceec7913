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

from churn.schema import DERIVED_FEATURES, INTERNET_ADDONS, TENURE_BUCKETS

# Raw inputs of each feature set's derived features; a FeatureService must carry its
# sets' inputs (Feast raises KeyError offline when an on-demand view lacks a source
# feature).
INPUTS_BY_VERSION: dict[int, tuple[str, ...]] = {
    1: (
        "tenure",
        "monthly_charges",
        "total_charges",
        "phone_service",
        "multiple_lines",
        "internet_service",
        *INTERNET_ADDONS,
    ),
    2: ("tenure", "internet_service", "contract"),
}
# Every raw input of any derived feature.
DERIVED_INPUTS: tuple[str, ...] = tuple(
    dict.fromkeys(name for names in INPUTS_BY_VERSION.values() for name in names)
)

# Last month of every tenure bucket but the open-ended last one: tenure_bucket is the
# number of these a tenure exceeds.
_BUCKET_ENDS: np.ndarray[Any, Any] = np.asarray([high for _l, _lo, high in TENURE_BUCKETS[:-1]])


# One input column: a list (Feast python mode), a numpy array or a pandas Series.
Column = Sequence[Any] | np.ndarray[Any, Any] | pd.Series


def _as_array(values: Column, dtype: type | None = None) -> np.ndarray[Any, Any]:
    return np.asarray(values, dtype=dtype)


def derive(
    columns: Mapping[str, Column] | pd.DataFrame, names: Sequence[str] | None = None
) -> dict[str, np.ndarray[Any, Any]]:
    """Compute derived feature columns from raw feature columns.

    `columns` maps raw feature names to equal-length sequences (a pandas DataFrame,
    a dict of lists from Feast's python-mode transformation, or numpy arrays).
    `names`: the derived features wanted, in the order returned (default: every
    DERIVED_FEATURES column, in schema order); KeyError names an unknown one.
    """
    wanted = [d.name for d in DERIVED_FEATURES] if names is None else list(names)
    version_of = {d.name: d.version for d in DERIVED_FEATURES}
    unknown = sorted(set(wanted) - set(version_of))
    if unknown:
        raise KeyError(f"derive() knows no derived features {unknown}")
    versions = {version_of[name] for name in wanted}
    needed = dict.fromkeys(n for v in sorted(versions) for n in INPUTS_BY_VERSION[v])
    missing = [name for name in needed if name not in columns]
    if missing:
        raise KeyError(f"derive() needs raw features {missing}")
    out: dict[str, np.ndarray[Any, Any]] = {}
    if 1 in versions:
        out.update(_derive_v1(columns))
    if 2 in versions:
        out.update(_derive_v2(columns))
    return {name: out[name] for name in wanted}


def _derive_v1(columns: Mapping[str, Column] | pd.DataFrame) -> dict[str, np.ndarray[Any, Any]]:
    """Feature set 1: service count, lifetime average bill and its trend."""
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
    return {
        "num_services": np.asarray(num_services, dtype=np.int64),
        "avg_monthly_spend": avg.astype(np.float64),
        "charges_trend": (monthly - avg).astype(np.float64),
    }


def _derive_v2(columns: Mapping[str, Column] | pd.DataFrame) -> dict[str, np.ndarray[Any, Any]]:
    """Feature set 2: tenure on a log scale and by bucket, fiber on a monthly contract."""
    tenure = _as_array(columns["tenure"], np.float64)
    fiber = _as_array(columns["internet_service"]) == "Fiber optic"
    monthly_contract = _as_array(columns["contract"]) == "Month-to-month"
    return {
        "log_tenure": np.log1p(np.maximum(tenure, 0.0)),
        "tenure_bucket": np.searchsorted(_BUCKET_ENDS, tenure, side="left").astype(np.int64),
        "fiber_month_to_month": (fiber & monthly_contract).astype(np.int64),
    }


def add_derived(frame: pd.DataFrame, names: Sequence[str] | None = None) -> pd.DataFrame:
    """A copy of `frame` with derived feature columns (default: all of them) appended."""
    out = frame.copy()
    for name, values in derive(frame, names).items():
        out[name] = values
    return out
