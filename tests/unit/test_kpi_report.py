"""The KPI report's files and text, and what the KPI pipeline does on a breach."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from churn.loop.actions import RealizedPerformanceError, act_on_kpis, retraining_config
from churn.loop.kpi_report import (
    REPORT_HTML,
    REPORT_JSON,
    flat_metrics,
    format_kpi_table,
    render_html,
    write_kpi_report,
)

PERFORMANCE = {
    "model_version": "m-v3", "period": "2026-12", "n": 900, "churners": 200, "threshold": 0.3,
    "roc_auc": 0.84, "roc_auc_low": 0.81, "roc_auc_high": 0.87,
    "pr_auc": 0.6, "pr_auc_low": 0.55, "pr_auc_high": 0.65,
    "precision": 0.5, "precision_low": 0.45, "precision_high": 0.55,
    "recall": 0.8, "recall_low": 0.75, "recall_high": 0.85,
    "offline": {"roc_auc": 0.86, "pr_auc": 0.62, "precision": 0.52, "recall": 0.82},
}  # fmt: skip
EFFECT = {
    "campaign_id": "cmp-1", "assigned_at": "2026-12-05T01:00:00+00:00",
    "n_treated": 1000, "n_control": 1000, "churners_treated": 350, "churners_control": 500,
    "churn_rate_treated": 0.35, "churn_rate_control": 0.5,
    "absolute_uplift": 0.15, "absolute_uplift_low": 0.11, "absolute_uplift_high": 0.19,
    "relative_risk": 0.7, "relative_risk_low": 0.63, "relative_risk_high": 0.78,
    "intervention_success_rate": 0.3, "customers_saved": 150.0,
    "customers_saved_low": 110.0, "customers_saved_high": 190.0,
    "revenue_retained": 12000.0, "campaign_cost": 5000.0, "roi": 1.4,
    "base_customers": 5000, "base_churners": 1200, "base_churn_reduction": 0.111,
    "goal_churn_reduction": 0.15, "goal_progress": 0.74,
}  # fmt: skip


def report(breaches: list[str] | None = None) -> dict[str, Any]:
    return {
        "created_at": "2027-01-05T00:10:00+00:00",
        "as_of": "2027-01-05T00:00:00+00:00",
        "predictions_since": None,
        "horizon_months": 1,
        "model_name": "m",
        "exclude_treated": True,
        "counts": {"predictions": 5000, "evaluated": 5000},
        "deciles": [
            {"decile": d, "n": 90, "mean_predicted": d / 11, "realized_rate": d / 12, "churners": d}
            for d in range(1, 11)
        ],
        "segments": [
            {
                "segment": "contract",
                "value": "Two year",
                "n": 900,
                "mean_predicted": 0.03,
                "realized_rate": 0.02,
            }
        ],
        "performance": [PERFORMANCE],
        "campaigns": [EFFECT],
        "floors": {"min_roc_auc": 0.75, "min_recall": 0.7, "min_outcomes": 200},
        "breaches": breaches or [],
        "is_alarm": bool(breaches),
    }


def test_files_hold_the_json_and_a_page_with_every_plot(tmp_path: Path) -> None:
    directory = write_kpi_report(report(), tmp_path)
    assert directory.name == "20270105T001000Z"
    assert json.loads((directory / REPORT_JSON).read_text()) == report()
    page = (directory / REPORT_HTML).read_text()
    assert page.count("data:image/png;base64,") == 3
    assert "0.700 [0.630, 0.780]" in page and "within its floors" in page


def test_an_alarm_is_the_page_verdict() -> None:
    page = render_html(report(["m-v3 2026-12: realized roc_auc 0.500 below the floor 0.75"]))
    assert "below its floor" in page and "realized roc_auc 0.500" in page


def test_the_text_table_shows_deciles_performance_and_the_campaign() -> None:
    text = format_kpi_table(report())
    assert "0.840 [0.810, 0.870]" in text and "0.860" in text  # realized beside offline
    assert "relative risk [95%]" in text and "0.700 [0.630, 0.780]" in text
    assert "progress to the 15% goal" in text and "74%" in text
    assert text.strip().endswith("realized performance: every floor holds")


def test_flat_metrics_name_version_period_and_campaign() -> None:
    metrics = flat_metrics(report())
    assert metrics["realized.m-v3.2026-12.roc_auc"] == 0.84
    assert metrics["campaign.cmp-1.relative_risk"] == 0.7
    assert metrics["breaches"] == 0.0


def test_no_breach_means_no_action_whatever_the_action() -> None:
    for action in ("fail", "alert", "retrain"):
        done = act_on_kpis(
            report(), "/r", action, training_config="missing.yaml", retrain_timeout_s=1
        )
        assert done["taken"] == "none"


def test_fail_raises_naming_the_breach_and_alert_records_it() -> None:
    breached = report(["m-v3 2026-12: realized recall 0.400 below the floor 0.7"])
    with pytest.raises(RealizedPerformanceError, match=r"realized recall 0\.400"):
        act_on_kpis(breached, "/r", "fail", training_config="x", retrain_timeout_s=1)
    done = act_on_kpis(breached, "/r", "alert", training_config="x", retrain_timeout_s=1)
    assert done["taken"] == "alert" and "realized recall 0.400" in done["message"]
    with pytest.raises(ValueError, match="unknown action"):
        act_on_kpis(breached, "/r", "page", training_config="x", retrain_timeout_s=1)  # type: ignore[arg-type]


def test_retraining_uses_every_label_known_at_the_evaluation(tmp_path: Path) -> None:
    path = retraining_config(
        "configs/training_pipeline.yaml", "2027-01-05T00:00:00+00:00", tmp_path
    )
    parameters = yaml.safe_load(path.read_text())["parameters"]
    assert parameters["labels_known_by"] == "2027-01-05T00:00:00+00:00"
    assert parameters["model_name"] == "churn-classifier"  # the rest is the config's
