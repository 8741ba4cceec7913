"""Stack templates render from settings and the environment, and name what is missing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from churn.settings import Settings
from churn.stacks import (
    StackConfigError,
    render_stack,
    run_config,
    stack_differences,
    stack_file,
    stack_variables,
)

EKS_ENV = {
    "EKS_KUBE_CONTEXT": "arn:aws:eks:eu-west-1:123456789012:cluster/churn",
    "AWS_ACCOUNT_ID": "123456789012",
    "AWS_REGION": "eu-west-1",
    "CHURN_S3_BUCKET": "churn-artifacts",
    "CHURN_MLFLOW_TRACKING_URI": "https://mlflow.example.internal",
}


def test_local_stack_uses_the_settings_mlflow_uri(churn_env: Settings) -> None:
    rendered = yaml.safe_load(render_stack("local", stack_variables(churn_env, {})))
    tracker = rendered["components"]["experiment_tracker"][0]
    assert tracker["configuration"]["tracking_uri"] == churn_env.tracking_uri
    assert rendered["components"]["orchestrator"][0]["flavor"] == "local"


def test_eks_stack_renders_every_placeholder(churn_env: Settings) -> None:
    text = render_stack("eks", stack_variables(churn_env, EKS_ENV))
    assert not re.search(r"\$\{[A-Z]", text)
    components = yaml.safe_load(text)["components"]
    assert components["orchestrator"][0]["flavor"] == "kubernetes"
    assert components["artifact_store"][0]["configuration"]["path"] == "s3://churn-artifacts/zenml"
    registry_uri = components["container_registry"][0]["configuration"]["uri"]
    assert registry_uri == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


def test_eks_stack_names_all_missing_variables(churn_env: Settings) -> None:
    env = {k: v for k, v in EKS_ENV.items() if k not in ("AWS_REGION", "CHURN_S3_BUCKET")}
    with pytest.raises(StackConfigError) as err:
        render_stack("eks", stack_variables(churn_env, env))
    assert "AWS_REGION" in str(err.value) and "CHURN_S3_BUCKET" in str(err.value)


def test_unknown_stack_lists_known_ones() -> None:
    with pytest.raises(StackConfigError, match="local"):
        stack_file("gke")


def test_stack_component_names_are_unique_across_stacks(churn_env: Settings) -> None:
    """ZenML refuses a second component of one name with another configuration."""
    names: list[str] = []
    for stack, env in (("local", {}), ("eks", EKS_ENV)):
        comps = yaml.safe_load(render_stack(stack, stack_variables(churn_env, env)))["components"]
        names += [c["name"] for group in comps.values() for c in group]
    assert len(names) == len(set(names))


def test_run_config_adds_the_step_image_and_overrides_parameters(tmp_path: Path) -> None:
    config = tmp_path / "deploy.yaml"
    config.write_text("parameters:\n  model_name: m\n  seldon: {namespace: a, replicas: 1}\n")
    content = run_config(
        config,
        step_image="reg/steps:1.2.0",
        overrides={"seldon.namespace": "prod", "seldon.replicas": "3"},
    )
    assert content["settings"]["docker"] == {"parent_image": "reg/steps:1.2.0", "skip_build": True}
    assert content["parameters"]["seldon"] == {"namespace": "prod", "replicas": 3}
    assert content["parameters"]["model_name"] == "m"


def test_run_config_refuses_to_descend_into_a_scalar(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("parameters:\n  model_name: m\n")
    with pytest.raises(StackConfigError, match="model_name"):
        run_config(config, overrides={"model_name.x": "1"})


def test_stack_differences_name_each_changed_field(churn_env: Settings) -> None:
    wanted = yaml.safe_load(render_stack("local", stack_variables(churn_env, {})))
    assert stack_differences(wanted, wanted) == []
    registered = yaml.safe_load(render_stack("local", stack_variables(churn_env, {})))
    registered["components"]["experiment_tracker"][0]["configuration"]["tracking_uri"] = "x"
    registered["components"]["orchestrator"][0]["flavor"] = "kubernetes"
    del registered["components"]["model_registry"]
    assert stack_differences(wanted, registered) == [
        f"experiment_tracker.tracking_uri is 'x', expected {churn_env.tracking_uri!r}",
        "model_registry missing",
        "orchestrator.flavor is 'kubernetes', expected 'local'",
    ]
