"""The shipped pipeline configurations, for tests that need the values they set.

Why: configs/*.yaml is the one place a tunable's value is written (the domain
classes have no defaults for them), so a test that needs "the gates" or "the
threshold rule" reads them from the YAML the pipelines run with, and tests the
values users actually get.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from churn.models.evaluate import Costs, Revenue, ThresholdRule
from churn.models.gates import GateConfig
from churn.settings import PROJECT_ROOT


@cache
def pipeline_parameters(pipeline: str) -> dict[str, Any]:
    """`parameters` of configs/<pipeline>.yaml (e.g. "training_pipeline")."""
    path = PROJECT_ROOT / "configs" / f"{pipeline}.yaml"
    parameters: dict[str, Any] = yaml.safe_load(path.read_text())["parameters"]
    return parameters


def gate_config(**overrides: Any) -> GateConfig:
    """The training pipeline's gates, with some limits replaced."""
    return GateConfig(**{**pipeline_parameters("training_pipeline")["gates"], **overrides})


def evaluation_terms(**overrides: Any) -> dict[str, Any]:
    """threshold_rule, costs and revenue as the training pipeline evaluates with them."""
    training = pipeline_parameters("training_pipeline")
    terms: dict[str, Any] = {
        "threshold_rule": ThresholdRule(**training["threshold_rule"]),
        "costs": Costs(**training["costs"]),
        "revenue": Revenue(**training["revenue"]),
    }
    return {**terms, **overrides}
