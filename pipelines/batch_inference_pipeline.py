"""Batch inference pipeline: customers of the offline store -> champion scores, reasons,
expected loss -> ranked predictions (parquet + CSV) under CHURN_HOME/predictions/ and
the prediction log; with `campaign.enabled`, a retention campaign with a random control
group and the treated arm's contact list under CHURN_HOME/campaigns/.

Run:
    zenml pipeline run pipelines.batch_inference_pipeline.batch_inference_pipeline \\
        -c configs/batch_inference_pipeline.yaml
"""

from datetime import datetime
from typing import Any

from zenml import pipeline

from churn import console
from steps.campaign.assign_campaign import assign_campaign
from steps.scoring.score_customers import score_customers
from steps.scoring.select_customers import select_customers
from steps.scoring.write_predictions import write_predictions


@pipeline(enable_cache=False)
def batch_inference_pipeline(
    model_name: str,
    snapshot_time: datetime | None,
    chunk_size: int,
    top_k: int,
    n_threads: int,
    prediction_log_uri: str | None,
    campaign: dict[str, Any],
) -> None:
    """Wiring only; configs/batch_inference_pipeline.yaml holds the values (not cached:
    the champion and the offline store change between runs)."""
    console.install()
    customers = select_customers(snapshot_time)
    predictions, scoring = score_customers(
        customers, model_name, chunk_size=chunk_size, top_k=top_k, n_threads=n_threads
    )
    write_predictions(predictions, scoring, model_name, prediction_log_uri)
    if campaign["enabled"]:
        assign_campaign(predictions, scoring, campaign)
