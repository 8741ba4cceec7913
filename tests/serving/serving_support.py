"""Constants and helpers shared by the serving tests and their fixtures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.pipeline import Pipeline

from churn import redis_local
from churn.features.pipeline import FeaturePipelineResult
from churn.settings import Settings
from deployment.bundle import build_bundle_from_pipeline
from serving.bundle import BundleManifest
from serving.settings import ServingSettings

THRESHOLD = 0.35  # any value in (0, 1): the tests check labels against it, not its quality
# Small drift windows, so that the few thousand rows a test sends complete several.
DRIFT_WINDOW = 100
REDIS_TIMEOUT_S = 0.5
# Long enough that a test can observe the breaker fail fast between two requests.
RETRY_INTERVAL_S = 1.0


@dataclass(frozen=True)
class ServingEnv:
    """The module's isolated stack: settings, its Redis and the loaded data."""

    settings: Settings
    serving: ServingSettings
    redis: redis_local.RedisServerConfig
    features: FeaturePipelineResult
    telco_csv: Path


def make_bundle(
    out_dir: Path, model: Pipeline, version: str, drift_dir: Path | None, **kwargs: Any
) -> BundleManifest:
    """A bundle of `model` at THRESHOLD (the runtime's unit of deployment); `kwargs` go to
    deployment.bundle.build_bundle (feature_service, feature_layout, ...)."""
    return build_bundle_from_pipeline(
        out_dir, model, model_version=version, threshold=THRESHOLD, drift_dir=drift_dir, **kwargs
    )
