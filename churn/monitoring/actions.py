"""What the drift monitoring pipeline does when a report says "drift".

- "fail": raise DriftDetectedError naming the drifted features and the report, so
  the pipeline run fails and whoever watches runs (CI, a scheduler) sees it;
- "alert": log a warning (the step also attaches the verdict to the run as ZenML
  metadata); the run succeeds;
- "retrain": run the training pipeline with its config, exactly as a person would
  (`zenml pipeline run pipelines.training_pipeline.training_pipeline -c <config>`,
  from the project root, on the active stack), and wait for it. Its gates and
  promotion decide whether the retrained model replaces the champion.

Why a `zenml pipeline run` child process rather than calling training_pipeline()
from the step: ZenML 0.94 runs a pipeline called inside a step as a nested run of
the same process, which its step context does not support (only dynamic pipelines
may start child pipelines, and never from a step). A child process is the user's
own command, with its own run in the same ZenML store and its own logs, which the
step copies into its log. Verified on the local stack (tests/integration). On a
remote stack (stacks/eks.yaml) the step runs in a pod, which then needs the ZenML
client configuration and the ability to submit a run (an image already built for
the training pipeline); without that, use "alert" and let the alert trigger training
(e.g. the CI workflow that runs `make training-pipeline`).
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args

from churn.runs import pipeline_command
from churn.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

DriftAction = Literal["fail", "alert", "retrain"]
DRIFT_ACTIONS: Final[tuple[str, ...]] = get_args(DriftAction)
_OUTPUT_TAIL: Final = 4000  # characters of the training run's output kept in errors


class DriftDetectedError(RuntimeError):
    """Drift found and the configured action is "fail"."""


class RetrainError(RuntimeError):
    """The training pipeline triggered by drift did not finish successfully."""


def drifted_summary(report: Mapping[str, Any], limit: int = 5) -> list[str]:
    """The features to name: flagged ones, else those that drifted in most windows."""
    flagged = [str(name) for name in report["drifted_features"]]
    if flagged:
        return flagged
    ranked = sorted(report["features"], key=lambda f: -int(f["drifted_windows"]))
    return [str(f["name"]) for f in ranked[:limit] if int(f["drifted_windows"]) > 0]


def drift_message(report: Mapping[str, Any], report_dir: str | Path) -> str:
    """One line naming the verdict, the features and the report."""
    features = drifted_summary(report)
    label = "drifted features" if report["drifted_features"] else "features drifting most often"
    return (
        f"data drift against {report['model_version']}'s training reference: "
        f"{report['windows_drifted']}/{report['windows']} windows drifted; "
        f"{label}: {', '.join(features) or 'none'}; report: {Path(report_dir) / 'report.html'}"
    )


def resolve_config(config: str | Path) -> Path:
    """A training config path; relative ones are relative to the project root, never
    to the working directory. FileNotFoundError names it when missing."""
    path = Path(config)
    path = path if path.is_absolute() else PROJECT_ROOT / path
    if not path.is_file():
        raise FileNotFoundError(f"training pipeline config not found: {path}")
    return path


def training_command(config: Path, zenml: str | None = None) -> list[str]:
    """The command that runs the training pipeline with `config`."""
    return pipeline_command("training_pipeline", config, zenml)


@dataclass(frozen=True)
class RetrainResult:
    """The triggered training run: command, exit status, time, end of its output."""

    command: list[str]
    returncode: int
    seconds: float
    output_tail: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types."""
        return asdict(self)


def run_training_pipeline(
    config: str | Path,
    *,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] | None = None,
) -> RetrainResult:
    """Run the training pipeline in a child process from the project root and wait.

    Raises RetrainError (with the end of the run's output) when it exits non-zero,
    subprocess.TimeoutExpired after `timeout_s`. `command` overrides the command
    (tests); `env` defaults to this process's environment.
    """
    path = resolve_config(config)
    argv = list(command) if command is not None else training_command(path)
    logger.warning("retraining: starting the training pipeline: %s", " ".join(argv))
    began = time.perf_counter()
    done = subprocess.run(
        argv,
        cwd=PROJECT_ROOT,
        env=dict(env if env is not None else os.environ),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    seconds = time.perf_counter() - began
    output = (done.stdout + done.stderr)[-_OUTPUT_TAIL:]
    for line in output.splitlines()[-40:]:
        logger.info("training: %s", line)
    if done.returncode != 0:
        raise RetrainError(
            f"training pipeline exited with {done.returncode} after {seconds:.0f} s "
            f"({' '.join(argv)}); end of its output:\n{output}"
        )
    return RetrainResult(argv, done.returncode, seconds, output)


def act_on_drift(
    report: Mapping[str, Any],
    report_dir: str | Path,
    action: DriftAction,
    *,
    training_config: str | Path | None = None,
    retrain_timeout_s: float | None = None,
) -> dict[str, Any]:
    """Apply `action` to a report (report.json content); returns what was done.

    No drift: nothing, whatever the action. Drift: "fail" raises
    DriftDetectedError; "alert" logs a warning; "retrain" runs the training
    pipeline (see the module docstring) with `training_config` and
    `retrain_timeout_s` (the drift pipeline's YAML sets both) and returns its result.
    """
    if action not in DRIFT_ACTIONS:
        raise ValueError(f"unknown drift action {action!r}; expected one of {DRIFT_ACTIONS}")
    outcome: dict[str, Any] = {
        "is_drift": bool(report["is_drift"]),
        "action": action,
        "taken": "none",
        "drifted_features": list(report["drifted_features"]),
        "report_dir": str(report_dir),
    }
    if not report["is_drift"]:
        logger.info(
            "no drift: %s/%s windows drifted; report: %s",
            report["windows_drifted"],
            report["windows"],
            report_dir,
        )
        return outcome
    if action == "retrain" and (training_config is None or retrain_timeout_s is None):
        raise ValueError("action 'retrain' needs training_config and retrain_timeout_s")

    def retrain() -> dict[str, Any]:
        assert training_config is not None and retrain_timeout_s is not None
        return run_training_pipeline(training_config, timeout_s=retrain_timeout_s).to_dict()

    return respond(action, drift_message(report, report_dir), DriftDetectedError, outcome, retrain)


def respond(
    action: DriftAction,
    message: str,
    failure: type[RuntimeError],
    outcome: Mapping[str, Any],
    retrain: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """The consequence of an alarm, shared by the drift and business KPI pipelines:
    "fail" raises `failure(message)`; "alert" logs the message; "retrain" logs it and
    calls `retrain` (which runs the training pipeline). Returns `outcome` with what
    was taken (and the retraining's result)."""
    if action == "fail":
        raise failure(message)
    logger.warning(message)
    done = {**outcome, "message": message}
    if action == "alert":
        return {**done, "taken": "alert"}
    return {**done, "retrain": retrain(), "taken": "retrain"}
