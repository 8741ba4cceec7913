"""Model tests as promotion gates: performance floors and behavioural checks.

A candidate reaches the registry's "champion" alias only if every gate passes. The
behavioural gates follow the invariance / directional / minimum-functionality split
of behavioural testing (Ribeiro et al., "Beyond Accuracy", 2020):

- min_roc_auc, min_recall: held-out ROC-AUC, and recall at the operating threshold.
- invariance_customer_id: replacing every customer_id changes no score (|Δ| < tol).
- invariance_batch: scoring rows shuffled, one at a time and in odd-sized chunks gives
  every row the same score as one full batch (|Δ| < tol). Serving scores 1-100 rows
  per call, training scores thousands: they must agree exactly.
- directional_tenure: on `n_base_rows` real held-out rows, tenure is moved along
  TENURE_STEPS with everything else fixed. "Everything else" keeps the customer's
  average bill: total_charges = avg_monthly_spend x tenure, and the derived features
  are recomputed, so each probe row is a customer who could exist. A consecutive pair
  passes when P(churn) does not rise by more than `directional_tolerance` (0.01: tree
  ensembles have tiny non-monotone wiggles that no decision depends on). The gate
  requires at least `directional_min_fraction` (90%) of pairs to pass: longer
  tenure -> lower churn is the strongest, best-documented effect in this data.
- directional_contract: the same base rows as month-to-month vs two-year; at least
  `directional_min_fraction` of rows must score strictly higher as month-to-month.
- min_functionality_risky / _loyal: hand-made obvious customers must land on the
  right side of the threshold.
- slice_roc_auc_floor / slice_calibration: in every slice (contract, tenure bucket,
  senior_citizen, internet_service) with at least `slice_min_rows` rows and
  `slice_min_positives` churners, the model must rank the slice's customers (ROC-AUC
  floor), and the churners it expects there (the sum of the served P(churn)) must be
  within a factor `slice_max_calibration_factor` of the churners observed. The
  positives minimum keeps a slice with a handful of churners (two-year contracts) from
  failing on noise; with it, a factor of 2 is at least ~3.9 Poisson sd from what the
  model expects, so the calibration gate does not fail on split noise (Telco, 7 split
  seeds x 4 families: worst slice 1.11-1.51). A slice whose risk the model understates
  hides its churners below the global threshold; one whose risk it overstates spends
  the campaign budget there. A slice's recall at the one global threshold is NOT a
  gate: for a low-risk segment it measures how far the segment's risk sits below the
  threshold, not the model (docs/decisions.md, 11).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import roc_auc_score

from churn.features.derived import add_derived
from churn.models.evaluate import ProbabilisticModel, churn_scores, slice_metrics
from churn.schema import ENTITY_KEY

TENURE_STEPS: Final[tuple[int, ...]] = (1, 3, 6, 12, 24, 36, 48, 60, 72)

# Hand-made obvious cases for the minimum-functionality gates.
RISKY_CUSTOMER: Final[dict[str, Any]] = {
    "gender": "Female",
    "senior_citizen": 0,
    "partner": "No",
    "dependents": "No",
    "tenure": 1,
    "contract": "Month-to-month",
    "paperless_billing": "Yes",
    "payment_method": "Electronic check",
    "monthly_charges": 85.0,
    "total_charges": 85.0,
    "phone_service": "Yes",
    "multiple_lines": "No",
    "internet_service": "Fiber optic",
    "online_security": "No",
    "online_backup": "No",
    "device_protection": "No",
    "tech_support": "No",
    "streaming_tv": "No",
    "streaming_movies": "No",
}
LOYAL_CUSTOMERS: Final[tuple[dict[str, Any], ...]] = (
    {
        "gender": "Male",
        "senior_citizen": 0,
        "partner": "Yes",
        "dependents": "Yes",
        "tenure": 70,
        "contract": "Two year",
        "paperless_billing": "No",
        "payment_method": "Bank transfer (automatic)",
        "monthly_charges": 65.0,
        "total_charges": 4550.0,
        "phone_service": "Yes",
        "multiple_lines": "Yes",
        "internet_service": "DSL",
        "online_security": "Yes",
        "online_backup": "Yes",
        "device_protection": "Yes",
        "tech_support": "Yes",
        "streaming_tv": "No",
        "streaming_movies": "No",
    },
    {
        "gender": "Female",
        "senior_citizen": 0,
        "partner": "Yes",
        "dependents": "No",
        "tenure": 70,
        "contract": "Two year",
        "paperless_billing": "No",
        "payment_method": "Credit card (automatic)",
        "monthly_charges": 20.0,
        "total_charges": 1400.0,
        "phone_service": "Yes",
        "multiple_lines": "No",
        "internet_service": "No",
        "online_security": "No internet service",
        "online_backup": "No internet service",
        "device_protection": "No internet service",
        "tech_support": "No internet service",
        "streaming_tv": "No internet service",
        "streaming_movies": "No internet service",
    },
)


@dataclass(frozen=True)
class GateConfig:
    """Limits of every gate. No defaults: the training pipeline's YAML
    (configs/training_pipeline.yaml, `gates`) is the one place the values and the
    measurements behind them are written."""

    min_roc_auc: float
    min_recall: float
    invariance_tolerance: float
    n_base_rows: int
    directional_min_fraction: float
    directional_tolerance: float
    slice_min_rows: int
    slice_min_positives: int
    slice_min_roc_auc: float
    slice_max_calibration_factor: float
    seed: int


@dataclass(frozen=True)
class GateResult:
    """Outcome of one gate. `comparison` says whether `value` must be >= or < `limit`."""

    name: str
    passed: bool
    value: float
    limit: float
    message: str
    comparison: Literal["at_least", "below"] = "at_least"

    @property
    def shortfall(self) -> float:
        """How far the value is on the wrong side of the limit (0 when passed)."""
        if self.passed:
            return 0.0
        gap = self.limit - self.value if self.comparison == "at_least" else self.value - self.limit
        return float(max(gap, 0.0))

    def describe(self) -> str:
        """One line naming the gate, the value, the limit and the shortfall."""
        op = ">=" if self.comparison == "at_least" else "<"
        status = "PASS" if self.passed else f"FAIL (off by {self.shortfall:.4g})"
        return (
            f"{self.name}: {status}: value {self.value:.6g}, required {op} {self.limit:.6g}. "
            f"{self.message}"
        )


class GateFailure(RuntimeError):  # noqa: N818 (the name the pipeline steps use)
    """At least one gate failed; the message names every failed gate and by how much."""

    def __init__(self, failed: Sequence[GateResult]) -> None:
        self.failed = list(failed)
        lines = "\n".join(f"  - {r.describe()}" for r in self.failed)
        super().__init__(f"{len(self.failed)} model gate(s) failed:\n{lines}")


def _at_least(name: str, value: float, limit: float, message: str) -> GateResult:
    return GateResult(name, bool(value >= limit), float(value), float(limit), message)


def _below(name: str, value: float, limit: float, message: str) -> GateResult:
    return GateResult(name, bool(value < limit), float(value), float(limit), message, "below")


def _base_rows(X: pd.DataFrame, config: GateConfig) -> pd.DataFrame:  # noqa: N803
    n = min(config.n_base_rows, len(X))
    return X.sample(n=n, random_state=config.seed).reset_index(drop=True)


def gate_invariance_customer_id(
    model: ProbabilisticModel,
    X: pd.DataFrame,  # noqa: N803
    config: GateConfig,
    reference: npt.NDArray[np.float64],
) -> GateResult:
    """Replacing every customer_id (or adding one) must not change any score."""
    changed = X.copy()
    changed[ENTITY_KEY] = [f"GATE-{i:07d}-{config.seed}" for i in range(len(X))][::-1]
    delta = float(np.max(np.abs(churn_scores(model, changed) - reference)))
    return _below(
        "invariance_customer_id",
        delta,
        config.invariance_tolerance,
        "max |Δ P(churn)| after replacing every customer_id",
    )


def gate_invariance_batch(
    model: ProbabilisticModel,
    X: pd.DataFrame,  # noqa: N803
    config: GateConfig,
    reference: npt.NDArray[np.float64],
) -> GateResult:
    """Row order and batch composition must not change any row's score."""
    rng = np.random.default_rng(config.seed)
    perm = rng.permutation(len(X))
    shuffled = np.empty(len(X), dtype=np.float64)
    shuffled[perm] = churn_scores(model, X.iloc[perm].reset_index(drop=True))
    deltas = [np.max(np.abs(shuffled - reference))]
    chunked = np.concatenate(
        [churn_scores(model, X.iloc[i : i + 7]) for i in range(0, min(len(X), 700), 7)]
    )
    deltas.append(np.max(np.abs(chunked - reference[: len(chunked)])))
    singles = np.array([churn_scores(model, X.iloc[[i]])[0] for i in range(min(len(X), 30))])
    deltas.append(np.max(np.abs(singles - reference[: len(singles)])))
    return _below(
        "invariance_batch",
        float(max(deltas)),
        config.invariance_tolerance,
        "max |Δ P(churn)| between full-batch scores and shuffled / 7-row / 1-row batches",
    )


