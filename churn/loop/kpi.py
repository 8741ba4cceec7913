"""Business KPIs: predictions and campaigns joined to the churn that really happened.

Why: the model is only worth what it changes. Three questions, answered from the
prediction log (churn.loop.predlog), the campaigns (churn.loop.campaign) and the
realized outcomes in the labels table (churn.data.outcomes):

1. Is the model still right? Realized churn rate per predicted-risk decile and per
   segment beside the mean predicted probability (calibration in production), and
   realized ROC-AUC, PR-AUC, precision and recall at the threshold each prediction
   was made with, per model version and prediction period, with bootstrap intervals.
2. Did the intervention work? Among the targeted customers of a campaign, churn of
   the treated arm against the randomly held-out control arm: absolute uplift and
   relative risk with confidence intervals, customers saved, revenue retained, cost
   and ROI, and the progress towards the goal of reducing churn by some share.
3. Should something happen? A realized figure below its floor is a breach
   (churn.loop.actions decides: alert, fail or retrain).

Joins (all on UTC times):
- a prediction is evaluated by the outcome of the same customer and snapshot
  (outcome event_timestamp == the prediction's feature_event_time) when the outcome
  was observed after the prediction was made and within `horizon_months` of it, and
  no later than `as_of` (what is known at evaluation time). A customer predicted
  several times from one snapshot by one model version counts once (the first
  prediction: the one that could be acted on);
- a campaign target is evaluated by the outcome of the latest snapshot at or before
  its assignment, observed within `horizon_months` after the assignment.

Treated customers: the offer changed their outcome, so with `exclude_treated` the
model-quality figures (1.) leave out the treated arm, and each control customer
counts for all the targets of its campaign's risk stratum (weight = targets /
controls of the stratum: the inverse of the probability of being held out). Why the
weight: the targets are the riskiest customers; dropping the treated half of them
without it would thin out exactly the customers the model flags, and bias recall
(and the top deciles) downwards: measured on the loop's test data, an unweighted
recall of 0.694 for a model whose recall on everyone is about 0.8. Weighted, the
figures estimate the model on the whole population as if nobody had been contacted.

Estimators (2.): the crude risk difference and risk ratio between the arms. The
control group is drawn with the same share in every risk decile
(churn.loop.campaign), so the arms have the same risk mix and the crude ratio is
unbiased for a constant relative effect. Intervals: Wald for the difference, Katz's
log interval for the ratio (0.5 added to every cell when an arm has no churner).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from churn.data.timestamps import as_utc
from churn.loop.campaign import CONTROL, TREATED, risk_deciles
from churn.models.evaluate import tenure_bucket
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, LABEL, LABEL_OBSERVED_AT

FloatArray = npt.NDArray[np.float64]

PROBABILITY: Final = "probability"
PREDICTED_AT: Final = "predicted_at"
FEATURE_EVENT_TIME: Final = "feature_event_time"
ARM: Final = "arm"
PERIOD: Final = "period"
MONTHLY: Final = "monthly_charges"
WEIGHT: Final = "weight"  # a prediction's weight in the model-quality figures
# Segments of the report: the model's slice columns (churn.models.evaluate).
SEGMENTS: Final = ("contract", "tenure_bucket", "internet_service", "senior_citizen")
SEGMENT_INPUTS: Final = ("contract", "tenure", "internet_service", "senior_citizen", MONTHLY)
METRICS: Final = ("roc_auc", "pr_auc", "precision", "recall")


def _utc_ns(values: pd.Series) -> pd.Series:
    """A column of times as tz-aware UTC nanoseconds, whatever unit it was stored with
    (the log keeps microseconds, the offline store nanoseconds); index kept."""
    return pd.to_datetime(values, utc=True).dt.as_unit("ns")


def _horizon_end(start: pd.Series, horizon_months: int, as_of: pd.Timestamp) -> pd.Series:
    """min(start + horizon_months calendar months, as_of), per row."""
    end = start + pd.DateOffset(months=horizon_months)
    return end.where(end <= as_of, as_of)


def _outcome_keys(outcomes: pd.DataFrame) -> pd.DataFrame:
    """The labels table's columns with the join types: str ids, UTC ns times, int churn
    (an empty table, read before any outcome arrived, has untyped columns)."""
    return pd.DataFrame(
        {
            ENTITY_KEY: outcomes[ENTITY_KEY].astype(str).astype(object),
            EVENT_TIMESTAMP: _utc_ns(outcomes[EVENT_TIMESTAMP]),
            LABEL: outcomes[LABEL].astype(np.int64),
            LABEL_OBSERVED_AT: _utc_ns(outcomes[LABEL_OBSERVED_AT]),
        }
    )


@dataclass(frozen=True)
class Window:
    """What an evaluation may see: outcomes known by `as_of`, within the horizon, and
    predictions made from `since` (None: all)."""

    as_of: datetime
    horizon_months: int
    since: datetime | None

    def __post_init__(self) -> None:
        as_utc(self.as_of, what="as_of")
        if self.since is not None:
            as_utc(self.since, what="predictions_since")
        if self.horizon_months < 1:
            raise ValueError(f"horizon_months must be >= 1, got {self.horizon_months}")


def evaluable_predictions(
    log: pd.DataFrame, outcomes: pd.DataFrame, window: Window, period_format: str
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Prediction-log rows joined to their outcomes (see the module docstring); counts.

    Columns: the log's, plus churn, label_observed_at and period (predicted_at
    formatted with `period_format`, e.g. "%Y-%m"). Counts: predictions logged up to
    as_of (distinct per version, customer and snapshot) and how many are evaluated.
    """
    as_of = pd.Timestamp(as_utc(window.as_of, what="as_of"))
    frame = log.copy()
    frame[PREDICTED_AT] = _utc_ns(frame[PREDICTED_AT])
    frame[FEATURE_EVENT_TIME] = _utc_ns(frame[FEATURE_EVENT_TIME])
    keep = frame[PREDICTED_AT] <= as_of
    if window.since is not None:
        keep &= frame[PREDICTED_AT] >= pd.Timestamp(as_utc(window.since, what="since"))
    frame = frame[keep].sort_values([PREDICTED_AT, "prediction_id"], kind="stable")
    frame = frame.drop_duplicates(["model_version", ENTITY_KEY, FEATURE_EVENT_TIME])
    labels = _outcome_keys(outcomes)
    merged = frame.merge(
        labels.rename(columns={EVENT_TIMESTAMP: FEATURE_EVENT_TIME}),
        on=[ENTITY_KEY, FEATURE_EVENT_TIME],
        how="inner",
        validate="many_to_one",
    )
    observed = merged[LABEL_OBSERVED_AT]
    inside = (observed >= merged[PREDICTED_AT]) & (
        observed <= _horizon_end(merged[PREDICTED_AT], window.horizon_months, as_of)
    )
    evaluated = merged[inside].reset_index(drop=True)
    evaluated[PERIOD] = evaluated[PREDICTED_AT].dt.strftime(period_format)
    evaluated[LABEL] = evaluated[LABEL].astype(np.int64)
    counts = {"predictions": len(frame), "evaluated": len(evaluated)}
    return evaluated, counts


