"""Campaign assignment: budget rules, a seeded stratified control group, the contact list."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn.loop.campaign import (
    CONTROL,
    TREATED,
    CampaignRule,
    assign_arms,
    build_campaign,
    contact_list,
    risk_deciles,
    write_campaign,
)

AT = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def predictions(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """A batch run's ranked predictions with one reason per customer."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 5, n)
    charges = rng.uniform(20, 110, n)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "churn_probability": p,
            "model_version": "churn-classifier-v2",
            "monthly_charges": charges,
            "expected_loss": p * charges,
            "reason_1": "contract",
            "reason_1_value": "Month-to-month",
            "reason_1_contribution": 0.5,
        }
    )


def rule(**overrides: object) -> CampaignRule:
    values: dict[str, object] = {
        "kind": "threshold", "top_n": None, "min_probability": 0.0,
        "control_share": 0.2, "seed": 7, "strata": 10,
    }  # fmt: skip
    values.update(overrides)
    return CampaignRule(**values)  # type: ignore[arg-type]


def test_deciles_are_equal_sized_and_ordered_by_risk() -> None:
    p = np.random.default_rng(1).random(1000)
    d = risk_deciles(p, 10)
    assert np.bincount(d)[1:].tolist() == [100] * 10
    assert p[d == 10].min() > p[d == 9].max()


def test_control_share_is_held_in_every_decile() -> None:
    campaign = build_campaign(predictions(), rule(), campaign_id="c1", assigned_at=AT)
    assert len(campaign) == 2000
    per_decile = campaign.groupby("risk_decile")["arm"].apply(lambda a: (a == CONTROL).mean())
    assert per_decile.index.tolist() == list(range(1, 11))
    assert np.allclose(per_decile.to_numpy(), 0.2)
    assert (campaign["arm"] == CONTROL).sum() == 400


def test_assignment_is_reproducible_by_seed_and_independent_of_row_order() -> None:
    frame = predictions()
    first = build_campaign(frame, rule(), campaign_id="c1", assigned_at=AT)
    shuffled = frame.sample(frac=1.0, random_state=3)
    again = build_campaign(shuffled, rule(), campaign_id="c1", assigned_at=AT)
    arms = first.set_index("customer_id")["arm"]
    assert arms.equals(again.set_index("customer_id")["arm"].loc[arms.index])
    other = build_campaign(frame, rule(seed=8), campaign_id="c1", assigned_at=AT)
    assert not arms.equals(other.set_index("customer_id")["arm"].loc[arms.index])


def test_assign_arms_rounds_the_share_per_stratum() -> None:
    arms = assign_arms([f"x{i}" for i in range(15)], [1] * 10 + [2] * 5, 0.3, seed=0)
    assert (arms[:10] == CONTROL).sum() == 3 and (arms[10:] == CONTROL).sum() == 2


def test_top_n_targets_the_highest_expected_loss() -> None:
    frame = predictions()
    campaign = build_campaign(frame, rule(kind="top_n", top_n=300), campaign_id="c", assigned_at=AT)
    assert len(campaign) == 300
    cutoff = frame["expected_loss"].nlargest(300).min()
    assert campaign["expected_loss"].min() == cutoff


def test_threshold_targets_probability_at_or_above() -> None:
    frame = predictions()
    campaign = build_campaign(frame, rule(min_probability=0.4), campaign_id="c", assigned_at=AT)
    assert len(campaign) == int((frame["churn_probability"] >= 0.4).sum())
    assert campaign["churn_probability"].min() >= 0.4


@pytest.mark.parametrize(
    "bad", [{"control_share": 0.0}, {"control_share": 1.0}, {"kind": "top_n"}, {"strata": 0}]
)
def test_invalid_rules_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        rule(**bad)


def test_contact_list_is_the_treated_arm_with_reasons(tmp_path: Path) -> None:
    frame = predictions(200)
    campaign = build_campaign(frame, rule(), campaign_id="c9", assigned_at=AT)
    contacts = contact_list(campaign, frame)
    treated = set(campaign.loc[campaign["arm"] == TREATED, "customer_id"])
    assert set(contacts["customer_id"]) == treated and len(contacts) == 160
    assert "reason_1" in contacts and "reason_1_contribution" not in contacts
    assert contacts["expected_loss"].is_monotonic_decreasing
    summary = write_campaign(campaign, contacts, rule(), root=tmp_path)
    assert (summary.treated, summary.control) == (160, 40)
    written = pd.read_csv(summary.contacts)
    assert set(written["customer_id"]) == treated
    assert len(pd.read_parquet(summary.campaign)) == 200


def test_contact_list_needs_reasons() -> None:
    frame = predictions(50).drop(columns=["reason_1", "reason_1_value", "reason_1_contribution"])
    campaign = build_campaign(frame, rule(), campaign_id="c", assigned_at=AT)
    with pytest.raises(ValueError, match="reason"):
        contact_list(campaign, frame)
