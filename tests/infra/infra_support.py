"""Helpers of the infrastructure tests: render overlays, validate, walk pod specs.

Everything here works offline: `kubectl kustomize` renders (no cluster), the
`kubernetes-validate` package holds the Kubernetes JSON schemas, and the Seldon
CRDs come from ../shared/k8s-crds/ next to the checkout (DESIGN.md decision 6).
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

import jsonschema
import yaml

from churn.settings import PROJECT_ROOT

K8S_DIR = PROJECT_ROOT / "k8s"
OVERLAYS = ("kind", "eks", "seldon-v1")
CRD_DIR = PROJECT_ROOT.parent / "shared" / "k8s-crds"
KUBERNETES_VERSION = "1.32"  # EKS' and kubectl's minor here; kubernetes-validate has 1.25-1.37
CUSTOM_GROUPS = ("mlops.seldon.io", "machinelearning.seldon.io", "monitoring.coreos.com")
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

# ObjectMeta as the API server checks what the manifests set (CRDs say only "object").
OBJECT_META: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 253,
                 "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {
            "type": "string", "maxLength": 63,
            "pattern": r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}  # fmt: skip


def _strict(node: Any) -> Any:
    """Unknown fields are errors (kubectl's strict field validation), unless preserved."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _int_or_string(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if value and (isinstance(instance, bool) or not isinstance(instance, int | str)):
        yield jsonschema.ValidationError(f"{instance!r} is neither an integer nor a string")


def _list_map(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if value != "map" or not isinstance(instance, list):
        return
    keys = schema.get("x-kubernetes-list-map-keys", [])
    props = schema.get("items", {}).get("properties", {})
    seen = [tuple(i.get(k, props.get(k, {}).get("default")) for k in keys) for i in instance]
    dupes = sorted({t for t in seen if seen.count(t) > 1}, key=str)
    if dupes:
        yield jsonschema.ValidationError(f"duplicate list-map keys {keys}: {dupes}")


KubeValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator,
    {"x-kubernetes-int-or-string": _int_or_string, "x-kubernetes-list-type": _list_map},
)


def load_crd_validators() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> validator of every served version of the shared CRDs."""
    if not CRD_DIR.is_dir():
        raise ToolMissingError(
            f"Seldon CRDs not found at {CRD_DIR}: the shared k8s-crds folder must sit next "
            "to the checkout (DESIGN.md decision 6)"
        )
    out: dict[tuple[str, str], Any] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in yaml.load_all(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                if not version.get("served"):
                    continue
                schema = _strict(version["schema"]["openAPIV3Schema"])
                schema["properties"]["metadata"] = OBJECT_META
                schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind"})
                out[(f"{group}/{version['name']}", kind)] = KubeValidator(schema)
    return out


def crd_errors(validators: dict[tuple[str, str], Any], obj: dict[str, Any]) -> list[str]:
    """Violations of an object against its CRD, as "<path>: <message>"."""
    key = (obj["apiVersion"], obj["kind"])
    if key not in validators:
        raise AssertionError(f"{ident(obj)}: no CRD for {key} in {CRD_DIR}")
    return sorted(
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validators[key].iter_errors(obj)
    )


def env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a kustomize env file (comments and blanks ignored)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out
