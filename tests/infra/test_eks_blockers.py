"""What would break the first EKS deploy although every schema passes (issue 12).

Each test reads the committed files (kustomize output, configs, README, compose) the
way the cluster, ZenML or docker compose would, and fails on the state before its fix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from infra_support import K8S_DIR, OVERLAYS, kustomize, pod_specs

from churn.features.feast_schema import offline_path
from churn.schema import Group
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


# ------------------------------------------------------------------ offline store


def test_the_eks_offline_store_is_where_feature_store_eks_yaml_says() -> None:
    """Feast reads the offline tables at the FileSource paths churn.settings gives
    (CHURN_HOME/offline, files); on EKS that is the churn-state volume on EFS. The
    config must say so, not that the tables are read from S3 (no setting puts them
    there)."""
    eks = {(o["kind"], o["metadata"]["name"]): o for o in kustomize(K8S_DIR / "overlays" / "eks")}
    home = eks[("ConfigMap", "churn-serving")]["data"]["CHURN_HOME"]
    paths = {offline_path(group, Settings(home=Path(home))) for group in Group}
    assert paths and all(p.startswith(f"{home}/offline/") for p in paths), paths
    pvc = eks[("PersistentVolumeClaim", "churn-state")]["spec"]
    assert pvc["accessModes"] == ["ReadWriteMany"] and pvc["storageClassName"] == "efs-sc"
    feast = eks[("CronJob", "churn-feast")]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    claims = {v["name"] for v in feast["volumes"]
              if v.get("persistentVolumeClaim", {}).get("claimName") == "churn-state"}  # fmt: skip
    assert any(m["mountPath"] == home and m["name"] in claims
               for m in feast["containers"][0]["volumeMounts"])  # fmt: skip
    stack = (PROJECT_ROOT / "stacks" / "eks.yaml").read_text(encoding="utf-8")
    assert re.search(rf"claimName: churn-state.*mountPath: {home}\b", stack, re.S)
    config = (PROJECT_ROOT / "feature_repo" / "feature_store.eks.yaml").read_text("utf-8")
    header = _words(" ".join(line.lstrip("# ") for line in config.splitlines()
                             if line.startswith("#")))  # fmt: skip
    assert "CHURN_HOME/offline" in header and "EFS" in header, header
    assert not re.search(r"parquet tables from S3|s3:// FileSource", _words(config)), config


# ------------------------------------------------------------------ feature store of pipeline pods


def test_pipeline_pods_on_eks_open_the_eks_feature_store() -> None:
    """Step pods take CHURN_* from the churn-serving ConfigMap (stacks/eks.yaml); the
    feature store they open must be feature_store.eks.yaml (ElastiCache over TLS, the
    registry on S3 that serving reads), not the laptop's plaintext Redis and local
    registry. Found by running the pipelines on the production twin."""
    eks = {(o["kind"], o["metadata"]["name"]): o for o in kustomize(K8S_DIR / "overlays" / "eks")}
    data = eks[("ConfigMap", "churn-serving")]["data"]
    settings = Settings(feature_store_yaml=data["CHURN_FEATURE_STORE_YAML"])
    assert settings.feature_store_yaml == "feature_store.eks.yaml"
    assert (PROJECT_ROOT / "feature_repo" / settings.feature_store_yaml).is_file()
    stack = yaml.safe_load((PROJECT_ROOT / "stacks" / "eks.yaml").read_text(encoding="utf-8"))
    pod = stack["components"]["orchestrator"][0]["configuration"]["pod_settings"]
    assert {"configMapRef": {"name": "churn-serving"}} in pod["env_from"]


# ------------------------------------------------------------------ prediction log


def _container_env(
    container: dict[str, Any], config_maps: dict[str, dict[str, str]]
) -> dict[str, str]:
    """A container's plain environment as the kubelet builds it: envFrom ConfigMaps, then env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps.get(source["configMapRef"]["name"], {}))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
    return env


def test_serving_writes_its_prediction_log_somewhere_writable_and_durable() -> None:
    """Every served prediction is logged (CHURN_SERVING_PREDICTION_LOG_URI, default
    CHURN_HOME/prediction_log). Serving pods have a read-only root and, on kind, the
    churn-state volume read-only; on EKS no CHURN_HOME volume at all. The log must go
    to S3 or to a writable PersistentVolumeClaim mount, else every record is dropped
    (counted, never failing a request: silent in every schema check)."""
    from churn.loop import PREDICTION_LOG_DIR

    checked = 0
    for overlay in OVERLAYS:
        objects = kustomize(K8S_DIR / "overlays" / overlay)
        config_maps = {o["metadata"]["name"]: o.get("data", {})
                       for o in objects if o["kind"] == "ConfigMap"}  # fmt: skip
        for obj in objects:
            for pod in pod_specs(obj):
                if pod.kind not in ("Server", "SeldonDeployment"):
                    continue
                volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
                container = pod.spec["containers"][0]  # the MLServer container
                env = _container_env(container, config_maps)
                uri = env.get("CHURN_SERVING_PREDICTION_LOG_URI") or (
                    f"{env.get('CHURN_HOME', '/var/lib/churn')}/{PREDICTION_LOG_DIR}"
                )
                where = f"{overlay}: {pod.owner}"
                checked += 1
                if uri.startswith("s3://"):
                    continue
                mounts = [m for m in container.get("volumeMounts", [])
                          if uri.startswith(m["mountPath"].rstrip("/") + "/")]  # fmt: skip
                assert mounts, f"{where}: {uri} is on the read-only root file system"
                mount = max(mounts, key=lambda m: len(m["mountPath"]))
                volume = volumes[mount["name"]]
                assert not mount.get("readOnly"), f"{where}: {uri} is on a read-only mount"
                claim = volume.get("persistentVolumeClaim")
                assert claim and not claim.get("readOnly"), f"{where}: {uri} is not on a PVC"
    assert checked == 3  # kind and eks Servers, the seldon-v1 SeldonDeployment
