"""Shared fixtures: an isolated CHURN_HOME and the project's real Redis on a free port.

Every test session gets its own CHURN_HOME (offline store, registries, Redis data)
under pytest's tmp directory and its own Redis port and password, so tests never
touch a developer's .churn/ or a running `churn redis` server. The environment is
set once per session, before any test reads settings, and get_settings' cache is
cleared on the way in and out. Redis itself is started only by tests that ask for
`redis_server`; if redis-server is not installed the session fails loudly (no skip).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from ports import free_port

from churn import redis_local
from churn.settings import PROJECT_ROOT, Settings, get_settings

# The shared copy next to the checkout (DESIGN.md "Data"); CHURN_TELCO_CSV overrides.
SHARED_TELCO_CSV = PROJECT_ROOT.parent / "shared" / "data" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"


@pytest.fixture(scope="session", autouse=True)
def churn_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Session-wide CHURN_* environment pointing at tmp state; yields the Settings."""
    home = tmp_path_factory.mktemp("churn_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHURN_HOME", str(home))
        mp.setenv("CHURN_REDIS_HOST", "127.0.0.1")
        mp.setenv("CHURN_REDIS_PORT", str(free_port()))
        mp.setenv("CHURN_REDIS_PASSWORD", f"test-{secrets.token_hex(8)}")
        mp.setenv("CHURN_REDIS_DB", "0")
        get_settings.cache_clear()
        try:
            yield get_settings()
        finally:
            get_settings.cache_clear()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def redis_server(churn_env: Settings) -> Iterator[redis_local.RedisServerConfig]:
    """A real redis-server for the session, on churn_env's port, data in its home."""
    cfg = redis_local.config_from_settings(churn_env)
    try:
        redis_local.find_redis_server()
    except redis_local.RedisServerError:
        pytest.fail(redis_local.INSTALL_HINT, pytrace=False)
    redis_local.start(cfg)
    try:
        yield cfg
    finally:
        redis_local.stop(cfg)


@pytest.fixture(scope="session")
def telco_csv(churn_env: Settings) -> Path:
    """The real Telco CSV (never committed). Missing = a failure, not a skip."""
    path = churn_env.telco_csv or SHARED_TELCO_CSV
    if not path.is_file():
        pytest.fail(f"the Telco CSV is missing at {path} (set CHURN_TELCO_CSV)", pytrace=False)
    return path
