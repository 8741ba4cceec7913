"""Step: choose each candidate's threshold on its calibrated out-of-fold scores, evaluate
the calibrated model on test."""

from typing import Annotated, Any

import pandas as pd
from zenml import step

from churn.features.names import service_inputs
from churn.models.candidates import TrainedCandidate
from churn.models.evaluate import (
    Costs,
    Evaluation,
    Revenue,
    ThresholdRule,
    choose_threshold,
    evaluate,
)
from churn.schema import LABEL
from steps.materializers import EvaluationMaterializer

# ZenML stores each value of the dict output with the materializer registered for its
# type; EvaluationMaterializer registers itself for Evaluation when defined.
VALUE_MATERIALIZER = EvaluationMaterializer


@step
def evaluate_candidates(
    candidates: list[TrainedCandidate],
    train: pd.DataFrame,
    test: pd.DataFrame,
    threshold_rule: dict[str, Any],
    costs: dict[str, float],
    revenue: dict[str, Any],
    feature_service: str,
) -> Annotated[dict[str, Evaluation], "evaluations"]:
    """Held-out evaluation per family, keyed by kind.

    The threshold comes from calibrated out-of-fold training scores (never from the
    test set), so the reported held-out recall and precision are honest, and it applies
    to the calibrated probability that is served.
    """
    rule, cost, rev = ThresholdRule(**threshold_rule), Costs(**costs), Revenue(**revenue)
    out: dict[str, Evaluation] = {}
    for candidate in candidates:
        threshold = choose_threshold(candidate.oof_labels, candidate.calibrated_oof, rule, cost)
        out[candidate.kind] = evaluate(
            candidate.model,
            test[service_inputs(feature_service)],
            test[LABEL],
            threshold_rule=rule,
            costs=cost,
            revenue=rev,
            threshold=threshold,
        )
    return out
