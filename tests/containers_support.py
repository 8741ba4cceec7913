"""Running the project's images in tests: the engine, the images, one container at a time.

The engine and the builds are deployment.containers' (the same choice `make images`
makes). A test that needs an image gets it built when it is missing (several minutes
the first time; `make images` first makes the run faster). Without any engine the
tests are skipped with one reason, except under CI=true, where they fail.

Containers run on the host network (so they reach the test's own Redis on
127.0.0.1, as on a pod's localhost with a sidecar) and are removed afterwards; a
failure quotes the container's log.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

import pytest
from inputs import in_ci

from deployment.containers import DEFAULT_TAG, Engine, build_images, find_engine

ENGINE_SKIP: Final = (
    "needs a container engine: Docker with a running daemon, or podman "
    "(make setup installs podman and runc when root on Debian)"
)


def engine_or_skip(name: str | None = None) -> Engine:
    """The engine (`name`: that one only); skipped with ENGINE_SKIP when none runs here,
    a failure under CI."""
    engine = find_engine(name)
    if engine is None:
        what = f"{name}: {ENGINE_SKIP}" if name else ENGINE_SKIP
        if in_ci():
            pytest.fail(f"CI=true and no container engine: {what}", pytrace=False)
        pytest.skip(what)
    return engine


def image(engine: Engine, name: str) -> str:
    """`name:$IMAGE_TAG` (as `make images` tags it), built first when the engine lacks it."""
    tag = os.environ.get("IMAGE_TAG", DEFAULT_TAG)
    ref = f"{name}:{tag}"
    if not engine.image_exists(ref):
        build_images(tag, [name], engine)
    return ref


def image_config(engine: Engine, ref: str) -> dict[str, object]:
    """The image's config: Env as a dict, User, WorkingDir, Healthcheck."""
    raw = json.loads(engine.run("image", "inspect", ref).stdout)[0]
    config = raw.get("Config") or raw.get("config") or {}
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    return {**config, "Env": env}


def env_args(env: Mapping[str, str]) -> list[str]:
    """`-e KEY=VALUE` for each variable."""
    return [a for key, value in env.items() for a in ("-e", f"{key}={value}")]


@contextmanager
def running(
    engine: Engine, ref: str, *args: str, env: Mapping[str, str] | None = None,
    command: Sequence[str] = (),
) -> Iterator[str]:  # fmt: skip
    """A detached container of `ref` (extra run `args` before the image); yields its name."""
    name = f"churn-test-{secrets.token_hex(4)}"
    engine.run(
        "run", "-d", "--name", name, "--network", "host", *env_args(env or {}), *args, ref,
        *command,
    )  # fmt: skip
    try:
        yield name
    finally:
        engine.run("rm", "-f", "-t", "2", name, check=False, timeout=60)


def logs(engine: Engine, name: str, tail: int = 60) -> str:
    """The last lines the container wrote (stdout and stderr)."""
    proc = engine.run("logs", "--tail", str(tail), name, check=False, timeout=30)
    return (proc.stdout or "") + (proc.stderr or "")


def inspect(engine: Engine, name: str) -> dict[str, Any]:
    """`container inspect` of one container: Config, HostConfig, Mounts, State, ..."""
    out = engine.run("container", "inspect", name, timeout=30).stdout
    found: dict[str, Any] = json.loads(out)[0]
    return found


def state(engine: Engine, name: str) -> dict[str, object]:
    """The container's State (Status, ExitCode, ...)."""
    return dict(inspect(engine, name)["State"])


def healthy(engine: Engine, name: str) -> bool:
    """Whether the image's own HEALTHCHECK passes now.

    Docker runs it on its interval and reports the status; podman runs it through
    systemd timers, which containers outside systemd lack, so it is run on demand
    (`podman healthcheck run`: the image's command, exit 0 = healthy).
    """
    if engine.name == "podman":
        return engine.run("healthcheck", "run", name, check=False, timeout=30).returncode == 0
    health = state(engine, name).get("Health")
    return isinstance(health, dict) and health.get("Status") == "healthy"


def wait_healthy(engine: Engine, name: str, timeout_s: float) -> float:
    """Seconds until the container is healthy; AssertionError with its log otherwise."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if healthy(engine, name):
            return time.monotonic() - started
        if state(engine, name).get("Status") not in ("running", "created"):
            break
        time.sleep(1.0)
    raise AssertionError(f"{name} not healthy after {timeout_s:.0f} s:\n{logs(engine, name)}")
