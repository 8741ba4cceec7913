"""Stratified row sampling: what bounds the cost of training at scale.

Why: the search, the repeated evaluation and (by choice) the final fit scale with the
number of training rows; at a million customers a 5-fold search of every family
would take hours on two cores. A stratified sample of at most N rows keeps the
churn rate of the whole, and its size, set in the training YAML (`sampling`), is
the one knob between cost and the AUC the extra rows would buy (measured in the
README). `None` means every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Sampling:
    """Row caps (the training YAML's `sampling`); None uses every training row.

    tune_max_rows: rows the search and the repeated evaluation see (and the
    out-of-fold scores the threshold and the calibration are fitted on).
    fit_max_rows: rows the final model is fitted on.
    """

    tune_max_rows: int | None
    fit_max_rows: int | None

    def __post_init__(self) -> None:
        for name in ("tune_max_rows", "fit_max_rows"):
            value = getattr(self, name)
            if value is not None and value < 100:
                raise ValueError(f"sampling.{name} must be None or >= 100, got {value}")


FULL = Sampling(tune_max_rows=None, fit_max_rows=None)


def stratified_rows(y: Any, max_rows: int | None, seed: int) -> IntArray:
    """Sorted row positions of a stratified sample of at most `max_rows` (all when None).

    Sorted so that a sample of everything is the identity and results line up with
    the input's row order.
    """
    labels = np.asarray(y)
    n = len(labels)
    if max_rows is None or n <= max_rows:
        return np.arange(n, dtype=np.intp)
    from sklearn.model_selection import train_test_split

    picked, _ = train_test_split(
        np.arange(n), train_size=max_rows, stratify=labels, random_state=seed
    )
    return np.sort(np.asarray(picked, dtype=np.intp))
