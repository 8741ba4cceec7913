"""Step: the business KPI report (deciles, segments, realized performance, uplift, ROI)."""

from datetime import UTC, datetime
from typing import Annotated, Any

import pandas as pd
from zenml import log_metadata, step

from churn.loop.kpi import (
    METRICS,
    Bootstrap,
    CampaignTerms,
    Floors,
    KpiSettings,
    Window,
    build_kpi_report,
)
from churn.models.registry import heldout_metrics
from steps.registry._tracking import stack_tracking_uri


def _offline(model_name: str, versions: list[str]) -> dict[str, dict[str, float]]:
    """Held-out figures from MLflow of each logged version of `model_name`."""
    uri = stack_tracking_uri()
    prefix = f"{model_name}-v"
    return {
        v: heldout_metrics(model_name, v.removeprefix(prefix), METRICS, uri)
        for v in versions
        if v.startswith(prefix)
    }


@step
def compute_kpis(
    evaluated: pd.DataFrame,
    targeted: pd.DataFrame,
    outcomes: pd.DataFrame,
    evaluation_window: dict[str, Any],
    model_name: str,
    period_format: str,
    strata: int,
    exclude_treated: bool,
    bootstrap: dict[str, Any],
    campaign: dict[str, Any],
    floors: dict[str, Any],
) -> Annotated[dict[str, Any], "kpi_report"]:
    """The report (churn.loop.kpi.build_kpi_report) for the predictions of `model_name`;
    headline figures are attached to the run as ZenML metadata."""
    since = evaluation_window["predictions_since"]
    window = Window(
        as_of=datetime.fromisoformat(evaluation_window["as_of"]),
        horizon_months=int(evaluation_window["horizon_months"]),
        since=None if since is None else datetime.fromisoformat(since),
    )
    settings = KpiSettings(
        window=window,
        period_format=period_format,
        strata=strata,
        exclude_treated=exclude_treated,
        bootstrap=Bootstrap(**bootstrap),
        terms=CampaignTerms(**campaign, horizon_months=window.horizon_months),
        floors=Floors(**floors),
    )
    mine = evaluated[evaluated["model_name"] == model_name] if len(evaluated) else evaluated
    report = build_kpi_report(
        mine,
        targeted,
        outcomes,
        evaluation_window["counts"],
        settings,
        offline=_offline(model_name, sorted(set(mine.get("model_version", [])))),
        model_name=model_name,
        created_at=datetime.now(UTC),
    )
    headline = {
        "is_alarm": report["is_alarm"],
        "breaches": report["breaches"],
        "counts": report["counts"],
        "performance": [
            {k: p[k] for k in ("model_version", "period", "n", *METRICS)}
            for p in report["performance"]
        ],
        "campaigns": [
            {k: c[k] for k in ("campaign_id", "relative_risk", "relative_risk_low",
                               "relative_risk_high", "customers_saved", "roi", "goal_progress")}
            for c in report["campaigns"]
        ],
    }  # fmt: skip
    log_metadata(metadata={"business_kpis": headline})
    return report
