"""Business KPIs on simulated outcomes with a known truth (churn.loop.kpi).

The world: one synthetic snapshot, a "model" whose score is the generator's true
risk plus noise, a campaign of the top customers with half held out at random per
risk decile, and outcomes drawn by the generator with a known relative risk for the
treated arm. The report must recover that relative risk within its 95% interval,
and its realized AUC must be the AUC of the scores against the outcomes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churn.data.synthetic import generate, simulate_outcomes, true_churn_probability
from churn.loop.campaign import TREATED, CampaignRule, build_campaign
from churn.loop.kpi import (
    Bootstrap,
    CampaignTerms,
    Floors,
    KpiSettings,
    Window,
    breaches,
    build_kpi_report,
    campaign_outcomes,
    classification_metrics,
    evaluable_predictions,
    intervention_effect,
    relative_risk_interval,
    with_features,
)
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, LABEL

T0 = datetime(2025, 3, 1, tzinfo=UTC)
SCORED_AT = T0 + timedelta(hours=6)
T1 = datetime(2025, 4, 1, tzinfo=UTC)
THRESHOLD = 0.3


def settings(exclude_treated: bool = True, as_of: datetime = T1 + timedelta(days=1)) -> KpiSettings:
    return KpiSettings(
        window=Window(as_of=as_of, horizon_months=1, since=None),
        period_format="%Y-%m",
        strata=10,
        exclude_treated=exclude_treated,
        bootstrap=Bootstrap(n_resamples=50, confidence=0.95, seed=0),
        terms=CampaignTerms(
            cost_per_contact=5.0, horizon_months=1, goal_churn_reduction=0.15, confidence=0.95
        ),
        floors=Floors(min_roc_auc=0.75, min_recall=0.7, min_outcomes=200),
    )


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    """30k customers, noisy true-risk scores, a 6000-target campaign with half held out."""
    snapshot = generate(30_000, seed=21, start=T0)
    rng = np.random.default_rng(5)
    scores = np.clip(true_churn_probability(snapshot) + rng.normal(0, 0.08, len(snapshot)), 0, 1)
    predictions = pd.DataFrame(
        {
            ENTITY_KEY: snapshot[ENTITY_KEY],
            "churn_probability": scores,
            "expected_loss": scores * snapshot["monthly_charges"],
            "model_version": "m-v1",
        }
    )
    rule = CampaignRule("top_n", 6000, None, 0.5, seed=3, strata=10)
    campaign = build_campaign(predictions, rule, campaign_id="c1", assigned_at=SCORED_AT)
    log = pd.DataFrame(
        {
            "prediction_id": [f"p{i:06d}" for i in range(len(snapshot))],
            ENTITY_KEY: snapshot[ENTITY_KEY],
            "model_name": "m",
            "model_version": "m-v1",
            "probability": scores,
            "threshold": THRESHOLD,
            "feature_event_time": snapshot[EVENT_TIMESTAMP],
            "predicted_at": pd.Timestamp(SCORED_AT),
        }
    )
    return {"snapshot": snapshot, "campaign": campaign, "log": log, "scores": scores}


def report_for(world: dict[str, Any], relative_risk: float, **kw: Any) -> dict[str, Any]:
    campaign = world["campaign"]
    outcomes = simulate_outcomes(
        world["snapshot"],
        treated=campaign.loc[campaign["arm"] == TREATED, ENTITY_KEY],
        relative_risk=relative_risk,
        seed=11,
        observed_at=T1,
    )
    chosen = settings(**kw)
    evaluated, counts = evaluable_predictions(world["log"], outcomes, chosen.window, "%Y-%m")
    targeted = campaign_outcomes(campaign, outcomes, chosen.window)
    evaluated = with_features(evaluated, world["snapshot"], "feature_event_time")
    targeted = with_features(targeted, world["snapshot"], EVENT_TIMESTAMP)
    report = build_kpi_report(
        evaluated, targeted, outcomes, counts, chosen,
        offline={"m-v1": {"roc_auc": 0.8}}, model_name="m", created_at=T1,
    )  # fmt: skip
    report["_outcomes"] = outcomes
    return report


@pytest.mark.parametrize("relative_risk", [0.7, 1.0])
def test_the_interval_of_the_relative_risk_contains_the_simulated_one(
    world: dict[str, Any], relative_risk: float
) -> None:
    (effect,) = report_for(world, relative_risk)["campaigns"]
    assert effect["n_treated"] == effect["n_control"] == 3000
    assert effect["relative_risk_low"] <= relative_risk <= effect["relative_risk_high"]
    # The interval is informative: it excludes the other effect size.
    other = 1.0 if relative_risk == 0.7 else 0.7
    assert not effect["relative_risk_low"] <= other <= effect["relative_risk_high"]
    assert (
        effect["absolute_uplift_low"] <= effect["absolute_uplift"] <= effect["absolute_uplift_high"]
    )


def test_no_effect_means_no_customers_saved_within_the_interval(world: dict[str, Any]) -> None:
    (effect,) = report_for(world, 1.0)["campaigns"]
    assert effect["customers_saved_low"] <= 0.0 <= effect["customers_saved_high"]
    assert effect["relative_risk_low"] <= 1.0 <= effect["relative_risk_high"]


def test_the_interval_covers_the_truth_about_95_percent_of_the_time(world: dict[str, Any]) -> None:
    """200 fresh outcome draws of the same campaign: the Katz interval's coverage."""
    campaign = world["campaign"].copy()
    treated = (campaign["arm"] == TREATED).to_numpy()
    risk = true_churn_probability(
        world["snapshot"].set_index(ENTITY_KEY).loc[campaign[ENTITY_KEY]].reset_index()
    )
    risk = risk * np.where(treated, 0.7, 1.0)
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(200):
        churn = (rng.random(len(risk)) < risk).astype(np.int64)
        a, c = int(churn[treated].sum()), int(churn[~treated].sum())
        _, low, high = relative_risk_interval(a, int(treated.sum()), c, int((~treated).sum()), 1.96)
        hits += low <= 0.7 <= high
    assert 0.90 <= hits / 200 <= 0.99


