"""Business KPI pipeline: prediction log + campaigns + realized outcomes -> realized
churn per decile and segment, realized performance beside the offline figures,
intervention uplift, revenue and ROI -> HTML + JSON report, MLflow run -> alert, fail
or retrain when realized performance is below its floor.

Run:
    zenml pipeline run pipelines.business_kpi_pipeline.business_kpi_pipeline \\
        -c configs/business_kpi_pipeline.yaml
"""

from datetime import datetime
from typing import Any

from zenml import pipeline

from churn import console
from churn.loop.actions import KpiAction
from steps.kpi.act_on_kpis import act_on_kpis
from steps.kpi.compute_kpis import compute_kpis
from steps.kpi.join_outcomes import join_outcomes
from steps.kpi.write_kpi_report import write_kpi_report


@pipeline(enable_cache=False)
def business_kpi_pipeline(
    model_name: str,
    experiment: str,
    as_of: datetime | None,
    predictions_since: datetime | None,
    horizon_months: int,
    period_format: str,
    prediction_log_uri: str | None,
    chunk_size: int,
    strata: int,
    exclude_treated: bool,
    bootstrap: dict[str, Any],
    campaign: dict[str, Any],
    floors: dict[str, Any],
    action: KpiAction,
    training_config: str,
    retrain_timeout_s: float,
) -> None:
    """Wiring only; configs/business_kpi_pipeline.yaml holds the values (not cached:
    outcomes, the log and the campaigns change between runs)."""
    console.install()
    evaluated, targeted, outcomes, window = join_outcomes(
        as_of, predictions_since, horizon_months, period_format, prediction_log_uri, chunk_size
    )
    report = compute_kpis(
        evaluated, targeted, outcomes, window, model_name, period_format,
        strata, exclude_treated, bootstrap, campaign, floors,
    )  # fmt: skip
    report_dir = write_kpi_report(report, experiment)
    act_on_kpis(
        report,
        report_dir,
        action=action,
        training_config=training_config,
        retrain_timeout_s=retrain_timeout_s,
    )
