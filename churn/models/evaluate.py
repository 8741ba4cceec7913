"""Held-out evaluation: metrics, operating threshold, business value, slices, plots.

Definitions (all on the churn class, label 1):

- threshold: a customer is flagged when P(churn) >= threshold.
- business_cost = FN x cost_missed_churner + FP x cost_unneeded_intervention.
  A missed churner loses the customer; an unneeded intervention spends a retention
  offer on someone who would have stayed. The defaults are placeholders: the real
  values belong in the pipeline config, set by the business.
- expected revenue impact over `horizon_months`:
    retained_revenue = retention_success_rate x sum(monthly_charges of TP) x horizon_months
    intervention_spend = (TP + FP) x intervention_cost
    net_revenue_impact = retained_revenue - intervention_spend
  i.e. only true churners who are contacted can be saved, a fraction
  `retention_success_rate` of them is, and every contacted customer costs an offer.

Threshold rules (`ThresholdRule.kind`):

- "recall_target": the HIGHEST threshold whose recall >= target. Recall only falls
  as the threshold rises, so this is the operating point with the fewest flagged
  customers (hence the best precision) that still meets the recall target.
- "min_cost": the threshold minimising business_cost; ties go to the highest
  threshold (fewer interventions for the same cost).

Choosing a threshold on the set you then report on is optimistic; callers that want
an honest figure choose it on out-of-fold training scores (TrainedCandidate.oof_scores)
and pass it to `evaluate(..., threshold=...)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from churn.schema import TENURE_BUCKETS

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SLICE_COLUMNS: Final[tuple[str, ...]] = (
    "contract",
    "tenure_bucket",
    "senior_citizen",
    "internet_service",
)
CALIBRATION_BINS: Final = 10


class ProbabilisticModel(Protocol):
    """Anything with sklearn's predict_proba: a Pipeline, a ServingModel, a test double."""

    def predict_proba(self, X: Any) -> Any:  # noqa: N803 (sklearn API)
        """(n, 2) class probabilities, or (n,) churn probabilities."""


def churn_scores(model: ProbabilisticModel, X: Any) -> FloatArray:  # noqa: N803
    """P(churn) per row as a 1-D float64 array, whichever output shape the model has."""
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    if proba.ndim == 2:
        if proba.shape[1] != 2:
            raise ValueError(f"predict_proba returned {proba.shape[1]} classes, expected 2")
        return np.ascontiguousarray(proba[:, 1])
    if proba.ndim != 1:
        raise ValueError(f"predict_proba returned an array of shape {proba.shape}")
    return proba


@dataclass(frozen=True)
class ThresholdRule:
    """How the operating threshold is chosen (see the module docstring)."""

    kind: Literal["recall_target", "min_cost"]
    recall_target: float | None = None  # required by kind "recall_target", else unused

    def __post_init__(self) -> None:
        if self.kind not in ("recall_target", "min_cost"):
            raise ValueError(f"unknown threshold rule {self.kind!r}")
        if self.kind == "recall_target" and (
            self.recall_target is None or not 0.0 < self.recall_target <= 1.0
        ):
            raise ValueError(
                f"threshold rule recall_target needs recall_target in (0, 1], "
                f"got {self.recall_target}"
            )


@dataclass(frozen=True)
class Costs:
    """Cost of each error type, in currency units (the training YAML's `costs`)."""

    cost_missed_churner: float  # FN
    cost_unneeded_intervention: float  # FP


@dataclass(frozen=True)
class Revenue:
    """Assumptions of the revenue-impact estimate (the training YAML's `revenue`; see
    the module docstring)."""

    retention_success_rate: float
    horizon_months: int
    intervention_cost: float


@dataclass(frozen=True)
class CalibrationBin:
    """One bin of the reliability curve: mean predicted vs observed churn rate."""

    lower: float
    upper: float
    count: int
    mean_predicted: float
    observed_rate: float


@dataclass(frozen=True)
class SliceMetrics:
    """Metrics on the rows where `feature` == `value`; None where undefined (one class)."""

    feature: str
    value: str
    n: int
    positives: int
    roc_auc: float | None
    recall: float | None
    precision: float | None
    # Churners the model expects in the slice: the sum of its P(churn) (nan in
    # evaluations stored before it was recorded).
    expected: float = float("nan")