def tenure_probe(base: pd.DataFrame, steps: Sequence[int] = TENURE_STEPS) -> pd.DataFrame:
    """Each base row repeated at every tenure in `steps` (row-major: row 0's steps first).

    The customer's average monthly bill is kept: total_charges = avg bill x tenure, and
    derived features are recomputed, so only tenure and what it implies move.
    """
    tenure = base["tenure"].to_numpy(dtype=np.float64)
    total = base["total_charges"].to_numpy(dtype=np.float64)
    monthly = base["monthly_charges"].to_numpy(dtype=np.float64)
    avg_bill = np.where(tenure > 0, total / np.maximum(tenure, 1.0), monthly)
    repeated = base.loc[base.index.repeat(len(steps))].reset_index(drop=True)
    new_tenure = np.tile(np.asarray(steps, dtype=np.int64), len(base))
    repeated["tenure"] = new_tenure
    repeated["total_charges"] = np.repeat(avg_bill, len(steps)) * new_tenure
    return add_derived(repeated)


def gate_directional_tenure(
    model: ProbabilisticModel,
    X: pd.DataFrame,  # noqa: N803
    config: GateConfig,
) -> GateResult:
    """Longer tenure, everything else fixed, must not raise P(churn) (see module doc)."""
    base = _base_rows(X, config)
    steps = len(TENURE_STEPS)
    scores = churn_scores(model, tenure_probe(base)).reshape(len(base), steps)
    rises = np.diff(scores, axis=1)
    ok = rises <= config.directional_tolerance
    fraction = float(ok.mean())
    worst = float(rises.max())
    return _at_least(
        "directional_tenure",
        fraction,
        config.directional_min_fraction,
        f"fraction of {ok.size} tenure steps {TENURE_STEPS} on {len(base)} held-out rows where "
        f"P(churn) rises by at most {config.directional_tolerance}; largest rise {worst:.4f}",
    )


