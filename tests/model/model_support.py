"""Constants and types shared by the model tests and their conftest.

A module with a unique name (not conftest) so that test files can import it under
pytest's default import mode, which puts this directory on sys.path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

# The pipeline's default split seed (steps/training/split_data.py).
SEED = 42
CV_FOLDS = 5


@dataclass(frozen=True)
class Split:
    """Model-input frames (raw + derived features, customer_id kept) and 0/1 labels."""

    X_train: pd.DataFrame
    y_train: npt.NDArray[np.int64]
    X_test: pd.DataFrame
    y_test: npt.NDArray[np.int64]


class TenureRisingModel:
    """A deliberately wrong model: P(churn) RISES with tenure and ignores the contract.

    Blends a real model (shown every customer as a one-year contract) with a rising
    tenure ramp, so it is a plausible-looking, deterministic scorer that violates both
    directional expectations.
    """

    def __init__(self, base: Any) -> None:
        self.base = base

    def predict_proba(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:  # noqa: N803
        base = np.asarray(self.base.predict_proba(X.assign(contract="One year")))[:, 1]
        tenure = np.asarray(X["tenure"], dtype=np.float64)
        ramp = 1.0 / (1.0 + np.exp(-(tenure - 36.0) / 8.0))
        p = 0.3 * base + 0.7 * ramp
        return np.column_stack([1.0 - p, p])


class SliceRiskUnderstatingModel:
    """A deliberately wrong model: a real model whose P(churn) of one slice is divided
    by `factor` (ranking inside the slice kept). Its churners sink below any global
    threshold although the slice is not low-risk: what a slice-blind bug looks like."""

    def __init__(self, base: Any, contract: str = "One year", factor: float = 3.0) -> None:
        self.base = base
        self.contract = contract
        self.factor = factor

    def predict_proba(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:  # noqa: N803
        p = np.asarray(self.base.predict_proba(X), dtype=np.float64)[:, 1]
        p = np.where(X["contract"].to_numpy() == self.contract, p / self.factor, p)
        return np.column_stack([1.0 - p, p])
