"""The production twin on the project's images: MLflow from churn-steps, the Seldon
Server's MLServer from churn-mlserver.

Why: the twin's processes run this environment's packages, not what the cluster runs.
A driver missing from an image (psycopg2 for RDS was one), a read-only root the server
writes to, a CA the image's Python does not read, or a module the image lacks would
pass the twin and fail the first deploy. Where an engine runs and both images are
built, the twin runs them as k8s/ runs them: uid 1000, read-only root, no
capabilities, writable only where the manifests mount emptyDirs, on the host network
(the twin's services listen on 127.0.0.1):

- MLflow: the churn-steps image with the MLflow Deployment's command and its EKS
  environment (churn.twin.mlflow_command / mlflow_env: backend on the PostgreSQL twin
  through psycopg2, artifacts to the S3 twin), HOME=/tmp as the Deployment sets it;
- the agent's MLServer: the churn-mlserver image with the rendered Server's command
  and environment, the models folder the agent's pull filled mounted read-only where
  Seldon mounts its model volume, and the twin's CA mounted read-only with
  SSL_CERT_FILE naming it (the image's Python trusts it for the TLS Redis).

CHURN_TWIN_IMAGES chooses: `auto` (default) the images when an engine runs and both
are built (`make images`), else processes; `1` the images or an error saying why
not; `0` processes. IMAGE_TAG picks the tag (as `make images`).

    python -m deployment.twin_images up|down|reset|status|env   (the make twin-* targets)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from churn import twin
from deployment.containers import (
    DEFAULT_TAG,
    ContainerError,
    Engine,
    find_engine,
    manifest_run_args,
)
from deployment.seldon.spec import MLSERVER_CONTAINER, SERVER_COMMAND, WRITABLE

SETTING: Final = "CHURN_TWIN_IMAGES"
STEPS_IMAGE: Final = "churn-steps"
MLSERVER_IMAGE: Final = "churn-mlserver"
# k8s/base/mlflow/deployment.yaml: HOME=/tmp; emptyDirs on /tmp and /var/lib/mlflow
MLFLOW_HOME: Final = "/tmp"
MLFLOW_WRITABLE: Final = ("/tmp", "/var/lib/mlflow")
# Seldon's model volume in the Server pod, where the agent places each Model
AGENT_MODELS_DIR: Final = "/mnt/agent/models"
CA_FILE: Final = "/etc/churn-twin/ca.crt"
# The Server's CHURN_HOME: on a writable emptyDir (the image's own is on the read-only root)
SERVER_HOME: Final = "/tmp/churn"


@dataclass(frozen=True)
class TwinImages:
    """The engine and the tag of the project's images the twin runs."""

    engine: Engine
    tag: str = DEFAULT_TAG

    def ref(self, name: str) -> str:
        """`name:tag`, as `make images` tags it."""
        return f"{name}:{self.tag}"


def images_from_env(environ: Mapping[str, str] | None = None) -> TwinImages | None:
    """The images CHURN_TWIN_IMAGES asks for, None for processes; ContainerError when
    it says 1 and there is no engine or an image is not built."""
    env = os.environ if environ is None else environ
    mode = env.get(SETTING, "auto").strip().lower()
    if mode not in ("auto", "1", "0"):
        raise ContainerError(f"{SETTING}={mode!r}: expected auto, 1 or 0")
    if mode == "0":
        return None
    engine = find_engine()
    images = None if engine is None else TwinImages(engine, env.get("IMAGE_TAG", DEFAULT_TAG))
    if images is None:
        missing = ["a container engine"]
    else:
        refs = [images.ref(name) for name in (STEPS_IMAGE, MLSERVER_IMAGE)]
        missing = [ref for ref in refs if not images.engine.image_exists(ref)]
    if not missing:
        return images
    if mode == "1":
        raise ContainerError(f"{SETTING}=1 but {', '.join(missing)} is missing (make images)")
    return None


