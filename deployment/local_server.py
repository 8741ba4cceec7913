"""The project's own local MLServer: start, stop, status and zero-downtime reload.

State lives under ServingSettings.serving_home (default <CHURN_HOME>/serving):

    repository/settings.json                MLServer server settings (ports, metrics)
    repository/<model>/model-settings.json  points at the bundle being served
    mlserver.pid, mlserver.log              the process and its output

Bundles stay where they were built (outside the repository: MLServer loads every
model-settings.json it finds under its repository root). `reload()` points
model-settings.json at a new bundle and asks MLServer to load it through the
repository API (POST /v2/repository/models/<name>/load). MLServer loads the new
instance BEFORE it swaps it in and unloads the old one (the model has no MLServer
version: see serving.bundle), so requests keep being answered during a reload, and a
bundle that fails to load leaves the old one serving (and model-settings.json is
restored). Used by the Makefile, the deployment pipeline and the tests:

    python -m deployment.local_server start <bundle> | stop | status | reload <bundle>
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from churn.files import write_json_atomic
from churn.inference import local_base_url
from churn.settings import PROJECT_ROOT
from deployment.bundle import model_settings, server_settings
from serving.bundle import MODEL_SETTINGS, SERVER_SETTINGS, read_manifest
from serving.settings import ServingSettings, get_serving_settings

SERVER_MODULE = "serving.server"  # MLServer with the churn front
_LOG_TAIL = 40  # lines of the server log quoted by errors


class ServerError(RuntimeError):
    """The local MLServer could not be started, reached, stopped or reloaded."""


@dataclass(frozen=True)
class ServerPaths:
    """Where the local server's files live."""

    root: Path

    @property
    def repository(self) -> Path:
        """MLServer's model repository root (its working directory too)."""
        return self.root / "repository"

    @property
    def pid_file(self) -> Path:
        """Pid of the running `mlserver start`."""
        return self.root / "mlserver.pid"

    @property
    def log_file(self) -> Path:
        """MLServer's stdout and stderr."""
        return self.root / "mlserver.log"

    def model_settings_file(self, model_name: str) -> Path:
        """The repository entry of one model."""
        return self.repository / model_name / MODEL_SETTINGS


@dataclass(frozen=True)
class ServerStatus:
    """What `status()` found."""

    pid: int | None
    live: bool
    ready: bool
    url: str


def paths(settings: ServingSettings | None = None) -> ServerPaths:
    """The local server's paths for `settings`."""
    return ServerPaths((settings or get_serving_settings()).serving_home)


def base_url(settings: ServingSettings | None = None) -> str:
    """REST base URL of the local server."""
    s = settings or get_serving_settings()
    return local_base_url(s.host, s.http_port)


def log_tail(settings: ServingSettings | None = None, lines: int = _LOG_TAIL) -> str:
    """The last lines of the server log (for error messages)."""
    log = paths(settings).log_file
    if not log.is_file():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def install(bundle_dir: Path, settings: ServingSettings | None = None) -> Path:
    """Write the repository so that the next start serves `bundle_dir`; returns the repo root.

    The bundle's manifest is verified first (BundleError otherwise).
    """
    s = settings or get_serving_settings()
    bundle_dir = bundle_dir.resolve()
    read_manifest(bundle_dir)
    p = paths(s)
    p.repository.mkdir(parents=True, exist_ok=True)
    write_json_atomic(p.repository / SERVER_SETTINGS, server_settings(s))
    entry = p.model_settings_file(s.model_name)
    entry.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(entry, model_settings(s.model_name, str(bundle_dir)))
    return p.repository


def mlserver_command() -> list[str]:
    """MLServer's CLI with the churn front (serving.server), on this interpreter."""
    return [sys.executable, "-m", SERVER_MODULE]


