"""The `twin` ZenML stack registers against the twin with the EKS stack's flavors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from churn import stacks, twin
from churn.settings import get_settings


def _flavors(name: str) -> dict[str, str]:
    """component type -> flavor of a stack file in stacks/."""
    doc = yaml.safe_load(stacks.stack_file(name).read_text())
    return {kind: items[0]["flavor"] for kind, items in doc["components"].items()}


def test_twin_stack_keeps_eks_artifact_store_and_mlflow_flavors() -> None:
    eks, twin_stack = _flavors("eks"), _flavors("twin")
    for kind in ("artifact_store", "experiment_tracker", "model_registry"):
        assert twin_stack[kind] == eks[kind], kind
    assert twin_stack["orchestrator"] == "local"


def test_twin_stack_registers_with_the_twin_endpoints(
    twin_config: twin.TwinConfig,
    twin_environ: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real `zenml stack import` in a fresh ZenML store; exported back, it matches."""
    monkeypatch.setenv("ZENML_CONFIG_PATH", str(tmp_path / "zenml"))
    assert stacks.register_stack("twin", get_settings(), dict(os.environ))
    assert not stacks.register_stack("twin", get_settings(), dict(os.environ))  # idempotent
