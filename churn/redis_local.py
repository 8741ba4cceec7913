"""Start, stop and probe the project's own local Redis server.

The project never touches a system-wide Redis: it runs `redis-server` on its own
port with its own data directory and a password (all from churn.settings), so that
tests, demos and a user's other work cannot interfere. The same functions back the
`churn redis start|stop|status` command, the Makefile and the test fixtures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from churn.settings import Settings

INSTALL_HINT = (
    "redis-server was not found on PATH. Install it, e.g. `apt-get install redis-server` "
    "(Debian/Ubuntu), `brew install redis` (macOS), or run `make setup` as root."
)


class RedisServerError(RuntimeError):
    """The local Redis server could not be found, started or reached."""


@dataclass(frozen=True)
class RedisServerConfig:
    """Where and how one local Redis server runs."""

    host: str
    port: int
    password: str
    data_dir: Path

    @property
    def pid_file(self) -> Path:
        """File where redis-server writes its pid (daemonized)."""
        return self.data_dir / "redis.pid"

    @property
    def log_file(self) -> Path:
        """redis-server's own log, the first place to look when start fails."""
        return self.data_dir / "redis.log"


def config_from_settings(settings: Settings) -> RedisServerConfig:
    """The project's local Redis as configured by CHURN_REDIS_* and CHURN_HOME."""
    return RedisServerConfig(
        host=settings.redis_host,
        port=settings.redis_port,
        password=settings.redis_password.get_secret_value(),
        data_dir=settings.redis_dir,
    )


def find_redis_server() -> str:
    """Path of redis-server, or a RedisServerError saying how to install it."""
    path = shutil.which("redis-server")
    if path is None:
        raise RedisServerError(INSTALL_HINT)
    return path


def client(cfg: RedisServerConfig, timeout_s: float = 1.0) -> redis.Redis:
    """A client with short timeouts: a down server fails fast instead of hanging."""
    return redis.Redis(
        host=cfg.host,
        port=cfg.port,
        password=cfg.password or None,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )


def is_running(cfg: RedisServerConfig) -> bool:
    """True when a server answers PING with our password on our port."""
    try:
        return bool(client(cfg, timeout_s=0.5).ping())
    except redis.RedisError:
        return False


def start(cfg: RedisServerConfig, wait_s: float = 10.0) -> None:
    """Start redis-server daemonized on cfg's port; a no-op when it already answers.

    Persistence: RDB snapshots in cfg.data_dir (appendonly off: the online store is a
    cache that `feast materialize` can always rebuild).
    """
    if is_running(cfg):
        return
    binary = find_redis_server()
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        binary,
        "--port", str(cfg.port),
        "--bind", cfg.host,
        "--dir", str(cfg.data_dir),
        "--dbfilename", "dump.rdb",
        "--daemonize", "yes",
        "--pidfile", str(cfg.pid_file),
        "--logfile", str(cfg.log_file),
        "--save", "60 1000",
        "--appendonly", "no",
        "--protected-mode", "yes",
    ]  # fmt: skip
    if cfg.password:
        args += ["--requirepass", cfg.password]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RedisServerError(
            f"redis-server exited with {result.returncode}: {result.stderr.strip()} "
            f"(log: {cfg.log_file})"
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if is_running(cfg):
            return
        time.sleep(0.05)
    raise RedisServerError(
        f"redis-server on {cfg.host}:{cfg.port} did not answer within {wait_s}s; see {cfg.log_file}"
    )


def stop(cfg: RedisServerConfig, wait_s: float = 10.0) -> None:
    """Stop the server started by start(); a no-op when none runs.

    SHUTDOWN NOSAVE: the data is a rebuildable cache, and a save on the way down
    would make stop slow for large stores.
    """
    if is_running(cfg):
        # The server closes the connection as it exits: an expected ConnectionError.
        with contextlib.suppress(redis.ConnectionError):
            client(cfg).shutdown(nosave=True)
    elif cfg.pid_file.exists():
        _kill_stale(cfg.pid_file)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not is_running(cfg):
            return
        time.sleep(0.05)
    raise RedisServerError(f"redis-server on port {cfg.port} still answers after {wait_s}s")


def _kill_stale(pid_file: Path) -> None:
    """Terminate a server that no longer answers (e.g. a wrong password) by pid."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (ValueError, ProcessLookupError, PermissionError):
        pass
