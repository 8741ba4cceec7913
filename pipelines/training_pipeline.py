"""Training pipeline: point-in-time features -> candidates (search, calibration) ->
held-out and repeated evaluation -> gates -> drift detector -> MLflow runs and
registry -> noise-aware promotion of the champion.

Run:
    zenml pipeline run pipelines.training_pipeline.training_pipeline \\
        -c configs/training_pipeline.yaml
"""

from datetime import datetime
from typing import Any

from zenml import pipeline

from churn import console
from churn.models.split import SplitStrategy
from steps.data.validate_data import validate_data
from steps.drift.fit_drift_detector import fit_drift_detector
from steps.evaluation.evaluate_candidates import evaluate_candidates
from steps.evaluation.evaluate_repeated import evaluate_repeated
from steps.evaluation.gate_model import gate_model
from steps.features.historical_features import get_historical_features
from steps.features.load_entity_df import load_entity_df
from steps.registry.promote_model import promote_model
from steps.registry.register_model import register_model
from steps.training.split_data import split_data
from steps.training.train_model import train_model


@pipeline(enable_cache=False)
def training_pipeline(
    param_grid: dict[str, list[dict[str, Any]]],
    search: dict[str, Any] | None,
    sampling: dict[str, Any],
    calibration: list[str],
    repeated_evaluation: dict[str, Any],
    promotion_noise: dict[str, Any],
    threshold_rule: dict[str, Any],
    costs: dict[str, float],
    revenue: dict[str, float],
    gates: dict[str, Any],
    model_name: str,
    experiment: str,
    feature_service: str,
    split_strategy: SplitStrategy,
    test_size: float,
    seed: int,
    cv_folds: int,
    promotion_metric: str,
    min_improvement: float,
    drift_p_val: float,
    labels_known_by: datetime | None = None,
) -> None:
    """Wiring only; configs/training_pipeline.yaml holds every value."""
    console.install()
    entity_df = load_entity_df(labels_known_by)
    frame = validate_data(
        get_historical_features(entity_df, feature_service), id="validate_training_data"
    )
    train, test = split_data(frame, strategy=split_strategy, test_size=test_size, seed=seed)
    candidates = [
        train_model(
            train, kind, grid, seed=seed, cv_folds=cv_folds, search=search,
            sampling=sampling, calibration=calibration, feature_service=feature_service,
            id=f"train_{kind}",
        )
        for kind, grid in param_grid.items()
    ]  # fmt: skip
    evaluations = evaluate_candidates(
        candidates, train, test, threshold_rule, costs, revenue, feature_service
    )
    repeated = evaluate_repeated(
        candidates, train, repeated_evaluation, sampling, seed, feature_service
    )
    challenger, _ = gate_model(candidates, evaluations, repeated, test, gates, feature_service)
    detector = fit_drift_detector(
        train, p_val=drift_p_val, seed=seed, feature_service=feature_service
    )
    version = register_model(
        candidates, evaluations, repeated, challenger, detector, train, test,
        model_name, experiment, feature_service,
    )  # fmt: skip
    promote_model(
        version, evaluations, challenger, test, model_name, promotion_metric, min_improvement,
        promotion_noise, feature_service,
    )  # fmt: skip
