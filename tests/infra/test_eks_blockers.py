"""What would break the first EKS deploy although every schema passes (issue 12).

Each test reads the committed files (kustomize output, configs, README, compose) the
way the cluster, ZenML or docker compose would, and fails on the state before its fix.
"""

from __future__ import annotations

import re

import yaml
from infra_support import K8S_DIR, OVERLAYS, kustomize

from churn.settings import PROJECT_ROOT, Settings
from churn.stacks import stack_variables

README = PROJECT_ROOT / "README.md"


def _readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    assert f"\n## {title}\n" in text, title
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _words(text: str) -> str:
    return " ".join(text.replace("**", "").split())


# ------------------------------------------------------------------ namespace


def test_every_default_namespace_is_the_one_of_the_manifests() -> None:
    """The ZenML stack's orchestrator namespace and the deployment pipeline's Seldon
    namespace default to the manifests' one: step pods need the churn-* accounts,
    ConfigMap and Secrets that exist only there."""
    namespaces = {
        o["metadata"].get("namespace")
        for overlay in OVERLAYS
        for o in kustomize(K8S_DIR / "overlays" / overlay)
        if o["kind"] != "Namespace"
    }
    assert len(namespaces) == 1
    (namespace,) = namespaces
    assert stack_variables(Settings(), {})["CHURN_K8S_NAMESPACE"] == namespace
    config = yaml.safe_load((PROJECT_ROOT / "configs" / "deployment_pipeline.yaml").read_text())
    assert config["parameters"]["seldon"]["namespace"] == namespace
    cd = yaml.safe_load((PROJECT_ROOT / ".github" / "workflows" / "cd.yml").read_text())
    assert cd["jobs"]["deploy"]["env"]["NAMESPACE"] == namespace
    assert f"CHURN_K8S_NAMESPACE={namespace} " in README.read_text(encoding="utf-8")


# ------------------------------------------------------------------ README prerequisites


def test_eks_prerequisites_name_kafka_and_a_default_storage_class() -> None:
    """Seldon v2 runs Pipelines over Kafka, and its Server StatefulSet claims the model
    volume without a storageClassName (so the cluster needs a default StorageClass)."""
    section = _readme_section("Running on Kubernetes (EKS)")
    prerequisites = _words(section.split("1. Prerequisites", 1)[1].split("\n2. ", 1)[0])
    eks = kustomize(K8S_DIR / "overlays" / "eks")
    assert any(o["kind"] == "Pipeline" for o in eks)
    assert re.search(r"\bKafka\b", prerequisites), prerequisites
    assert "default StorageClass" in prerequisites, prerequisites
