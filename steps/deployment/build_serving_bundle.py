"""Step: the champion from the MLflow registry as a serving bundle (directory artifact)."""

import tempfile
from pathlib import Path
from typing import Annotated

from zenml import log_metadata, step

from churn.models.registry import fetch_champion
from deployment.deploy import bundle_champion, bundle_dir_for
from steps.registry._tracking import stack_tracking_uri


@step
def build_serving_bundle(model_name: str) -> Annotated[Path, "serving_bundle"]:
    """Model (safe format), drift detector, manifest and model-settings.json.

    Returned as a Path artifact: ZenML copies the directory into the stack's
    artifact store, so the deploy step finds it on another pod too.
    """
    work = Path(tempfile.mkdtemp(prefix="churn-bundle-"))
    champion = fetch_champion(model_name, work / "download", stack_tracking_uri())
    bundle = bundle_dir_for(champion, work / "bundles")
    manifest = bundle_champion(champion, bundle)
    log_metadata(metadata={"bundle": {"model_version": manifest.model_version,
                                      "threshold": manifest.threshold}})  # fmt: skip
    return bundle