def child_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """This process's environment plus `extra`, with the project importable."""
    env = dict(os.environ)
    # The runtime (serving.runtime) and churn must import in the server process even
    # when the project is not installed.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
    )
    env.update(extra or {})
    return env


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _is_our_server(pid: int, repository: Path) -> bool:
    """True if `pid` is a `serving.server start` of this repository (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, PermissionError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True  # no /proc (macOS): trust the pid file
    args = [a.decode(errors="replace") for a in cmdline if a]
    return SERVER_MODULE in args and str(repository) in args


def running_pid(settings: ServingSettings | None = None) -> int | None:
    """Pid of the project's running server, or None (a stale pid file is ignored)."""
    p = paths(settings)
    pid = _read_pid(p.pid_file)
    if pid is None or not _is_our_server(pid, p.repository):
        return None
    return pid


def _get(url: str, timeout: float = 1.0) -> requests.Response | None:
    try:
        return requests.get(url, timeout=timeout)
    except requests.RequestException:
        return None


def model_ready(settings: ServingSettings | None = None) -> bool:
    """True when /v2/models/<model>/ready answers 200."""
    s = settings or get_serving_settings()
    r = _get(f"{base_url(s)}/v2/models/{s.model_name}/ready")
    return r is not None and r.status_code == 200


def status(settings: ServingSettings | None = None) -> ServerStatus:
    """Is the server running, live, and is the churn model ready?"""
    s = settings or get_serving_settings()
    live = _get(f"{base_url(s)}/v2/health/live")
    return ServerStatus(
        pid=running_pid(s),
        live=live is not None and live.status_code == 200,
        ready=model_ready(s),
        url=base_url(s),
    )


