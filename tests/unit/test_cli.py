"""The churn CLI's failure paths, without servers: each says what to do, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from ports import free_port

from churn.cli import main
from churn.settings import get_settings


def test_model_champion_without_a_registry_says_to_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHURN_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    try:
        assert main(["model", "champion"]) == 1
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert "no MLflow database" in err and "make training-pipeline" in err
    assert not (tmp_path / "home" / "mlflow").exists()  # nothing created on the way


def test_predict_without_a_server_names_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["predict", "--url", url, "7590-VHVEG"]) == 1
    assert f"no inference server at {url}" in capsys.readouterr().err
