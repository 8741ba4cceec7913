"""The production twin for tests: its own home, free ports, started and stopped here.

The home is a fresh directory under the system temp dir (not pytest's tmp_path): as
root, PostgreSQL runs as the `postgres` user, which cannot enter pytest's mode-0700
base directory. A service that cannot start fails the session (no skip).

Where a container engine runs, the twin runs the project's images as `make twin-demo`
does (deployment.twin_images; built first when missing): the MLflow server in
churn-steps for the whole session, the agent's MLServer in churn-mlserver. Without
one, processes (and tests/twin/test_twin_images.py is skipped, or fails under CI).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers_support import image
from ports import free_port

from churn import twin
from deployment.containers import find_engine
from deployment.twin_images import MLSERVER_IMAGE, STEPS_IMAGE, TwinImages, with_images


@pytest.fixture(scope="session")
def twin_images() -> TwinImages | None:
    """The project's images on this machine's engine (built when missing), None
    without an engine."""
    engine = find_engine()
    if engine is None:
        return None
    refs = [image(engine, name) for name in (STEPS_IMAGE, MLSERVER_IMAGE)]
    return TwinImages(engine, refs[0].rsplit(":", 1)[1])


@pytest.fixture(scope="session")
def twin_config(twin_images: TwinImages | None) -> Iterator[twin.TwinConfig]:
    """A twin home (mode 0711, so the postgres user can reach its own folder) and ports,
    its MLflow server in the steps image where there is one."""
    home = Path(tempfile.mkdtemp(prefix="churn-twin-"))
    home.chmod(0o711)
    cfg = twin.TwinConfig(
        home=home,
        redis_port=free_port(),
        postgres_port=free_port(),
        s3_port=free_port(),
        mlflow_port=free_port(),
    )
    yield with_images(cfg, twin_images)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def twin_up(twin_config: twin.TwinConfig) -> Iterator[twin.Credentials]:
    """Every twin service running for the session; stopped at its end."""
    try:
        creds = twin.up(twin_config)
    except twin.TwinError as e:
        twin.down(twin_config)
        pytest.fail(f"the twin did not start: {e}", pytrace=False)
    try:
        yield creds
    finally:
        twin.down(twin_config)


@pytest.fixture
def twin_environ(
    twin_config: twin.TwinConfig, twin_up: twin.Credentials, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The twin's client environment set for one test (os.environ restored after)."""
    env = twin.client_env(twin_config, twin_up)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert os.environ["SSL_CERT_FILE"] == str(twin_config.ca_file)
    return env