def campaign_outcomes(
    campaigns: pd.DataFrame, outcomes: pd.DataFrame, window: Window
) -> pd.DataFrame:
    """Campaign rows with the outcome that evaluates them (see the module docstring).

    Adds event_timestamp (the snapshot the target was scored from), churn and
    label_observed_at; targets without an outcome in the window are dropped.
    """
    if campaigns.empty:
        return campaigns.assign(**{EVENT_TIMESTAMP: [], LABEL: [], LABEL_OBSERVED_AT: []})
    as_of = pd.Timestamp(as_utc(window.as_of, what="as_of"))
    targets = campaigns.copy()
    targets["assigned_at"] = _utc_ns(targets["assigned_at"])
    targets = targets.sort_values("assigned_at", kind="stable")
    labels = _outcome_keys(outcomes).sort_values(EVENT_TIMESTAMP, kind="stable")
    merged = pd.merge_asof(
        targets,
        labels,
        left_on="assigned_at",
        right_on=EVENT_TIMESTAMP,
        by=ENTITY_KEY,
        direction="backward",
    )
    observed = merged[LABEL_OBSERVED_AT]
    inside = (
        merged[LABEL].notna()
        & (observed >= merged["assigned_at"])
        & (observed <= _horizon_end(merged["assigned_at"], window.horizon_months, as_of))
    )
    out = merged[inside].reset_index(drop=True)
    out[LABEL] = out[LABEL].astype(np.int64)
    return out


