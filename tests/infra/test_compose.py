"""docker/docker-compose.yml brought up for real with the engine's compose, then torn down.

`docker compose` where a Docker engine runs, else podman-compose (pinned in the dev
dependencies). As its header says a user does it: Redis (and MLflow) up, the one-shot
`features` job (offline store, feast apply, materialize into compose's Redis), then the
`serving` profile's MLServer with a bundle. Each service's health check passes, a V2
request for customers the features job wrote answers with probabilities from the
bundle's model, and `down -v` leaves no container, pod or volume of the project.

The project name, published ports and passwords are the test's own (free ports, random
passwords), so a running `make demo` stack is never touched. Where redis:7.4.1-bookworm
cannot be pulled, CHURN_REDIS_IMAGE is Debian's redis-server built as an image
(deployment.containers.redis_image). Prometheus and Grafana (registry images, the
`monitoring` side) are not started.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from containers_support import engine_or_skip, healthy, image
from infra_support import BUNDLE_VERSION
from ports import free_port

from churn.inference import parse_response, request_body
from churn.settings import PROJECT_ROOT
from deployment.containers import Engine, redis_image

pytestmark = pytest.mark.integration

COMPOSE_FILE = PROJECT_ROOT / "docker" / "docker-compose.yml"
IDS = [f"SYN-{n:07d}" for n in (1, 2, 3, 500, 9999)]  # `churn features run`: 10,000 synthetic
READY_WITHIN_S = 150.0


class Compose:
    """`compose -p <project> -f docker-compose.yml ...` with the test's environment."""

    def __init__(self, engine: Engine, env: dict[str, str]) -> None:
        self.engine = engine
        self.project = f"churn-compose-{secrets.token_hex(3)}"
        self.env = {**os.environ, **engine.env, **env}
        if engine.name == "docker":
            self.base = [engine.executable, "compose"]
        else:
            self.base = [str(Path(sys.executable).parent / "podman-compose")]
        self.base += ["-p", self.project, "-f", str(COMPOSE_FILE)]

    def __call__(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*self.base, *args], env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, (
            f"compose {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
        return proc

    def containers(self, service: str | None = None) -> list[str]:
        """Names of the project's containers (all states), or of one service's."""
        argv = ["ps", "-a", "--format", "{{.Names}}"]
        argv += ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            argv += ["--filter", f"label=com.docker.compose.service={service}"]
        return self.engine.run(*argv).stdout.split()

    def volumes(self) -> list[str]:
        names = self.engine.run("volume", "ls", "--format", "{{.Name}}").stdout.split()
        return [n for n in names if n.startswith(self.project)]


@pytest.fixture(scope="module")
def compose(layout_bundle: Path) -> Iterator[tuple[Compose, dict[str, str]]]:
    engine = engine_or_skip()
    for name in ("churn-steps", "churn-mlserver"):
        image(engine, name)
    env = {
        "CHURN_IMAGE_TAG": os.environ.get("IMAGE_TAG", "0.1.0"),
        "CHURN_REDIS_IMAGE": redis_image(engine),
        "CHURN_REDIS_PASSWORD": secrets.token_hex(12),
        "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(12),
        "CHURN_BUNDLE_DIR": str(layout_bundle),
        **{f"CHURN_COMPOSE_{s}_PORT": str(free_port())
           for s in ("REDIS", "MLFLOW", "MLSERVER", "METRICS")},
    }  # fmt: skip
    stack = Compose(engine, env)
    try:
        yield stack, env
    finally:
        subprocess.run(
            [*stack.base, "--profile", "serving", "down", "-v"],
            env=stack.env, capture_output=True, timeout=300, check=False,
        )  # fmt: skip


def wait_until(predicate: object, what: str, timeout_s: float = READY_WITHIN_S) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if callable(predicate) and predicate():
                return time.monotonic() - started
        except (requests.RequestException, redis.RedisError):
            pass
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def test_compose_stack_serves_features_written_by_its_own_job(
    compose: tuple[Compose, dict[str, str]],
) -> None:
    stack, env = compose
    stack("up", "-d", "redis", "mlflow")
    client = redis.Redis(
        host="127.0.0.1", port=int(env["CHURN_COMPOSE_REDIS_PORT"]),
        password=env["CHURN_REDIS_PASSWORD"], socket_timeout=2,
    )  # fmt: skip
    wait_until(client.ping, "compose's Redis")
    mlflow = f"http://127.0.0.1:{env['CHURN_COMPOSE_MLFLOW_PORT']}/health"
    wait_until(lambda: requests.get(mlflow, timeout=2).text == "OK", "MLflow /health")
    for service in ("redis", "mlflow"):
        (name,) = stack.containers(service)
        wait_until(lambda n=name: healthy(stack.engine, n), f"{service}'s health check")

    stack("run", "--rm", "features")  # offline store -> feast apply -> materialize
    assert client.dbsize() > 0

    stack("--profile", "serving", "up", "-d", "mlserver")
    (name,) = stack.containers("mlserver")
    wait_until(lambda: healthy(stack.engine, name), "mlserver's HEALTHCHECK")
    url = f"http://127.0.0.1:{env['CHURN_COMPOSE_MLSERVER_PORT']}/v2/models/churn/infer"
    response = requests.post(url, json=request_body(IDS, reasons=False), timeout=30)
    assert response.status_code == 200, response.text
    predictions = parse_response(IDS, response.json())
    assert [p.customer_id for p in predictions] == IDS
    assert {p.model_version for p in predictions} == {BUNDLE_VERSION}
    assert all(0.0 < p.probability < 1.0 for p in predictions)
    unknown = requests.post(url, json=request_body(["NOPE-1"]), timeout=30)
    assert unknown.status_code == 404 and "NOPE-1" in unknown.text, unknown.text


def test_compose_down_leaves_nothing(compose: tuple[Compose, dict[str, str]]) -> None:
    stack, _ = compose
    assert stack.containers(), "the stack of the previous test is up"
    stack("--profile", "serving", "down", "-v", timeout=300)
    assert stack.containers() == []
    assert stack.volumes() == []
