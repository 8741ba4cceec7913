"""What would break the first EKS deploy although every schema passes (issue 12).

Each test reads the committed files (kustomize output, configs, README, compose) the
way the cluster, ZenML or docker compose would, and fails on the state before its fix.
"""

from __future__ import annotations

import yaml
from infra_support import K8S_DIR, OVERLAYS, kustomize

from churn.settings import PROJECT_ROOT, Settings
from churn.stacks import stack_variables

README = PROJECT_ROOT / "README.md"


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
