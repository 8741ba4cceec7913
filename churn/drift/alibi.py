"""The default drift backend: alibi-detect's TabularDrift over the model's inputs.

Licence: alibi-detect 0.12+ is under the Business Source License 1.1; production use
needs a licence from Seldon (docs/decisions.md, 4). Callers depend only on
churn.drift.base, so this module can be replaced without touching them.

Method. TabularDrift runs one test per feature: Chi-squared on the categorical
features (encoded to schema codes by churn.drift.encoding) and two-sample
Kolmogorov-Smirnov on the numeric ones, then combines them with a correction.

Correction: Bonferroni (also alibi-detect's default). There are 22 features (19 raw
+ 3 derived), so an uncorrected 5% test per feature would alarm on most drift-free
windows. Bonferroni alarms when any feature's p-value is below p_val / n_features,
which bounds the chance that a drift-free window alarms by p_val whatever the
dependence between features; ours are strongly dependent (add-ons and
internet_service, total_charges and tenure x monthly_charges, derived from raw), and
the FDR procedure's guarantee needs independence or positive dependence. The price is
power against a small shift in one feature, which the real-data tests measure: see
tests/drift/ and benchmarks/drift_bench.py for the false-alarm rate and how quickly
a shifted population is detected.

alibi-detect takes seconds to import (TensorFlow/PyTorch probing), so it is imported
inside the functions that need it: importing this module costs nothing extra, and
processes that never check drift never pay for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import numpy as np

from churn import schema
from churn.drift.base import (
    DetectorMismatchError,
    DriftResult,
    check_features,
    prepare_save_dir,
    read_sidecar,
    write_sidecar,
)
from churn.drift.encoding import Columns, FeatureEncoder, FloatMatrix

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

BACKEND: Final = "alibi-detect"
# Family-wise level before the Bonferroni correction (per feature: 0.01 / 22). Measured on
# the real Telco over 10 random train/held-out splits (benchmarks/drift_bench.py), with
# windows resampled from the held-out customers: at 0.05 they alarm in 6.8% (200-row
# windows) and 13% (500-row) of cases, because a real population differs from the
# training sample by more than i.i.d. noise and the tests see small differences better
# as windows grow; at 0.01, 1.7% (200 rows, worst split 3%) and 4.4% (500 rows). The
# shifted population of tests/drift is still caught by its first 10-row window.
DEFAULT_P_VAL: Final = 0.01
Correction = Literal["bonferroni", "fdr"]


def _alibi_version() -> str:
    """Installed alibi-detect version, recorded in the sidecar for provenance."""
    from alibi_detect.version import __version__

    return str(__version__)


class AlibiTabularDrift:
    """A fitted TabularDrift with the schema encoding it was fitted with.

    `predict` is serialised by a lock: alibi-detect keeps per-call state on the
    detector, and serving may run checks from more than one thread.
    """

    name: ClassVar[str] = "alibi-detect TabularDrift"

    def __init__(
        self, detector: Any, encoder: FeatureEncoder, *, p_val: float, correction: Correction
    ) -> None:
        self._detector = detector
        self._encoder = encoder
        self._p_val = p_val
        self._correction: Correction = correction
        self._lock = threading.Lock()

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features compared, in the order of the reference matrix."""
        return self._encoder.feature_names

    @property
    def p_val(self) -> float:
        """Family-wise significance level before the correction."""
        return self._p_val

    @property
    def correction(self) -> Correction:
        """Multiple-testing correction across features."""
        return self._correction

    @property
    def n_reference_rows(self) -> int:
        """Rows in the reference sample every window is compared with."""
        return int(self._detector.x_ref.shape[0])

    def predict(self, columns: Columns) -> DriftResult:
        """Test one window of rows against the reference.

        Raises churn.drift.encoding.DriftInputError naming the feature when a column
        is missing, has an unknown category or a non-finite number.
        """
        x = self._encoder.encode(columns)
        return self.predict_encoded(x)

    def predict_encoded(self, x: FloatMatrix) -> DriftResult:
        """Test an already encoded window (rows x features, schema codes for categories)."""
        with self._lock:
            out = self._detector.predict(
                x, drift_type="batch", return_p_val=True, return_distance=True
            )
        data = out["data"]
        names = self.feature_names
        p_values = {n: float(p) for n, p in zip(names, data["p_val"], strict=True)}
        distances = {n: float(d) for n, d in zip(names, data["distance"], strict=True)}
        return DriftResult(
            is_drift=bool(data["is_drift"]),
            p_value=min(p_values.values()),
            threshold=float(data["threshold"]),
            distances=distances,
            p_values=p_values,
            n_rows=int(x.shape[0]),
            detector=self.name,
            feature_names=names,
        )

    def save(self, path: Path) -> None:
        """Write alibi-detect's config.toml + x_ref.npy and our sidecar into `path`.

        `path` must be new or an empty directory. The sidecar is written last, so an
        interrupted save is refused by `load` rather than half-read.
        """
        from alibi_detect.saving import save_detector

        prepare_save_dir(path)
        save_detector(self._detector, path)
        write_sidecar(
            path,
            {
                "backend": BACKEND,
                "backend_version": _alibi_version(),
                "method": "TabularDrift",
                "features": list(self.feature_names),
                "categories": {
                    s.name: list(s.categories) for s in self._encoder.specs if s.is_categorical
                },
                "schema_fingerprint": self._encoder.fingerprint(),
                "p_val": self._p_val,
                "correction": self._correction,
                "n_reference_rows": self.n_reference_rows,
            },
        )

    @classmethod
    def load(cls, path: Path, *, features: Sequence[str] | None = None) -> AlibiTabularDrift:
        """Load a detector saved by `save`, after checking it against the current schema.

        Raises DetectorMismatchError when the sidecar is missing, names another
        backend, was saved for features other than `features` (if given), or when the
        schema's categories for its features changed since it was saved (the integer
        codes would then mean other categories).
        """
        sidecar = read_sidecar(path)
        if sidecar.get("backend") != BACKEND:
            raise DetectorMismatchError(
                f"{path}: saved by backend {sidecar.get('backend')!r}, not {BACKEND!r}"
            )
        saved = [str(f) for f in sidecar.get("features", [])]
        check_features(path, saved, features)
        encoder = _encoder_for_saved(path, saved, sidecar)
        version = _alibi_version()
        if sidecar.get("backend_version") != version:
            logger.warning(
                "drift detector at %s was saved with alibi-detect %s, loading with %s",
                path,
                sidecar.get("backend_version"),
                version,
            )
        from alibi_detect.saving import load_detector

        detector = load_detector(path)
        _check_loaded(path, detector, encoder)
        return cls(
            detector,
            encoder,
            p_val=float(detector.p_val),
            correction=detector.correction,
        )


