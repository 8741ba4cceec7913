"""The business KPI report: JSON (the numbers), HTML (plots of them), a text table, MLflow.

Why three forms of one report: report.json is what other programs read (the
dashboard, a later run); report.html is what a person opens (decile bars, a
calibration plot and each campaign's uplift with its interval, drawn with
matplotlib's Agg renderer and embedded as base64 PNG, so the page is one file, as
the drift report is); the text table is what `make loop-demo` prints. The HTML is a
view of the JSON and holds no number the JSON lacks.

Layout: <CHURN_HOME>/reports/kpi/<UTC time>/report.{json,html}, published atomically
(churn.files), newest first by name.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from churn.files import publish_dir, stamp, write_json_atomic
from churn.settings import Settings, get_settings

REPORT_JSON: Final = "report.json"
REPORT_HTML: Final = "report.html"
_PREDICTED: Final = "#7f8c8d"
_REALIZED: Final = "#e67e22"
_TREATED: Final = "#27ae60"
_CONTROL: Final = "#c0392b"


def kpi_reports_root(settings: Settings | None = None) -> Path:
    """<CHURN_HOME>/reports/kpi: one directory per KPI report."""
    return (settings or get_settings()).home / "reports" / "kpi"


def _png(draw: Callable[[Any], None], size: tuple[float, float] = (5.2, 3.0)) -> str:
    """One matplotlib figure drawn by `draw(ax)`, as base64 PNG (no pyplot state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=80)
    ax = fig.subplots()
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_deciles(deciles: Sequence[Mapping[str, Any]]) -> str:
    """Realized churn rate beside the mean predicted probability, per risk decile."""

    def draw(ax: Any) -> None:
        x = np.array([d["decile"] for d in deciles], dtype=np.float64)
        ax.bar(x - 0.2, [d["mean_predicted"] for d in deciles], 0.4, label="mean predicted",
               color=_PREDICTED)  # fmt: skip
        ax.bar(x + 0.2, [d["realized_rate"] for d in deciles], 0.4, label="realized",
               color=_REALIZED)  # fmt: skip
        ax.set(xlabel="predicted-risk decile (10 = riskiest)", ylabel="churn rate")
        ax.set_xticks(x)
        ax.legend(fontsize=8)

    return _png(draw)


def plot_calibration(deciles: Sequence[Mapping[str, Any]]) -> str:
    """Realized rate against mean predicted probability per decile (diagonal = calibrated)."""

    def draw(ax: Any) -> None:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.plot([d["mean_predicted"] for d in deciles], [d["realized_rate"] for d in deciles],
                marker="o", color=_REALIZED)  # fmt: skip
        ax.set(xlabel="mean predicted P(churn)", ylabel="realized churn rate",
               xlim=(0, 1), ylim=(0, 1))  # fmt: skip

    return _png(draw, (4.0, 3.6))


def plot_uplift(effect: Mapping[str, Any]) -> str:
    """Churn rate of the treated and control arms, and the relative risk with its interval."""

    def draw(ax: Any) -> None:
        rates = [effect["churn_rate_control"], effect["churn_rate_treated"]]
        ax.bar([0, 1], rates, color=[_CONTROL, _TREATED])
        ax.set_xticks([0, 1], [f"control (n={effect['n_control']})",
                               f"treated (n={effect['n_treated']})"])  # fmt: skip
        ax.set_ylabel("realized churn rate")
        low, high = effect["relative_risk_low"], effect["relative_risk_high"]
        ax.set_title(
            f"relative risk {effect['relative_risk']:.2f} [{low:.2f}, {high:.2f}]", fontsize=9
        )
        ax2 = ax.twinx()
        ax2.errorbar([1.35], [effect["relative_risk"]],
                     yerr=[[effect["relative_risk"] - low], [high - effect["relative_risk"]]],
                     fmt="o", color="black", capsize=4)  # fmt: skip
        ax2.axhline(1.0, linestyle=":", color="grey")
        ax2.set_ylabel("relative risk (95% interval)")
        ax2.set_ylim(0, max(1.2, high * 1.1))

    return _png(draw)


def _n(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int | np.integer):
        return str(value)
    return f"{float(value):.{digits}f}"