def with_features(frame: pd.DataFrame, features: pd.DataFrame, time_column: str) -> pd.DataFrame:
    """`frame` with SEGMENT_INPUTS from the feature row of the same customer at the
    snapshot `time_column` names (features: customer_id, event_timestamp, inputs)."""
    right = features[[ENTITY_KEY, EVENT_TIMESTAMP, *SEGMENT_INPUTS]].copy()
    right[EVENT_TIMESTAMP] = _utc_ns(right[EVENT_TIMESTAMP])
    right = right.drop_duplicates([ENTITY_KEY, EVENT_TIMESTAMP])
    left = frame.drop(columns=[c for c in SEGMENT_INPUTS if c in frame.columns])
    keys = left[time_column]
    left = left.assign(**{"_at": _utc_ns(keys)})
    merged = left.merge(
        right.rename(columns={EVENT_TIMESTAMP: "_at"}),
        on=[ENTITY_KEY, "_at"],
        how="left",
        validate="many_to_one",
    )
    missing = merged[MONTHLY].isna()
    if missing.any():
        raise KeyError(
            f"no features for {int(missing.sum())} row(s), e.g. "
            f"{merged.loc[missing, ENTITY_KEY].head(3).tolist()}"
        )
    return merged.drop(columns="_at")


def feature_keys(evaluated: pd.DataFrame, targeted: pd.DataFrame) -> pd.DataFrame:
    """The distinct (customer_id, event_timestamp) entity rows whose features the KPIs
    need: each evaluated prediction's snapshot and each campaign target's."""
    rows = pd.concat(
        [
            pd.DataFrame(
                {
                    ENTITY_KEY: evaluated[ENTITY_KEY].astype(str),
                    EVENT_TIMESTAMP: _utc_ns(evaluated[FEATURE_EVENT_TIME]),
                }
            ),
            pd.DataFrame(
                {
                    ENTITY_KEY: targeted[ENTITY_KEY].astype(str),
                    EVENT_TIMESTAMP: _utc_ns(targeted[EVENT_TIMESTAMP]),
                }
            ),
        ],
        ignore_index=True,
    )
    return rows.drop_duplicates().sort_values([ENTITY_KEY, EVENT_TIMESTAMP]).reset_index(drop=True)


def arm_weights(evaluated: pd.DataFrame, targeted: pd.DataFrame) -> pd.Series:
    """Each evaluated prediction's weight in the model-quality figures (module docstring).

    0 for a customer treated from that snapshot (the offer changed the outcome); for a
    control customer, targets / controls of its campaign's risk stratum (it stands for
    the treated customers of its stratum too); 1 for everyone else.
    """
    weights = pd.Series(1.0, index=evaluated.index)
    if targeted.empty:
        return weights
    cells = targeted.groupby(["campaign_id", "risk_decile"])[ARM]
    share = cells.transform("size") / cells.transform(lambda arm: (arm == CONTROL).sum())
    weight = np.where(targeted[ARM] == TREATED, 0.0, share.to_numpy(np.float64))
    keyed = pd.Series(
        weight,
        index=pd.MultiIndex.from_arrays(
            [targeted[ENTITY_KEY].astype(str), _utc_ns(targeted[EVENT_TIMESTAMP])]
        ),
    )
    keyed = keyed[~keyed.index.duplicated()]
    own = pd.MultiIndex.from_arrays(
        [evaluated[ENTITY_KEY].astype(str), _utc_ns(evaluated[FEATURE_EVENT_TIME])]
    )
    found = keyed.reindex(own).to_numpy()
    return weights.where(np.isnan(found), pd.Series(found, index=evaluated.index))


def _weighted_mean(values: pd.Series, weights: pd.Series) -> float:
    return float(np.average(values.to_numpy(np.float64), weights=weights.to_numpy(np.float64)))


def decile_table(evaluated: pd.DataFrame, strata: int) -> list[dict[str, Any]]:
    """Per predicted-risk stratum (1 = lowest): customers, mean predicted and realized
    churn rate (both weighted by WEIGHT), churners observed."""
    if evaluated.empty:
        return []
    order = evaluated.sort_values([PROBABILITY, ENTITY_KEY], kind="stable")
    deciles = pd.Series(risk_deciles(order[PROBABILITY], strata), index=order.index)
    grouped = evaluated.groupby(deciles.reindex(evaluated.index))
    return [
        {
            "decile": int(decile),
            "n": len(group),
            "mean_predicted": _weighted_mean(group[PROBABILITY], group[WEIGHT]),
            "realized_rate": _weighted_mean(group[LABEL], group[WEIGHT]),
            "churners": int(group[LABEL].sum()),
        }
        for decile, group in grouped
    ]


