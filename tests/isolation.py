"""The isolated environment of a test stack: its own home, ports and password.

One home for what makes a test stack independent of a developer's machine and of
every other stack in the same run: CHURN_HOME under pytest's tmp directory, a free
port for each server, a fresh Redis password. The session (tests/conftest.py), the
serving modules (tests/serving/conftest.py) and the dashboard stack
(tests/dashboard/stack_support.py) all build theirs here. A plain module (not a
conftest), so every test module imports the same one.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from ports import free_port

if TYPE_CHECKING:
    from churn.redis_local import RedisServerConfig
    from churn.settings import Settings


def redis_env(home: Path, label: str) -> dict[str, str]:
    """CHURN_HOME and CHURN_REDIS_* of a stack: local Redis on a free port, own password."""
    return {
        "CHURN_HOME": str(home),
        "CHURN_REDIS_HOST": "127.0.0.1",
        "CHURN_REDIS_PORT": str(free_port()),
        "CHURN_REDIS_PASSWORD": f"{label}-{secrets.token_hex(8)}",
        "CHURN_REDIS_DB": "0",
    }


def serving_ports_env(serving_home: Path) -> dict[str, str]:
    """CHURN_SERVING_HOME and a free port for each of MLServer's listeners."""
    return {
        "CHURN_SERVING_HOME": str(serving_home),
        "CHURN_SERVING_HTTP_PORT": str(free_port()),
        "CHURN_SERVING_GRPC_PORT": str(free_port()),
        "CHURN_SERVING_METRICS_PORT": str(free_port()),
    }


def stack_env(home: Path, label: str) -> dict[str, str]:
    """Both: the environment of a whole isolated stack (Redis + MLServer) under `home`."""
    return {**redis_env(home, label), **serving_ports_env(home / "serving")}


@contextmanager
def isolated_stack(
    env: Mapping[str, str], *, redis: bool = True
) -> Iterator[tuple[Settings, RedisServerConfig]]:
    """The process environment set to `env` (e.g. stack_env(...)), settings caches
    cleared on the way in and out, and (`redis`) the stack's own redis-server running.

    Why one home: each module-scoped stack (serving, containers, kube play) did these
    steps in this order by hand; a missed cache_clear leaks one stack's settings into
    the next module's tests.
    """
    from churn import redis_local
    from churn.settings import get_settings
    from serving.settings import get_serving_settings

    def clear() -> None:
        get_settings.cache_clear()
        get_serving_settings.cache_clear()

    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        clear()
        settings = get_settings()
        cfg = redis_local.config_from_settings(settings)
        if redis:
            redis_local.start(cfg)
        try:
            yield settings, cfg
        finally:
            if redis:
                redis_local.stop(cfg)
            clear()
    clear()
