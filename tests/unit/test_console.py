"""The run console: library noise dropped, the wrong ZenML hint replaced, warnings once."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator

import pytest

from churn import console


@pytest.fixture
def installed() -> Iterator[None]:
    """console.install(), undone afterwards (it changes process-wide logging state)."""
    before = warnings.showwarning
    console.install()
    try:
        yield
    finally:
        warnings.showwarning = before
        for name in {rule.logger for rule in console.RULES} | {console.ZENML_RUN_LOGGER}:
            logger = logging.getLogger(name)
            ours = (console.RuleFilter, console.RunBanner)
            for f in [f for f in logger.filters if isinstance(f, ours)]:
                logger.removeFilter(f)


def _emitted(logger_name: str, message: str) -> list[str]:
    """What a handler on `logger_name` receives when `message` is logged at INFO."""
    logger = logging.getLogger(logger_name)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info(message)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return stream.getvalue().splitlines()


@pytest.mark.usefixtures("installed")
def test_feast_registry_refresh_lines_are_dropped_and_others_kept() -> None:
    assert _emitted("feast.infra.registry.registry", "Registry cache expired, so refreshing") == []
    assert _emitted("feast.infra.registry.registry", "something else") == ["something else"]


@pytest.mark.usefixtures("installed")
def test_alibi_detect_loading_lines_are_dropped_and_its_warnings_kept() -> None:
    """Loading a detector logged ~30 INFO lines per drift pipeline run (make demo)."""
    loading = "alibi_detect.saving.loading"
    lines = (
        "Resolving config field: ['x_kernel', 'src'].",
        "Validated resolved config.",
        "Instantiated drift detector TabularDrift",
        "Finished loading detector.",
    )
    for line in lines:
        assert _emitted(loading, line) == [], line
    assert _emitted(loading, "Could not resolve registry entry") == [
        "Could not resolve registry entry"
    ]


@pytest.mark.usefixtures("installed")
def test_zenml_run_banner_is_one_line_naming_the_pipeline_and_the_hint_works_here() -> None:
    run = console.ZENML_RUN_LOGGER
    assert _emitted(run, "Registered new pipeline: `training_pipeline`.") == [
        "Registered new pipeline: `training_pipeline`."
    ]
    assert _emitted(run, "Using user: `default`") == []
    assert _emitted(run, "Using stack: `local`") == [
        "training_pipeline runs on ZenML stack `local` (its components: "
        "`zenml stack describe local`)"
    ]
    assert _emitted(run, "  orchestrator: `local_orchestrator`") == []
    hint = (
        "You can visualize your pipeline runs in the `ZenML Dashboard`. In order to try "
        "it locally, please run `zenml login --local`."
    )
    lines = _emitted(run, hint)
    assert lines == [f"training_pipeline: {console.RUNS_HINT}"]
    assert "zenml login" not in lines[0] and "make mlflow-ui" in lines[0]
    assert _emitted(run, "Caching is disabled by default for batch_inference_pipeline.") == [
        "Caching is disabled by default for batch_inference_pipeline."
    ]
    assert _emitted(run, "Using stack: `eks`")[0].startswith("batch_inference_pipeline runs on")
    assert _emitted(run, "Step load_data has started.") == ["Step load_data has started."]


def test_install_is_idempotent(installed: None) -> None:
    console.install()
    logger = logging.getLogger("feast.infra.registry.registry")
    assert sum(isinstance(f, console.RuleFilter) for f in logger.filters) == 1


def test_a_warning_is_shown_once_in_words() -> None:
    stream = io.StringIO()
    show = console.OnceInWords(stream)
    source = "/x/.venv/lib/python3.11/site-packages/feast/feature_store.py"
    for _ in range(3):
        show(RuntimeWarning("On demand feature view is experimental"), RuntimeWarning, source, 580)
    show(RuntimeWarning("another"), RuntimeWarning, source, 581)
    assert stream.getvalue().splitlines() == [
        "feast warns (RuntimeWarning): On demand feature view is experimental",
        "feast warns (RuntimeWarning): another",
    ]


@pytest.mark.parametrize(
    ("filename", "package"),
    [
        ("/v/lib/python3.11/site-packages/feast/feature_store.py", "feast"),
        ("/usr/lib/python3/dist-packages/six.py", "six"),
        ("/work/repo/churn/cli.py", "cli.py"),
    ],
)
def test_source_package_names_the_library(filename: str, package: str) -> None:
    assert console.source_package(filename) == package