@dataclass
class Evaluation:
    """Everything the held-out evaluation measured; `to_flat_metrics()` feeds MLflow."""

    threshold: float
    threshold_rule: str
    n: int
    positives: int
    tp: int
    fp: int
    tn: int
    fn: int
    precision: float
    recall: float
    f1: float
    roc_auc: float
    pr_auc: float
    brier: float
    flagged_rate: float
    business_cost: float
    business_cost_per_customer: float
    retained_revenue: float
    intervention_spend: float
    net_revenue_impact: float
    calibration: list[CalibrationBin]
    slices: list[SliceMetrics]
    y_true: IntArray = field(repr=False)
    scores: FloatArray = field(repr=False)

    @property
    def confusion_matrix(self) -> IntArray:
        """[[TN, FP], [FN, TP]] (sklearn's layout: rows true class, columns predicted)."""
        return np.array([[self.tn, self.fp], [self.fn, self.tp]], dtype=np.int64)

    def to_flat_metrics(self, prefix: str = "") -> dict[str, float]:
        """Scalar metrics with MLflow-safe names; slices as slice.<feature>.<value>.<metric>."""
        flat: dict[str, float] = {}
        for key in (
            "threshold",
            "n",
            "positives",
            "tp",
            "fp",
            "tn",
            "fn",
            "precision",
            "recall",
            "f1",
            "roc_auc",
            "pr_auc",
            "brier",
            "flagged_rate",
            "business_cost",
            "business_cost_per_customer",
            "retained_revenue",
            "intervention_spend",
            "net_revenue_impact",
        ):
            flat[f"{prefix}{key}"] = float(getattr(self, key))
        for s in self.slices:
            base = f"{prefix}slice.{_metric_name(s.feature)}.{_metric_name(s.value)}"
            flat[f"{base}.n"] = float(s.n)
            for metric in ("roc_auc", "recall", "precision"):
                value = getattr(s, metric)
                if value is not None:
                    flat[f"{base}.{metric}"] = float(value)
        return flat

    def summary(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field except the raw arrays."""
        out = asdict(self)
        out.pop("y_true")
        out.pop("scores")
        return out


def _metric_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", text).strip("_")


def _as_labels(y: Any) -> IntArray:
    labels = np.asarray(y).astype(np.int64)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    bad = set(np.unique(labels).tolist()) - {0, 1}
    if bad:
        raise ValueError(f"labels must be 0/1, got values {sorted(bad)}")
    return labels


def threshold_curve(y: Any, scores: Any) -> tuple[FloatArray, IntArray, IntArray]:
    """(thresholds descending, TP, FP) for every distinct score used as a threshold.

    Row i means "flag every customer with score >= thresholds[i]".
    """
    labels = _as_labels(y)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != labels.shape:
        raise ValueError(f"scores shape {s.shape} != labels shape {labels.shape}")
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = labels[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last_of_group]
    fps = (last_of_group + 1) - tps
    return s_sorted[last_of_group], tps.astype(np.int64), fps.astype(np.int64)


def choose_threshold(y: Any, scores: Any, rule: ThresholdRule, costs: Costs | None = None) -> float:
    """The operating threshold for `rule` (see the module docstring for both rules)."""
    thresholds, tps, fps = threshold_curve(y, scores)
    positives = int(_as_labels(y).sum())
    if positives == 0:
        raise ValueError("cannot choose a threshold: no positive (churn) rows")
    if rule.kind == "recall_target":
        assert rule.recall_target is not None  # checked on construction
        meets = np.flatnonzero(tps / positives >= rule.recall_target)
        # thresholds are descending and recall is non-decreasing along them.
        return float(thresholds[meets[0]])
    if costs is None:
        raise ValueError("threshold rule min_cost needs the error costs (costs=...)")
    fns = positives - tps
    cost = fns * costs.cost_missed_churner + fps * costs.cost_unneeded_intervention
    flag_nobody = positives * costs.cost_missed_churner
    best = int(np.argmin(cost))  # first minimum = highest threshold among ties
    if flag_nobody <= cost[best]:
        return float(np.nextafter(thresholds[0], np.inf))
    return float(thresholds[best])


def _safe_auc(y: IntArray, s: FloatArray) -> float | None:
    if y.min() == y.max():
        return None
    return float(roc_auc_score(y, s))


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def calibration_bins(y: Any, scores: Any, n_bins: int = CALIBRATION_BINS) -> list[CalibrationBin]:
    """Equal-width reliability bins over [0, 1]; empty bins are omitted."""
    labels = _as_labels(y)
    s = np.asarray(scores, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(s, edges[1:-1], right=False), 0, n_bins - 1)
    bins: list[CalibrationBin] = []
    for b in range(n_bins):
        mask = index == b
        count = int(mask.sum())
        if count:
            bins.append(
                CalibrationBin(
                    float(edges[b]),
                    float(edges[b + 1]),
                    count,
                    float(s[mask].mean()),
                    float(labels[mask].mean()),
                )
            )
    return bins


def tenure_bucket(tenure: Any) -> npt.NDArray[np.object_]:
    """Tenure months -> bucket label ("0-12", "13-24", "25-48", "49+")."""
    t = np.asarray(tenure, dtype=np.float64)
    out = np.full(t.shape, "", dtype=object)
    for label, low, high in TENURE_BUCKETS:
        out[(t >= low) & (t <= high)] = label
    if (out == "").any():
        raise ValueError(f"column 'tenure' has values outside every bucket: {t[out == ''][:5]}")
    return out


def slice_metrics(X: pd.DataFrame, y: Any, scores: Any, threshold: float) -> list[SliceMetrics]:  # noqa: N803
    """Per-slice ROC-AUC, recall and precision for SLICE_COLUMNS."""
    labels = _as_labels(y)
    s = np.asarray(scores, dtype=np.float64)
    missing = [
        c for c in ("contract", "tenure", "senior_citizen", "internet_service") if c not in X
    ]
    if missing:
        raise ValueError(f"slice metrics need columns {missing}")
    keys: dict[str, npt.NDArray[Any]] = {
        "contract": X["contract"].to_numpy(dtype=object),
        "tenure_bucket": tenure_bucket(X["tenure"].to_numpy()),
        "senior_citizen": X["senior_citizen"].astype(str).to_numpy(dtype=object),
        "internet_service": X["internet_service"].to_numpy(dtype=object),
    }
    flagged = s >= threshold
    out: list[SliceMetrics] = []
    for feature_name in SLICE_COLUMNS:
        column = keys[feature_name]
        for value in sorted(set(column.tolist())):
            mask = column == value
            y_s, f_s = labels[mask], flagged[mask]
            tp = int((y_s & f_s).sum())
            out.append(
                SliceMetrics(
                    feature=feature_name,
                    value=str(value),
                    n=int(mask.sum()),
                    positives=int(y_s.sum()),
                    roc_auc=_safe_auc(y_s, s[mask]),
                    recall=_ratio(tp, int(y_s.sum())),
                    precision=_ratio(tp, int(f_s.sum())),
                    expected=float(s[mask].sum()),
                )
            )
    return out


def evaluate(
    model: ProbabilisticModel,
    X: pd.DataFrame,  # noqa: N803
    y: Any,
    *,
    threshold_rule: ThresholdRule | None = None,
    costs: Costs,
    revenue: Revenue,
    threshold: float | None = None,
) -> Evaluation:
    """Score X and measure everything on it.

    The threshold is `threshold` when given (chosen elsewhere, e.g. on out-of-fold
    scores), else chosen on (X, y) by `threshold_rule`.
    """
    labels = _as_labels(y)
    if len(labels) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(labels)}")
    scores = churn_scores(model, X)
    return evaluate_scores(
        X,
        labels,
        scores,
        threshold_rule=threshold_rule,
        costs=costs,
        revenue=revenue,
        threshold=threshold,
    )


def evaluate_scores(
    X: pd.DataFrame,  # noqa: N803
    y: Any,
    scores: Any,
    *,
    threshold_rule: ThresholdRule | None = None,
    costs: Costs,
    revenue: Revenue,
    threshold: float | None = None,
) -> Evaluation:
    """`evaluate` on precomputed scores (lets callers score once and evaluate twice)."""
    labels = _as_labels(y)
    s = np.asarray(scores, dtype=np.float64)
    if labels.min() == labels.max():
        raise ValueError("evaluation needs both classes in y")
    if threshold is None:
        if threshold_rule is None:
            raise ValueError("pass the operating threshold or the threshold_rule choosing it")
        threshold = choose_threshold(labels, s, threshold_rule, costs)
        rule_name: str = threshold_rule.kind
    else:
        rule_name = "fixed"
    flagged = s >= threshold
    tp = int((flagged & (labels == 1)).sum())
    fp = int((flagged & (labels == 0)).sum())
    fn = int((~flagged & (labels == 1)).sum())
    tn = int((~flagged & (labels == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    monthly = X["monthly_charges"].to_numpy(dtype=np.float64)
    retained = (
        revenue.retention_success_rate
        * float(monthly[flagged & (labels == 1)].sum())
        * revenue.horizon_months
    )
    spend = (tp + fp) * revenue.intervention_cost
    cost = fn * costs.cost_missed_churner + fp * costs.cost_unneeded_intervention
    return Evaluation(
        threshold=float(threshold),
        threshold_rule=rule_name,
        n=int(labels.size),
        positives=int(labels.sum()),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        precision=precision,
        recall=recall,
        f1=f1,
        roc_auc=float(roc_auc_score(labels, s)),
        pr_auc=float(average_precision_score(labels, s)),
        brier=float(brier_score_loss(labels, s)),
        flagged_rate=float(flagged.mean()),
        business_cost=float(cost),
        business_cost_per_customer=float(cost) / labels.size,
        retained_revenue=retained,
        intervention_spend=float(spend),
        net_revenue_impact=retained - spend,
        calibration=calibration_bins(labels, s),
        slices=slice_metrics(X, labels, s, threshold),
        y_true=labels,
        scores=s,
    )


def feature_importance(model: Any) -> list[tuple[str, float]]:
    """(encoded feature name, importance) sorted by |importance|, largest first.

    For a Pipeline whose first step is the SchemaEncoder: logistic regression gives
    its coefficients (per standard deviation, since a scaler precedes it; the sign is
    the direction of the effect), tree models their impurity/gain importances.
    """
    steps = getattr(model, "steps", None)
    if not steps:
        raise TypeError(f"feature_importance needs an sklearn Pipeline, got {type(model).__name__}")
    names = list(steps[0][1].get_feature_names_out())
    estimator = steps[-1][1]
    if hasattr(estimator, "coef_"):
        values = np.asarray(estimator.coef_, dtype=np.float64).ravel()
    elif hasattr(estimator, "feature_importances_"):
        values = np.asarray(estimator.feature_importances_, dtype=np.float64).ravel()
    else:
        raise TypeError(
            f"{type(estimator).__name__} exposes neither coef_ nor feature_importances_"
        )
    if values.size != len(names):
        raise ValueError(f"{values.size} importances for {len(names)} encoded features")
    pairs = [(str(n), float(v)) for n, v in zip(names, values, strict=True)]
    return sorted(pairs, key=lambda p: -abs(p[1]))


def save_plots(
    evaluation: Evaluation, model: Any, out_dir: Path, top_k: int = 20
) -> dict[str, Path]:
    """Write ROC, PR, calibration, confusion-matrix and feature-importance PNGs.

    matplotlib is imported and switched to the non-interactive Agg backend here, not at
    module import, so importing churn.models.evaluate stays cheap and never touches a
    display.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def _save(name: str, draw: Callable[[Any], None]) -> None:
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        try:
            draw(ax)
            fig.tight_layout()
            path = out_dir / f"{name}.png"
            fig.savefig(path, dpi=100)
            paths[name] = path
        finally:
            plt.close(fig)

    y, s = evaluation.y_true, evaluation.scores

    def roc(ax: Any) -> None:
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"ROC-AUC {evaluation.roc_auc:.3f}")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve")
        ax.legend(loc="lower right")

    def pr(ax: Any) -> None:
        prec, rec, _ = precision_recall_curve(y, s)
        ax.plot(rec, prec, label=f"PR-AUC {evaluation.pr_auc:.3f}")
        ax.axhline(evaluation.positives / evaluation.n, linestyle="--", color="grey")
        ax.scatter(
            [evaluation.recall],
            [evaluation.precision],
            color="red",
            zorder=3,
            label=f"threshold {evaluation.threshold:.3f}",
        )
        ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall curve")
        ax.legend(loc="upper right")

    def calibration(ax: Any) -> None:
        pred = [b.mean_predicted for b in evaluation.calibration]
        obs = [b.observed_rate for b in evaluation.calibration]
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.plot(pred, obs, marker="o", label=f"Brier {evaluation.brier:.3f}")
        ax.set(
            xlabel="Mean predicted P(churn)",
            ylabel="Observed churn rate",
            title="Reliability (calibration) curve",
        )
        ax.legend(loc="upper left")

    def confusion(ax: Any) -> None:
        cm = evaluation.confusion_matrix
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center")
        ax.set_xticks([0, 1], ["stay", "churn"])
        ax.set_yticks([0, 1], ["stay", "churn"])
        ax.set(
            xlabel="Predicted",
            ylabel="Actual",
            title=f"Confusion matrix @ {evaluation.threshold:.3f}",
        )

    def importance(ax: Any) -> None:
        pairs = feature_importance(model)[:top_k][::-1]
        ax.barh([n for n, _ in pairs], [v for _, v in pairs])
        ax.set(title="Feature importance", xlabel="coefficient / importance")
        ax.tick_params(axis="y", labelsize=7)

    _save("roc", roc)
    _save("pr", pr)
    _save("calibration", calibration)
    _save("confusion_matrix", confusion)
    _save("feature_importance", importance)
    return paths


def flatten_slices(slices: Iterable[SliceMetrics]) -> pd.DataFrame:
    """Slices as a DataFrame (for reports and notebooks)."""
    return pd.DataFrame([asdict(s) for s in slices])