def segment_table(evaluated: pd.DataFrame) -> list[dict[str, Any]]:
    """Per segment value (SEGMENTS): customers, mean predicted and realized churn rate
    (weighted by WEIGHT)."""
    if evaluated.empty:
        return []
    keys = {
        "contract": evaluated["contract"].astype(str),
        "tenure_bucket": pd.Series(tenure_bucket(evaluated["tenure"]), index=evaluated.index),
        "internet_service": evaluated["internet_service"].astype(str),
        "senior_citizen": evaluated["senior_citizen"].astype(np.int64).astype(str),
    }
    rows = []
    for segment in SEGMENTS:
        for value, group in evaluated.groupby(keys[segment], sort=True):
            rows.append(
                {
                    "segment": segment,
                    "value": str(value),
                    "n": len(group),
                    "mean_predicted": _weighted_mean(group[PROBABILITY], group[WEIGHT]),
                    "realized_rate": _weighted_mean(group[LABEL], group[WEIGHT]),
                }
            )
    return rows


def classification_metrics(
    y: Any, scores: Any, threshold: Any, weights: Any = None
) -> dict[str, float | None]:
    """ROC-AUC, PR-AUC, precision and recall at `threshold` (per row or one value),
    each row counted `weights` times (None: once).

    None where a figure is undefined: one class only (AUCs, recall), nobody flagged
    (precision).
    """
    labels = np.asarray(y, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=np.float64)
    flagged = s >= np.asarray(threshold, dtype=np.float64)
    positive = labels == 1
    both = w[positive].sum() > 0 and w[~positive].sum() > 0
    tp = float(w[flagged & positive].sum())
    flagged_weight, positive_weight = float(w[flagged].sum()), float(w[positive].sum())
    return {
        "roc_auc": float(roc_auc_score(labels, s, sample_weight=w)) if both else None,
        "pr_auc": float(average_precision_score(labels, s, sample_weight=w)) if both else None,
        "precision": tp / flagged_weight if flagged_weight > 0 else None,
        "recall": tp / positive_weight if positive_weight > 0 else None,
    }


@dataclass(frozen=True)
class Bootstrap:
    """Percentile bootstrap settings (configs/business_kpi_pipeline.yaml: bootstrap)."""

    n_resamples: int
    confidence: float
    seed: int

    def __post_init__(self) -> None:
        if self.n_resamples < 10:
            raise ValueError(f"n_resamples must be >= 10, got {self.n_resamples}")
        if not 0.5 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence}")


