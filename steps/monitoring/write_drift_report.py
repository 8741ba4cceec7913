"""Step: report.html + report.json under CHURN_HOME/reports/drift/<time>/, atomically."""

from typing import Annotated, Any

from zenml import step

from churn.monitoring.drift_report import write_drift_report as write_files


@step
def write_drift_report(drift_report: dict[str, Any]) -> Annotated[str, "report_dir"]:
    """The report's directory (written before any action, so a failing run has its report)."""
    return str(write_files(drift_report))
