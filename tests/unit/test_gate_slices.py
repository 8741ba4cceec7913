"""The slice gates judge the model, not the slice's base rate (churn.models.gates.gate_slices).

Customers are built with known churn probabilities: month-to-month at 40% churn, and
a low-risk one-year slice whose churners (9%: 0.42x the overall rate, as on Telco)
score below the global threshold, as they do under every well-calibrated model.
Scoring with the true probabilities, that slice passes; scoring it with its risk
understated, overstated or ranked at random fails, naming the slice.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from churn.models.gates import gate_slices
from configs import gate_config

THRESHOLD = 0.3


def _customers(
    seed: int = 0,
) -> tuple[pd.DataFrame, npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """(frame, labels, true P(churn)): 3000 month-to-month rows, 3000 one-year rows."""
    rng = np.random.default_rng(seed)
    parts = []
    for contract, low, high in (("Month-to-month", 0.15, 0.65), ("One year", 0.02, 0.16)):
        p = rng.uniform(low, high, 3000)
        parts.append(
            pd.DataFrame(
                {
                    "contract": contract,
                    "tenure": rng.integers(1, 72, 3000),
                    "senior_citizen": 0,
                    "internet_service": "DSL",
                    "p": p,
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    p = frame["p"].to_numpy()
    return frame, (rng.uniform(size=len(p)) < p).astype(np.int64), p


def _one_year(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
    return (frame["contract"] == "One year").to_numpy()


def test_a_low_risk_slice_whose_churners_stay_below_the_threshold_passes() -> None:
    frame, y, p = _customers()
    one_year = _one_year(frame)
    assert 0.3 < y[one_year].mean() / y.mean() < 0.5  # a low-risk slice, as on Telco
    assert not (p[one_year] >= THRESHOLD).any()  # none of its churners is flagged
    auc, calibration = gate_slices(frame, y, p, THRESHOLD, gate_config())
    assert auc.passed, auc.message
    assert calibration.passed, calibration.message
    assert calibration.value < 1.2


def test_a_slice_whose_risk_is_understated_fails() -> None:
    frame, y, p = _customers()
    hidden = np.where(_one_year(frame), p / 3.0, p)  # ranking inside the slice kept
    auc, calibration = gate_slices(frame, y, hidden, THRESHOLD, gate_config())
    assert auc.passed  # the ROC-AUC floor alone would let this model through
    assert not calibration.passed
    assert calibration.value > 2.5
    assert "contract=One year" in calibration.message
    assert "Month-to-month" not in calibration.message.split("off by the factor or more")[1]


def test_a_slice_whose_risk_is_overstated_fails() -> None:
    frame, y, p = _customers()
    inflated = np.where(_one_year(frame), np.minimum(p * 2.5, 1.0), p)
    _auc, calibration = gate_slices(frame, y, inflated, THRESHOLD, gate_config())
    assert not calibration.passed
    assert "contract=One year" in calibration.message


def test_a_slice_ranked_at_random_fails_the_roc_auc_floor() -> None:
    frame, y, p = _customers()
    one_year = _one_year(frame)
    shuffled = p.copy()
    shuffled[one_year] = np.random.default_rng(1).permutation(p[one_year])
    auc, calibration = gate_slices(frame, y, shuffled, THRESHOLD, gate_config())
    assert not auc.passed
    assert "contract=One year" in auc.message
    assert calibration.passed  # same scores, other customers: the sum is unchanged


def test_a_test_set_without_a_checkable_slice_fails_both_gates() -> None:
    frame, y, p = _customers()
    small = frame.index[:50]
    results = gate_slices(frame.loc[small], y[small], p[small], THRESHOLD, gate_config())
    assert [r.passed for r in results] == [False, False]
    assert all("too small to check" in r.message for r in results)
