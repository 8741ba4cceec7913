"""Step: model tests as pipeline gates on every family; the best family that passes
them all is the challenger, and a run where none passes fails saying by how much."""

import logging
from typing import Annotated, Any

import pandas as pd
from zenml import log_metadata, step

from churn.features.names import service_inputs
from churn.models.candidates import TrainedCandidate
from churn.models.evaluate import Evaluation
from churn.models.gates import GateConfig, gate_families
from churn.models.repeated import mean_auc
from churn.schema import LABEL
from steps.materializers import TrainedCandidateMaterializer

logger = logging.getLogger(__name__)


@step(output_materializers={"challenger": TrainedCandidateMaterializer})
def gate_model(
    candidates: list[TrainedCandidate],
    evaluations: dict[str, Evaluation],
    repeated_evaluations: dict[str, dict[str, Any]],
    test: pd.DataFrame,
    gates: dict[str, Any],
    feature_service: str,
) -> tuple[
    Annotated[TrainedCandidate, "challenger"], Annotated[list[dict[str, Any]], "gate_results"]
]:
    """The family with the best mean repeated ROC-AUC (training data only) among those
    that pass every gate at their own threshold, with its gate results.

    Raises GateFailure naming each failed gate of every family when none passes.
    """
    by_kind: dict[str, TrainedCandidate] = {c.kind: c for c in candidates}
    auc = mean_auc(repeated_evaluations)
    chosen, results = gate_families(
        {kind: c.model for kind, c in by_kind.items()},
        {kind: evaluations[kind].threshold for kind in by_kind},
        auc,
        test[service_inputs(feature_service)],
        test[LABEL],
        GateConfig(**gates),
    )
    failed = {kind: [r.describe() for r in rs if not r.passed] for kind, rs in results.items()}
    log_metadata(metadata={"challenger": chosen, "gate_failures": failed})
    for kind, lines in failed.items():
        if lines and auc[kind] > auc[chosen]:
            logger.warning(
                "%s (repeated ROC-AUC %.4f) is not the challenger: %s",
                kind,
                auc[kind],
                "; ".join(lines),
            )
    return by_kind[chosen], [r.__dict__ for r in results[chosen]]
