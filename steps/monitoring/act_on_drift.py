"""Step: fail, alert or retrain when the drift report says drift (see the pipeline config)."""

from typing import Annotated, Any

from zenml import log_metadata, step

from churn.monitoring.actions import DriftAction
from churn.monitoring.actions import act_on_drift as act


@step
def act_on_drift(
    drift_report: dict[str, Any],
    report_dir: str,
    action: DriftAction,
    training_config: str,
    retrain_timeout_s: float,
) -> Annotated[dict[str, Any], "drift_action"]:
    """What was done (see churn.monitoring.actions). The verdict is attached to the run
    as ZenML metadata before acting, so it is recorded even when "fail" fails the run."""
    verdict = {
        key: drift_report[key]
        for key in ("is_drift", "windows", "windows_drifted", "drifted_features", "model_version")
    }
    log_metadata(metadata={"drift": {**verdict, "action": action, "report_dir": report_dir}})
    outcome = act(
        drift_report,
        report_dir,
        action,
        training_config=training_config,
        retrain_timeout_s=retrain_timeout_s,
    )
    if outcome["taken"] == "retrain":
        log_metadata(metadata={"retrain": outcome["retrain"]})
    return outcome
