"""A ChurnRuntime whose drift detector raises: loaded by the test MLServer process.

It overrides only `load_detector`, the runtime's documented seam, so every other line
of the request path is the real one. MLServer imports it by its model-settings
`implementation` ("serving_faults.FaultyDriftRuntime"); the test puts this directory
on the server's PYTHONPATH.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from churn.drift.base import DriftResult
from churn.schema import model_input_names
from serving.bundle import LoadedBundle
from serving.runtime import ChurnRuntime

FAILURE = "injected detector failure"


class RaisingDetector:
    """Satisfies churn.drift.DriftDetector; every check raises."""

    name = "raising test detector"

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(model_input_names())

    def predict(self, columns: Any) -> DriftResult:
        raise RuntimeError(FAILURE)

    def save(self, path: Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, path: Path, *, features: Any = None) -> RaisingDetector:
        return cls()


class FaultyDriftRuntime(ChurnRuntime):
    """The churn runtime with a detector that fails on every window."""

    def load_detector(self, bundle: LoadedBundle) -> RaisingDetector:
        return RaisingDetector()
