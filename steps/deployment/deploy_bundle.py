"""Step: serve the bundle where the active stack says: local MLServer or Seldon on K8s."""

import shutil
from pathlib import Path
from typing import Annotated, Any, Literal

from zenml import step
from zenml.client import Client

from deployment.deploy import (
    SeldonTarget,
    deploy_local,
    deploy_seldon,
    stage_seldon,
    write_manifests,
)
from serving.settings import get_serving_settings

Target = Literal["auto", "local", "seldon"]


def resolve_target(target: Target, orchestrator_flavor: str) -> Literal["local", "seldon"]:
    """ "auto" follows the stack: a Kubernetes orchestrator means the cluster's Seldon."""
    if target != "auto":
        return target
    return "seldon" if orchestrator_flavor == "kubernetes" else "local"


@step
def deploy_bundle(
    serving_bundle: Path, target: Target, seldon: dict[str, Any] | None
) -> Annotated[dict[str, Any], "deployment"]:
    """Start or hot-reload the local MLServer, or apply Seldon Core v2 manifests (or
    write them to seldon.manifest_dir where there is no cluster to apply them to)."""
    where = resolve_target(target, Client().active_stack.orchestrator.flavor)
    if where == "local":
        # A stable copy: the step's artifact directory may be cleaned after the run.
        stable = get_serving_settings().serving_home / "bundles" / serving_bundle.name
        if not stable.exists():
            shutil.copytree(serving_bundle, stable)
        return {"target": "local", "bundle": str(stable), "served_version": deploy_local(stable)}
    if not seldon:
        raise ValueError(
            "target 'seldon' needs the `seldon` parameters (namespace, image, artifact_root)"
        )
    seldon_target = SeldonTarget(**seldon)
    if seldon_target.manifest_dir is not None:  # no cluster (the production twin, GitOps)
        objects = stage_seldon(serving_bundle, seldon_target)
        written = write_manifests(objects, Path(seldon_target.manifest_dir))
        return {"target": "seldon", "written": [str(p) for p in written]}
    results = deploy_seldon(serving_bundle, seldon_target)
    return {"target": "seldon", "applied": [f"{r.kind}/{r.name}: {r.action}" for r in results]}
