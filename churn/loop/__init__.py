"""Closing the loop: what was predicted, whom the company acted on, and what happened.

Plain Python (no ZenML, no MLServer): the serving runtime, the batch steps and the
campaign step are thin callers of these modules.

- churn.loop.predlog: the prediction log, one parquet record per scored customer
  (online and batch), partitioned by date and model version, in a directory or an
  s3:// URI (fsspec); the online writer buffers off the request path;
- churn.loop.campaign: a batch-scoring run turned into a retention campaign with a
  seeded, risk-stratified random control group, and the treated arm's contact list;
- churn.loop.kpi: predictions and campaigns joined to realized outcomes (labels that
  arrived later, churn.data.outcomes): realized churn per decile and segment,
  realized performance with bootstrap intervals, uplift, revenue, ROI, floors;
- churn.loop.kpi_report: the KPI report as JSON, HTML with plots, text, MLflow run;
- churn.loop.actions: alert, fail or retrain when realized performance is too low;
- churn.loop.demo: `make loop-demo`, the whole loop on synthetic data.
"""

from __future__ import annotations

from typing import Final

from churn.settings import Settings, get_settings

# Folder of the prediction log under CHURN_HOME when no URI is configured (online and
# batch write the same log). Here, not in predlog, so that settings read it without
# importing pyarrow.
PREDICTION_LOG_DIR: Final = "prediction_log"


def prediction_log_root(uri: str | None, settings: Settings | None = None) -> str:
    """The log's location: `uri` when given (a directory or s3://...), else
    <CHURN_HOME>/prediction_log, where online and batch predictions meet."""
    if uri:
        return uri
    return str((settings or get_settings()).home / PREDICTION_LOG_DIR)
