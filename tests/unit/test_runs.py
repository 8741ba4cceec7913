"""churn.runs: the one way Python code starts the project's pipelines."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from churn import runs
from churn.settings import PROJECT_ROOT


def test_every_pipeline_module_is_known_and_named_as_the_readme_runs_it() -> None:
    modules = sorted(p.stem for p in (PROJECT_ROOT / "pipelines").glob("*_pipeline.py"))
    assert sorted(runs.PIPELINE_NAMES) == modules
    command = runs.pipeline_command("batch_inference_pipeline", Path("c.yaml"), zenml="zenml")
    assert command == [
        "zenml", "pipeline", "run",
        "pipelines.batch_inference_pipeline.batch_inference_pipeline", "-c", "c.yaml",
    ]  # fmt: skip
    with pytest.raises(KeyError, match="unknown pipeline 'train'"):
        runs.pipeline_command("train", Path("c.yaml"))


def test_a_config_is_the_pipelines_yaml_with_overrides(tmp_path: Path) -> None:
    path = runs.pipeline_config("training_pipeline", {"seed": 7}, tmp_path, {"cv_folds": 3})
    written = yaml.safe_load(path.read_text())["parameters"]
    original = yaml.safe_load((PROJECT_ROOT / "configs" / "training_pipeline.yaml").read_text())
    assert written == {**original["parameters"], "seed": 7, "cv_folds": 3}


def test_an_isolated_environment_points_every_store_at_its_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://elsewhere")
    env = runs.isolated_environment(tmp_path)
    assert env["CHURN_HOME"] == str(tmp_path)
    assert env["ZENML_CONFIG_PATH"] == str(tmp_path / "zenml")
    assert "MLFLOW_TRACKING_URI" not in env


@pytest.mark.parametrize("with_log", [False, True])
def test_a_failed_run_raises_naming_the_pipeline_and_keeps_its_output(
    tmp_path: Path, with_log: bool
) -> None:
    """A real `zenml pipeline run` with a config that does not exist fails fast."""
    env = runs.isolated_environment(tmp_path / "home")
    log = tmp_path / "run.log" if with_log else None
    with pytest.raises(RuntimeError, match="training_pipeline failed") as info:
        runs.run_pipeline("training_pipeline", tmp_path / "missing.yaml", env, log=log)
    assert "missing.yaml" in str(info.value)
    if log is not None:
        assert "missing.yaml" in log.read_text()
