"""Step: model tests as pipeline gates on every family; the best family that passes
them all is the challenger, and a run where none passes fails saying by how much."""

import logging
from typing import Annotated, Any

import pandas as pd
from zenml import log_metadata, step

from churn.models.candidates import TrainedCandidate
from churn.models.evaluate import Evaluation
from churn.models.gates import GateConfig, GateFailure, GateResult, run_gates
from churn.models.repeated import mean_auc
from churn.schema import LABEL, model_input_names
from steps.materializers import TrainedCandidateMaterializer

logger = logging.getLogger(__name__)


@step(output_materializers={"challenger": TrainedCandidateMaterializer})
def gate_model(
    candidates: list[TrainedCandidate],
    evaluations: dict[str, Evaluation],
    repeated_evaluations: dict[str, dict[str, Any]],
    test: pd.DataFrame,
    gates: dict[str, Any],
) -> tuple[
    Annotated[TrainedCandidate, "challenger"], Annotated[list[dict[str, Any]], "gate_results"]
]:
    """The family with the best mean repeated ROC-AUC (training data only) among those
    that pass every gate, with its gate results.

    Every family is gated at its own threshold, so the run records which families are
    fit to serve and why the others are not. Raises GateFailure naming each failed
    gate of every family when none passes.
    """
    config = GateConfig(**gates)
    X, y = test[model_input_names()], test[LABEL]  # noqa: N806
    results: dict[str, list[GateResult]] = {
        c.kind: run_gates(c.model, X, y, evaluations[c.kind].threshold, config) for c in candidates
    }
    failed = {kind: [r for r in rs if not r.passed] for kind, rs in results.items()}
    log_metadata(
        metadata={"gate_failures": {k: [r.describe() for r in v] for k, v in failed.items()}}
    )
    auc = mean_auc(repeated_evaluations)
    ranked = sorted(candidates, key=lambda c: -auc[c.kind])
    for candidate in ranked:
        if not failed[candidate.kind]:
            for better in ranked[: ranked.index(candidate)]:
                logger.warning(
                    "%s (repeated ROC-AUC %.4f) is not the challenger: %s",
                    better.kind,
                    auc[better.kind],
                    "; ".join(r.describe() for r in failed[better.kind]),
                )
            return candidate, [r.__dict__ for r in results[candidate.kind]]
    raise GateFailure([r for c in ranked for r in failed[c.kind]])