def _interval(row: Mapping[str, Any], name: str, digits: int = 3) -> str:
    low, high = _n(row[f"{name}_low"], digits), _n(row[f"{name}_high"], digits)
    return f"{_n(row[name], digits)} [{low}, {high}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _performance_rows(report: Mapping[str, Any]) -> list[list[str]]:
    return [
        [
            p["model_version"], p["period"], str(p["n"]), str(p["churners"]),
            _interval(p, "roc_auc"), _n(p["offline"]["roc_auc"]),
            _interval(p, "pr_auc"), _n(p["offline"]["pr_auc"]),
            _interval(p, "precision"), _n(p["offline"]["precision"]),
            _interval(p, "recall"), _n(p["offline"]["recall"]),
        ]
        for p in report["performance"]
    ]  # fmt: skip


_PERFORMANCE_HEADER: Final = (
    "model version", "period", "n", "churners", "ROC-AUC [95%]", "offline",
    "PR-AUC [95%]", "offline", "precision [95%]", "offline", "recall [95%]", "offline",
)  # fmt: skip


def _campaign_rows(effect: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        ("treated / control", f"{effect['n_treated']} / {effect['n_control']}"),
        ("treated churn rate", _n(effect["churn_rate_treated"])),
        ("control churn rate", _n(effect["churn_rate_control"])),
        ("absolute uplift [95%]", _interval(effect, "absolute_uplift")),
        ("relative risk [95%]", _interval(effect, "relative_risk")),
        ("intervention success rate", _n(effect["intervention_success_rate"])),
        ("customers saved [95%]", _interval(effect, "customers_saved", 1)),
        ("revenue retained", _n(effect["revenue_retained"], 2)),
        ("campaign cost", _n(effect["campaign_cost"], 2)),
        ("ROI", _n(effect["roi"], 2)),
        ("base churn reduction", _n(effect["base_churn_reduction"])),
        (
            f"progress to the {effect['goal_churn_reduction']:.0%} goal",
            f"{effect['goal_progress']:.0%}",
        ),
    ]


