"""Business: the newest business KPI report (realized churn, realized vs expected
performance, intervention uplift and money) and the newest campaign's contact list.

Both are files the pipelines publish atomically: <CHURN_HOME>/reports/kpi/<time>/
(churn.loop.kpi_report) and <CHURN_HOME>/campaigns/<time>_<id>/ named by latest.json
(churn.loop.campaign). The page only reads them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dashboard.errors import NoCampaign, NoKpiReport


@dataclass(frozen=True)
class KpiReportFiles:
    """The newest KPI report: report.json's content and its HTML page."""

    path: Path
    content: dict[str, Any]
    html_path: Path | None


def newest_report_dir(root: Path, marker: str) -> Path | None:
    """The newest published report directory under `root` holding `marker`, or None.

    Directory names are sortable UTC stamps; hidden (still being written) ones are skipped.
    """
    if not root.is_dir():
        return None
    runs = sorted(
        p for p in root.iterdir() if not p.name.startswith(".") and (p / marker).is_file()
    )
    return runs[-1] if runs else None


def latest_kpi_report(root: Path | None = None) -> KpiReportFiles:
    """The newest report under `root` (default <CHURN_HOME>/reports/kpi)."""
    from churn.loop.kpi_report import REPORT_HTML, REPORT_JSON, kpi_reports_root

    root = root if root is not None else kpi_reports_root()
    newest = newest_report_dir(root, REPORT_JSON)
    if newest is None:
        raise NoKpiReport(
            f"No business KPI report yet (nothing under {root}). Run the business KPI "
            "pipeline (`make kpi-pipeline`) once outcomes have arrived."
        )
    html = newest / REPORT_HTML
    return KpiReportFiles(
        path=newest,
        content=json.loads((newest / REPORT_JSON).read_text(encoding="utf-8")),
        html_path=html if html.is_file() else None,
    )


def interval(row: Mapping[str, Any], name: str, fmt: str = "{:.2f}") -> str:
    """ "0.71 [0.64, 0.79]": a figure and its interval from report.json's fields."""
    values = (row.get(name), row.get(f"{name}_low"), row.get(f"{name}_high"))
    if any(v is None for v in values):
        return "n/a"
    point, low, high = (fmt.format(float(v)) for v in values)  # type: ignore[arg-type]
    return f"{point} [{low}, {high}]"


def performance_table(content: Mapping[str, Any]) -> pd.DataFrame:
    """Realized figures with their intervals beside the offline held-out ones."""
    rows = []
    for p in content.get("performance", []):
        row: dict[str, Any] = {"model version": p["model_version"], "period": p["period"],
                               "outcomes": p["n"]}  # fmt: skip
        for metric in ("roc_auc", "pr_auc", "precision", "recall"):
            row[f"{metric} realized [95%]"] = interval(p, metric, "{:.3f}")
            held_out = p.get("offline", {}).get(metric)
            row[f"{metric} held-out"] = None if held_out is None else round(float(held_out), 3)
        rows.append(row)
    return pd.DataFrame(rows)


def decile_frame(content: Mapping[str, Any]) -> pd.DataFrame:
    """Realized churn and mean prediction per risk decile, indexed by decile."""
    frame = pd.DataFrame(content.get("deciles", []))
    if frame.empty:
        return frame
    return frame.set_index("decile")[["n", "mean_predicted", "realized_rate"]]


@dataclass(frozen=True)
class CampaignFiles:
    """The newest campaign: its summary and the treated arm's contact list."""

    path: Path
    summary: dict[str, Any]
    contacts: pd.DataFrame
    contacts_path: Path


def latest_campaign(root: Path | None = None) -> CampaignFiles:
    """The campaign latest.json names under `root` (default <CHURN_HOME>/campaigns)."""
    from churn.loop.campaign import CONTACTS_NAME, LATEST_NAME, SUMMARY_NAME, campaigns_root

    root = root if root is not None else campaigns_root()
    pointer = root / LATEST_NAME
    if not pointer.is_file():
        raise NoCampaign(
            f"No campaign yet (nothing under {root}). Run the batch pipeline with its "
            "campaign block enabled (`make batch-pipeline`)."
        )
    path = root / str(json.loads(pointer.read_text(encoding="utf-8"))["name"])
    contacts = path / CONTACTS_NAME
    return CampaignFiles(
        path=path,
        summary=json.loads((path / SUMMARY_NAME).read_text(encoding="utf-8")),
        contacts=pd.read_csv(contacts, dtype={"customer_id": str}),
        contacts_path=contacts,
    )
