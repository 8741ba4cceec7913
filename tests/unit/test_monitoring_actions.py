"""Drift actions: nothing without drift; fail names features; alert logs; retrain runs a child."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from churn import runs
from churn.monitoring.actions import (
    DriftDetectedError,
    RetrainError,
    act_on_drift,
    drift_message,
    resolve_config,
    run_training_pipeline,
    training_command,
)
from churn.settings import PROJECT_ROOT


def report(is_drift: bool, drifted: list[str] | None = None) -> dict[str, Any]:
    drifted = (
        drifted if drifted is not None else (["contract", "monthly_charges"] if is_drift else [])
    )
    return {
        "is_drift": is_drift,
        "windows": 6,
        "windows_drifted": 6 if is_drift else 0,
        "model_version": "churn-classifier-v2",
        "drifted_features": drifted,
        "features": [
            {"name": "contract", "drifted_windows": 6 if is_drift else 0},
            {"name": "tenure", "drifted_windows": 2 if is_drift else 0},
            {"name": "gender", "drifted_windows": 0},
        ],
    }


@pytest.mark.parametrize("action", ["fail", "alert", "retrain"])
def test_no_drift_means_no_action(action: Any, tmp_path: Path) -> None:
    outcome = act_on_drift(report(False), tmp_path, action, training_config="no/such/file.yaml")
    assert outcome["taken"] == "none" and outcome["is_drift"] is False


def test_fail_raises_naming_the_features_and_the_report(tmp_path: Path) -> None:
    with pytest.raises(DriftDetectedError) as raised:
        act_on_drift(report(True), tmp_path, "fail")
    text = str(raised.value)
    assert "contract, monthly_charges" in text
    assert "6/6 windows" in text
    assert str(tmp_path / "report.html") in text


def test_drift_without_a_majority_feature_names_the_most_frequent(tmp_path: Path) -> None:
    message = drift_message(report(True, drifted=[]), tmp_path)
    assert "features drifting most often: contract, tenure" in message


def test_alert_logs_a_warning_and_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="churn.monitoring.actions"):
        outcome = act_on_drift(report(True), tmp_path, "alert")
    assert outcome["taken"] == "alert"
    assert any("contract" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_unknown_action_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="retrain"):
        act_on_drift(report(True), tmp_path, "page-someone")  # type: ignore[arg-type]


def test_training_config_paths_are_relative_to_the_project(tmp_path: Path) -> None:
    assert resolve_config("configs/training_pipeline.yaml") == (
        PROJECT_ROOT / "configs" / "training_pipeline.yaml"
    )
    config = tmp_path / "t.yaml"
    config.write_text("parameters: {}\n")
    assert resolve_config(config) == config
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml"):
        resolve_config("configs/missing.yaml")


def test_training_command_is_the_users_zenml_command(tmp_path: Path) -> None:
    command = training_command(tmp_path / "t.yaml", zenml="/bin/zenml")
    assert command == [
        "/bin/zenml",
        "pipeline",
        "run",
        "pipelines.training_pipeline.training_pipeline",
        "-c",
        str(tmp_path / "t.yaml"),
    ]
    assert Path(runs.zenml_executable()).name == "zenml"


def test_retrain_runs_the_command_from_the_project_root(tmp_path: Path) -> None:
    """A real child process (a stand-in for the training run): cwd, output, exit status."""
    config = tmp_path / "t.yaml"
    config.write_text("parameters: {}\n")
    script = "import os; print('trained in', os.getcwd())"
    result = run_training_pipeline(config, timeout_s=60.0, command=[sys.executable, "-c", script])
    assert result.returncode == 0
    assert f"trained in {PROJECT_ROOT}" in result.output_tail


def test_a_failed_training_run_raises_with_its_output(tmp_path: Path) -> None:
    config = tmp_path / "t.yaml"
    config.write_text("parameters: {}\n")
    script = "import sys; print('gate min_roc_auc failed'); sys.exit(3)"
    with pytest.raises(RetrainError, match="exited with 3") as raised:
        run_training_pipeline(config, timeout_s=60.0, command=[sys.executable, "-c", script])
    assert "gate min_roc_auc failed" in str(raised.value)
