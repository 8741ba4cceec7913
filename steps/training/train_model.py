"""Step: train one candidate family (grid chosen by stratified CV ROC-AUC on train only)."""

from typing import Annotated, Any

import pandas as pd
from zenml import step

from churn.models.candidates import ModelKind, TrainedCandidate, train_candidate
from churn.schema import LABEL, model_input_names
from steps.materializers import TrainedCandidateMaterializer


@step(output_materializers=TrainedCandidateMaterializer)
def train_model(
    train: pd.DataFrame,
    kind: ModelKind,
    param_grid: list[dict[str, Any]],
    seed: int,
    cv_folds: int,
) -> Annotated[TrainedCandidate, "candidate"]:
    """A full sklearn Pipeline (SchemaEncoder + estimator) with its CV evidence.

    Stored by TrainedCandidateMaterializer (version-checked on load): an artifact
    of our own pipeline runs, never loaded from an untrusted source.
    """
    return train_candidate(
        kind, train[model_input_names()], train[LABEL], param_grid, seed=seed, cv_folds=cv_folds
    )