def bootstrap_intervals(
    y: Any, scores: Any, threshold: Any, weights: Any, settings: Bootstrap
) -> dict[str, tuple[float | None, float | None]]:
    """Percentile intervals of classification_metrics over resamples of the rows (each
    row keeps its weight).

    Resamples where a metric is undefined are left out of that metric's interval.
    """
    labels = np.asarray(y, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    t = np.broadcast_to(np.asarray(threshold, dtype=np.float64), s.shape)
    w = np.asarray(weights, dtype=np.float64)
    rng = np.random.default_rng(settings.seed)
    draws: dict[str, list[float]] = {m: [] for m in METRICS}
    for _ in range(settings.n_resamples):
        rows = rng.integers(0, len(labels), len(labels))
        metrics = classification_metrics(labels[rows], s[rows], t[rows], w[rows])
        for name, value in metrics.items():
            if value is not None:
                draws[name].append(value)
    tail = (1.0 - settings.confidence) / 2.0 * 100.0
    return {
        name: (
            (float(np.percentile(v, tail)), float(np.percentile(v, 100.0 - tail)))
            if v
            else (None, None)
        )
        for name, v in draws.items()
    }


def realized_performance(
    evaluated: pd.DataFrame,
    settings: Bootstrap,
    offline: Mapping[str, Mapping[str, float]] | None = None,
) -> list[dict[str, Any]]:
    """Per (model_version, period): n, churners, each metric (rows weighted by WEIGHT)
    with its interval, and the version's offline held-out figures
    (`offline[model_version]`) beside them."""
    rows = []
    for (version, period), group in evaluated.groupby(["model_version", PERIOD], sort=True):
        y, s, t, w = group[LABEL], group[PROBABILITY], group["threshold"], group[WEIGHT]
        point = classification_metrics(y, s, t, w)
        intervals = bootstrap_intervals(y, s, t, w, settings)
        row: dict[str, Any] = {
            "model_version": str(version),
            "period": str(period),
            "n": len(group),
            "churners": int(group[LABEL].sum()),
            "threshold": float(np.median(t)),
        }
        for name in METRICS:
            low, high = intervals[name]
            row[name], row[f"{name}_low"], row[f"{name}_high"] = point[name], low, high
        held_out = dict((offline or {}).get(str(version), {}))
        row["offline"] = {name: held_out.get(name) for name in METRICS}
        rows.append(row)
    return rows


@dataclass(frozen=True)
class CampaignTerms:
    """Money and goal terms of the intervention KPIs (the KPI pipeline's YAML)."""

    cost_per_contact: float
    horizon_months: int
    goal_churn_reduction: float
    confidence: float


@dataclass(frozen=True)
class InterventionEffect:
    """Treated vs control among a campaign's targets, and what it was worth."""

    campaign_id: str
    assigned_at: str
    n_treated: int
    n_control: int
    churners_treated: int
    churners_control: int
    churn_rate_treated: float
    churn_rate_control: float
    absolute_uplift: float  # control rate - treated rate: churn prevented per contact
    absolute_uplift_low: float
    absolute_uplift_high: float
    relative_risk: float  # treated rate / control rate
    relative_risk_low: float
    relative_risk_high: float
    intervention_success_rate: float  # 1 - relative risk: share of churn prevented
    customers_saved: float
    customers_saved_low: float
    customers_saved_high: float
    revenue_retained: float
    campaign_cost: float
    roi: float | None
    base_customers: int
    base_churners: int
    base_churn_reduction: float
    goal_churn_reduction: float
    goal_progress: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types."""
        return asdict(self)


def relative_risk_interval(
    churners_treated: int, n_treated: int, churners_control: int, n_control: int, z: float
) -> tuple[float, float, float]:
    """Risk ratio treated/control and Katz's log interval (0.5 per cell if a count is 0)."""
    a, n1 = float(churners_treated), float(n_treated)
    c, n0 = float(churners_control), float(n_control)
    if min(a, c, n1 - a, n0 - c) == 0:
        a, c, n1, n0 = a + 0.5, c + 0.5, n1 + 1.0, n0 + 1.0
    ratio = (a / n1) / (c / n0)
    se = float(np.sqrt(1.0 / a - 1.0 / n1 + 1.0 / c - 1.0 / n0))
    return float(ratio), float(ratio * np.exp(-z * se)), float(ratio * np.exp(z * se))


def intervention_effect(
    targeted: pd.DataFrame, base: pd.DataFrame, terms: CampaignTerms
) -> InterventionEffect:
    """The KPIs of one campaign from its evaluated targets (campaign_outcomes rows).

    `base`: the outcomes of the whole customer base at the campaign's snapshot, for
    the goal (churn reduction of the base = saved / (observed churners + saved)).
    Revenue retained = uplift x sum of the treated arm's monthly charges x horizon.
    """
    arms = targeted[ARM].to_numpy()
    treated, control = arms == TREATED, arms == CONTROL
    n1, n0 = int(treated.sum()), int(control.sum())
    if n1 == 0 or n0 == 0:
        raise ValueError(f"campaign needs both arms with outcomes: {n1} treated, {n0} control")
    churn = targeted[LABEL].to_numpy(np.int64)
    a, c = int(churn[treated].sum()), int(churn[control].sum())
    p1, p0 = a / n1, c / n0
    z = float(norm.ppf(0.5 + terms.confidence / 2.0))
    uplift = p0 - p1
    se = float(np.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0))
    ratio, ratio_low, ratio_high = relative_risk_interval(a, n1, c, n0, z)
    monthly = float(targeted[MONTHLY].to_numpy(np.float64)[treated].sum())
    revenue = uplift * monthly * terms.horizon_months
    cost = n1 * terms.cost_per_contact
    saved = uplift * n1
    base_churners = int(base[LABEL].sum())
    counterfactual = base_churners + saved
    reduction = saved / counterfactual if counterfactual > 0 else 0.0
    return InterventionEffect(
        campaign_id=str(targeted["campaign_id"].iloc[0]),
        assigned_at=pd.Timestamp(targeted["assigned_at"].min()).isoformat(),
        n_treated=n1,
        n_control=n0,
        churners_treated=a,
        churners_control=c,
        churn_rate_treated=p1,
        churn_rate_control=p0,
        absolute_uplift=uplift,
        absolute_uplift_low=uplift - z * se,
        absolute_uplift_high=uplift + z * se,
        relative_risk=ratio,
        relative_risk_low=ratio_low,
        relative_risk_high=ratio_high,
        intervention_success_rate=1.0 - ratio,
        customers_saved=saved,
        customers_saved_low=(uplift - z * se) * n1,
        customers_saved_high=(uplift + z * se) * n1,
        revenue_retained=revenue,
        campaign_cost=cost,
        roi=(revenue - cost) / cost if cost > 0 else None,
        base_customers=len(base),
        base_churners=base_churners,
        base_churn_reduction=reduction,
        goal_churn_reduction=terms.goal_churn_reduction,
        goal_progress=reduction / terms.goal_churn_reduction,
    )


