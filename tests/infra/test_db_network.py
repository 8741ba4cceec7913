"""The daily snapshot pipeline's step pods can reach the customer database on EKS.

Why: the rendered overlays deny every egress of ZenML's step pods (labels `pipeline`,
`project_id`) but the ports explicitly allowed; before this policy the pipeline pods
could reach Redis, MLflow and HTTPS only, so the first scheduled run would have timed
out on RDS (PostgreSQL, 5432) with every schema check green.
"""

from __future__ import annotations

from typing import Any

from infra_support import env_file, kustomize

from churn.settings import PROJECT_ROOT

STEP_POD_LABELS = {"pipeline": "daily_snapshot_pipeline", "project_id": "p"}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for expression in selector.get("matchExpressions", []):
        if expression["operator"] == "Exists" and expression["key"] not in labels:
            return False
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _egress_ports(policy: dict[str, Any], cidr: str) -> set[int]:
    ports = set()
    for rule in policy["spec"].get("egress", []):
        blocks = [peer.get("ipBlock", {}).get("cidr") for peer in rule.get("to", [])]
        if cidr in blocks:
            ports |= {p["port"] for p in rule.get("ports", [])}
    return ports


def test_step_pods_may_reach_postgresql_in_the_vpc_on_eks() -> None:
    vpc = env_file(PROJECT_ROOT / "k8s/components/eks/cluster.env")["VPC_CIDR"]
    for overlay in ("eks", "seldon-v1"):
        objs = kustomize(PROJECT_ROOT / "k8s/overlays" / overlay)
        policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
        allowed = set().union(
            *(
                _egress_ports(p, vpc)
                for p in policies
                if _selects(p["spec"]["podSelector"], STEP_POD_LABELS)
            )
        )
        assert 5432 in allowed, f"{overlay}: step pods reach only {sorted(allowed)} in {vpc}"
