"""Model gates on real Telco models: pass for a good model, fail for broken ones."""

from __future__ import annotations

import numpy as np
import pytest
from model_support import SEED, SliceRiskUnderstatingModel, Split, TenureRisingModel

from churn.features.derived import add_derived
from churn.models.calibration import CalibratedModel, fit_calibrator
from churn.models.candidates import TrainedCandidate, best_candidate, build_pipeline
from churn.models.evaluate import ThresholdRule, choose_threshold
from churn.models.gates import (
    GateFailure,
    GateResult,
    enforce,
    gate_families,
    run_gates,
    tenure_probe,
)
from churn.schema import DERIVED_FEATURES
from configs import gate_config, pipeline_parameters

RULE = ThresholdRule("recall_target", recall_target=0.80)
# The rule the training pipeline applies to calibrated out-of-fold scores.
PIPELINE_RULE = ThresholdRule(**pipeline_parameters("training_pipeline")["threshold_rule"])


def _by_name(results: list[GateResult]) -> dict[str, GateResult]:
    return {r.name: r for r in results}


@pytest.fixture(scope="module")
def best(candidates: dict[str, TrainedCandidate]) -> TrainedCandidate:
    return best_candidate(candidates)


@pytest.fixture(scope="module")
def threshold(best: TrainedCandidate, split: Split) -> float:
    return choose_threshold(split.y_train, best.oof_scores, RULE)


@pytest.mark.parametrize("kind", ["logreg", "random_forest", "xgboost", "lightgbm"])
def test_every_gate_runs_and_invariances_hold_on_any_telco_format_data(
    kind: str, candidates: dict[str, TrainedCandidate], split: Split
) -> None:
    _checked_gate_results(candidates[kind], split)


def _checked_gate_results(candidate: TrainedCandidate, split: Split) -> list[GateResult]:
    """Every gate's result on the held-out rows; the two invariances must hold exactly."""
    thr = choose_threshold(split.y_train, candidate.oof_scores, RULE)
    results = run_gates(candidate.pipeline, split.X_test, split.y_test, thr, gate_config())
    assert len(results) == 10
    gates = _by_name(results)
    assert gates["invariance_customer_id"].value < 1e-9
    assert gates["invariance_batch"].value < 1e-9
    return results


def _pipeline_gate_results(
    candidate: TrainedCandidate, split: Split, model: object = None
) -> list[GateResult]:
    """Every gate as the training pipeline runs it: the served (calibrated) model at the
    threshold chosen on calibrated out-of-fold scores by the pipeline's rule."""
    thr = choose_threshold(candidate.oof_labels, candidate.calibrated_oof, PIPELINE_RULE)
    served = candidate.model if model is None else model
    return run_gates(served, split.X_test, split.y_test, thr, gate_config())  # type: ignore[arg-type]


# The gates' thresholds are set for the published data (on synthetic customers the
# directional tenure gate of XGBoost lands at 0.897, just under its 0.9 floor). The
# families are trained as the training pipeline trains them (search, calibration):
# the tests judge what the pipeline gates.
@pytest.mark.usefixtures("real_telco_csv")
@pytest.mark.parametrize("kind", ["logreg", "random_forest", "xgboost", "lightgbm"])
def test_every_trained_family_passes_every_gate(
    kind: str, pipeline_candidates: dict[str, TrainedCandidate], split: Split
) -> None:
    results = _pipeline_gate_results(pipeline_candidates[kind], split)
    assert len(results) == 10
    print(f"\n{kind}:\n" + "\n".join(r.describe() for r in results))
    enforce(results)  # raises GateFailure naming what failed


@pytest.mark.usefixtures("real_telco_csv")  # one-year contracts: >= 30 held-out churners
def test_gates_fail_lightgbm_once_it_understates_one_year_risk(
    pipeline_candidates: dict[str, TrainedCandidate], split: Split
) -> None:
    """The family the former recall floor rejected passes the slice gates as trained,
    and fails them once its one-year scores are divided by 3: the slice gate still
    catches a slice whose churners a model hides below the threshold."""
    candidate = pipeline_candidates["lightgbm"]
    fair = _by_name(_pipeline_gate_results(candidate, split))["slice_calibration"]
    assert fair.passed, fair.message
    broken = SliceRiskUnderstatingModel(candidate.model, "One year", 3.0)
    gates = _by_name(_pipeline_gate_results(candidate, split, broken))
    assert not gates["slice_calibration"].passed
    assert "contract=One year" in gates["slice_calibration"].message
    assert gates["slice_roc_auc_floor"].passed  # the ranking inside the slice is intact
    with pytest.raises(GateFailure, match="slice_calibration"):
        enforce(list(gates.values()))


