"""GateResult / enforce: a failure names every failed gate and by how much."""

from __future__ import annotations

import pytest

from churn.models.gates import GateFailure, GateResult, enforce, obvious_cases


def test_enforce_passes_quietly_when_all_gates_pass() -> None:
    enforce([GateResult("min_roc_auc", True, 0.85, 0.8, "ok")])


def test_gate_failure_names_each_failed_gate_with_its_shortfall() -> None:
    results = [
        GateResult("min_roc_auc", False, 0.52, 0.80, "held-out ROC-AUC"),
        GateResult("min_recall", True, 0.81, 0.75, "recall"),
        GateResult("invariance_batch", False, 1e-3, 1e-9, "max |Δ|", comparison="below"),
    ]
    with pytest.raises(GateFailure) as failure:
        enforce(results)
    message = str(failure.value)
    assert message.startswith("2 model gate(s) failed")
    assert "min_roc_auc: FAIL (off by 0.28)" in message
    assert "invariance_batch: FAIL (off by 0.001)" in message
    assert "min_recall" not in message
    assert [r.name for r in failure.value.failed] == ["min_roc_auc", "invariance_batch"]
    assert results[0].shortfall == pytest.approx(0.28) and results[1].shortfall == 0.0


def test_obvious_cases_are_complete_model_inputs() -> None:
    risky, loyal = obvious_cases()
    assert len(risky) == 1 and len(loyal) == 2
    assert risky.loc[0, "contract"] == "Month-to-month" and set(loyal["contract"]) == {"Two year"}
    assert {"num_services", "avg_monthly_spend", "charges_trend"} <= set(risky.columns)
