"""The pipeline YAMLs are the one place a tunable's value is written.

Why: a default restated in a pipeline signature, a step or a domain class drifts
from the YAML (it did: slice_min_recall was 0.05 in code and 0.15 in the YAML), and
a reader cannot tell which one runs. These tests read the signatures, so a new
default that restates a YAML value fails here, naming it.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from churn.models.evaluate import Costs, Revenue, ThresholdRule
from churn.models.gates import GateConfig
from churn.settings import PROJECT_ROOT
from configs import pipeline_parameters

PIPELINES = sorted(p.stem for p in (PROJECT_ROOT / "configs").glob("*_pipeline.yaml"))


def _entrypoint(pipeline: str) -> Callable[..., Any]:
    module = importlib.import_module(f"pipelines.{pipeline}")
    return getattr(module, pipeline).entrypoint  # type: ignore[no-any-return]


def _yaml_names() -> set[str]:
    return {name for p in PIPELINES for name in pipeline_parameters(p)}


def _step_functions() -> list[tuple[str, Callable[..., Any]]]:
    out = []
    for path in sorted((PROJECT_ROOT / "steps").rglob("*.py")):
        if path.name.startswith("_") or path.name == "materializers.py":
            continue
        module_name = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            entry = getattr(value, "entrypoint", None)
            if callable(entry) and getattr(entry, "__module__", "") == module_name:
                out.append((f"{module_name}.{name}", entry))
    return out


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_every_yaml_parameter_is_a_pipeline_parameter_without_a_default(pipeline: str) -> None:
    signature = inspect.signature(_entrypoint(pipeline))
    for name in pipeline_parameters(pipeline):
        assert name in signature.parameters, f"{pipeline}.yaml sets {name!r}: no such parameter"
        default = signature.parameters[name].default
        assert default is inspect.Parameter.empty, (
            f"{pipeline}({name}=...) restates {default!r}; the YAML is its one home"
        )


def test_no_step_restates_a_value_the_yamls_set() -> None:
    steps = _step_functions()
    assert len(steps) >= 15, [name for name, _ in steps]  # the scan found the steps
    names = _yaml_names() - {"model_name"}
    restated = [
        f"{step}({param.name}={param.default!r})"
        for step, function in steps
        for param in inspect.signature(function).parameters.values()
        if param.name in names and param.default is not inspect.Parameter.empty
    ]
    assert restated == [], "restated in steps (the YAML is their home):\n" + "\n".join(restated)


@pytest.mark.parametrize(
    ("cls", "key"),
    [(GateConfig, "gates"), (Costs, "costs"), (Revenue, "revenue"), (ThresholdRule, None)],
)
def test_domain_classes_take_their_values_from_the_training_yaml(
    cls: type, key: str | None
) -> None:
    fields = dataclasses.fields(cls)
    training = pipeline_parameters("training_pipeline")
    if key is None:  # ThresholdRule: only the optional recall_target has a default (None)
        assert [f.name for f in fields if f.default is not dataclasses.MISSING] == ["recall_target"]
        assert ThresholdRule(**training["threshold_rule"]).kind == "recall_target"
        return
    assert all(f.default is dataclasses.MISSING for f in fields), cls.__name__
    assert set(training[key]) == {f.name for f in fields}
    cls(**training[key])


def test_configs_folder_is_where_the_scan_looks() -> None:
    assert PIPELINES, f"no *_pipeline.yaml under {Path(PROJECT_ROOT, 'configs')}"
