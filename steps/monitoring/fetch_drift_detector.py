"""Step: the champion's drift detector (fitted on its training features) from MLflow."""

import tempfile
from pathlib import Path
from typing import Annotated, Any

from zenml import step

from churn.models.registry import fetch_champion
from steps.registry._tracking import stack_tracking_uri


class MissingDetectorError(RuntimeError):
    """The champion was registered without a drift detector."""


@step
def fetch_drift_detector(
    model_name: str,
) -> tuple[Annotated[Path, "drift_detector"], Annotated[dict[str, Any], "champion"]]:
    """The detector directory (a Path artifact, so later steps find it on any pod)
    and the champion's version, threshold and FeatureService."""
    champion = fetch_champion(
        model_name, Path(tempfile.mkdtemp(prefix="churn-drift-")), stack_tracking_uri()
    )
    if champion.drift_dir is None:
        raise MissingDetectorError(
            f"champion v{champion.version} of {model_name!r} has no drift detector artifact; "
            "retrain it with the training pipeline, which logs one"
        )
    info = {
        "model_name": champion.model_name,
        "version": champion.version,
        "model_version": f"{champion.model_name}-v{champion.version}",
        "threshold": champion.threshold,
        "feature_service": champion.feature_service,
    }
    return champion.drift_dir, info
