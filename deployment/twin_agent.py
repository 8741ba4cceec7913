"""What Seldon's agent does with a Model, replayed on the production twin.

Why: Seldon Core 2's agent downloads every Model with rclone, through the remote the
storageUri's scheme names (`s3://bucket/key` is read as `s3:bucket/key`), configured
from the Secret the Model names. The production twin runs that same download, with
the remote built by deployment.seldon.render.rclone_remote (the one source the
churn-rclone Secret is rendered from), so a wrong remote name, type or provider fails
here as it would fail the agent. The agent then places the download in its model
repository (`<models dir>/<name>_<version>/<version>/`), rewrites model-settings.json
keeping only the fields its struct knows, and asks MLServer to load it through the
repository API (POST /v2/repository/models/<name>_<version>/load); MLServer itself is
started as the mlserver ServerConfig starts it: the models folder as its argument,
MLSERVER_* variables, nothing loaded at start. The twin does the same steps (read from
Seldon Core 2's scheduler/pkg/agent sources), so a bundle that only works with the
settings the laptop writes fails here.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import requests

from churn.twin import ContainerCommand, Containerize
from deployment import local_server
from deployment.seldon.render import rclone_env
from deployment.seldon.spec import MLSERVER_CONTAINER


class AgentPullError(RuntimeError):
    """rclone could not fetch a storageUri (missing tool, wrong remote, missing object)."""


def rclone_path(storage_uri: str) -> str:
    """The rclone path of a storageUri, as the agent forms it: `<scheme>:<rest>`."""
    scheme, sep, rest = storage_uri.partition("://")
    if not sep or not scheme or not rest:
        raise AgentPullError(f"storageUri {storage_uri!r} is not <scheme>://<path>")
    return f"{scheme}:{rest}"


def pull(storage_uri: str, dest: Path, remote: Mapping[str, Any], timeout_s: float = 120) -> Path:
    """Copy storageUri's objects into dest with rclone and only `remote` configured.

    The environment holds no other rclone remote and no ambient rclone config file, so
    the download succeeds only through the remote given.
    """
    binary = shutil.which("rclone")
    if binary is None:
        raise AgentPullError("rclone was not found on PATH (apt-get install rclone)")
    # AWS_CA_BUNDLE too: a host's bundle makes rclone's S3 client refuse its own transport
    # ("LoadCustomCABundleError"), and the agent's container has none.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("RCLONE_") and k != "AWS_CA_BUNDLE"
    }
    env |= rclone_env(remote) | {"RCLONE_CONFIG": os.devnull}
    dest.mkdir(parents=True, exist_ok=True)
    args = [binary, "copy", "--error-on-no-transfer", rclone_path(storage_uri), str(dest)]
    result = subprocess.run(
        args, capture_output=True, text=True, env=env, timeout=timeout_s, check=False
    )
    if result.returncode != 0:
        raise AgentPullError(f"rclone copy {storage_uri} failed: {result.stderr.strip()}")
    return dest


# ------------------------------------------------------------------ the agent's model repository

# What survives the agent's rewrite of model-settings.json: Seldon Core 2's
# agent/repository/mlserver ModelSettings struct (name, platform, versions,
# parallel_workers, implementation, parameters) and its ModelParameters (uri, version,
# format, content_type, extra). Everything else (inputs, outputs, custom parameters)
# is dropped when the agent re-marshals the file.
AGENT_SETTINGS_FIELDS: Final = ("platform", "versions", "implementation")
AGENT_PARAMETER_FIELDS: Final = ("uri", "version", "format", "content_type", "extra")
SETTINGS_FILE: Final = "model-settings.json"


class AgentLoadError(RuntimeError):
    """A pulled model could not be placed or loaded as the agent would (no settings
    file at the top of the storageUri, MLServer refused the load, no MLServer)."""


def versioned_name(model_name: str, version: int) -> str:
    """The name Seldon's agent gives a Model's version in MLServer: `<name>_<version>`."""
    return f"{model_name}_{version}"


def secret_remote(secret: Mapping[str, Any]) -> dict[str, Any]:
    """The rclone remote a storage Secret holds, read as the agent reads it: each key's
    value is one remote as JSON ({name, type, parameters}); ours holds exactly one."""
    data: dict[str, str] = dict(secret.get("stringData") or {})
    data |= {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    if len(data) != 1:
        name = secret.get("metadata", {}).get("name")
        raise AgentPullError(f"Secret {name!r} holds {len(data)} remotes, expected one")
    remote: dict[str, Any] = json.loads(next(iter(data.values())))
    return remote


def agent_model_settings(settings: Mapping[str, Any], name: str, version: int) -> dict[str, Any]:
    """model-settings.json as the agent rewrites it: the fields its struct knows (empty
    ones omitted, parallel_workers always written), name and parameters.version set."""
    out: dict[str, Any] = {"name": name, "parallel_workers": settings.get("parallel_workers") or 0}
    out |= {k: settings[k] for k in AGENT_SETTINGS_FIELDS if settings.get(k)}
    given = settings.get("parameters") or {}
    parameters = {k: given[k] for k in AGENT_PARAMETER_FIELDS if given.get(k)}
    out["parameters"] = parameters | {"version": str(version)}
    return out


def install_model(
    model: Mapping[str, Any], secret: Mapping[str, Any], models_dir: Path, version: int = 1
) -> str:
    """Download a rendered Model's storageUri and place it as the agent does; returns
    the name MLServer will know it by.

    rclone reads through the remote of the Secret the Model names (spec.secretName);
    the storageUri must hold model-settings.json at its top (the agent's "default
    model" case); the folder lands in <models_dir>/<name>_<version>/<version>/ with
    model-settings.json rewritten by agent_model_settings().
    """
    wanted = model["spec"].get("secretName")
    if wanted != secret["metadata"]["name"]:
        raise AgentPullError(
            f"the Model names Secret {wanted!r}, not {secret['metadata']['name']!r}"
        )
    name = versioned_name(model["metadata"]["name"], version)
    staging = models_dir.parent / "rclone" / name
    shutil.rmtree(staging, ignore_errors=True)
    pull(model["spec"]["storageUri"], staging, secret_remote(secret))
    settings_file = staging / SETTINGS_FILE
    if not settings_file.is_file():
        raise AgentLoadError(f"{model['spec']['storageUri']} has no {SETTINGS_FILE} at its top")
    dest = models_dir / name / str(version)
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(staging, dest)
    shutil.rmtree(staging)
    placed = dest / SETTINGS_FILE
    placed.write_text(
        json.dumps(agent_model_settings(json.loads(placed.read_text()), name, version))
    )
    return name


# ------------------------------------------------------------------ the Server's MLServer


def server_env(
    server: Mapping[str, Any], config_map: Mapping[str, str], secrets: Mapping[str, str]
) -> dict[str, str]:
    """The mlserver container's environment in a rendered Server, as the kubelet builds
    it: envFrom ConfigMap values (`config_map` stands in for them), then its own
    entries, a Secret reference taking its value from `secrets` by variable name."""
    pod = server["spec"]["podSpec"]
    container = next(c for c in pod["containers"] if c["name"] == MLSERVER_CONTAINER)
    env = dict(config_map) if container.get("envFrom") else {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            if entry["name"] not in secrets:
                raise AgentLoadError(f"no value for {entry['name']} (a Secret reference)")
            env[entry["name"]] = secrets[entry["name"]]
    return env


@dataclass(frozen=True)
class AgentServer:
    """An MLServer started as Seldon's mlserver ServerConfig starts it (models dir as
    its folder, configured by MLSERVER_* variables, no model loaded at start)."""

    pid: int
    base_url: str
    models_dir: Path
    log_file: Path
    container: ContainerCommand | None = None  # what runs it, when in a container


def start_server(
    root: Path, env: Mapping[str, str], *, http_port: int, grpc_port: int, metrics_port: int,
    host: str = "127.0.0.1", wait_s: float = 120.0, container: Containerize | None = None,
) -> AgentServer:  # fmt: skip
    """The Server's container command, `serving.server start <models dir>` with the
    Server's environment: a process of this environment, or in the Server's image when
    `container` says how; returns once /v2/health/live answers."""
    models_dir = root / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    log_file = root / "mlserver.log"
    config = {
        "MLSERVER_HOST": host,
        "MLSERVER_HTTP_PORT": str(http_port),
        "MLSERVER_GRPC_PORT": str(grpc_port),
        "MLSERVER_METRICS_PORT": str(metrics_port),
        "MLSERVER_LOAD_MODELS_AT_STARTUP": "false",
        "MLSERVER_MODELS_DIR": str(models_dir),
    }
    command = [*local_server.mlserver_command(), "start", str(models_dir)]
    child_env, wrapped = local_server.child_env({**env, **config}), None
    if container is not None:
        wrapped = container(command, {**env, **config})
        command = list(wrapped.argv)
        child_env = {**os.environ, **env, **config, **wrapped.env}
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = AgentServer(process.pid, f"http://{host}:{http_port}", models_dir, log_file, wrapped)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AgentLoadError(f"MLServer exited ({process.returncode}); see {log_file}")
        try:
            if requests.get(f"{server.base_url}/v2/health/live", timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise AgentLoadError(f"MLServer not live after {wait_s}s; see {log_file}")


def stop_server(server: AgentServer) -> None:
    """Stop the Server's MLServer: its container removed first when it runs in one
    (signalling the engine's client alone can leave it running), then SIGTERM/SIGKILL."""
    removed = None
    if server.container is not None:
        removed = subprocess.run(
            server.container.stop, env={**os.environ, **server.container.env},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    local_server.terminate(server.pid, timeout_s=15.0)
    if removed is not None and removed.returncode != 0:
        raise AgentLoadError(f"could not remove MLServer's container: {removed.stderr}")


def load_model(server: AgentServer, name: str, timeout_s: float = 180.0) -> None:
    """POST /v2/repository/models/<name>/load, as the agent asks MLServer to load a
    model it placed; AgentLoadError with MLServer's answer when it refuses."""
    url = f"{server.base_url}/v2/repository/models/{name}/load"
    response = requests.post(url, timeout=timeout_s)
    if response.status_code != 200:
        raise AgentLoadError(
            f"MLServer refused to load {name} ({response.status_code}): {response.text}"
        )