def campaign_effects(
    targeted: pd.DataFrame, outcomes: pd.DataFrame, terms: CampaignTerms
) -> list[dict[str, Any]]:
    """intervention_effect of every campaign with outcomes in both arms, oldest first;
    each campaign's base is every outcome of the snapshots its targets were scored on."""
    effects = []
    snapshots = _utc_ns(outcomes[EVENT_TIMESTAMP])
    for _, group in targeted.groupby("campaign_id", sort=False):
        if set(group[ARM]) != {TREATED, CONTROL}:
            continue
        base = outcomes[snapshots.isin(_utc_ns(group[EVENT_TIMESTAMP]).unique()).to_numpy()]
        effects.append(intervention_effect(group, base, terms).to_dict())
    return sorted(effects, key=lambda e: str(e["assigned_at"]))


@dataclass(frozen=True)
class Floors:
    """Realized performance below which the KPI pipeline acts (its YAML: floors)."""

    min_roc_auc: float
    min_recall: float
    min_outcomes: int


def breaches(performance: Sequence[Mapping[str, Any]], floors: Floors) -> list[str]:
    """One line per (version, period) with enough outcomes whose realized ROC-AUC or
    recall is below its floor; empty when every figure holds."""
    found = []
    for row in performance:
        if row["n"] < floors.min_outcomes:
            continue
        for metric, floor in (("roc_auc", floors.min_roc_auc), ("recall", floors.min_recall)):
            value = row[metric]
            if value is not None and value < floor:
                found.append(
                    f"{row['model_version']} {row['period']}: realized {metric} {value:.3f} "
                    f"below the floor {floor} ({row['n']} outcomes)"
                )
    return found


@dataclass(frozen=True)
class KpiSettings:
    """Every tunable of a KPI evaluation (configs/business_kpi_pipeline.yaml)."""

    window: Window
    period_format: str
    strata: int
    exclude_treated: bool
    bootstrap: Bootstrap
    terms: CampaignTerms
    floors: Floors


def build_kpi_report(
    evaluated: pd.DataFrame,
    targeted: pd.DataFrame,
    outcomes: pd.DataFrame,
    counts: Mapping[str, int],
    settings: KpiSettings,
    *,
    offline: Mapping[str, Mapping[str, float]],
    model_name: str,
    created_at: datetime,
) -> dict[str, Any]:
    """The KPI report (report.json): counts, deciles, segments, realized performance
    beside the offline figures, each campaign's effect, floors and their breaches.

    `evaluated` and `targeted` carry the segment inputs (with_features).
    """
    weights = arm_weights(evaluated, targeted)
    treated = weights == 0.0
    if settings.exclude_treated:
        scored = evaluated.assign(**{WEIGHT: weights})[~treated]
    else:
        scored = evaluated.assign(**{WEIGHT: 1.0})
    performance = realized_performance(scored, settings.bootstrap, offline)
    found = breaches(performance, settings.floors)
    window = settings.window
    return {
        "created_at": as_utc(created_at, what="created_at").isoformat(),
        "as_of": as_utc(window.as_of, what="as_of").isoformat(),
        "predictions_since": None if window.since is None else window.since.isoformat(),
        "horizon_months": window.horizon_months,
        "model_name": model_name,
        "exclude_treated": settings.exclude_treated,
        "counts": {
            **dict(counts),
            "treated_excluded": int(treated.sum()) if settings.exclude_treated else 0,
            "scored": len(scored),
            "campaign_targets_evaluated": len(targeted),
        },
        "deciles": decile_table(scored, settings.strata),
        "segments": segment_table(scored),
        "performance": performance,
        "campaigns": campaign_effects(targeted, outcomes, settings.terms),
        "floors": asdict(settings.floors),
        "breaches": found,
        "is_alarm": bool(found),
    }
