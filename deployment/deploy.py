"""Deploy the registry's champion: bundle it, serve it locally or on Seldon Core.

The deployment pipeline's steps wrap these functions; tests and the Makefile call
them directly. The champion itself is fetched by churn.models.registry.fetch_champion;
Kubernetes deployment renders Seldon objects from the same bundle (deployment.seldon).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from churn.models.registry import ChampionArtifacts
from deployment import local_server
from deployment.bundle import build_bundle, feature_layout_of
from deployment.drift_model import build_drift_model
from deployment.seldon.apply import ApplyResult, apply_manifests
from deployment.seldon.render import seldon_v1_objects, seldon_v2_objects
from deployment.seldon.spec import SeldonDeploymentSpec
from serving.bundle import BundleManifest, read_manifest
from serving.settings import ServingSettings, get_serving_settings


def bundle_champion(
    champion: ChampionArtifacts, out_dir: Path, settings: ServingSettings | None = None
) -> BundleManifest:
    """A serving bundle (model, detector, manifest, model-settings.json) in `out_dir`."""
    return build_bundle(
        out_dir,
        model_dir=champion.model_dir,
        model_version=f"{champion.model_name}-v{champion.version}",
        threshold=champion.threshold,
        feature_service=champion.feature_service,
        drift_dir=champion.drift_dir,
        metadata={"registered_model": champion.model_name, "registry_version": champion.version},
        settings=settings,
        feature_layout=feature_layout_of(champion.feature_service, settings),
    )


def bundle_dir_for(champion: ChampionArtifacts, root: Path) -> Path:
    """Where a champion's bundle lives under `root`: one directory per registry version."""
    return root / f"{champion.model_name}-v{champion.version}"


def deploy_local(bundle_dir: Path, settings: ServingSettings | None = None) -> str:
    """Serve `bundle_dir` on the project's local MLServer: start it, or reload the
    model through MLServer's repository API when it already runs (no downtime).
    Returns the version now served."""
    s = settings or get_serving_settings()
    if local_server.running_pid(s) is None:
        local_server.start(bundle_dir, s)
        served = local_server.served_version(s)
        if served is None:
            raise local_server.ServerError(
                f"MLServer started but serves no version; see {local_server.paths(s).log_file}"
            )
        return served
    return local_server.reload(bundle_dir, s)


@dataclass(frozen=True)
class SeldonTarget:
    """Where a bundle goes on Kubernetes; every field is a deployment config value."""

    namespace: str
    image: str
    artifact_root: str  # e.g. s3://<bucket>/serving: bundles are uploaded below it
    protocol: Literal["v2", "v1"] = "v2"
    # None: apply the objects to the cluster. A directory: write them there instead
    # (one YAML file each, what `kubectl apply -f <dir>` or a GitOps repo takes); the
    # production twin, which has no API server, reads its Models from there.
    manifest_dir: str | None = None


def upload_dir(local: Path, uri: str, fs: Any = None) -> None:
    """Copy a directory's contents to `uri` with fsspec (s3fs on EKS; IRSA credentials).

    The source ends with "/": fsspec copies the contents. Without it, a second upload
    to an existing prefix (the same champion deployed again) lands in <uri>/<dir name>/
    (measured on the S3 twin), and the drift model then fails its manifest check.
    """
    import fsspec

    filesystem = fs if fs is not None else fsspec.filesystem(uri.split("://", 1)[0])
    filesystem.put(f"{str(local).rstrip('/')}/", uri.rstrip("/"), recursive=True)


def stage_seldon(
    bundle_dir: Path, target: SeldonTarget, *, fs: Any = None, work_dir: Path | None = None
) -> list[dict[str, Any]]:
    """Upload the bundle (and its drift model) below target.artifact_root; the Seldon
    objects that serve them, in the order to apply them.

    Seldon Core v2: Server + churn Model + drift Model + Pipeline chaining them; v1: a
    SeldonDeployment (protocol v2) whose runtime watches drift itself.
    """
    manifest = read_manifest(bundle_dir)
    base = f"{target.artifact_root.rstrip('/')}/{manifest.model_version}"
    upload_dir(bundle_dir, f"{base}/bundle", fs)
    drift_uri = None
    if manifest.has_drift_detector and target.protocol == "v2":
        drift_dir = (work_dir or Path(tempfile.mkdtemp(prefix="churn-drift-model-"))) / "drift"
        build_drift_model(bundle_dir, drift_dir)
        drift_uri = f"{base}/drift-model"
        upload_dir(drift_dir, drift_uri, fs)
    spec = SeldonDeploymentSpec.for_bundle(
        manifest,
        namespace=target.namespace,
        image=target.image,
        bundle_uri=f"{base}/bundle",
        drift_uri=drift_uri,
    )
    return seldon_v2_objects(spec) if target.protocol == "v2" else seldon_v1_objects(spec)


def manifest_file(directory: Path, obj: Mapping[str, Any]) -> Path:
    """Where write_manifests puts one object: <kind>-<name>.yaml (kind in lower case)."""
    return directory / f"{str(obj['kind']).lower()}-{obj['metadata']['name']}.yaml"


def write_manifests(objects: Sequence[Mapping[str, Any]], directory: Path) -> list[Path]:
    """One YAML file per object in `directory` (created), replacing files of the same
    objects; returns the files in the order of `objects`."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for obj in objects:
        path = manifest_file(directory, obj)
        path.write_text(yaml.safe_dump(dict(obj), sort_keys=False))
        written.append(path)
    return written


def read_manifests(directory: Path, kind: str) -> list[dict[str, Any]]:
    """The objects of one kind that write_manifests left in `directory`, by file name."""
    return [
        yaml.safe_load(path.read_text())
        for path in sorted(directory.glob(f"{kind.lower()}-*.yaml"))
    ]


def deploy_seldon(
    bundle_dir: Path,
    target: SeldonTarget,
    *,
    api_client: Any = None,
    fs: Any = None,
    work_dir: Path | None = None,
) -> Sequence[ApplyResult]:
    """Upload the bundle (and its drift model) and apply the Seldon objects serving it.

    Objects are applied in dependency order (stage_seldon); a failure raises
    deployment.seldon.apply.DeploymentError naming the object.
    """
    objects = stage_seldon(bundle_dir, target, fs=fs, work_dir=work_dir)
    return apply_manifests(objects, api_client, namespace=target.namespace)