def start(
    bundle_dir: Path | None = None,
    settings: ServingSettings | None = None,
    *,
    env: Mapping[str, str] | None = None,
    wait: bool = True,
) -> int:
    """Start `mlserver start <repository>` in the background; returns its pid.

    With `bundle_dir`, the repository is (re)written to serve it first. Waits (unless
    wait=False) until /v2/models/<model>/ready answers 200; raises ServerError with
    the log's tail if the process exits first (e.g. a corrupt bundle: MLServer shuts
    down when a model fails to load at startup) or the wait times out. A server
    already running is an error: use reload().
    """
    s = settings or get_serving_settings()
    p = paths(s)
    existing = running_pid(s)
    if existing is not None:
        raise ServerError(f"a local MLServer already runs (pid {existing}); stop or reload it")
    check_ports_free(s)
    if bundle_dir is not None:
        install(bundle_dir, s)
    if not p.model_settings_file(s.model_name).is_file():
        raise ServerError(f"nothing to serve: {p.model_settings_file(s.model_name)} is missing")
    p.root.mkdir(parents=True, exist_ok=True)
    with p.log_file.open("ab") as log:
        process = subprocess.Popen(
            [*mlserver_command(), "start", str(p.repository)],
            cwd=p.repository,
            env=child_env(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    p.pid_file.write_text(f"{process.pid}\n")
    if wait:
        try:
            wait_ready(s, process=process)
        except ServerError:
            terminate(process.pid, timeout_s=5.0)
            p.pid_file.unlink(missing_ok=True)
            raise
    return process.pid


def check_ports_free(settings: ServingSettings | None = None) -> None:
    """ServerError naming the port when another process listens on one of the server's.

    Why: the readiness poll asks the port, not the process; with another server there
    (another checkout's, a leftover) it would answer "ready" for a model this checkout
    never loaded while the new process fails to bind, and a deployment would report
    success for the wrong server.
    """
    s = settings or get_serving_settings()
    for name, port in (("http", s.http_port), ("grpc", s.grpc_port), ("metrics", s.metrics_port)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
            try:
                probe.bind((s.host, port))
            except OSError as e:
                raise ServerError(
                    f"{name} port {port} on {s.host} is taken by another process ({e.strerror}): "
                    "stop it, or give this checkout other ports (CHURN_SERVING_HTTP_PORT, "
                    "CHURN_SERVING_GRPC_PORT, CHURN_SERVING_METRICS_PORT)"
                ) from e


def wait_ready(
    settings: ServingSettings | None = None, *, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll until the model is ready; ServerError if the process dies or time runs out."""
    s = settings or get_serving_settings()
    deadline = time.monotonic() + s.startup_timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerError(
                f"mlserver exited with code {process.returncode} before model "
                f"{s.model_name!r} was ready; last log lines:\n{log_tail(s)}"
            )
        if model_ready(s):
            return
        time.sleep(0.1)
    raise ServerError(
        f"model {s.model_name!r} not ready after {s.startup_timeout_s}s at {base_url(s)}; "
        f"last log lines:\n{log_tail(s)}"
    )


def terminate(pid: int, timeout_s: float) -> None:
    """SIGTERM (MLServer shuts down gracefully), then SIGKILL after timeout_s."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child: poll for existence instead
            finished = 0
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        if finished == pid:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def stop(settings: ServingSettings | None = None, timeout_s: float = 15.0) -> bool:
    """Stop the project's server; False when none was running."""
    s = settings or get_serving_settings()
    p = paths(s)
    pid = running_pid(s)
    p.pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    terminate(pid, timeout_s)
    return True


def served_version(settings: ServingSettings | None = None) -> str | None:
    """The model_version the running server reports in its V2 model metadata."""
    s = settings or get_serving_settings()
    r = _get(f"{base_url(s)}/v2/models/{s.model_name}", timeout=5.0)
    if r is None or r.status_code != 200:
        return None
    params: dict[str, Any] = r.json().get("parameters") or {}
    version = params.get("model_version")
    return str(version) if version is not None else None


def reload(
    bundle_dir: Path, settings: ServingSettings | None = None, timeout_s: float = 120.0
) -> str:
    """Serve `bundle_dir` instead of the current bundle, without downtime; returns its version.

    The manifest is verified before the server is touched. If MLServer cannot load
    the new bundle, the previous model keeps serving, model-settings.json is restored,
    and ServerError carries MLServer's error message.
    """
    s = settings or get_serving_settings()
    bundle_dir = bundle_dir.resolve()
    manifest = read_manifest(bundle_dir)
    if running_pid(s) is None:
        raise ServerError("no local MLServer is running; use start()")
    entry = paths(s).model_settings_file(s.model_name)
    previous = entry.read_text() if entry.is_file() else None
    write_json_atomic(entry, model_settings(s.model_name, str(bundle_dir)))
    try:
        r = requests.post(
            f"{base_url(s)}/v2/repository/models/{s.model_name}/load", timeout=timeout_s
        )
    except requests.RequestException as e:
        _restore(entry, previous)
        raise ServerError(f"reload request to {base_url(s)} failed: {e}") from e
    if r.status_code != 200:
        _restore(entry, previous)
        raise ServerError(
            f"MLServer refused bundle {bundle_dir} (HTTP {r.status_code}): {r.text}; "
            "the previous model is still served"
        )
    version = served_version(s)
    if version != manifest.model_version:
        raise ServerError(
            f"after reload the server reports version {version!r}, expected "
            f"{manifest.model_version!r}"
        )
    return version


def _restore(entry: Path, previous: str | None) -> None:
    if previous is None:
        entry.unlink(missing_ok=True)
    else:
        tmp = entry.with_name(f".{entry.name}.tmp")
        tmp.write_text(previous)
        tmp.replace(entry)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m deployment.local_server start|stop|status|reload [bundle]`."""
    parser = argparse.ArgumentParser(prog="python -m deployment.local_server", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    start_p = sub.add_parser("start", help="start serving a bundle (or the installed one)")
    start_p.add_argument("bundle", nargs="?", type=Path)
    sub.add_parser("stop", help="stop the local server")
    sub.add_parser("status", help="pid, liveness, readiness")
    reload_p = sub.add_parser("reload", help="serve another bundle without downtime")
    reload_p.add_argument("bundle", type=Path)
    args = parser.parse_args(argv)
    s = get_serving_settings()
    if args.action == "start":
        pid = start(args.bundle, s)
        _say(f"mlserver: pid {pid}, model {s.model_name!r} ready at {base_url(s)}")
    elif args.action == "stop":
        _say("mlserver: stopped" if stop(s) else "mlserver: not running")
    elif args.action == "status":
        st = status(s)
        _say(json.dumps(st.__dict__))
        return 0 if st.ready else 1
    else:
        version = reload(args.bundle, s)
        _say(f"mlserver: now serving version {version} from {args.bundle}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
