"""Step: the recent rows to compare with the training reference (a snapshot, a file or
the prediction log)."""

from typing import Annotated, Any

import pandas as pd
from zenml import step

from churn.features.store import get_store
from churn.monitoring.current import CurrentWindow, load_current


@step
def load_current_window(
    window: CurrentWindow, champion: dict[str, Any], chunk_size: int
) -> tuple[Annotated[pd.DataFrame, "current_rows"], Annotated[dict[str, Any], "current_source"]]:
    """Rows with the model's inputs, read through the champion's FeatureService."""
    store = get_store() if window.kind != "file" else None
    # A tuple literal: ZenML reads the return statement to count a step's outputs.
    rows, source = load_current(
        window, store, service=str(champion["feature_service"]), chunk_size=chunk_size
    )
    return rows, source
