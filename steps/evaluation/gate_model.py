"""Step: model tests as pipeline gates; a failed gate fails the run, saying by how much."""

from typing import Annotated, Any

import pandas as pd
from zenml import step

from churn.models.candidates import TrainedCandidate, best_candidate
from churn.models.evaluate import Evaluation
from churn.models.gates import GateConfig, enforce, run_gates
from churn.schema import LABEL, model_input_names
from steps.materializers import TrainedCandidateMaterializer


@step(output_materializers={"challenger": TrainedCandidateMaterializer})
def gate_model(
    candidates: list[TrainedCandidate],
    evaluations: dict[str, Evaluation],
    test: pd.DataFrame,
    gates: dict[str, Any],
) -> tuple[
    Annotated[TrainedCandidate, "challenger"], Annotated[list[dict[str, Any]], "gate_results"]
]:
    """The best candidate by CV ROC-AUC (training data only), if it passes every gate.

    Raises GateFailure naming each failed gate, its value and its limit.
    """
    best = best_candidate({c.kind: c for c in candidates})
    threshold = evaluations[best.kind].threshold
    results = run_gates(
        best.pipeline, test[model_input_names()], test[LABEL], threshold, GateConfig(**gates)
    )
    enforce(results)
    return best, [r.__dict__ for r in results]