_STYLE: Final = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:14px;margin-bottom:1em}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
.verdict{font-size:20px;font-weight:bold}.alarm{color:#c0392b}.ok{color:#27ae60}
.plots{display:flex;flex-wrap:wrap;gap:8px}
"""


def render_html(report: Mapping[str, Any]) -> str:
    """A self-contained HTML page of a report.json dict (plots embedded)."""
    e = html.escape
    if report["is_alarm"]:
        lines = "".join(f"<li>{e(b)}</li>" for b in report["breaches"])
        verdict = (
            f"<p class='verdict alarm'>Realized performance below its floor</p><ul>{lines}</ul>"
        )
    else:
        verdict = "<p class='verdict ok'>Realized performance within its floors</p>"
    counts = ", ".join(f"{e(k)}={v}" for k, v in report["counts"].items())
    excluded = "; treated customers left out of model quality" if report["exclude_treated"] else ""
    deciles = report["deciles"]
    decile_rows = [
        [str(d["decile"]), str(d["n"]), _n(d["mean_predicted"]), _n(d["realized_rate"])]
        for d in deciles
    ]
    segment_rows = [
        [s["segment"], s["value"], str(s["n"]), _n(s["mean_predicted"]), _n(s["realized_rate"])]
        for s in report["segments"]
    ]
    campaigns = []
    for effect in report["campaigns"]:
        campaigns.append(
            f"<h3>Campaign {e(effect['campaign_id'])} ({e(effect['assigned_at'])})</h3>"
            + _table(("KPI", "value"), _campaign_rows(effect))
            + f"<img alt='uplift' src='data:image/png;base64,{plot_uplift(effect)}'>"
        )
    plots = (
        f"<img alt='deciles' src='data:image/png;base64,{plot_deciles(deciles)}'>"
        f"<img alt='calibration' src='data:image/png;base64,{plot_calibration(deciles)}'>"
        if deciles
        else "<p>No evaluated predictions yet.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Business KPIs {e(report["created_at"])}</title>
<style>{_STYLE}</style></head><body>
<h1>Business KPIs: {e(report["model_name"])}</h1>
{verdict}
<ul>
<li>created {e(report["created_at"])}; outcomes known by {e(report["as_of"])}; horizon
{report["horizon_months"]} month(s) after each prediction</li>
<li>{counts}{excluded}</li>
</ul>
<h2>Realized performance (bootstrap 95% intervals) beside the offline held-out figures</h2>
{_table(_PERFORMANCE_HEADER, _performance_rows(report))}
<h2>Realized churn per predicted-risk decile</h2>
<div class="plots">{plots}</div>
{_table(("decile", "n", "mean predicted", "realized rate"), decile_rows)}
<h2>Realized churn per segment</h2>
{_table(("segment", "value", "n", "mean predicted", "realized rate"), segment_rows)}
<h2>Intervention success</h2>
{"".join(campaigns) or "<p>No campaign with outcomes in both arms yet.</p>"}
</body></html>
"""


def format_kpi_table(report: Mapping[str, Any]) -> str:
    """The KPI report as plain-text tables (what `make loop-demo` prints)."""

    def block(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
        widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
        line = "  ".join(f"{{:<{w}}}" for w in widths)
        out = [line.format(*header), line.format(*("-" * w for w in widths))]
        return out + [line.format(*row) for row in rows]

    lines = [f"Business KPIs of {report['model_name']} (outcomes known by {report['as_of']})", ""]
    lines += block(
        ("decile", "n", "mean predicted", "realized churn"),
        [(str(d["decile"]), str(d["n"]), _n(d["mean_predicted"]), _n(d["realized_rate"]))
         for d in report["deciles"]],
    )  # fmt: skip
    lines += ["", *block(_PERFORMANCE_HEADER, _performance_rows(report))]
    for effect in report["campaigns"]:
        lines += ["", f"campaign {effect['campaign_id']}"]
        lines += block(("KPI", "value"), _campaign_rows(effect))
    verdict = "; ".join(report["breaches"]) if report["is_alarm"] else "every floor holds"
    return "\n".join([*lines, "", f"realized performance: {verdict}"])


def write_kpi_report(report: Mapping[str, Any], root: Path | None = None) -> Path:
    """report.json + report.html in <root>/<created_at stamp>/ (atomic); the directory."""
    from datetime import datetime

    root = root if root is not None else kpi_reports_root()
    page = render_html(report)

    def fill(tmp: Path) -> None:
        write_json_atomic(tmp / REPORT_JSON, report)
        (tmp / REPORT_HTML).write_text(page, encoding="utf-8")

    return publish_dir(root, stamp(datetime.fromisoformat(str(report["created_at"]))), fill)


def flat_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """The report's numbers with MLflow-safe names: realized.<version>.<period>.<metric>
    and campaign.<id>.<kpi> (defined values only)."""
    out: dict[str, float] = {}
    for row in report["performance"]:
        base = f"realized.{row['model_version']}.{row['period']}"
        for key in ("n", "roc_auc", "pr_auc", "precision", "recall"):
            if row[key] is not None:
                out[f"{base}.{key}"] = float(row[key])
    for effect in report["campaigns"]:
        for key, value in effect.items():
            if isinstance(value, int | float) and value is not None:
                out[f"campaign.{effect['campaign_id']}.{key}"] = float(value)
    out["breaches"] = float(len(report["breaches"]))
    return {k.replace(":", "_").replace("+", "_"): v for k, v in out.items()}


def log_kpi_run(
    report: Mapping[str, Any], report_dir: Path, experiment: str, tracking_uri: str
) -> str:
    """One MLflow run in `experiment` with the report's metrics and files; its run id."""
    import mlflow

    from churn.models.registry import ensure_experiment

    experiment_id = ensure_experiment(experiment, tracking_uri)
    with mlflow.start_run(
        experiment_id=experiment_id, run_name="business-kpis", nested=True
    ) as run:
        mlflow.set_tags({"model_name": str(report["model_name"]), "as_of": str(report["as_of"])})
        mlflow.log_params({"horizon_months": report["horizon_months"],
                           "exclude_treated": report["exclude_treated"]})  # fmt: skip
        mlflow.log_metrics(flat_metrics(report))
        mlflow.log_artifacts(str(report_dir), artifact_path="kpi_report")
        return str(run.info.run_id)
