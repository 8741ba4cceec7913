"""Step: report.json + report.html under CHURN_HOME/reports/kpi/<time>/, and an MLflow run."""

from pathlib import Path
from typing import Annotated, Any

from zenml import log_metadata, step

from churn.loop.kpi_report import log_kpi_run
from churn.loop.kpi_report import write_kpi_report as write_files
from steps.registry._tracking import stack_tracking_uri


@step
def write_kpi_report(
    kpi_report: dict[str, Any], experiment: str
) -> Annotated[str, "kpi_report_dir"]:
    """The report's directory, written before any action (a failing run has its report);
    the report's metrics and files are logged as one run of MLflow `experiment`."""
    directory = write_files(kpi_report)
    run_id = log_kpi_run(kpi_report, Path(directory), experiment, stack_tracking_uri())
    log_metadata(metadata={"kpi_report": {"dir": str(directory), "mlflow_run_id": run_id}})
    return str(directory)
