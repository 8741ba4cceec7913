"""Running the project's ZenML pipelines from Python, as a user runs them.

Every run is `zenml pipeline run pipelines.<name>.<name> -c <config>` in a child
process from the project root: the same command the README gives, so a retraining
triggered by drift or a KPI, the loop and database demos and the scale benchmark
exercise exactly what a user runs (and a failing run cannot take the caller's process
with it). Why one home: those callers each had their own copy of the command, the
executable lookup and the failure report.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from churn.settings import PROJECT_ROOT

# Every pipeline under pipelines/: module pipelines.<name> defines pipeline <name>.
PIPELINE_NAMES: Final = (
    "feature_pipeline",
    "training_pipeline",
    "deployment_pipeline",
    "batch_inference_pipeline",
    "drift_monitoring_pipeline",
    "business_kpi_pipeline",
    "daily_snapshot_pipeline",
)
# An exception's own lines in a run's output ("pkg.SomeError: ...", its "- ..." items).
_EXCEPTION_LINE: Final = re.compile(r"^([\w.]+(Error|Failure|Exception): | *- )")
_OUTPUT_TAIL: Final = 4000  # characters of a failed run's output kept in its error


def zenml_executable() -> str:
    """The zenml CLI of this environment (next to the interpreter), else one on PATH."""
    beside = Path(sys.executable).with_name("zenml")
    if beside.is_file():
        return str(beside)
    found = shutil.which("zenml")
    if found is None:
        raise FileNotFoundError(
            f"no zenml executable next to {sys.executable} or on PATH: install zenml"
        )
    return found


def pipeline_command(name: str, config: Path, zenml: str | None = None) -> list[str]:
    """The `zenml pipeline run` command of pipeline `name` with `config`."""
    if name not in PIPELINE_NAMES:
        raise KeyError(f"unknown pipeline {name!r}; the project's: {PIPELINE_NAMES}")
    return [
        zenml or zenml_executable(),
        "pipeline",
        "run",
        f"pipelines.{name}.{name}",
        "-c",
        str(config),
    ]


def isolated_environment(home: Path) -> dict[str, str]:
    """This process's environment with its own CHURN_HOME and ZenML store under `home`.

    For runs that must not touch the user's stores (demos, benchmarks): the tracking
    variables are dropped, so MLflow follows CHURN_HOME too.
    """
    env = dict(os.environ)
    env.update(
        {
            "CHURN_HOME": str(home),
            "ZENML_CONFIG_PATH": str(home / "zenml"),
            "ZENML_ANALYTICS_OPT_IN": "false",
            "AUTO_OPEN_DASHBOARD": "false",
        }
    )
    for name in ("CHURN_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(name, None)
    return env


def pipeline_config(
    name: str, overrides: Mapping[str, Any], directory: Path, extra: Mapping[str, Any]
) -> Path:
    """configs/<name>.yaml with `overrides` (and run-time values `extra`) applied, written
    to `directory`; the path of the written config."""
    config = yaml.safe_load((PROJECT_ROOT / "configs" / f"{name}.yaml").read_text())
    config["parameters"].update({**overrides, **extra})
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run_pipeline(name: str, config: Path, env: Mapping[str, str], log: Path | None = None) -> float:
    """Run pipeline `name` with `config` and wait; seconds taken.

    With `log`, the run's output is appended to it; without, it is kept only for the
    error. A failed run raises RuntimeError naming the exception's own lines (ZenML's
    traceback box fills the tail) and the end of the output.
    """
    began = time.perf_counter()
    command = pipeline_command(name, config)
    if log is None:
        done = subprocess.run(
            command, cwd=PROJECT_ROOT, env=dict(env), capture_output=True, text=True, check=False
        )
        output = done.stdout + done.stderr
    else:
        with log.open("a", encoding="utf-8") as out:
            done = subprocess.run(
                command, cwd=PROJECT_ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
                text=True, check=False,
            )  # fmt: skip
        output = log.read_text(encoding="utf-8", errors="replace") if done.returncode else ""
    if done.returncode != 0:
        errors = [line for line in output.splitlines() if _EXCEPTION_LINE.match(line)]
        where = f" ({log})" if log is not None else ""
        raise RuntimeError(
            f"{name} failed{where}: " + "\n".join(errors[-20:]) + f"\n...\n{output[-_OUTPUT_TAIL:]}"
        )
    return time.perf_counter() - began