def gate_directional_contract(
    model: ProbabilisticModel,
    X: pd.DataFrame,  # noqa: N803
    config: GateConfig,
) -> GateResult:
    """Month-to-month must score strictly higher than two-year, everything else fixed."""
    base = _base_rows(X, config)
    monthly = base.assign(contract="Month-to-month")
    two_year = base.assign(contract="Two year")
    diff = churn_scores(model, monthly) - churn_scores(model, two_year)
    fraction = float((diff > 0).mean())
    return _at_least(
        "directional_contract",
        fraction,
        config.directional_min_fraction,
        f"fraction of {len(base)} held-out rows scoring higher as month-to-month than as "
        f"two-year; median difference {float(np.median(diff)):.4f}",
    )


def obvious_cases() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(risky, loyal) hand-made customers with derived features, as model input frames."""
    risky = add_derived(pd.DataFrame([RISKY_CUSTOMER]))
    loyal = add_derived(pd.DataFrame(list(LOYAL_CUSTOMERS)))
    return risky, loyal


def gate_min_functionality(
    model: ProbabilisticModel, threshold: float
) -> tuple[GateResult, GateResult]:
    """The obviously risky customer is flagged; the obviously loyal ones are not."""
    risky, loyal = obvious_cases()
    risky_score = float(churn_scores(model, risky).min())
    loyal_score = float(churn_scores(model, loyal).max())
    return (
        _at_least(
            "min_functionality_risky",
            risky_score,
            threshold,
            "P(churn) of a month-to-month, fiber, electronic-check, 1-month customer "
            "without tech support must reach the threshold",
        ),
        _below(
            "min_functionality_loyal",
            loyal_score,
            threshold,
            "highest P(churn) of two-year, 70-month, automatic-payment customers (DSL and "
            "no internet) must stay below the threshold",
        ),
    )


def _calibration_factor(observed: int, expected: float) -> float:
    """How many times more (or fewer) churners were observed than expected, >= 1."""
    if expected <= 0.0:
        return float("inf")
    return max(observed / expected, expected / observed)


def gate_slices(
    X: pd.DataFrame,  # noqa: N803
    y: Any,
    scores: npt.NDArray[np.float64],
    threshold: float,
    config: GateConfig,
) -> tuple[GateResult, GateResult]:
    """No large-enough slice below the ROC-AUC floor, nor scored off its observed
    churners by the calibration factor or more (module docstring)."""
    s = np.asarray(scores, dtype=np.float64)
    eligible = [
        m
        for m in slice_metrics(X, y, s, threshold)
        if m.n >= config.slice_min_rows
        and m.positives >= config.slice_min_positives
        and m.n - m.positives > 0
    ]
    if not eligible:
        message = (
            f"no slice has >= {config.slice_min_rows} rows and >= "
            f"{config.slice_min_positives} churners: the test set is too small to check"
        )
        return (
            GateResult(
                "slice_roc_auc_floor", False, float("nan"), config.slice_min_roc_auc, message
            ),
            GateResult(
                "slice_calibration",
                False,
                float("nan"),
                config.slice_max_calibration_factor,
                message,
                "below",
            ),
        )
    scope = (
        f"over {len(eligible)} slices with >= {config.slice_min_rows} rows and "
        f">= {config.slice_min_positives} churners"
    )
    aucs = [(float(m.roc_auc or 0.0), f"{m.feature}={m.value}") for m in eligible]
    worst_auc, worst_name = min(aucs)
    below = [f"{name} ({v:.3f})" for v, name in aucs if v < config.slice_min_roc_auc]
    detail = f"slices below floor: {below}" if below else f"worst slice {worst_name}"
    auc = _at_least(
        "slice_roc_auc_floor",
        worst_auc,
        config.slice_min_roc_auc,
        f"lowest roc_auc {scope}; {detail}",
    )
    factors = []
    for m in eligible:
        factors.append(
            (
                _calibration_factor(m.positives, m.expected),
                f"{m.feature}={m.value} ({m.positives} churners, {m.expected:.1f} expected)",
            )
        )
    worst_factor, worst_slice = max(factors)
    off = [name for v, name in factors if v >= config.slice_max_calibration_factor]
    detail = f"slices off by the factor or more: {off}" if off else f"worst slice {worst_slice}"
    calibration = _below(
        "slice_calibration",
        worst_factor,
        config.slice_max_calibration_factor,
        f"largest factor between observed churners and expected ones (sum of P(churn)) "
        f"{scope}; {detail}",
    )
    return auc, calibration


def run_gates(
    model: ProbabilisticModel,
    X_test: pd.DataFrame,  # noqa: N803
    y_test: Any,
    threshold: float,
    config: GateConfig,
) -> list[GateResult]:
    """Every gate on the held-out set, in a fixed order (all run; none short-circuits)."""
    X = X_test.reset_index(drop=True)  # noqa: N806
    labels = np.asarray(y_test).astype(np.int64)
    if len(labels) != len(X):
        raise ValueError(f"X_test has {len(X)} rows but y_test has {len(labels)}")
    scores = churn_scores(model, X)
    flagged = scores >= threshold
    positives = int(labels.sum())
    recall = float((flagged & (labels == 1)).sum() / positives) if positives else float("nan")
    results = [
        _at_least(
            "min_roc_auc",
            float(roc_auc_score(labels, scores)),
            config.min_roc_auc,
            f"held-out ROC-AUC on {len(X)} rows",
        ),
        _at_least(
            "min_recall",
            recall,
            config.min_recall,
            f"held-out recall at threshold {threshold:.4f} ({positives} churners)",
        ),
        gate_invariance_customer_id(model, X, config, scores),
        gate_invariance_batch(model, X, config, scores),
        gate_directional_tenure(model, X, config),
        gate_directional_contract(model, X, config),
        *gate_min_functionality(model, threshold),
        *gate_slices(X, labels, scores, threshold, config),
    ]
    return results


def gate_families(
    models: Mapping[str, ProbabilisticModel],
    thresholds: Mapping[str, float],
    ranking: Mapping[str, float],
    X_test: pd.DataFrame,  # noqa: N803
    y_test: Any,
    config: GateConfig,
) -> tuple[str, dict[str, list[GateResult]]]:
    """(the best-ranked family that passes every gate, every family's gate results).

    Why every family: a family that ranks best on the repeated evaluation may still
    fail a behavioural gate, and the next one that passes is then fit to serve; the
    results say which families were passed over and why. Raises GateFailure naming
    every failed gate of every family when none passes.
    """
    results = {
        kind: run_gates(model, X_test, y_test, thresholds[kind], config)
        for kind, model in models.items()
    }
    ranked = sorted(models, key=lambda kind: -ranking[kind])
    for kind in ranked:
        if all(r.passed for r in results[kind]):
            return kind, results
    raise GateFailure(
        [
            dataclasses.replace(r, message=f"{kind}: {r.message}")
            for kind in ranked
            for r in results[kind]
            if not r.passed
        ]
    )


def enforce(results: Sequence[GateResult]) -> None:
    """Raise GateFailure naming every failed gate; return quietly when all passed."""
    failed = [r for r in results if not r.passed]
    if failed:
        raise GateFailure(failed)
