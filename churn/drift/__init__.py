"""Drift detection on the model's inputs: a backend-neutral interface and its backends.

Callers use `DriftDetector` / `DriftResult` / `load_detector` (churn.drift.base) and
`DriftWindow` / `run_windowed` (churn.drift.window). The default backend,
alibi-detect's TabularDrift (`fit_detector`, churn.drift.alibi), is under the
Business Source License 1.1; see churn.drift.base for how to swap it. Importing this
package does not import alibi-detect: that happens on first fit or load.
"""

from churn.drift.alibi import AlibiTabularDrift, fit_detector
from churn.drift.base import (
    SIDECAR_NAME,
    DetectorMismatchError,
    DriftDetector,
    DriftResult,
    load_detector,
)
from churn.drift.encoding import DriftInputError, FeatureEncoder
from churn.drift.window import DriftWindow, run_windowed

__all__ = [
    "SIDECAR_NAME",
    "AlibiTabularDrift",
    "DetectorMismatchError",
    "DriftDetector",
    "DriftInputError",
    "DriftResult",
    "DriftWindow",
    "FeatureEncoder",
    "fit_detector",
    "load_detector",
    "run_windowed",
]