def _encoder_for_saved(path: Path, saved: list[str], sidecar: dict[str, Any]) -> FeatureEncoder:
    """The encoder the current schema gives for `saved`; it must match the saved one."""
    try:
        encoder = FeatureEncoder.from_schema(saved)
    except (KeyError, ValueError) as e:
        raise DetectorMismatchError(f"drift detector at {path}: {e}") from e
    if encoder.fingerprint() == sidecar.get("schema_fingerprint"):
        return encoder
    saved_categories = sidecar.get("categories", {})
    changed = [
        s.name for s in encoder.specs if list(s.categories) != saved_categories.get(s.name, [])
    ]
    raise DetectorMismatchError(
        f"drift detector at {path} was saved for a different schema "
        f"(fingerprint {sidecar.get('schema_fingerprint')!r}, now {encoder.fingerprint()!r}); "
        f"features whose categories or kind differ: {changed or 'kind or order only'}"
    )


def _check_loaded(path: Path, detector: Any, encoder: FeatureEncoder) -> None:
    """The alibi-detect files must agree with the sidecar: width and categorical columns."""
    width = int(detector.x_ref.shape[1])
    if width != len(encoder.specs):
        raise DetectorMismatchError(
            f"drift detector at {path} has {width} reference columns but its sidecar lists "
            f"{len(encoder.specs)} features {list(encoder.feature_names)}"
        )
    categorical = sorted(int(i) for i in detector.x_ref_categories)
    expected = sorted(encoder.categorical_columns())
    if categorical != expected:
        raise DetectorMismatchError(
            f"drift detector at {path} treats columns {categorical} as categorical, "
            f"its sidecar's features imply {expected}"
        )


def _reference_sample(reference: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most `max_rows` rows, drawn without replacement with a fixed seed.

    TabularDrift keeps the reference in memory and every K-S test sorts it, so the
    cap bounds predict time and the saved detector's size; 5000 rows already make
    the reference's own sampling noise small next to a 200-500 row window's.
    """
    if len(reference) <= max_rows:
        return reference
    rows = np.sort(np.random.default_rng(seed).choice(len(reference), max_rows, replace=False))
    return reference.iloc[rows]


def fit_detector(
    reference: pd.DataFrame,
    *,
    p_val: float = DEFAULT_P_VAL,
    features: Sequence[str] | None = None,
    max_reference_rows: int = 5000,
    seed: int = 0,
    correction: Correction = "bonferroni",
) -> AlibiTabularDrift:
    """Fit TabularDrift on training rows (raw features plus derived columns).

    `features` defaults to schema.model_input_names(): drift is checked on exactly
    what the model consumes. Categorical features are tested over the schema codes
    present in the reference; a category absent from the reference but present in a
    window then counts as drift instead of crashing the Chi-squared test on an empty
    column.
    """
    if not 0.0 < p_val < 1.0:
        raise ValueError(f"p_val must be in (0, 1), got {p_val}")
    if max_reference_rows < 1:
        raise ValueError(f"max_reference_rows must be positive, got {max_reference_rows}")
    names = list(features) if features is not None else schema.model_input_names()
    encoder = FeatureEncoder.from_schema(names)
    x_ref = encoder.encode(_reference_sample(reference, max_reference_rows, seed))
    categories_per_feature: dict[int, list[int]] = {
        column: sorted(int(code) for code in np.unique(x_ref[:, column]))
        for column in encoder.categorical_columns()
    }
    from alibi_detect.cd import TabularDrift

    detector = TabularDrift(
        x_ref,
        p_val=p_val,
        categories_per_feature=categories_per_feature,
        correction=correction,
        data_type="tabular",
    )
    return AlibiTabularDrift(detector, encoder, p_val=p_val, correction=correction)
