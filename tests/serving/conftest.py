"""Fixtures of the serving tests: a real model, real data in a real Redis, a real MLServer.

- `churn_model` / `drift_detector_dir` (session, tests/conftest.py): an XGBoost
  pipeline trained on the Telco data, and an alibi-detect detector fitted on it.
- `serving_env` (module): an isolated CHURN_HOME with its OWN redis-server (the
  serving tests stop and pause Redis, which must not disturb the session's shared
  one), the real Telco CSV loaded by the real feature pipeline
  (run_feature_pipeline: offline store -> feast apply -> materialize), CHURN_* and
  CHURN_SERVING_* pointing at it for the module, restored afterwards.
- `bundle_v1`: a serving bundle of churn_model (+ detector) in that home.

Starting MLServer is left to the HTTP module (one server per module: cold start is
8-15 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from isolation import isolated_stack, stack_env
from serving_support import (
    DRIFT_WINDOW,
    REDIS_TIMEOUT_S,
    RETRY_INTERVAL_S,
    ServingEnv,
    make_bundle,
)
from sklearn.pipeline import Pipeline

from churn.features.pipeline import DataSource, run_feature_pipeline
from serving.settings import get_serving_settings

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def serving_env(tmp_path_factory: pytest.TempPathFactory, telco_csv: Path) -> Iterator[ServingEnv]:
    """Own CHURN_HOME + redis-server + real Telco features online, for one module."""
    home = tmp_path_factory.mktemp("serving_home")
    env = {
        **stack_env(home, "serving"),
        "CHURN_SERVING_REDIS_TIMEOUT_S": str(REDIS_TIMEOUT_S),
        "CHURN_SERVING_REDIS_RETRY_INTERVAL_S": str(RETRY_INTERVAL_S),
        "CHURN_SERVING_DRIFT_WINDOW": str(DRIFT_WINDOW),
        "CHURN_SERVING_STARTUP_TIMEOUT_S": "90",
    }
    # The server process imports the test runtime in serving_faults.py from here.
    with isolated_stack({**env, "PYTHONPATH": str(HERE)}) as (settings, cfg):
        features = run_feature_pipeline(DataSource(kind="telco", csv_path=telco_csv), settings)
        yield ServingEnv(settings, get_serving_settings(), cfg, features, telco_csv)


@pytest.fixture(scope="module")
def bundle_v1(serving_env: ServingEnv, churn_model: Pipeline, drift_detector_dir: Path) -> Path:
    """Version "1" of the churn model with its drift detector."""
    path = serving_env.settings.home / "bundles" / "v1"
    make_bundle(path, churn_model, "1", drift_detector_dir)
    return path
