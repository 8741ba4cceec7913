"""Step: move the "champion" alias only if the challenger beats it on the same held-out set."""

from dataclasses import asdict
from typing import Annotated, Any

import pandas as pd
from zenml import log_metadata, step

from churn.features.names import service_inputs
from churn.models.candidates import TrainedCandidate
from churn.models.evaluate import Evaluation
from churn.models.promotion import NoiseRule
from churn.models.registry import promote_if_better, record_promotion
from churn.schema import LABEL
from steps.registry._tracking import stack_tracking_uri


@step
def promote_model(
    model_version: str,
    evaluations: dict[str, Evaluation],
    challenger: TrainedCandidate,
    test: pd.DataFrame,
    model_name: str,
    metric: str,
    min_improvement: float,
    noise: dict[str, Any],
    feature_service: str,
) -> Annotated[dict[str, Any], "promotion"]:
    """The promotion decision (promoted or not, both scores, the interval, the reason).

    The challenger must beat the champion on the same held-out customers by more than
    the noise (a paired bootstrap interval, churn.models.promotion). Reached only when
    every gate passed (gate_model fails the run otherwise).
    """
    evaluation = evaluations[challenger.kind]
    uri = stack_tracking_uri()
    decision = promote_if_better(
        model_name,
        model_version,
        metric,
        float(getattr(evaluation, metric)),
        gates_passed=True,
        evaluation_data=(test[service_inputs(feature_service)], test[LABEL]),
        min_improvement=min_improvement,
        tracking_uri=uri,
        noise=NoiseRule(**noise),
        challenger_scores=evaluation.scores,
    )
    record_promotion(decision, tracking_uri=uri)
    result = asdict(decision)
    log_metadata(metadata={"promotion": result})
    return result
