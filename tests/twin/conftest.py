"""The production twin for tests: its own home, free ports, started and stopped here.

The home is a fresh directory under the system temp dir (not pytest's tmp_path): as
root, PostgreSQL runs as the `postgres` user, which cannot enter pytest's mode-0700
base directory. A service that cannot start fails the session (no skip).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ports import free_port

from churn import twin


@pytest.fixture(scope="session")
def twin_config() -> Iterator[twin.TwinConfig]:
    """A twin home (mode 0711, so the postgres user can reach its own folder) and ports."""
    home = Path(tempfile.mkdtemp(prefix="churn-twin-"))
    home.chmod(0o711)
    yield twin.TwinConfig(
        home=home,
        redis_port=free_port(),
        postgres_port=free_port(),
        s3_port=free_port(),
        mlflow_port=free_port(),
    )
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
