"""The drift detector interface every backend implements, and how saved ones are found.

alibi-detect (the default backend, churn.drift.alibi) is under the Business Source
License 1.1: production use needs a licence from Seldon (docs/decisions.md, 4).
Pipelines, serving and monitoring therefore talk only to `DriftDetector` and
`DriftResult` here; replacing the backend means writing one class that satisfies
the protocol and adding it to `_BACKENDS`, with no change to any caller.

A saved detector is a directory: whatever the backend writes, plus a JSON sidecar
(`SIDECAR_NAME`) that records the backend, the feature order and categories, and a
schema fingerprint, so a loader can refuse a detector built for other features
before it produces meaningless p-values.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, Self, runtime_checkable

from churn.drift.encoding import Columns
from churn.files import write_json_atomic

SIDECAR_NAME: Final = "churn_drift.json"
SIDECAR_FORMAT: Final = 1

# backend name in a sidecar -> (module, class). A fixed table, never a class path read
# from the file: loading a detector must not import arbitrary modules.
_BACKENDS: Final[dict[str, tuple[str, str]]] = {
    "alibi-detect": ("churn.drift.alibi", "AlibiTabularDrift"),
}


class DetectorMismatchError(ValueError):
    """A saved detector does not fit the features it is asked to check."""


@dataclass(frozen=True)
class DriftResult:
    """The verdict on one window of rows, independent of the backend that produced it.

    `p_value` is the smallest per-feature p-value and `threshold` the level it is
    compared with after the multiple-testing correction, so `is_drift` is
    `p_value < threshold` for a Bonferroni-corrected detector.
    """

    is_drift: bool
    p_value: float
    threshold: float
    distances: dict[str, float]
    p_values: dict[str, float]
    n_rows: int
    detector: str
    feature_names: tuple[str, ...]

    def drifted_features(self) -> list[str]:
        """Features whose own p-value is below the corrected threshold, most significant first."""
        below = [name for name, p in self.p_values.items() if p < self.threshold]
        return sorted(below, key=lambda name: self.p_values[name])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (no numpy scalars, no NaN), for MLflow, logs and HTTP."""
        return {
            "is_drift": bool(self.is_drift),
            "p_value": _json_float(self.p_value),
            "threshold": _json_float(self.threshold),
            "distances": {k: _json_float(v) for k, v in self.distances.items()},
            "p_values": {k: _json_float(v) for k, v in self.p_values.items()},
            "drifted_features": self.drifted_features(),
            "n_rows": int(self.n_rows),
            "detector": self.detector,
            "feature_names": list(self.feature_names),
        }


def _json_float(value: float) -> float | None:
    """A Python float, or None where JSON has no number (NaN, infinity)."""
    number = float(value)
    return number if math.isfinite(number) else None


@runtime_checkable
class DriftDetector(Protocol):
    """A fitted drift detector: compares windows of served rows with its reference."""

    @property
    def name(self) -> str:
        """Backend and method, e.g. "alibi-detect TabularDrift"; copied into results."""
        ...

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features compared, in order; `predict` needs a column for each."""
        ...

    def predict(self, columns: Columns) -> DriftResult:
        """Test one window (a DataFrame or a mapping of equal-length arrays)."""
        ...

    def save(self, path: Path) -> None:
        """Write the detector and its sidecar into the new or empty directory `path`."""
        ...

    @classmethod
    def load(cls, path: Path, *, features: Sequence[str] | None = None) -> Self:
        """Read a detector saved by `save`; DetectorMismatchError if `features` differ."""
        ...


def load_detector(path: Path, *, features: Sequence[str] | None = None) -> DriftDetector:
    """Load a saved detector with the backend its sidecar names.

    Pass `features` (e.g. schema.model_input_names()) to require that the detector
    checks exactly those columns in that order.
    """
    backend = str(read_sidecar(path).get("backend"))
    if backend not in _BACKENDS:
        raise DetectorMismatchError(
            f"{path / SIDECAR_NAME}: unknown drift backend {backend!r}; known: {sorted(_BACKENDS)}"
        )
    module_name, class_name = _BACKENDS[backend]
    detector_class = getattr(importlib.import_module(module_name), class_name)
    detector: DriftDetector = detector_class.load(path, features=features)
    return detector


def prepare_save_dir(path: Path) -> None:
    """Create `path`, refusing a non-empty one: old files would mix with the new detector."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path} exists and is not an empty directory")
    path.mkdir(parents=True, exist_ok=True)


def write_sidecar(path: Path, content: Mapping[str, Any]) -> None:
    """Write the sidecar atomically, last: a directory without one is an unfinished save."""
    write_json_atomic(path / SIDECAR_NAME, {"format": SIDECAR_FORMAT, **content})


def read_sidecar(path: Path) -> dict[str, Any]:
    """The sidecar of a saved detector; DetectorMismatchError when absent or unreadable."""
    sidecar = path / SIDECAR_NAME
    if not sidecar.is_file():
        raise DetectorMismatchError(
            f"{path} is not a saved churn drift detector (no {SIDECAR_NAME}); "
            "save it with DriftDetector.save()"
        )
    try:
        content = json.loads(sidecar.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DetectorMismatchError(f"{sidecar} is not valid JSON: {e}") from e
    if not isinstance(content, dict):
        raise DetectorMismatchError(f"{sidecar} must hold a JSON object")
    if content.get("format") != SIDECAR_FORMAT:
        raise DetectorMismatchError(
            f"{sidecar} has format {content.get('format')!r}; this code reads {SIDECAR_FORMAT}"
        )
    return content


def check_features(path: Path, saved: Sequence[str], expected: Sequence[str] | None) -> None:
    """Raise DetectorMismatchError unless `saved` equals `expected` (when given), in order."""
    if expected is None or list(saved) == list(expected):
        return
    parts = []
    if missing := [f for f in expected if f not in saved]:
        parts.append(f"expected but not checked by the detector: {missing}")
    if extra := [f for f in saved if f not in expected]:
        parts.append(f"checked by the detector but not expected: {extra}")
    detail = "; ".join(parts) or "same features in a different order"
    raise DetectorMismatchError(
        f"drift detector at {path} was saved for features {list(saved)}, "
        f"expected {list(expected)}: {detail}"
    )
