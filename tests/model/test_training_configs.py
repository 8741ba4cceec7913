"""The thorough training config is the default one with a longer search, nothing else."""

from __future__ import annotations

from typing import Any

import yaml

from churn.models.search import check_space
from churn.settings import PROJECT_ROOT

CONFIGS = PROJECT_ROOT / "configs"


def _parameters(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CONFIGS / name).read_text())
    return data["parameters"]


def test_thorough_differs_from_the_default_only_in_the_search_budget() -> None:
    default = _parameters("training_pipeline.yaml")
    thorough = _parameters("training_pipeline_thorough.yaml")
    budget = ("n_trials", "timeout_s")
    assert thorough["search"]["n_trials"] > default["search"]["n_trials"]
    assert thorough["search"]["timeout_s"] > default["search"]["timeout_s"]
    for params in (default, thorough):
        for key in budget:
            params["search"].pop(key)
    assert thorough == default


def test_every_family_has_a_search_space_and_starting_points() -> None:
    default = _parameters("training_pipeline.yaml")
    assert set(default["param_grid"]) == set(default["search"]["space"])
    assert set(default["param_grid"]) == {"logreg", "random_forest", "xgboost", "lightgbm"}
    for kind, points in default["param_grid"].items():
        space = default["search"]["space"][kind]
        for point in points:
            assert set(point) <= set(space), (kind, point)
            check_space(kind, space, [point])  # every value inside its range
