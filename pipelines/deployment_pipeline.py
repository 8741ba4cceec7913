"""Deployment pipeline: registry champion -> serving bundle -> served where the stack says.

Run:
    zenml pipeline run pipelines.deployment_pipeline.deployment_pipeline \\
        -c configs/deployment_pipeline.yaml
"""

from typing import Any

from zenml import pipeline

from churn import console
from steps.deployment.build_serving_bundle import build_serving_bundle
from steps.deployment.deploy_bundle import Target, deploy_bundle


@pipeline(enable_cache=False)
def deployment_pipeline(model_name: str, target: Target, seldon: dict[str, Any] | None) -> None:
    """Wiring only; configs/deployment_pipeline.yaml holds the values."""
    console.install()
    deploy_bundle(build_serving_bundle(model_name), target=target, seldon=seldon)
