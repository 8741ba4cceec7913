"""Shared fixtures: an isolated CHURN_HOME and the project's real Redis on a free port.

Every test session gets its own CHURN_HOME (offline store, registries, Redis data)
under pytest's tmp directory and its own Redis port and password, so tests never
touch a developer's .churn/ or a running `churn redis` server. The environment is
set once per session, before any test reads settings, and get_settings' cache is
cleared on the way in and out. Redis itself is started only by tests that ask for
`redis_server`; if redis-server is not installed the session fails loudly (no skip).

External inputs (the real Telco CSV, the Seldon CRDs) are found by tests/inputs.py.
Tests that need a real-data fact ask for `real_telco_csv`; tests that only need a
Telco-format file ask for `telco_csv`, which is the real file when it is at hand and
otherwise a CSV of synthetic customers in the published layout, read through the
same loader. Without an input a test that needs it is skipped with one fixed reason
(and marked needs_telco / needs_crds); under CI=true the run fails instead, naming
what is missing. The end of the run prints one line on what was skipped and why.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest
from crd_validation import Crd, load_crds
from inputs import (
    CRDS_HOW,
    CRDS_SKIP,
    TELCO_HOW,
    TELCO_SKIP,
    InputError,
    find_crd_dir,
    find_telco_csv,
    in_ci,
    write_synthetic_telco_csv,
)
from isolation import redis_env

from churn import redis_local
from churn.settings import Settings, get_settings

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# Fixtures that need an external input; a test using one is marked with its marker.
TELCO_FIXTURES: Final = frozenset({"real_telco_csv"})
CRD_FIXTURES: Final = frozenset({"crd_dir", "seldon_crds"})
MLFLOW_URI_VARIABLES: Final = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
SELDON_KINDS_NEEDED: Final = frozenset(
    {
        ("mlops.seldon.io/v1alpha1", "Server"),
        ("mlops.seldon.io/v1alpha1", "Model"),
        ("mlops.seldon.io/v1alpha1", "Pipeline"),
        ("machinelearning.seldon.io/v1", "SeldonDeployment"),
    }
)


@dataclass(frozen=True)
class Inputs:
    """What this run found: the real Telco CSV and the CRD directory (None = absent)."""

    telco: Path | None
    crds: Path | None


INPUTS_KEY: Final = pytest.StashKey[Inputs]()


def pytest_configure(config: pytest.Config) -> None:
    """Find the external inputs once; a configured but broken source stops the run."""
    try:
        config.stash[INPUTS_KEY] = Inputs(find_telco_csv(), find_crd_dir())
    except InputError as e:
        raise pytest.UsageError(str(e)) from e


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say at the top of the run which external inputs were found, and where."""
    inputs = config.stash[INPUTS_KEY]
    return [
        f"churn inputs: Telco CSV {inputs.telco or 'absent (synthetic stand-in)'}; "
        f"Seldon CRDs {inputs.crds or 'absent'}"
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests that need an input; under CI a missing input fails the run."""
    inputs = config.stash[INPUTS_KEY]
    missing: set[str] = set()
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & TELCO_FIXTURES:
            item.add_marker(pytest.mark.needs_telco)
        if names & CRD_FIXTURES:
            item.add_marker(pytest.mark.needs_crds)
        if inputs.telco is None and names & (TELCO_FIXTURES | {"telco_csv"}):
            missing.add(f"the real Telco CSV ({TELCO_HOW})")
        if inputs.crds is None and names & CRD_FIXTURES:
            missing.add(f"the Seldon CRDs ({CRDS_HOW})")
    if missing and in_ci():
        raise pytest.UsageError(
            "CI=true, so nothing may be skipped, but the selected tests need "
            + " and ".join(sorted(missing))
        )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """One closing line: how many tests were skipped for a missing input, and the fix."""
    counts: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        for label, skip in (("Telco CSV", TELCO_SKIP), ("Seldon CRDs", CRDS_SKIP)):
            if skip in reason:
                counts[label] += 1
    if counts:
        parts = []
        if counts["Telco CSV"]:
            parts.append(f"{counts['Telco CSV']} need the real Telco CSV ({TELCO_HOW})")
        if counts["Seldon CRDs"]:
            parts.append(f"{counts['Seldon CRDs']} need the Seldon CRDs ({CRDS_HOW})")
        terminalreporter.write_line(
            f"churn: {sum(counts.values())} tests skipped for missing inputs: " + "; ".join(parts)
        )


@pytest.fixture(autouse=True)
def mlflow_uris_restored() -> Iterator[None]:
    """Each test leaves MLflow's URI variables as it found them.

    Why: `mlflow.set_tracking_uri` and `set_registry_uri` (called by
    churn.models.registry.use_tracking) also write MLFLOW_TRACKING_URI and
    MLFLOW_REGISTRY_URI into os.environ, so one test's temporary MLflow store would
    otherwise follow every later test's subprocesses (zenml runs, scripts).
    """
    before = {name: os.environ.get(name) for name in MLFLOW_URI_VARIABLES}
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session", autouse=True)
def churn_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Session-wide CHURN_* environment pointing at tmp state; yields the Settings."""
    home = tmp_path_factory.mktemp("churn_home")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in redis_env(home, "test").items():
            mp.setenv(name, value)
        for name in MLFLOW_URI_VARIABLES:  # a user's MLflow server is not the tests'
            mp.delenv(name, raising=False)
        get_settings.cache_clear()
        try:
            yield get_settings()
        finally:
            get_settings.cache_clear()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def redis_server(churn_env: Settings) -> Iterator[redis_local.RedisServerConfig]:
    """A real redis-server for the session, on churn_env's port, data in its home."""
    cfg = redis_local.config_from_settings(churn_env)
    try:
        redis_local.find_redis_server()
    except redis_local.RedisServerError:
        pytest.fail(redis_local.INSTALL_HINT, pytrace=False)
    redis_local.start(cfg)
    try:
        yield cfg
    finally:
        redis_local.stop(cfg)


@pytest.fixture(scope="session")
def real_telco_csv(request: pytest.FixtureRequest) -> Path:
    """The real IBM Telco CSV; skipped with one fixed reason when it is not at hand."""
    path = request.config.stash[INPUTS_KEY].telco
    if path is None:
        pytest.skip(TELCO_SKIP)
    return path


@pytest.fixture(scope="session")
def telco_csv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Telco-format CSV: the real file when at hand, else synthetic customers written
    in the published layout (so the loader and everything after it run unchanged)."""
    real = request.config.stash[INPUTS_KEY].telco
    if real is not None:
        return real
    return write_synthetic_telco_csv(tmp_path_factory.mktemp("telco") / "synthetic-telco.csv")


@pytest.fixture(scope="session")
def crd_dir(request: pytest.FixtureRequest) -> Path:
    """The directory of Seldon CRD files; skipped with one fixed reason when absent."""
    path = request.config.stash[INPUTS_KEY].crds
    if path is None:
        pytest.skip(CRDS_SKIP)
    return path


@pytest.fixture(scope="session")
def seldon_crds(crd_dir: Path) -> dict[tuple[str, str], Crd]:
    """(apiVersion, kind) -> the CRD's served schema; every kind the project renders."""
    out = load_crds(crd_dir)
    if missing := SELDON_KINDS_NEEDED - set(out):
        pytest.fail(f"CRDs in {crd_dir} lack {sorted(missing)}", pytrace=False)
    return out


@pytest.fixture(scope="session")
def churn_model(telco_csv: Path) -> Pipeline:
    """XGBoost trained on every Telco customer (one grid point, 2-fold CV: ~2 s)."""
    from churn.data.telco import load_telco
    from churn.features.derived import add_derived
    from churn.models.candidates import train_candidate
    from churn.schema import LABEL, model_input_names

    frame = add_derived(load_telco(telco_csv))
    candidate = train_candidate(
        "xgboost",
        frame[model_input_names()],
        frame[LABEL],
        [{"n_estimators": 120, "max_depth": 3, "learning_rate": 0.1, "subsample": 0.9}],
        seed=0,
        cv_folds=2,
    )
    return candidate.pipeline


@pytest.fixture(scope="session")
def drift_detector_dir(telco_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default alibi-detect detector fitted on the Telco features, saved."""
    from churn.data.telco import load_telco
    from churn.drift import fit_detector
    from churn.features.derived import add_derived

    path = tmp_path_factory.mktemp("detector") / "drift"
    fit_detector(add_derived(load_telco(telco_csv))).save(path)
    return path
