"""Pod specs that really start: `podman kube play` of the rendered manifests' core objects.

Schema validation passes pod specs that can never run (a probe on a port nobody
listens on, a read-only root the process writes to, a user that cannot read its
files). Here the rendered objects run, with the images `make images` builds:

- kind overlay: MLflow's Deployment with its ConfigMap and PersistentVolumeClaim,
  exactly as rendered (podman plays Deployments, ConfigMaps and PVCs);
- kind overlay: Redis' StatefulSet (its pod and its data claim);
- seldon-v1 overlay: the SeldonDeployment's predictor pod spec (what Seldon Core v1
  turns into a Deployment), as a Pod, with the image built here in place of ECR's and
  the bundle at /mnt/models where Seldon's storage initializer puts it; ConfigMap
  churn-serving as rendered and the churn-redis Secret the cluster provides.

For each container: the manifest's securityContext is in force (uid, read-only
root, no capabilities, no privilege escalation), and its startup, readiness and
liveness probes pass. podman 4.3 does not run Kubernetes probes (named ports are not
resolved, and its health checks need systemd), so they are evaluated here as the
kubelet would: httpGet against the container's own network namespace, on the named
or numbered port. Seldon's own kinds need Seldon's controllers and stay schema-checked
(tests/infra/test_k8s.py). Redis' StatefulSet is played as the Pod and PVC its controller
would make (podman 4.3 plays no StatefulSet), on Debian's redis-server image where the
registry's redis:7.4.1-bookworm cannot be pulled.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from containers_support import engine_or_skip, image
from infra_support import BUNDLE_VERSION, K8S_DIR, kustomize

from deployment.containers import Engine, redis_image

pytestmark = pytest.mark.integration

STARTED_WITHIN_S = 150.0
# Capabilities of a container with `drop: [ALL]`: none effective, none bounding.
NO_CAPS = "0000000000000000"


def _objects(overlay: str, wanted: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """Rendered objects of `overlay` by (kind, name prefix), without their namespace."""
    out = []
    for obj in kustomize(K8S_DIR / "overlays" / overlay):
        if any(obj["kind"] == k and obj["metadata"]["name"].startswith(n) for k, n in wanted):
            obj = copy.deepcopy(obj)
            obj["metadata"].pop("namespace", None)
            out.append(obj)
    assert {o["kind"] for o in out} == {k for k, _ in wanted}, out
    return out


def _local_image(ref: str, engine: Engine) -> str:
    """The image built here that a manifest's image reference names (ECR or local)."""
    repository = ref.rsplit(":", 1)[0].rsplit("/", 1)[-1]
    name = "churn-mlserver" if repository.endswith("mlserver") else "churn-steps"
    return str(image(engine, name))


class Played:
    """Objects given to `podman kube play`, torn down (with their volumes) afterwards."""

    def __init__(self, engine: Engine, objects: list[dict[str, Any]], path: Path) -> None:
        self.engine, self.objects, self.path = engine, objects, path
        path.write_text(yaml.safe_dump_all(objects), encoding="utf-8")

    def __enter__(self) -> Played:
        for pod in self.pod_names():  # left by an interrupted run
            self.engine.run("pod", "rm", "-f", pod, check=False)
        try:
            self.engine.run("kube", "play", str(self.path), timeout=300)
        except BaseException:
            self.__exit__()
            raise
        return self

    def pod_names(self) -> list[str]:
        """The pods podman makes: a Pod's name, or <deployment>-pod-0."""
        names = {"Pod": "{}", "Deployment": "{}-pod-0"}
        return [names[o["kind"]].format(o["metadata"]["name"]) for o in self.objects
                if o["kind"] in names]  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        self.engine.run("kube", "down", str(self.path), check=False, timeout=120)
        for obj in self.objects:
            if obj["kind"] == "PersistentVolumeClaim":
                self.engine.run("volume", "rm", "-f", obj["metadata"]["name"], check=False)


def _port(container: dict[str, Any], port: int | str) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    raise AssertionError(f"{container['name']}: probe port {port!r} names no container port")


def probe_passes(
    engine: Engine, name: str, container: dict[str, Any], probe: dict[str, Any]
) -> bool:
    """One attempt of a Kubernetes probe, run as the kubelet would, inside the pod."""
    timeout = float(probe.get("timeoutSeconds", 1))
    if "httpGet" in probe:
        get = probe["httpGet"]
        url = f"http://127.0.0.1:{_port(container, get['port'])}{get.get('path', '/')}"
        code = (
            "import sys, urllib.request\n"
            f"r = urllib.request.urlopen({url!r}, timeout={timeout})\n"
            "sys.exit(0 if 200 <= r.status < 400 else 1)\n"
        )
        argv = ["exec", name, "python", "-c", code]
    elif "exec" in probe:
        argv = ["exec", name, *probe["exec"]["command"]]
    else:
        raise AssertionError(f"{name}: unsupported probe {probe}")
    return engine.run(*argv, check=False, timeout=timeout + 30).returncode == 0


