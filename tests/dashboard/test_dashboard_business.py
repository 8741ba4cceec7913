"""The Business tab on real files: a KPI report and a campaign written by the loop's
own code (churn.loop: campaign with a control group, simulated outcomes with a known
effect, the KPI report), rendered by Streamlit's AppTest (no browser)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from churn.data.synthetic import generate, simulate_outcomes, true_churn_probability
from churn.loop.campaign import TREATED, CampaignRule, build_campaign, contact_list, write_campaign
from churn.loop.kpi import (
    Bootstrap,
    CampaignTerms,
    Floors,
    KpiSettings,
    Window,
    build_kpi_report,
    campaign_outcomes,
    evaluable_predictions,
    with_features,
)
from churn.loop.kpi_report import kpi_reports_root, write_kpi_report
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP
from churn.settings import PROJECT_ROOT, get_settings
from dashboard.data import get_dashboard_settings

APP = PROJECT_ROOT / "dashboard" / "app.py"
T0 = datetime(2025, 3, 1, tzinfo=UTC)
T1 = datetime(2025, 4, 1, tzinfo=UTC)


def _world(home: Path) -> dict[str, object]:
    """A campaign and a KPI report under `home`, from 4000 simulated customers."""
    snapshot = generate(4000, seed=2, start=T0)
    scores = np.clip(true_churn_probability(snapshot), 0, 1)
    predictions = pd.DataFrame(
        {
            ENTITY_KEY: snapshot[ENTITY_KEY],
            "churn_probability": scores,
            "expected_loss": scores * snapshot["monthly_charges"],
            "model_version": "m-v1",
            "monthly_charges": snapshot["monthly_charges"],
            "reason_1": "tenure",
            "reason_1_value": "1",
        }
    )
    rule = CampaignRule("top_n", 800, None, 0.5, seed=1, strata=10)
    campaign = build_campaign(predictions, rule, campaign_id="cmp-test", assigned_at=T0)
    summary = write_campaign(
        campaign, contact_list(campaign, predictions), rule, root=home / "campaigns"
    )
    treated = campaign.loc[campaign["arm"] == TREATED, ENTITY_KEY]
    outcomes = simulate_outcomes(
        snapshot, treated=treated, relative_risk=0.7, seed=3, observed_at=T1
    )
    log = pd.DataFrame(
        {
            "prediction_id": [f"p{i}" for i in range(len(snapshot))],
            ENTITY_KEY: snapshot[ENTITY_KEY],
            "model_name": "m",
            "model_version": "m-v1",
            "probability": scores,
            "threshold": 0.3,
            "feature_event_time": snapshot[EVENT_TIMESTAMP],
            "predicted_at": pd.Timestamp(T0 + timedelta(hours=1)),
        }
    )
    settings = KpiSettings(
        window=Window(as_of=T1, horizon_months=1, since=None),
        period_format="%Y-%m", strata=10, exclude_treated=True,
        bootstrap=Bootstrap(n_resamples=20, confidence=0.95, seed=0),
        terms=CampaignTerms(cost_per_contact=5.0, horizon_months=1, goal_churn_reduction=0.15,
                            confidence=0.95),
        floors=Floors(min_roc_auc=0.75, min_recall=0.7, min_outcomes=100),
    )  # fmt: skip
    evaluated, counts = evaluable_predictions(log, outcomes, settings.window, "%Y-%m")
    targeted = campaign_outcomes(campaign, outcomes, settings.window)
    report = build_kpi_report(
        with_features(evaluated, snapshot, "feature_event_time"),
        with_features(targeted, snapshot, EVENT_TIMESTAMP),
        outcomes, counts, settings,
        offline={"m-v1": {"roc_auc": 0.85}}, model_name="m", created_at=T1,
    )  # fmt: skip
    write_kpi_report(report, kpi_reports_root())
    return {"report": report, "treated": summary.treated}


@pytest.fixture
def business(tmp_path: Path) -> Iterator[dict[str, object]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHURN_HOME", str(tmp_path / "home"))
        get_settings.cache_clear()
        get_dashboard_settings.cache_clear()
        try:
            yield _world(tmp_path / "home")
        finally:
            get_settings.cache_clear()
            get_dashboard_settings.cache_clear()


def test_the_business_tab_shows_the_effect_the_money_and_the_contact_list(
    business: dict[str, object],
) -> None:
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception, at.exception
    report = business["report"]
    assert isinstance(report, dict)
    (effect,) = report["campaigns"]
    metrics = {m.label: m.value for m in at.metric}
    low, high = effect["relative_risk_low"], effect["relative_risk_high"]
    assert metrics["Relative risk (treated / control)"] == (
        f"{effect['relative_risk']:.2f} [{low:.2f}, {high:.2f}]"
    )
    assert low <= 0.7 <= high
    assert metrics["Revenue retained"] == f"${effect['revenue_retained']:,.0f}"
    assert metrics["Progress to the 15% goal"] == f"{effect['goal_progress']:.0%}"
    assert "Realized performance within its floors." in [s.value for s in at.success]
    labels = [b.label for b in at.get("download_button")]
    assert f"Download {business['treated']} contacts as CSV" in labels
    assert "Download the HTML report" in labels
