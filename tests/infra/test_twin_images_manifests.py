"""The production twin runs the images as the rendered EKS manifests run them.

Why: the twin's containers stand in for the MLflow Deployment's and the Seldon
Server's pods; a twin that runs another command, another user, a writable root or
reads other variables would prove nothing about the cluster. These checks read the
rendered eks overlay (kubectl kustomize) against the argv deployment.twin_images
builds, offline; tests/twin runs those containers for real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from infra_support import K8S_DIR, kustomize

from churn import twin
from deployment.containers import Engine
from deployment.twin_images import (
    AGENT_MODELS_DIR,
    MLSERVER_IMAGE,
    STEPS_IMAGE,
    MlflowContainer,
    ServerContainer,
    TwinImages,
)

# A config and an engine of no machine: only the argv is built, nothing runs.
CFG = twin.TwinConfig(Path("/twin"), 1, 2, 3, 4)
IMAGES = TwinImages(Engine("podman", "/usr/bin/podman"), "9.9.9")
# The twin listens on its own address and port with one worker; the rest is the manifest's.
TWIN_FLAGS = ("--host=", "--port=", "--workers=")


def _options(argv: tuple[str, ...], image: str) -> tuple[list[str], list[str]]:
    """(run options, command in the container) of an `<engine> run ... <image> cmd`."""
    at = argv.index(image)
    return list(argv[:at]), list(argv[at + 1 :])


@pytest.fixture(scope="module")
def eks() -> dict[tuple[str, str], dict[str, Any]]:
    """The rendered eks overlay by (kind, name)."""
    return {(o["kind"], o["metadata"]["name"]): o for o in kustomize(K8S_DIR / "overlays" / "eks")}


def test_the_twin_mlflow_container_runs_the_eks_deployments_command_and_environment(
    eks: dict[tuple[str, str], dict[str, Any]],
) -> None:
    pod = eks[("Deployment", "churn-mlflow")]["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "mlflow")
    (source,) = container["envFrom"]
    config_map = eks[("ConfigMap", source["configMapRef"]["name"])]["data"]
    env = twin.mlflow_env(CFG, twin.Credentials("r", "p", "k", "s"))
    wrapped = MlflowContainer(IMAGES, "m")(twin.mlflow_command(CFG), env)
    options, command = _options(wrapped.argv, IMAGES.ref(STEPS_IMAGE))
    assert [a for a in command if not a.startswith(TWIN_FLAGS)] == [
        a for a in container["command"] if not a.startswith(TWIN_FLAGS)
    ]
    # every variable the pod gets (ConfigMap churn-mlflow, its own env) reaches the twin's
    rendered = set(config_map) | {e["name"] for e in container["env"]}
    passed = {options[i + 1].split("=", 1)[0] for i, a in enumerate(options) if a == "-e"}
    assert rendered <= passed, rendered - passed
    home = next(e["value"] for e in container["env"] if e["name"] == "HOME")
    assert f"HOME={home}" in options
    # the pod's securityContext and its emptyDirs
    security = container["securityContext"]
    assert options[options.index("--user") + 1].split(":")[0] == str(security["runAsUser"])
    assert security["readOnlyRootFilesystem"] and "--read-only" in options
    assert security["capabilities"]["drop"] == ["ALL"] and "ALL" in options
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    tmpfs = {options[i + 1].split(":")[0] for i, a in enumerate(options) if a == "--tmpfs"}
    assert tmpfs == mounts, (tmpfs, mounts)


def test_the_twin_server_container_runs_the_rendered_servers_command(
    eks: dict[tuple[str, str], dict[str, Any]],
) -> None:
    server = eks[("Server", "churn-mlserver")]
    container = next(c for c in server["spec"]["podSpec"]["containers"] if c["name"] == "mlserver")
    wrapped = ServerContainer(IMAGES, "s", Path("/models"), Path("/ca.crt"))(
        ["python"], {"CHURN_REDIS_PASSWORD": "x", "SSL_CERT_FILE": "/ca.crt"}
    )
    options, command = _options(wrapped.argv, IMAGES.ref(MLSERVER_IMAGE))
    # the kubelet expands $(MLSERVER_MODELS_DIR): Seldon's mlserver ServerConfig sets it
    # to its model volume, where the twin mounts the agent's models folder
    expanded = [
        AGENT_MODELS_DIR if a == "$(MLSERVER_MODELS_DIR)" else a for a in container["command"]
    ]
    assert command == expanded, (command, expanded)
    assert "CHURN_REDIS_PASSWORD" in options and "x" not in " ".join(options)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and "--read-only" in options
    writable = {m["mountPath"] for m in container["volumeMounts"]} - {AGENT_MODELS_DIR}
    tmpfs = {options[i + 1].split(":")[0] for i, a in enumerate(options) if a == "--tmpfs"}
    assert tmpfs == writable, (tmpfs, writable)
