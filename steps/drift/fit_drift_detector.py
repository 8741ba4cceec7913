"""Step: fit the drift detector on the training features; saved as a directory artifact."""

import tempfile
from pathlib import Path
from typing import Annotated

import pandas as pd
from zenml import step

from churn.drift.alibi import fit_detector


@step
def fit_drift_detector(
    train: pd.DataFrame, p_val: float, seed: int, max_reference_rows: int = 5000
) -> Annotated[Path, "drift_detector"]:
    """A directory with the detector (alibi-detect format + feature sidecar)."""
    detector = fit_detector(train, p_val=p_val, max_reference_rows=max_reference_rows, seed=seed)
    out = Path(tempfile.mkdtemp(prefix="churn-drift-")) / "detector"
    detector.save(out)
    return out
