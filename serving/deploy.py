"""Deploy the registry's champion: fetch it, bundle it, serve it locally.

The deployment pipeline's steps wrap these functions; `churn`-free callers (tests,
the Makefile) use them directly. Kubernetes deployment renders Seldon objects from
the same bundle (serving.seldon).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from churn.models.registry import (
    CHAMPION,
    DRIFT_ARTIFACT,
    SERVING_ARTIFACT,
    resolve_tracking_uri,
    use_tracking,
)
from serving import local_server
from serving.bundle import BundleManifest, build_bundle
from serving.settings import ServingSettings, get_serving_settings


class DeploymentError(RuntimeError):
    """The champion could not be fetched, bundled or served."""


@dataclass(frozen=True)
class ChampionArtifacts:
    """The champion's files, downloaded from MLflow, and what the bundle needs to know."""

    model_name: str
    version: str
    model_dir: Path
    drift_dir: Path | None
    threshold: float
    feature_service: str


def fetch_champion(
    model_name: str, dst: Path | None = None, tracking_uri: str | None = None
) -> ChampionArtifacts:
    """Download the version behind alias "champion": serving model and drift detector.

    The threshold and FeatureService come from the serving model's manifest metadata,
    written by the training pipeline's register step, so they cannot drift apart from
    the model they belong to.
    """
    from mlflow.exceptions import MlflowException

    client = use_tracking(tracking_uri)
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as e:  # no such model, or no champion alias
        raise DeploymentError(
            f"no {CHAMPION!r} for model {model_name!r} at {resolve_tracking_uri(tracking_uri)}: "
            "run the training pipeline first"
        ) from e
    target = dst or Path(tempfile.mkdtemp(prefix=f"{model_name}-v{version.version}-"))
    model_dir = Path(client.download_artifacts(version.run_id, SERVING_ARTIFACT, str(target)))
    artifacts = {a.path for a in client.list_artifacts(version.run_id)}
    drift_dir = (
        Path(client.download_artifacts(version.run_id, DRIFT_ARTIFACT, str(target)))
        if DRIFT_ARTIFACT in artifacts
        else None
    )
    metadata = json.loads((model_dir / "manifest.json").read_text()).get("metadata", {})
    missing = [k for k in ("threshold", "feature_service") if k not in metadata]
    if missing:
        raise DeploymentError(
            f"{model_name} v{version.version}: serving model metadata lacks {missing}"
        )
    return ChampionArtifacts(
        model_name=model_name,
        version=str(version.version),
        model_dir=model_dir,
        drift_dir=drift_dir,
        threshold=float(metadata["threshold"]),
        feature_service=str(metadata["feature_service"]),
    )


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
            raise DeploymentError(
                f"MLServer started but serves no version; see {local_server.paths(s).log_file}"
            )
        return served
    return local_server.reload(bundle_dir, s)