def test_realized_auc_is_the_auc_of_the_scores_on_the_outcomes(world: dict[str, Any]) -> None:
    report = report_for(world, 0.7, exclude_treated=False)
    (row,) = report["performance"]
    outcomes = report["_outcomes"].set_index(ENTITY_KEY).loc[world["log"][ENTITY_KEY]]
    direct = roc_auc_score(outcomes[LABEL], world["scores"])
    assert row["n"] == 30_000
    assert abs(row["roc_auc"] - direct) < 0.01
    assert row["roc_auc_low"] <= row["roc_auc"] <= row["roc_auc_high"]
    flagged = world["scores"] >= THRESHOLD
    assert row["recall"] == pytest.approx(outcomes[LABEL][flagged].sum() / outcomes[LABEL].sum())


def test_treated_customers_are_left_out_and_controls_stand_for_them(
    world: dict[str, Any],
) -> None:
    """Without the treated arm, the control arm weighted by targets / controls of its
    stratum estimates the model on everyone as if nobody had been contacted: the
    figures on outcomes simulated with no effect for anyone (the counterfactual)."""
    report = report_for(world, 0.7)
    (row,) = report["performance"]
    assert report["counts"]["treated_excluded"] == 3000 and row["n"] == 27_000
    assert sum(d["n"] for d in report["deciles"]) == 27_000
    untreated = simulate_outcomes(
        world["snapshot"], treated=[], relative_risk=1.0, seed=11, observed_at=T1
    )
    y = untreated.set_index(ENTITY_KEY).loc[world["log"][ENTITY_KEY], LABEL].to_numpy()
    truth = classification_metrics(y, world["scores"], THRESHOLD)
    for metric in ("roc_auc", "recall", "precision"):
        assert row[f"{metric}_low"] <= truth[metric] <= row[f"{metric}_high"], metric
        assert abs(row[metric] - truth[metric]) < 0.02, metric


def test_deciles_rise_with_predicted_risk_and_segments_cover_everyone(
    world: dict[str, Any],
) -> None:
    report = report_for(world, 1.0, exclude_treated=False)
    deciles = report["deciles"]
    assert [d["decile"] for d in deciles] == list(range(1, 11))
    rates = [d["realized_rate"] for d in deciles]
    assert rates[-1] > 5 * rates[0]
    assert sum(later < earlier for earlier, later in pairwise(rates)) <= 1
    predicted = [d["mean_predicted"] for d in deciles]
    assert predicted == sorted(predicted)
    for segment in ("contract", "tenure_bucket", "internet_service", "senior_citizen"):
        assert sum(s["n"] for s in report["segments"] if s["segment"] == segment) == 30_000


def test_outcomes_outside_the_window_evaluate_nothing(world: dict[str, Any]) -> None:
    """Known only after as_of, or observed before the prediction: not evaluated."""
    early = report_for(world, 1.0, as_of=T1 - timedelta(days=1))
    assert early["counts"]["evaluated"] == 0 and early["performance"] == []
    assert early["campaigns"] == []
    outcomes = simulate_outcomes(
        world["snapshot"],
        treated=[],
        relative_risk=1.0,
        seed=1,
        observed_at=T0 + timedelta(hours=1),
    )
    _, counts = evaluable_predictions(world["log"], outcomes, settings().window, "%Y-%m")
    assert counts == {"predictions": 30_000, "evaluated": 0}