def wait_probes(engine: Engine, name: str, container: dict[str, Any]) -> float:
    """Seconds until startup, readiness and liveness probes all pass; fails with the log."""
    probes = [container[k] for k in ("startupProbe", "readinessProbe", "livenessProbe")
              if k in container]  # fmt: skip
    assert probes, f"{name}: no probes"
    started = time.monotonic()
    while time.monotonic() - started < STARTED_WITHIN_S:
        if all(probe_passes(engine, name, container, p) for p in probes):
            return time.monotonic() - started
        time.sleep(2.0)
    log = engine.run("logs", "--tail", "60", name, check=False)
    raise AssertionError(f"{name}: probes not passing after {STARTED_WITHIN_S:.0f} s:\n"
                         f"{log.stdout}{log.stderr}")  # fmt: skip


def assert_security_context(engine: Engine, name: str, pod_spec: dict[str, Any],
                            container: dict[str, Any]) -> None:  # fmt: skip
    """The manifest's securityContext is what the running container has."""
    pod_ctx = pod_spec.get("securityContext") or {}
    ctx = {**pod_ctx, **(container.get("securityContext") or {})}
    assert engine.run("exec", name, "id", "-u").stdout.strip() == str(ctx["runAsUser"])
    if "runAsGroup" in ctx:
        assert engine.run("exec", name, "id", "-g").stdout.strip() == str(ctx["runAsGroup"])
    status = engine.run("exec", name, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if ctx.get("capabilities", {}).get("drop") == ["ALL"]:
        assert fields["CapEff"].strip() == NO_CAPS, fields["CapEff"]
        assert fields["CapPrm"].strip() == NO_CAPS, fields["CapPrm"]
    if ctx.get("allowPrivilegeEscalation") is False:
        assert fields["NoNewPrivs"].strip() == "1"
    if ctx.get("readOnlyRootFilesystem"):
        wrote = engine.run("exec", name, "touch", "/written-by-test", check=False)
        assert wrote.returncode != 0 and "Read-only" in wrote.stderr, wrote.stderr


def http_get(engine: Engine, name: str, port: int, path: str) -> str:
    """GET inside the container's network namespace; the body (AssertionError if not 2xx)."""
    code = (
        "import urllib.request\n"
        f"print(urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=5).read().decode())"
    )
    proc = engine.run("exec", name, "python", "-c", code, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@contextmanager
def podman_secret(engine: Engine, secret: dict[str, Any]) -> Iterator[None]:
    """A Kubernetes Secret as podman 4.3's kube play reads it for secretKeyRef: a podman
    secret of that name holding the Secret's `data` as JSON (key -> base64)."""
    name = secret["metadata"]["name"]
    engine.run("secret", "rm", name, check=False)  # left by an interrupted run
    proc = subprocess.run(
        engine.command("secret", "create", name, "-"), input=json.dumps(secret["data"]),
        env={**os.environ, **engine.env}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    try:
        yield
    finally:
        engine.run("secret", "rm", name, check=False)


def _containers(played: Played) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(podman container name, pod spec, container spec) of every played workload."""
    for obj in played.objects:
        if obj["kind"] == "Deployment":
            pod_name, spec = f"{obj['metadata']['name']}-pod-0", obj["spec"]["template"]["spec"]
        elif obj["kind"] == "Pod":
            pod_name, spec = obj["metadata"]["name"], obj["spec"]
        else:
            continue
        for container in spec["containers"]:
            yield f"{pod_name}-{container['name']}", spec, container


def test_mlflow_deployment_starts_under_its_security_context(tmp_path: Path) -> None:
    engine = engine_or_skip("podman")  # kube play: the Docker engine has no equivalent
    objects = _objects("kind", {("Deployment", "churn-mlflow"), ("ConfigMap", "churn-mlflow"),
                                ("PersistentVolumeClaim", "churn-mlflow")})  # fmt: skip
    for obj in objects:
        for c in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            c["image"] = _local_image(c["image"], engine)
    with Played(engine, objects, tmp_path / "mlflow.yaml") as played:
        (entry,) = list(_containers(played))
        name, spec, container = entry
        wait_probes(engine, name, container)
        assert_security_context(engine, name, spec, container)
        assert http_get(engine, name, 5000, "/health").strip() == "OK"


def test_seldon_v1_mlserver_pod_starts_under_its_security_context(
    tmp_path: Path, layout_bundle: Path
) -> None:
    engine = engine_or_skip("podman")  # kube play: the Docker engine has no equivalent
    objects = _objects("seldon-v1", {("SeldonDeployment", "churn"), ("ConfigMap", "churn-serving")})
    (sdep,) = [o for o in objects if o["kind"] == "SeldonDeployment"]
    (serving_cm,) = [o for o in objects if o["kind"] == "ConfigMap"]
    component = sdep["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    spec = copy.deepcopy(component)
    for c in spec["containers"]:
        c["image"] = _local_image(c["image"], engine)
        # what Seldon v1's storage initializer does: the model at MLSERVER_MODEL_URI
        c.setdefault("volumeMounts", []).append(
            {"name": "churn-model", "mountPath": "/mnt/models", "readOnly": True}
        )
    spec["volumes"].append(
        {"name": "churn-model", "hostPath": {"path": str(layout_bundle), "type": "Directory"}}
    )
    spec.pop("serviceAccountName", None)
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "churn-default-0-churn", "labels": {"seldon-app": "churn"}},
           "spec": spec}  # fmt: skip
    password = secrets.token_hex(8)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "churn-redis"},
              "data": {"password": base64.b64encode(password.encode()).decode()}}  # fmt: skip
    with (
        podman_secret(engine, secret),
        Played(engine, [serving_cm, pod], tmp_path / "v1.yaml") as played,
    ):
        (entry,) = list(_containers(played))
        name, pod_spec, container = entry
        wait_probes(engine, name, container)
        assert_security_context(engine, name, pod_spec, container)
        env = engine.run("exec", name, "env").stdout
        assert "CHURN_SERVING_FEATURE_STORE_YAML=feature_store.eks.yaml" in env
        assert f"CHURN_REDIS_PASSWORD={password}" in env
        # the model the pod serves is the bundle's: metadata over its own HTTP port
        port = _port(container, "http")
        assert BUNDLE_VERSION in http_get(engine, name, port, "/v2/models/churn")


def test_redis_statefulset_pod_starts_under_its_security_context(tmp_path: Path) -> None:
    """The kind overlay's Redis: the StatefulSet's pod template as a Pod (podman 4.3 plays
    no StatefulSet) and its volumeClaimTemplate as a PVC, on Debian's redis-server image
    when redis:7.4.1-bookworm cannot be pulled (deployment.containers.redis_image)."""
    engine = engine_or_skip("podman")
    (sts,) = _objects("kind", {("StatefulSet", "churn-redis")})
    spec = copy.deepcopy(sts["spec"]["template"]["spec"])
    spec.pop("serviceAccountName", None)
    for c in spec["containers"]:
        c["image"] = redis_image(engine)
    claims = []
    for template in sts["spec"]["volumeClaimTemplates"]:
        claim_name = f"{template['metadata']['name']}-churn-redis-0"  # as the controller names it
        claims.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                       "metadata": {"name": claim_name}, "spec": template["spec"]})  # fmt: skip
        spec.setdefault("volumes", []).append(
            {
                "name": template["metadata"]["name"],
                "persistentVolumeClaim": {"claimName": claim_name},
            }
        )
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "churn-redis-0"}, "spec": spec}
    password = secrets.token_hex(8)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "churn-redis"},
              "data": {"password": base64.b64encode(password.encode()).decode()}}  # fmt: skip
    with (
        podman_secret(engine, secret),
        Played(engine, [*claims, pod], tmp_path / "redis.yaml") as played,
    ):
        (entry,) = list(_containers(played))
        name, pod_spec, container = entry
        wait_probes(engine, name, container)
        assert_security_context(engine, name, pod_spec, container)
        # AUTH is on, and the data directory on the claim is where it writes (AOF)
        denied = engine.run("exec", name, "redis-cli", "--no-auth-warning", "-a", "wrong", "ping",
                            check=False)  # fmt: skip
        assert "PONG" not in denied.stdout, denied.stdout
        ok = engine.run(
            "exec", "-e", f"REDISCLI_AUTH={password}", name, "redis-cli", "set", "k", "v"
        )
        assert ok.stdout.strip() == "OK"
        files = engine.run("exec", name, "sh", "-c", "ls -R /data").stdout
        assert "appendonly" in files, files
