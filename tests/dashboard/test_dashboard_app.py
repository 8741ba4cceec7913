"""The Streamlit script itself, run by Streamlit's AppTest (no browser): every tab renders
with nothing running and nothing on disk, and explains each missing source in words.

A fresh CHURN_HOME (no offline store, no MLflow database, no batch or drift output) and
an endpoint on a port nobody listens on: the page must show one message per source and
no exception. The happy paths are the browser test's (test_dashboard_browser.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ports import free_port
from streamlit.testing.v1 import AppTest

from churn.settings import PROJECT_ROOT, get_settings
from dashboard.data import get_dashboard_settings
from serving.settings import get_serving_settings

APP = PROJECT_ROOT / "dashboard" / "app.py"


def _clear() -> None:
    get_settings.cache_clear()
    get_serving_settings.cache_clear()
    get_dashboard_settings.cache_clear()


@pytest.fixture
def empty_world(tmp_path: Path) -> Iterator[str]:
    """An empty CHURN_HOME and a closed endpoint port; yields the endpoint URL."""
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHURN_HOME", str(tmp_path / "home"))
        mp.delenv("CHURN_MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("CHURN_DASHBOARD_ENDPOINT", url)
        _clear()
        try:
            yield url
        finally:
            _clear()


def _messages(at: AppTest) -> dict[str, list[str]]:
    return {kind: [e.value for e in getattr(at, kind)] for kind in ("error", "warning", "info")}


def test_every_tab_explains_its_missing_source(empty_world: str, tmp_path: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception, at.exception
    assert [t.label for t in at.tabs] == [
        "Customer", "What-if", "At risk", "Model", "Drift", "Business",
    ]  # fmt: skip
    shown = _messages(at)
    assert f"Inference server not reachable at {empty_world}" in shown["error"]
    assert any("its live drift status is unknown" in m for m in shown["error"])
    info = "\n".join(shown["info"])
    assert "Look up a customer on the Customer tab first" in info
    assert f"No batch scores yet (no run under {tmp_path / 'home' / 'predictions'})" in info
    assert "No MLflow database at" in info and "make training-pipeline" in info
    assert "No drift report yet" in info
    assert "No business KPI report yet" in info and "make kpi-pipeline" in info
    assert "No campaign yet" in info
    assert not (tmp_path / "home" / "mlflow").exists()  # looking never creates a database


def test_a_lookup_with_the_server_down_says_so_and_what_to_run(empty_world: str) -> None:
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.text_input(key="lookup_id").input("7590-VHVEG")
    at.button[0].click()
    at.run()
    assert not at.exception, at.exception
    errors = _messages(at)["error"]
    assert any(
        m.startswith(f"The inference server at {empty_world} is not reachable (connection refused")
        and "make deployment-pipeline" in m
        for m in errors
    ), errors
    # The what-if tab now knows the customer and asks for the champion instead.
    assert "Look up a customer" not in "\n".join(_messages(at)["info"])


def test_an_empty_lookup_is_a_warning_not_a_request(empty_world: str) -> None:
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.text_input(key="lookup_id").input("   ")
    at.button[0].click()
    at.run()
    assert _messages(at)["warning"] == ["Enter a customer id (for example 7590-VHVEG)."]
