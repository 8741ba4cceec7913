"""Step: predictions as parquet + CSV under CHURN_HOME/predictions/, published atomically."""

from typing import Annotated, Any

import pandas as pd
from zenml import get_step_context, log_metadata, step

from churn.monitoring.batch import write_predictions as write_files


@step
def write_predictions(
    predictions: pd.DataFrame, scoring: dict[str, Any]
) -> Annotated[dict[str, Any], "batch_summary"]:
    """Rows, at-risk count, expected loss and the output paths (also as run metadata)."""
    summary = write_files(
        predictions,
        float(scoring["threshold"]),
        seconds=float(scoring["seconds"]),
        extra={"pipeline_run": get_step_context().pipeline_run.name},
    ).to_dict()
    log_metadata(metadata={"batch_summary": summary})
    return summary
