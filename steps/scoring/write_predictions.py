"""Step: predictions as parquet + CSV under CHURN_HOME/predictions/, published atomically,
and in the prediction log."""

from typing import Annotated, Any

import pandas as pd
from zenml import get_step_context, log_metadata, step

from churn.loop import prediction_log_root
from churn.monitoring.batch import log_batch_predictions
from churn.monitoring.batch import write_predictions as write_files


@step
def write_predictions(
    predictions: pd.DataFrame,
    scoring: dict[str, Any],
    model_name: str,
    prediction_log_uri: str | None,
) -> Annotated[dict[str, Any], "batch_summary"]:
    """Rows, at-risk count, expected loss and the output paths (also as run metadata).

    Every scored customer is also recorded in the prediction log (churn.loop.predlog,
    source "batch", the run's name as request id), where online predictions go too.
    """
    run = get_step_context().pipeline_run.name
    summary = write_files(
        predictions,
        float(scoring["threshold"]),
        seconds=float(scoring["seconds"]),
        extra={"pipeline_run": run},
    ).to_dict()
    summary["prediction_log_records"] = log_batch_predictions(
        predictions,
        model_name=model_name,
        threshold=float(scoring["threshold"]),
        run_id=run,
        root=prediction_log_root(prediction_log_uri),
    )
    log_metadata(metadata={"batch_summary": summary})
    return summary
