"""Step: train one candidate family (search by stratified CV ROC-AUC on train only,
calibration on out-of-fold scores, final fit on every training row or a sample)."""

from typing import Annotated, Any

import pandas as pd
from zenml import step

from churn.features.names import service_inputs, service_version
from churn.models.candidates import ModelKind, TrainedCandidate, train_candidate
from churn.models.sampling import Sampling
from churn.models.search import SearchBudget
from churn.schema import LABEL
from steps.materializers import TrainedCandidateMaterializer


@step(output_materializers=TrainedCandidateMaterializer)
def train_model(
    train: pd.DataFrame,
    kind: ModelKind,
    param_grid: list[dict[str, Any]],
    seed: int,
    cv_folds: int,
    search: dict[str, Any] | None,
    sampling: dict[str, Any],
    calibration: list[str],
    feature_service: str,
) -> Annotated[TrainedCandidate, "candidate"]:
    """A full sklearn Pipeline (SchemaEncoder + estimator), its calibration and CV evidence.

    `search` None scores `param_grid` alone; otherwise an Optuna TPE study of
    `search.n_trials` trials (capped by `search.timeout_s`) starts from it. Stored by
    TrainedCandidateMaterializer (version-checked on load): an artifact of our own
    pipeline runs, never loaded from an untrusted source. The model consumes exactly
    the inputs of `feature_service`'s feature set.
    """
    return train_candidate(
        kind,
        train[service_inputs(feature_service)],
        train[LABEL],
        param_grid,
        seed=seed,
        cv_folds=cv_folds,
        search=None if search is None else SearchBudget(**search),
        sampling=Sampling(**sampling),
        calibration=calibration,  # type: ignore[arg-type]
        feature_version=service_version(feature_service),
    )
