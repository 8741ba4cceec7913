"""Step: every family's metrics over repeated stratified folds of the training rows."""

from typing import Annotated, Any

import pandas as pd
from zenml import log_metadata, step

from churn.features.names import service_inputs, service_version
from churn.models.candidates import TrainedCandidate
from churn.models.repeated import RepeatedConfig, repeated_evaluation
from churn.models.sampling import Sampling, stratified_rows
from churn.schema import LABEL


@step
def evaluate_repeated(
    candidates: list[TrainedCandidate],
    train: pd.DataFrame,
    repeated: dict[str, Any],
    sampling: dict[str, Any],
    seed: int,
    feature_service: str,
) -> Annotated[dict[str, dict[str, Any]], "repeated_evaluations"]:
    """kind -> {metric: {mean, sd, values}}: what the champion is chosen on.

    Runs on the same stratified sample as the search (`sampling.tune_max_rows`), so
    its cost is bounded at scale; never on the held-out set.
    """
    config = RepeatedConfig(**repeated)
    rows = stratified_rows(train[LABEL].to_numpy(), Sampling(**sampling).tune_max_rows, seed)
    frame = train.iloc[rows]
    out: dict[str, dict[str, Any]] = {
        c.kind: repeated_evaluation(
            c.kind,
            c.params,
            c.calibrator.method,
            frame[service_inputs(feature_service)],
            frame[LABEL],
            config,
            seed,
            feature_version=service_version(feature_service),
        )
        for c in candidates
    }
    log_metadata(
        metadata={
            "repeated_roc_auc": {
                k: [v["roc_auc"]["mean"], v["roc_auc"]["sd"]] for k, v in out.items()
            }
        }
    )
    return out
