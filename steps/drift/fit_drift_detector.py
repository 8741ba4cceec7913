"""Step: fit the drift detector on the training features; saved as a directory artifact."""

import tempfile
from pathlib import Path
from typing import Annotated

import pandas as pd
from zenml import step

from churn.drift.alibi import fit_detector
from churn.features.names import service_inputs


@step
def fit_drift_detector(
    train: pd.DataFrame,
    p_val: float,
    seed: int,
    feature_service: str,
    max_reference_rows: int = 5000,
) -> Annotated[Path, "drift_detector"]:
    """A directory with the detector (alibi-detect format + feature sidecar), checking
    exactly the model's inputs (those of `feature_service`)."""
    detector = fit_detector(
        train,
        p_val=p_val,
        features=service_inputs(feature_service),
        max_reference_rows=max_reference_rows,
        seed=seed,
    )
    out = Path(tempfile.mkdtemp(prefix="churn-drift-")) / "detector"
    detector.save(out)
    return out