def test_gates_fail_a_model_that_understates_month_to_month_risk(
    candidates: dict[str, TrainedCandidate], split: Split
) -> None:
    candidate = candidates["xgboost"]
    thr = choose_threshold(split.y_train, candidate.oof_scores, RULE)
    broken = SliceRiskUnderstatingModel(candidate.pipeline, "Month-to-month", 3.0)
    gates = _by_name(run_gates(broken, split.X_test, split.y_test, thr, gate_config()))
    assert not gates["slice_calibration"].passed
    assert gates["slice_calibration"].value > 2.0
    assert "contract=Month-to-month" in gates["slice_calibration"].message


def test_gates_fail_a_model_trained_on_shuffled_labels(split: Split, threshold: float) -> None:
    shuffled = np.random.default_rng(SEED).permutation(split.y_train)
    noise = build_pipeline("xgboost", {"n_estimators": 100, "max_depth": 3}, SEED)
    noise.fit(split.X_train, shuffled)
    results = run_gates(noise, split.X_test, split.y_test, threshold, gate_config())
    gates = _by_name(results)
    assert not gates["min_roc_auc"].passed
    assert gates["min_roc_auc"].value < 0.6
    with pytest.raises(GateFailure) as failure:
        enforce(results)
    message = str(failure.value)
    assert "min_roc_auc: FAIL" in message and "off by" in message
    for failed in failure.value.failed:
        assert failed.name in message


def test_gates_fail_a_model_whose_churn_rises_with_tenure(
    best: TrainedCandidate, split: Split, threshold: float
) -> None:
    wrong = TenureRisingModel(best.pipeline)
    results = run_gates(wrong, split.X_test, split.y_test, threshold, gate_config())
    gates = _by_name(results)
    assert not gates["directional_tenure"].passed
    assert gates["directional_tenure"].value < 0.5
    assert not gates["directional_contract"].passed
    # It is still a deterministic function of the features: invariance holds.
    assert gates["invariance_customer_id"].passed and gates["invariance_batch"].passed
    with pytest.raises(GateFailure, match="directional_tenure"):
        enforce(results)


def test_tenure_probe_moves_only_tenure_and_what_it_implies(split: Split) -> None:
    base = split.X_test.head(3).reset_index(drop=True)
    probe = tenure_probe(base, steps=(1, 12, 72))
    assert len(probe) == 9
    assert probe["tenure"].tolist() == [1, 12, 72] * 3
    derived = sorted({d.name for d in DERIVED_FEATURES} & set(base.columns))
    unchanged = [c for c in base.columns if c not in {"tenure", "total_charges", *derived}]
    for column in unchanged:
        assert probe[column].tolist() == np.repeat(base[column].to_numpy(), 3).tolist(), column
    # Every derived feature (of any feature set) is recomputed from the moved inputs.
    recomputed = add_derived(probe.drop(columns=derived))
    for column in derived:
        assert probe[column].tolist() == recomputed[column].tolist(), column
    # The average bill is kept, so the derived spend features do not move with tenure.
    spend = probe["avg_monthly_spend"].to_numpy().reshape(3, 3)
    np.testing.assert_allclose(spend, spend[:, :1].repeat(3, axis=1))


def test_the_challenger_is_the_best_ranked_family_that_passes_every_gate(
    candidates: dict[str, TrainedCandidate], split: Split
) -> None:
    good = candidates["logreg"]
    # Served as the pipeline serves it: class weights inflate the raw probabilities
    # (the slice calibration gate fails them), sigmoid calibration on OOF scores fixes them.
    calibrator = fit_calibrator("sigmoid", good.oof_scores, good.oof_labels)
    served = CalibratedModel(good.pipeline, calibrator)
    thr = choose_threshold(good.oof_labels, calibrator.apply(good.oof_scores), RULE)
    models = {"broken": TenureRisingModel(good.pipeline), "logreg": served}
    chosen, results = gate_families(
        models,
        {"broken": thr, "logreg": thr},
        {"broken": 0.99, "logreg": 0.5},  # the broken one ranks first
        split.X_test,
        split.y_test,
        gate_config(),
    )
    assert chosen == "logreg"
    assert not all(r.passed for r in results["broken"])
    assert set(results) == {"broken", "logreg"}
    with pytest.raises(GateFailure, match="broken: ") as failure:
        gate_families(
            {"broken": models["broken"]},
            {"broken": thr},
            {"broken": 0.99},
            split.X_test,
            split.y_test,
            gate_config(),
        )
    assert {r.name for r in failure.value.failed} >= {"directional_tenure"}