def test_a_customer_predicted_twice_from_one_snapshot_counts_once(world: dict[str, Any]) -> None:
    log = world["log"]
    again = log.head(100).assign(
        prediction_id=lambda f: "q" + f["prediction_id"],
        predicted_at=pd.Timestamp(SCORED_AT + timedelta(days=2)),
    )
    outcomes = simulate_outcomes(
        world["snapshot"], treated=[], relative_risk=1.0, seed=1, observed_at=T1
    )
    evaluated, counts = evaluable_predictions(
        pd.concat([log, again]), outcomes, settings().window, "%Y-%m"
    )
    assert counts["predictions"] == counts["evaluated"] == 30_000
    assert (evaluated["predicted_at"] == pd.Timestamp(SCORED_AT)).all()


def test_money_and_goal_follow_their_definitions() -> None:
    targeted = pd.DataFrame(
        {
            "campaign_id": "c",
            "assigned_at": pd.Timestamp(SCORED_AT),
            "arm": ["treated"] * 100 + ["control"] * 100,
            LABEL: [1] * 20 + [0] * 80 + [1] * 40 + [0] * 60,
            "monthly_charges": 50.0,
        }
    )
    base = pd.DataFrame({LABEL: [1] * 60 + [0] * 940})
    terms = CampaignTerms(
        cost_per_contact=10.0, horizon_months=3, goal_churn_reduction=0.15, confidence=0.95
    )
    effect = intervention_effect(targeted, base, terms)
    assert effect.absolute_uplift == pytest.approx(0.2) and effect.relative_risk == pytest.approx(
        0.5
    )
    assert effect.customers_saved == pytest.approx(20.0)
    assert effect.revenue_retained == pytest.approx(0.2 * 100 * 50.0 * 3)
    assert effect.campaign_cost == pytest.approx(1000.0)
    assert effect.roi == pytest.approx((3000.0 - 1000.0) / 1000.0)
    assert effect.base_churn_reduction == pytest.approx(20 / 80)
    assert effect.goal_progress == pytest.approx(0.25 / 0.15)


def test_an_arm_without_churners_still_gets_a_finite_interval() -> None:
    ratio, low, high = relative_risk_interval(0, 100, 10, 100, 1.96)
    assert 0 < low < ratio < high < 1


def test_shuffled_scores_breach_the_floor(world: dict[str, Any]) -> None:
    outcomes = simulate_outcomes(
        world["snapshot"], treated=[], relative_risk=1.0, seed=2, observed_at=T1
    )
    shuffled = world["log"].assign(
        probability=np.random.default_rng(0).permutation(world["scores"])
    )
    chosen = settings()
    evaluated, counts = evaluable_predictions(shuffled, outcomes, chosen.window, "%Y-%m")
    evaluated = with_features(evaluated, world["snapshot"], "feature_event_time")
    empty = campaign_outcomes(world["campaign"].head(0), outcomes, chosen.window)
    report = build_kpi_report(
        evaluated, empty, outcomes, counts, chosen, offline={}, model_name="m", created_at=T1
    )
    assert report["is_alarm"]
    assert any("roc_auc" in b and "m-v1 2025-03" in b for b in report["breaches"])
    (row,) = report["performance"]
    assert row["roc_auc_high"] < 0.55


def test_breaches_ignore_groups_with_too_few_outcomes() -> None:
    floors = Floors(min_roc_auc=0.75, min_recall=0.7, min_outcomes=200)
    row = {"model_version": "v", "period": "p", "roc_auc": 0.5, "recall": 0.1}
    assert breaches([{**row, "n": 199}], floors) == []
    assert len(breaches([{**row, "n": 200}], floors)) == 2


def test_metrics_are_undefined_rather_than_wrong_for_one_class() -> None:
    metrics = classification_metrics([0, 0, 0], [0.1, 0.5, 0.9], 0.3)
    assert metrics["roc_auc"] is None and metrics["recall"] is None
    assert metrics["precision"] == 0.0


def test_before_any_outcome_the_report_is_empty_and_calm(world: dict[str, Any]) -> None:
    """The KPI pipeline may run before outcomes arrive (an empty labels table)."""
    outcomes = pd.DataFrame(
        {c: [] for c in (ENTITY_KEY, EVENT_TIMESTAMP, LABEL, "label_observed_at")}
    )
    chosen = settings()
    evaluated, counts = evaluable_predictions(world["log"], outcomes, chosen.window, "%Y-%m")
    targeted = campaign_outcomes(world["campaign"], outcomes, chosen.window)
    report = build_kpi_report(
        evaluated, targeted, outcomes, counts, chosen, offline={}, model_name="m", created_at=T1
    )
    assert counts == {"predictions": 30_000, "evaluated": 0}
    assert report["performance"] == report["deciles"] == report["campaigns"] == []
    assert not report["is_alarm"]
