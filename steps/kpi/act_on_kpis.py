"""Step: fail, alert or retrain when realized performance is below a floor."""

from typing import Annotated, Any

from zenml import log_metadata, step

from churn.loop.actions import KpiAction
from churn.loop.actions import act_on_kpis as act


@step
def act_on_kpis(
    kpi_report: dict[str, Any],
    kpi_report_dir: str,
    action: KpiAction,
    training_config: str,
    retrain_timeout_s: float,
) -> Annotated[dict[str, Any], "kpi_action"]:
    """What was done (churn.loop.actions). The verdict is attached to the run first, so
    it is recorded even when "fail" fails the run."""
    verdict = {"is_alarm": kpi_report["is_alarm"], "breaches": kpi_report["breaches"]}
    log_metadata(metadata={"kpi_verdict": {**verdict, "action": action}})
    outcome = act(
        kpi_report,
        kpi_report_dir,
        action,
        training_config=training_config,
        retrain_timeout_s=retrain_timeout_s,
    )
    if outcome["taken"] == "retrain":
        log_metadata(metadata={"retrain": outcome["retrain"]})
    return outcome
