"""Drift: the newest report under <CHURN_HOME>/reports/drift, and the served
traffic's live drift status as the endpoint reports it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from dashboard.business import newest_report_dir
from dashboard.errors import NoDriftReport

# ------------------------------------------------------------------ drift report


@dataclass(frozen=True)
class DriftReportFiles:
    """The newest drift report: report.json's content, its HTML, per-feature table."""

    path: Path
    content: dict[str, Any]
    html_path: Path | None
    features: pd.DataFrame


def feature_table(content: Mapping[str, Any]) -> pd.DataFrame:
    """Per-feature verdicts of a report (distributions left out), lowest p-value first."""
    rows = [
        {k: v for k, v in dict(f).items() if k != "distribution"}
        for f in content.get("features", [])
    ]
    frame = pd.DataFrame(rows)
    if "p_value" in frame.columns:
        frame = frame.sort_values("p_value", kind="stable", na_position="last")
    return frame.reset_index(drop=True)


def latest_drift_report(root: Path | None = None) -> DriftReportFiles:
    """The newest report directory under `root` (default <CHURN_HOME>/reports/drift).

    Directory names are sortable UTC stamps; directories are published atomically, and
    hidden temporary ones are skipped.
    """
    from churn.monitoring.drift_report import REPORT_HTML, REPORT_JSON, drift_reports_root

    root = root if root is not None else drift_reports_root()
    newest = newest_report_dir(root, REPORT_JSON)
    if newest is None:
        raise NoDriftReport(
            f"No drift report yet (nothing under {root}). Run the drift monitoring pipeline."
        )
    content: dict[str, Any] = json.loads((newest / REPORT_JSON).read_text(encoding="utf-8"))
    html = newest / REPORT_HTML
    return DriftReportFiles(
        path=newest,
        content=content,
        html_path=html if html.is_file() else None,
        features=feature_table(content),
    )


@dataclass(frozen=True)
class LiveDrift:
    """The served model's drift monitor: counters and its last window, per feature."""

    enabled: bool
    detector: str | None
    windows_checked: int
    errors: int
    last_error: str | None
    is_drift: bool | None
    threshold: float | None
    checked_at: datetime | None
    features: pd.DataFrame


def live_drift(status: Mapping[str, Any]) -> LiveDrift:
    """GET /v2/models/<model>/drift's body as a LiveDrift (features: lowest p-value first)."""
    last = status.get("last_result") or {}
    p_values: Mapping[str, float] = last.get("p_values") or {}
    distances: Mapping[str, float] = last.get("distances") or {}
    threshold = last.get("threshold")
    frame = pd.DataFrame(
        [
            {
                "feature": name,
                "p_value": float(p),
                "statistic": distances.get(name),
                "drifted": threshold is not None and float(p) < float(threshold),
            }
            for name, p in p_values.items()
        ]
    )
    if not frame.empty:
        frame = frame.sort_values("p_value", kind="stable").reset_index(drop=True)
    checked = status.get("last_checked_at")
    return LiveDrift(
        enabled=bool(status.get("enabled")),
        detector=status.get("detector"),
        windows_checked=int(status.get("windows_checked") or 0),
        errors=int(status.get("errors") or 0),
        last_error=status.get("last_error"),
        is_drift=bool(last["is_drift"]) if "is_drift" in last else None,
        threshold=float(threshold) if threshold is not None else None,
        checked_at=datetime.fromtimestamp(float(checked), UTC) if checked else None,
        features=frame,
    )
