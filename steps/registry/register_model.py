"""Step: one MLflow run per candidate; the gated challenger is registered with its detector."""

import tempfile
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from zenml import step

from churn.features.names import service_inputs
from churn.models.candidates import TrainedCandidate
from churn.models.evaluate import Evaluation, save_plots
from churn.models.fingerprint import data_fingerprint, evaluation_fingerprint
from churn.models.registry import DRIFT_ARTIFACT, log_candidate, register, use_tracking
from churn.models.serialize import save_model
from churn.schema import LABEL
from steps.registry._tracking import stack_tracking_uri


@step
def register_model(
    candidates: list[TrainedCandidate],
    evaluations: dict[str, Evaluation],
    repeated_evaluations: dict[str, dict[str, Any]],
    challenger: TrainedCandidate,
    drift_detector: Path,
    train: pd.DataFrame,
    test: pd.DataFrame,
    model_name: str,
    experiment: str,
    feature_service: str,
) -> Annotated[str, "model_version"]:
    """Log every candidate (params, metrics, repeated evaluation, search, plots, model,
    safe serving model with its calibration, tags); register the challenger under
    `model_name` and return its version."""
    uri = stack_tracking_uri()
    train_fp = data_fingerprint(train)
    inputs = service_inputs(feature_service)
    test_fp = evaluation_fingerprint(test[inputs], test[LABEL])
    run_ids: dict[str, str] = {}
    for candidate in candidates:
        evaluation = evaluations[candidate.kind]
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            plots = save_plots(evaluation, candidate.pipeline, work / "plots")
            save_model(
                candidate.pipeline,
                work / "serving",
                metadata={"threshold": evaluation.threshold, "feature_service": feature_service},
                calibrator=candidate.calibrator,
            )
            run_ids[candidate.kind] = log_candidate(
                experiment=experiment,
                candidate=candidate,
                evaluation=evaluation,
                X_example=test[inputs],
                serving_dir=work / "serving",
                plots=plots,
                feast_feature_service=feature_service,
                data_fingerprint=train_fp,
                heldout_fingerprint=test_fp,
                tracking_uri=uri,
                repeated=repeated_evaluations.get(candidate.kind),
            )
    run_id = run_ids[challenger.kind]
    use_tracking(uri).log_artifacts(run_id, str(drift_detector), DRIFT_ARTIFACT)
    return register(run_id, model_name, tracking_uri=uri)
