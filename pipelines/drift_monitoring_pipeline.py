"""Drift monitoring pipeline: a recent window (snapshot or served-rows file) against the
champion's training reference -> HTML + JSON report -> fail, alert or retrain.

Run:
    zenml pipeline run pipelines.drift_monitoring_pipeline.drift_monitoring_pipeline \\
        -c configs/drift_monitoring_pipeline.yaml
"""

from zenml import pipeline

from churn import console
from churn.monitoring.actions import DriftAction
from churn.monitoring.current import CurrentWindow
from steps.monitoring.act_on_drift import act_on_drift
from steps.monitoring.check_drift import check_drift
from steps.monitoring.fetch_drift_detector import fetch_drift_detector
from steps.monitoring.load_current_window import load_current_window
from steps.monitoring.write_drift_report import write_drift_report


@pipeline(enable_cache=False)
def drift_monitoring_pipeline(
    model_name: str,
    window: CurrentWindow,
    action: DriftAction,
    training_config: str,
    window_size: int,
    max_windows: int,
    drift_share: float,
    seed: int,
    chunk_size: int,
    retrain_timeout_s: float,
) -> None:
    """Wiring only; configs/drift_monitoring_pipeline.yaml holds the values."""
    console.install()
    detector, champion = fetch_drift_detector(model_name)
    rows, source = load_current_window(window, champion, chunk_size=chunk_size)
    report = check_drift(
        rows,
        source,
        detector,
        champion,
        window_size=window_size,
        max_windows=max_windows,
        drift_share=drift_share,
        seed=seed,
    )
    report_dir = write_drift_report(report)
    act_on_drift(
        report,
        report_dir,
        action=action,
        training_config=training_config,
        retrain_timeout_s=retrain_timeout_s,
    )
