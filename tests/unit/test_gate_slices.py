"""The slice recall floor skips low-risk slices, and only them (churn.models.gates.gate_slices).

Scores are built by hand: a 'Two year' slice that churns at 0.05x the overall rate
and whose churners are never flagged, next to slices whose churners are flagged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn.models.gates import gate_slices
from configs import gate_config


def _frame(
    two_year_churners: int, one_year_flagged: bool
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """1000 month-to-month rows (40% churn), 600 one-year (20%), 2000 two-year."""
    rows = []
    for contract, n, churners in (
        ("Month-to-month", 1000, 400),
        ("One year", 600, 120),
        ("Two year", 2000, two_year_churners),
    ):
        for i in range(n):
            churned = i < churners
            flagged = churned and (contract == "Month-to-month" or one_year_flagged)
            score = 0.9 if flagged else (0.4 if churned else 0.1 + 0.2 * (i % 3) / 3)
            rows.append((contract, 5 + i % 60, 0, "DSL", int(churned), score))
    frame = pd.DataFrame(
        rows,
        columns=["contract", "tenure", "senior_citizen", "internet_service", "churn", "score"],
    )
    return frame, frame["churn"].to_numpy(), frame["score"].to_numpy()


def test_a_low_risk_slice_is_not_held_to_the_recall_floor() -> None:
    frame, y, scores = _frame(two_year_churners=40, one_year_flagged=True)
    assert (frame[frame.contract == "Two year"].churn.mean()) < 0.25 * y.mean()
    _auc, recall = gate_slices(frame, y, scores, 0.5, gate_config())
    assert recall.passed, recall.message


def test_a_slice_churning_near_the_overall_rate_is_held_to_it() -> None:
    frame, y, scores = _frame(two_year_churners=40, one_year_flagged=False)
    _auc, recall = gate_slices(frame, y, scores, 0.5, gate_config())
    assert not recall.passed
    assert "contract=One year (0.000)" in recall.message
    assert "Two year" not in recall.message
    # Without the ratio (0), the two-year slice is held to the floor as well.
    _auc, strict = gate_slices(frame, y, scores, 0.5, gate_config(slice_recall_min_churn_ratio=0))
    assert "contract=Two year (0.000)" in strict.message
