"""`make zenml-ui`, as users run it: ZenML's server and dashboard from the separate
pinned environment (tools/zenml-ui.lock, built into the project's .churn/tools on first
use and reused after), over a real ZenML store in an isolated ZENML_CONFIG_PATH holding
one real pipeline run. The dashboard's page and the REST API's runs are checked over
HTTP; after the server stops, the project's own zenml still reads the same local store
through an unchanged client config."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from ports import free_port

from churn.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

SCRIPT = PROJECT_ROOT / "scripts" / "zenml_ui.sh"
ZENML = str(Path(sys.executable).with_name("zenml"))
PIPELINE = "zenml_ui_probe"
# First use builds the tool env (about 30 s with an empty uv cache); later it starts in seconds.
START_TIMEOUT_S = 300
PROBE = textwrap.dedent(
    f"""
    import json

    from zenml import pipeline, step


    @step
    def answer() -> int:
        return 42


    @pipeline
    def {PIPELINE}() -> None:
        answer()


    if __name__ == "__main__":
        run = {PIPELINE}()
        print(json.dumps({{"run_id": str(run.id), "status": str(run.status)}}))
    """
)


@dataclass(frozen=True)
class Store:
    config: Path  # ZENML_CONFIG_PATH
    db: Path
    run_id: str
    env: dict[str, str]


def _zenml_env(config: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ZENML_CONFIG_PATH": str(config),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_LOGGING_VERBOSITY": "WARN",
        "AUTO_OPEN_DASHBOARD": "false",
    }


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, (
        f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    )
    return result


def _client_runs(store: Store) -> dict[str, str]:
    """Run id -> status, as the project's zenml CLI lists them from the store."""
    listed = _run(
        [ZENML, "pipeline", "runs", "list", "--pipeline_name", PIPELINE, "--output", "json"],
        store.env,
        store.config.parent,
    )
    return {item["id"]: item["status"] for item in json.loads(listed.stdout)["items"]}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A fresh ZenML store holding one run of a one-step pipeline, made by the project's
    zenml (the .venv this test runs in), with the pipeline in a file run as __main__."""
    home = tmp_path_factory.mktemp("zenml_ui")
    config, source = home / "zenml", home / "source"
    source.mkdir()
    (source / "probe.py").write_text(PROBE)
    env = _zenml_env(config)
    ran = _run([sys.executable, "probe.py"], env, source)
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["status"] == "completed", ran.stdout
    db = config / "local_stores" / "default_zen_store" / "zenml.db"
    assert db.is_file(), f"ZenML 0.94.6 keeps its local SQLite store at {db}; not found"
    return Store(config=config, db=db, run_id=result["run_id"], env=env)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"zenml_ui.sh exited ({process.returncode}):\n{log.read_text()}")
        try:
            if requests.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"ZenML server not healthy after {START_TIMEOUT_S}s:\n{log.read_text()}")


@contextmanager
def _zenml_ui(store: Store) -> Iterator[str]:
    """scripts/zenml_ui.sh (what `make zenml-ui` runs) on a free port; yields its URL.
    On the way out it is stopped with Ctrl+C's signal, as a user stops it, and must
    shut down cleanly."""
    port = free_port()
    log = store.config.parent / "zenml-ui.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", str(SCRIPT), "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=store.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: a build's children go with it
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_dashboard_and_api_show_the_run_and_the_client_store_still_works(store: Store) -> None:
    client_config = (store.config / "config.yaml").read_bytes()
    with _zenml_ui(store) as ui:
        page = requests.get(f"{ui}/", timeout=10)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "<title>ZenML Dashboard</title>" in page.text

        # NO_AUTH: no credentials, every request is the store's default user
        info = requests.get(f"{ui}/api/v1/info", timeout=10).json()
        assert (info["version"], info["auth_scheme"], info["database_type"]) == (
            "0.94.6", "NO_AUTH", "sqlite"
        )  # fmt: skip
        runs = requests.get(f"{ui}/api/v1/runs", params={"size": 100}, timeout=30)
        assert runs.status_code == 200, runs.text
        statuses = {item["id"]: item["body"]["status"] for item in runs.json()["items"]}
        assert statuses == {store.run_id: "completed"}
        pipelines = requests.get(f"{ui}/api/v1/pipelines", params={"name": PIPELINE}, timeout=30)
        assert pipelines.status_code == 200, pipelines.text
        assert [p["name"] for p in pipelines.json()["items"]] == [PIPELINE]

    # The server is stopped. The client config was not rewritten to point at it, the
    # schema was not migrated, and the project's zenml lists the run from the SQLite file.
    assert (store.config / "config.yaml").read_bytes() == client_config
    assert f"url: sqlite:///{store.db}" in client_config.decode()
    with sqlite3.connect(f"{store.db.as_uri()}?mode=ro", uri=True) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0.94.6",)]
    assert _client_runs(store) == {store.run_id: "completed"}


def _start_refused(config: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run the UI script over the store at `config`, for a case it must refuse."""
    return subprocess.run(
        ["bash", str(SCRIPT), "--port", str(free_port())],
        cwd=PROJECT_ROOT,
        env=_zenml_env(config),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def test_no_store_is_refused_with_how_to_make_one(tmp_path: Path) -> None:
    config = tmp_path / "zenml"
    result = _start_refused(config, timeout_s=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "run `make demo` or a pipeline first" in result.stderr
    assert not config.exists()  # nothing created on the way to refusing


def test_a_store_at_another_schema_is_refused_not_migrated(store: Store, tmp_path: Path) -> None:
    """A store written by another zenml: the server never migrates, so it does not start."""
    config = tmp_path / "zenml"
    db = config / "local_stores" / "default_zen_store" / "zenml.db"
    db.parent.mkdir(parents=True)
    shutil.copy(store.db, db)
    (config / "config.yaml").write_text(
        (store.config / "config.yaml").read_text().replace(str(store.db), str(db))
    )
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0.94.5'")
    result = _start_refused(config, timeout_s=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "never migrates" in result.stderr and "0.94.5" in result.stderr, result.stderr
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("0.94.5",)
        ]
