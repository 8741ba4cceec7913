"""Helpers of the infrastructure tests: render overlays, validate, walk pod specs.

Everything here works offline: `kubectl kustomize` renders (no cluster), the
`kubernetes-validate` package holds the Kubernetes JSON schemas, and the Seldon
CRDs are found by tests/inputs.py (the root conftest's `seldon_crds` fixture).
Missing tools fail loudly with the command that installs them; nothing is skipped
and nothing installs itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from crd_validation import Crd

from churn.settings import PROJECT_ROOT

K8S_DIR = PROJECT_ROOT / "k8s"
OVERLAYS = ("kind", "eks", "seldon-v1")
KUBERNETES_VERSION = "1.32"  # EKS' and kubectl's minor here; kubernetes-validate has 1.25-1.37
CUSTOM_GROUPS = ("mlops.seldon.io", "machinelearning.seldon.io", "monitoring.coreos.com")
# The model version of the bundle the container tests serve (conftest's layout_bundle).
BUNDLE_VERSION = "infra-1"
SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|ACCESS_KEY|PRIVATE_KEY|AUTH", re.I)
SECRET_VALUE = re.compile(r"password=|://[^/\s:@]+:[^/\s@]+@", re.I)


class ToolMissingError(RuntimeError):
    """A tool the infrastructure tests need is not installed; says how to install it."""


def kubectl() -> str:
    """Path of kubectl (it embeds kustomize); ToolMissingError with an install hint."""
    found = shutil.which("kubectl") or (
        "/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None
    )
    if found is None:
        raise ToolMissingError(
            "kubectl not found on PATH: install it (e.g. apt-get install kubectl from the "
            "Kubernetes apt repository, or your distribution's package) to render k8s/"
        )
    return found


def kustomize(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize <path>` as a list of objects; CalledProcessError names stderr."""
    proc = subprocess.run(
        [kubectl(), "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed:\n{proc.stderr}")
    return [doc for doc in yaml.load_all(proc.stdout, Loader=yaml.CSafeLoader) if doc]


def is_custom(obj: dict[str, Any]) -> bool:
    """True for custom resources (validated against their CRDs, not core schemas)."""
    return str(obj["apiVersion"]).split("/")[0] in CUSTOM_GROUPS


def ident(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


# ------------------------------------------------------------------ pod specs


@dataclass(frozen=True)
class PodSpec:
    """One pod template found in a rendered object, with where it was found."""

    owner: str  # Kind/name
    kind: str
    spec: dict[str, Any]
    labels: dict[str, str]


def pod_specs(obj: dict[str, Any]) -> Iterator[PodSpec]:
    """Every pod template of an object: workloads, CronJobs, Seldon v2 Servers, v1 SDeps."""
    kind, spec = obj["kind"], obj.get("spec") or {}
    name = ident(obj)
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        tpl = spec["template"]
        yield PodSpec(name, kind, tpl["spec"], tpl.get("metadata", {}).get("labels", {}))
    elif kind == "CronJob":
        tpl = spec["jobTemplate"]["spec"]["template"]
        yield PodSpec(name, kind, tpl["spec"], tpl.get("metadata", {}).get("labels", {}))
    elif kind == "Server":
        # Seldon v2.9.1 labels Server pods seldon-server-name=<name> plus the Server's labels
        labels = {
            **obj["metadata"].get("labels", {}),
            "seldon-server-name": obj["metadata"]["name"],
        }
        yield PodSpec(name, kind, spec["podSpec"], labels)
    elif kind == "SeldonDeployment":
        for predictor in spec["predictors"]:
            for component in predictor.get("componentSpecs", []):
                labels = {**obj["metadata"].get("labels", {}),
                          "seldon-deployment-id": obj["metadata"]["name"]}  # fmt: skip
                yield PodSpec(name, kind, component["spec"], labels)


def containers(pod: PodSpec) -> Iterator[dict[str, Any]]:
    yield from pod.spec.get("initContainers", [])
    yield from pod.spec.get("containers", [])


def effective(pod: PodSpec, container: dict[str, Any], key: str) -> Any:
    """A securityContext field as Kubernetes resolves it: container first, then pod."""
    own = (container.get("securityContext") or {}).get(key)
    return own if own is not None else (pod.spec.get("securityContext") or {}).get(key)


IMAGE_RE = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9._/-]*(?::[0-9]+/[a-z0-9._/-]+)?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None when it is."""
    match = IMAGE_RE.match(image)
    if match is None:
        return f"{image!r} is not an image reference"
    if match["tag"] is None and match["digest"] is None:
        return f"{image!r} has no tag (pulls latest)"
    if match["tag"] is not None and match["tag"].lower() == "latest":
        return f"{image!r} uses the tag latest"
    return None


# ------------------------------------------------------------------ CRD schemas


def crd_errors(validators: dict[tuple[str, str], Crd], obj: dict[str, Any]) -> list[str]:
    """Violations of an object against its CRD, as "<path>: <message>"."""
    key = (obj["apiVersion"], obj["kind"])
    if key not in validators:
        raise AssertionError(f"{ident(obj)}: no CRD for {key} among {sorted(validators)}")
    return validators[key].errors(obj)


def env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a kustomize env file (comments and blanks ignored)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out
