"""What the business KPI pipeline does when realized performance falls below a floor.

The same three actions as the drift pipeline (churn.monitoring.actions), for the same
reasons: "fail" raises RealizedPerformanceError naming every breach and the report,
so whoever watches runs sees it; "alert" logs a warning (the step also attaches the
breaches to the run as ZenML metadata); "retrain" runs the training pipeline in a
child process (churn.monitoring.actions.run_training_pipeline: the one way the
project retrains) and waits. Its gates and promotion decide whether the new model
replaces the champion.

Retraining uses every label known at the evaluation time: the training config is
copied with `labels_known_by` set to the report's `as_of`, so the realized outcomes
that revealed the problem (now in the labels table) are in the new training set and
labels observed later are not.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from churn.monitoring.actions import (
    DRIFT_ACTIONS,
    DriftAction,
    resolve_config,
    respond,
    run_training_pipeline,
)

logger = logging.getLogger(__name__)

KpiAction = DriftAction  # "fail" | "alert" | "retrain"


class RealizedPerformanceError(RuntimeError):
    """Realized performance is below a floor and the configured action is "fail"."""


def retraining_config(training_config: str | Path, labels_known_by: str, directory: Path) -> Path:
    """A copy of the training config with `labels_known_by` set, written in `directory`."""
    config = yaml.safe_load(resolve_config(training_config).read_text(encoding="utf-8"))
    config.setdefault("parameters", {})["labels_known_by"] = labels_known_by
    path = directory / "training_pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def kpi_message(report: Mapping[str, Any], report_dir: str | Path) -> str:
    """One line naming every breach and the report."""
    return (
        f"realized performance below its floor: {'; '.join(report['breaches'])}; "
        f"report: {Path(report_dir) / 'report.html'}"
    )


def act_on_kpis(
    report: Mapping[str, Any],
    report_dir: str | Path,
    action: KpiAction,
    *,
    training_config: str | Path,
    retrain_timeout_s: float,
) -> dict[str, Any]:
    """Apply `action` to a KPI report (report.json content); returns what was done.

    No breach: nothing, whatever the action.
    """
    if action not in DRIFT_ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {DRIFT_ACTIONS}")
    outcome: dict[str, Any] = {
        "is_alarm": bool(report["is_alarm"]),
        "action": action,
        "taken": "none",
        "breaches": list(report["breaches"]),
        "report_dir": str(report_dir),
    }
    if not report["is_alarm"]:
        logger.info("realized performance within its floors; report: %s", report_dir)
        return outcome

    def retrain() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="churn-retrain-") as tmp:
            config = retraining_config(training_config, str(report["as_of"]), Path(tmp))
            result = run_training_pipeline(config, timeout_s=retrain_timeout_s)
        return {**result.to_dict(), "labels_known_by": report["as_of"]}

    return respond(
        action, kpi_message(report, report_dir), RealizedPerformanceError, outcome, retrain
    )