def _by_name(env: Mapping[str, str], values: Mapping[str, str]) -> list[str]:
    """`-e NAME` for each variable of `env` (the value read from the engine client's
    environment: no secret on a command line), `-e NAME=value` for `values`."""
    args = [a for name in env if name not in values for a in ("-e", name)]
    return args + [a for name, value in values.items() for a in ("-e", f"{name}={value}")]


@dataclass(frozen=True)
class MlflowContainer:
    """churn.twin's Containerize for the MLflow server: the churn-steps image run as the
    MLflow Deployment's pod runs it."""

    images: TwinImages
    name: str

    def __call__(self, command: Sequence[str], env: Mapping[str, str]) -> twin.ContainerCommand:
        """`<engine> run --rm` of `command` with `env`, HOME as the Deployment sets it."""
        engine = self.images.engine
        args = ["run", "--rm", "--name", self.name, "--network", "host"]
        args += manifest_run_args(tmpfs=MLFLOW_WRITABLE)
        args += _by_name(env, {"HOME": MLFLOW_HOME})
        argv = engine.command(*args, self.images.ref(STEPS_IMAGE), *command)
        return twin.ContainerCommand(tuple(argv), dict(engine.env), _remove(engine, self.name))


@dataclass(frozen=True)
class ServerContainer:
    """deployment.twin_agent's container for the Server's MLServer: the churn-mlserver
    image with the models folder and the twin's CA mounted read-only."""

    images: TwinImages
    name: str
    models_dir: Path
    ca_file: Path

    def __call__(self, command: Sequence[str], env: Mapping[str, str]) -> twin.ContainerCommand:
        """The rendered Server's command on the mounted models folder; `command` (this
        environment's interpreter) gives way to the image's, host paths to mounts."""
        del command  # the image's own: the rendered Server's SERVER_COMMAND
        engine = self.images.engine
        inside = {
            "MLSERVER_MODELS_DIR": AGENT_MODELS_DIR,
            "SSL_CERT_FILE": CA_FILE,
            "CHURN_HOME": SERVER_HOME,
        }
        writable = tuple(path for path, _ in WRITABLE[MLSERVER_CONTAINER].values())
        mounts = [(self.models_dir, AGENT_MODELS_DIR, "ro"), (self.ca_file, CA_FILE, "ro")]
        args = ["run", "--rm", "--name", self.name, "--network", "host"]
        args += manifest_run_args(tmpfs=writable, mounts=mounts)
        args += _by_name(env, inside)
        argv = engine.command(
            *args, self.images.ref(MLSERVER_IMAGE), *SERVER_COMMAND, AGENT_MODELS_DIR
        )
        return twin.ContainerCommand(tuple(argv), dict(engine.env), _remove(engine, self.name))


def _remove(engine: Engine, name: str) -> tuple[str, ...]:
    """argv that removes container `name` (its engine's settings are in ContainerCommand.env)."""
    return tuple(engine.command("rm", "-f", "-t", "10", name))


def with_images(cfg: twin.TwinConfig, images: TwinImages | None) -> twin.TwinConfig:
    """cfg with its MLflow server in the churn-steps image (unchanged for None). The
    container is named after the twin's MLflow port: one per twin, found again by down."""
    if images is None:
        return cfg
    container = MlflowContainer(images, f"churn-twin-mlflow-{cfg.mlflow_port}")
    return replace(cfg, mlflow_container=container)


def config_from_env(environ: Mapping[str, str] | None = None) -> twin.TwinConfig:
    """churn.twin's config of the environment, on the images CHURN_TWIN_IMAGES chooses."""
    return with_images(twin.config_from_env(environ), images_from_env(environ))


def main(argv: list[str] | None = None) -> int:
    """The make twin-* targets: churn.twin's commands, `up` on config_from_env() (the
    others need no image: down finds how MLflow was started in its folder)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["up"]:
        return twin.main(args)
    try:
        cfg = config_from_env()
    except ContainerError as e:
        sys.stderr.write(f"twin: {e}\n")
        return 1
    return twin.main(args, cfg)


if __name__ == "__main__":
    raise SystemExit(main())
