"""Fixtures of the infrastructure tests that run containers."""

from __future__ import annotations

from pathlib import Path

import pytest
from infra_support import BUNDLE_VERSION
from isolation import isolated_stack, stack_env
from sklearn.pipeline import Pipeline

from churn.features.names import FEATURE_SERVICE
from churn.features.pipeline import DataSource, run_feature_pipeline
from deployment.bundle import build_bundle_from_pipeline, feature_layout_of


@pytest.fixture(scope="session")
def layout_bundle(
    tmp_path_factory: pytest.TempPathFactory,
    telco_csv: Path,
    churn_model: Pipeline,
    drift_detector_dir: Path,
) -> Path:
    """A bundle as the deployment pipeline writes it (model, detector, the feature layout
    resolved from a real Feast registry), version BUNDLE_VERSION; the registry's own
    stack (home, Redis) is gone once it is built: a container needs only the bundle."""
    home = tmp_path_factory.mktemp("infra_bundle_home")
    bundle = tmp_path_factory.mktemp("infra_bundle") / "bundle"
    with isolated_stack(stack_env(home, "infra")) as (settings, _):
        run_feature_pipeline(DataSource(kind="telco", csv_path=telco_csv), settings)
        build_bundle_from_pipeline(
            bundle, churn_model, model_version=BUNDLE_VERSION, threshold=0.4,
            drift_dir=drift_detector_dir, feature_layout=feature_layout_of(FEATURE_SERVICE),
        )  # fmt: skip
    return bundle
