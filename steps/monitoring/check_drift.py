"""Step: windowed drift tests of the current rows against the champion's reference."""

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from zenml import step

from churn.drift import load_detector
from churn.features.names import service_inputs
from churn.monitoring.drift_report import build_drift_report, reference_frame


@step
def check_drift(
    current_rows: pd.DataFrame,
    current_source: dict[str, Any],
    drift_detector: Path,
    champion: dict[str, Any],
    window_size: int,
    max_windows: int,
    drift_share: float,
    seed: int,
) -> Annotated[dict[str, Any], "drift_report"]:
    """The report's content (report.json): verdict, per-feature statistics, distributions."""
    inputs = service_inputs(str(champion["feature_service"]))
    detector = load_detector(drift_detector, features=inputs)
    report = build_drift_report(
        detector,
        reference_frame(drift_detector),
        current_rows,
        model_version=str(champion["model_version"]),
        source=current_source,
        window_size=window_size,
        max_windows=max_windows,
        drift_share=drift_share,
        seed=seed,
    )
    return report.to_dict()
