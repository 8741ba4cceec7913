"""Drift report: a recent window of customers against the champion's training reference.

Method. The champion's own drift detector (fitted on its training features, logged
next to it in MLflow; churn.drift) tests the current rows in windows of
`window_size` rows drawn at random (seeded) from them, at most `max_windows` of
them, and the window verdicts are combined: the report says "drift" when more than
`drift_share` of the windows drift, and a feature is flagged when its own p-value
is below the detector's corrected threshold in more than `drift_share` of them.

Why windows rather than one test on every row: the detector's level was calibrated
on 200-500-row windows (churn.drift.alibi: about 2-4% false alarms on reference-like
data). A single Kolmogorov-Smirnov or Chi-squared test on a whole snapshot of 10k+
customers detects differences far too small to matter (a month of ageing moves every
tenure by one), so it would alarm on every run. Windows keep each test at the size it
was calibrated for, and the majority vote turns a few percent of false-alarming
windows into essentially no false-alarming reports, while a real shift drifts nearly
every window. Per feature the report gives the median statistic and p-value over the
windows, the smallest p-value, and how many windows drifted.

Plots: reference vs current distribution of every feature (proportions per category,
or per bin of shared edges for numbers), drawn with matplotlib's Agg renderer
(Figure objects, no pyplot state) and embedded in the HTML as base64 PNG, so the
report is one self-contained file. The JSON holds the same numbers (including the
binned distributions): the HTML is a view of the JSON, re-renderable from it.

Reference rows for the plots are the detector's own reference sample (x_ref.npy of
the saved detector, decoded with the schema); see `reference_frame`.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from churn.drift.base import DriftDetector, DriftResult, read_sidecar
from churn.drift.encoding import FeatureEncoder, FeatureSpec
from churn.drift.window import window_bounds
from churn.files import publish_dir, stamp, write_json_atomic
from churn.settings import Settings, get_settings

REPORT_JSON: Final = "report.json"
REPORT_HTML: Final = "report.html"
REFERENCE_FILE: Final = "x_ref.npy"  # alibi-detect's saved reference sample
MAX_BINS: Final = 30
# Integer-valued numbers with at most this many distinct values get one bin per value.
MAX_INTEGER_BINS: Final = 40


class ReferenceUnavailableError(FileNotFoundError):
    """The saved detector does not expose its reference sample for the plots."""


def drift_reports_root(settings: Settings | None = None) -> Path:
    """<CHURN_HOME>/reports/drift: one directory per report."""
    return (settings or get_settings()).home / "reports" / "drift"


def reference_frame(detector_dir: Path) -> pd.DataFrame:
    """The detector's reference rows as a frame of feature values (categories decoded).

    Read from the saved detector: its sidecar (churn.drift's format: features and
    categories) and the reference matrix alibi-detect saves as x_ref.npy (schema
    codes for categories). Another backend without that file raises
    ReferenceUnavailableError naming the directory.
    """
    sidecar = read_sidecar(detector_dir)
    features = [str(f) for f in sidecar.get("features", [])]
    path = detector_dir / REFERENCE_FILE
    if not path.is_file():
        raise ReferenceUnavailableError(
            f"{detector_dir}: no {REFERENCE_FILE}; backend {sidecar.get('backend')!r} does not "
            "save a reference sample the report can plot"
        )
    matrix = np.load(path, allow_pickle=False)
    if matrix.ndim != 2 or matrix.shape[1] != len(features):
        raise ValueError(
            f"{path} has shape {matrix.shape}, expected (rows, {len(features)}) for {features}"
        )
    encoder = FeatureEncoder.from_schema(features)
    columns: dict[str, Any] = {}
    for j, spec in enumerate(encoder.specs):
        values = matrix[:, j]
        if spec.is_categorical:
            codes = values.astype(np.int64)
            if codes.min() < 0 or codes.max() >= len(spec.categories):
                raise ValueError(
                    f"{path}: feature {spec.name!r} holds codes outside its categories"
                )
            columns[spec.name] = np.asarray(spec.categories, dtype=object)[codes]
        else:
            columns[spec.name] = values.astype(np.float64)
    return pd.DataFrame(columns)


def draw_windows(
    current: pd.DataFrame, *, window_size: int, max_windows: int, seed: int
) -> list[pd.DataFrame]:
    """Random (seeded) windows of `window_size` rows from `current`, at most `max_windows`.

    Rows are shuffled first: stored order (by customer id, by join date) must not
    decide which customers a window holds. A tail shorter than half a window joins the
    previous window; fewer rows than half a window is a ValueError, not "no drift".
    """
    if max_windows < 1:
        raise ValueError(f"max_windows must be positive, got {max_windows}")
    order = np.random.default_rng(seed).permutation(len(current))
    order = order[: window_size * max_windows]
    bounds = window_bounds(len(order), window_size, max(1, window_size // 2))
    shuffled = current.iloc[order].reset_index(drop=True)
    return [shuffled.iloc[start:stop] for start, stop in bounds]


def _json_float(value: float) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _is_integral(values: npt.NDArray[np.float64]) -> bool:
    return bool(np.all(np.equal(np.mod(values, 1.0), 0.0)))


def numeric_edges(
    reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]
) -> list[float]:
    """Bin edges shared by both samples: one bin per value for small integer ranges,
    else MAX_BINS equal-width bins over the combined range."""
    both = np.concatenate([reference, current])
    low, high = float(both.min()), float(both.max())
    if _is_integral(both) and high - low + 1 <= MAX_INTEGER_BINS:
        return [v - 0.5 for v in np.arange(low, high + 2.0).tolist()]
    if low == high:
        return [low - 0.5, high + 0.5]
    return [float(v) for v in np.linspace(low, high, MAX_BINS + 1)]


def _proportions(counts: npt.NDArray[np.integer[Any]]) -> list[float]:
    total = int(counts.sum())
    return [round(float(c) / total, 6) if total else 0.0 for c in counts.tolist()]


def distribution(spec: FeatureSpec, reference: pd.Series, current: pd.Series) -> dict[str, Any]:
    """Reference vs current distribution of one feature, as JSON-ready proportions.

    Categorical: one proportion per schema category. Numeric: proportions per bin of
    shared edges, plus each sample's mean and median.
    """
    if spec.is_categorical:
        ref_counts = reference.value_counts().reindex(list(spec.categories), fill_value=0)
        cur_counts = current.value_counts().reindex(list(spec.categories), fill_value=0)
        return {
            "categories": list(spec.categories),
            "reference": _proportions(ref_counts.to_numpy(dtype=np.int64)),
            "current": _proportions(cur_counts.to_numpy(dtype=np.int64)),
        }
    ref = reference.to_numpy(dtype=np.float64)
    cur = current.to_numpy(dtype=np.float64)
    edges = numeric_edges(ref, cur)
    ref_hist = np.histogram(ref, bins=edges)[0].astype(np.int64)
    cur_hist = np.histogram(cur, bins=edges)[0].astype(np.int64)
    return {
        "bin_edges": [round(e, 6) for e in edges],
        "reference": _proportions(ref_hist),
        "current": _proportions(cur_hist),
        "reference_mean": _json_float(float(ref.mean())),
        "current_mean": _json_float(float(cur.mean())),
        "reference_median": _json_float(float(np.median(ref))),
        "current_median": _json_float(float(np.median(cur))),
    }


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's verdict over the windows, and its two distributions."""

    name: str
    kind: str  # "categorical" | "numeric"
    test: str  # "chi-squared" | "kolmogorov-smirnov"
    statistic: float | None  # median over windows (Chi-squared statistic or K-S distance)
    p_value: float | None  # median over windows
    min_p_value: float | None
    drifted_windows: int
    drifted: bool
    distribution: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class DriftReport:
    """A whole report; `to_dict()` is report.json and what the HTML is drawn from."""

    created_at: str
    model_version: str
    detector: str
    threshold: float | None  # per-feature level after the multiple-testing correction
    reference_rows: int
    source: dict[str, Any]
    current_rows: int
    rows_tested: int
    window_size: int
    windows: int
    windows_drifted: int
    drift_share: float
    is_drift: bool
    drifted_features: list[str]
    features: list[FeatureDrift]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only."""
        return asdict(self)


def _summarise_feature(
    spec: FeatureSpec,
    results: Sequence[DriftResult],
    drift_share: float,
    reference: pd.DataFrame,
    current: pd.DataFrame,
) -> FeatureDrift:
    p_values = [r.p_values[spec.name] for r in results]
    statistics = [r.distances[spec.name] for r in results]
    drifted_windows = sum(p < r.threshold for p, r in zip(p_values, results, strict=True))
    return FeatureDrift(
        name=spec.name,
        kind="categorical" if spec.is_categorical else "numeric",
        test="chi-squared" if spec.is_categorical else "kolmogorov-smirnov",
        statistic=_json_float(median(statistics)),
        p_value=_json_float(median(p_values)),
        min_p_value=_json_float(min(p_values)),
        drifted_windows=int(drifted_windows),
        drifted=drifted_windows / len(results) > drift_share,
        distribution=distribution(spec, reference[spec.name], current[spec.name]),
    )


def build_drift_report(
    detector: DriftDetector,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    model_version: str,
    source: Mapping[str, Any],
    window_size: int,
    max_windows: int,
    drift_share: float,
    seed: int = 0,
    now: datetime | None = None,
) -> DriftReport:
    """Test `current` against the detector in windows and summarise per feature.

    `reference` is the detector's reference sample (reference_frame()); it is used
    for the distributions only, the tests use the detector's own copy. `source`
    says where `current` came from (kept in the report).
    """
    if not 0.0 <= drift_share < 1.0:
        raise ValueError(f"drift_share must be in [0, 1), got {drift_share}")
    windows = draw_windows(current, window_size=window_size, max_windows=max_windows, seed=seed)
    results = [detector.predict(w) for w in windows]
    encoder = FeatureEncoder.from_schema(list(detector.feature_names))
    tested = pd.concat(windows, ignore_index=True)
    features = [
        _summarise_feature(spec, results, drift_share, reference, tested) for spec in encoder.specs
    ]
    windows_drifted = sum(r.is_drift for r in results)
    drifted = sorted((f for f in features if f.drifted), key=lambda f: f.p_value or 0.0)
    return DriftReport(
        created_at=(now or datetime.now(UTC)).astimezone(UTC).isoformat(),
        model_version=model_version,
        detector=detector.name,
        threshold=_json_float(results[0].threshold),
        reference_rows=len(reference),
        source=dict(source),
        current_rows=len(current),
        rows_tested=len(tested),
        window_size=window_size,
        windows=len(results),
        windows_drifted=int(windows_drifted),
        drift_share=drift_share,
        is_drift=windows_drifted / len(results) > drift_share,
        drifted_features=[f.name for f in drifted],
        features=features,
    )


# ------------------------------------------------------------------------ rendering

_REFERENCE_COLOUR: Final = "#7f8c8d"
_CURRENT_COLOUR: Final = "#e67e22"
_DRIFT_COLOUR: Final = "#c0392b"


def plot_feature(feature: Mapping[str, Any]) -> str:
    """A reference-vs-current plot of one feature of report.json, as a base64 PNG."""
    from matplotlib.figure import Figure

    dist = feature["distribution"]
    fig = Figure(figsize=(5.2, 2.6), dpi=80)
    ax = fig.subplots()
    if "categories" in dist:
        x = np.arange(len(dist["categories"]))
        ax.bar(x - 0.2, dist["reference"], 0.4, label="reference", color=_REFERENCE_COLOUR)
        ax.bar(x + 0.2, dist["current"], 0.4, label="current", color=_CURRENT_COLOUR)
        ax.set_xticks(x, [str(c) for c in dist["categories"]], fontsize=7, rotation=15, ha="right")
    else:
        edges = np.asarray(dist["bin_edges"], dtype=np.float64)
        ax.stairs(
            dist["reference"],
            edges,
            fill=True,
            alpha=0.5,
            label="reference",
            color=_REFERENCE_COLOUR,
        )
        ax.stairs(dist["current"], edges, linewidth=1.8, label="current", color=_CURRENT_COLOUR)
        ax.tick_params(labelsize=7)
    ax.set_ylabel("share of rows", fontsize=8)
    drifted = bool(feature["drifted"])
    ax.set_title(
        f"{feature['name']}{' (drifted)' if drifted else ''}",
        fontsize=9,
        color=_DRIFT_COLOUR if drifted else "black",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    number = float(value)
    return f"{number:.{digits}g}" if abs(number) >= 1e-3 or number == 0 else f"{number:.2e}"


_STYLE: Final = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:14px}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
tr.drifted{background:#fdebd0}
.verdict{font-size:20px;font-weight:bold}
.drift{color:#c0392b}.ok{color:#27ae60}
.plots{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0}
"""


def render_html(report: Mapping[str, Any]) -> str:
    """A self-contained HTML page for a report.json dict (plots embedded)."""
    e = html.escape
    drift = bool(report["is_drift"])
    if drift:
        names = e(", ".join(report["drifted_features"]) or "no single feature")
        verdict = (
            f"<p class='verdict drift'>Drift detected in {report['windows_drifted']} of "
            f"{report['windows']} windows: {names}</p>"
        )
    else:
        verdict = (
            f"<p class='verdict ok'>No drift: {report['windows_drifted']} of "
            f"{report['windows']} windows drifted</p>"
        )
    source = ", ".join(f"{e(str(k))}={e(str(v))}" for k, v in report["source"].items())
    rows = []
    for f in sorted(report["features"], key=lambda f: (f["p_value"] is None, f["p_value"] or 0.0)):
        rows.append(
            f"<tr class='{'drifted' if f['drifted'] else ''}'><td>{e(f['name'])}</td>"
            f"<td>{e(f['test'])}</td><td>{_number(f['statistic'])}</td>"
            f"<td>{_number(f['p_value'])}</td><td>{_number(f['min_p_value'])}</td>"
            f"<td>{f['drifted_windows']}/{report['windows']}</td>"
            f"<td>{'yes' if f['drifted'] else 'no'}</td></tr>"
        )
    plots = [
        f"<figure><img alt='{e(f['name'])}: reference vs current' "
        f"src='data:image/png;base64,{plot_feature(f)}'></figure>"
        for f in report["features"]
    ]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report {e(report["created_at"])}</title>
<style>{_STYLE}</style></head><body>
<h1>Drift report</h1>
{verdict}
<ul>
<li>created: {e(report["created_at"])}</li>
<li>model: {e(report["model_version"])}; detector: {e(report["detector"])}</li>
<li>reference: {report["reference_rows"]} training rows</li>
<li>current: {source}; {report["current_rows"]} rows, {report["rows_tested"]} tested in
{report["windows"]} windows of {report["window_size"]}</li>
<li>a window drifts when a feature's p-value is below {_number(report["threshold"])}
(corrected level); the report says drift when more than {report["drift_share"]:.0%}
of the windows drift</li>
</ul>
<h2>Per feature</h2>
<table><thead><tr><th>feature</th><th>test</th><th>statistic (median)</th>
<th>p-value (median)</th><th>p-value (min)</th><th>drifted windows</th><th>drifted</th>
</tr></thead><tbody>
{"".join(rows)}
</tbody></table>
<h2>Reference vs current</h2>
<div class="plots">{"".join(plots)}</div>
</body></html>
"""


def write_drift_report(
    report: Mapping[str, Any], root: Path | None = None, *, now: datetime | None = None
) -> Path:
    """Write report.json and report.html into <root>/<UTC time>/ atomically; returns it.

    `root` defaults to drift_reports_root(); the directory name is the report's own
    creation time unless `now` is given.
    """
    root = root if root is not None else drift_reports_root()
    moment = now or datetime.fromisoformat(str(report["created_at"]))
    page = render_html(report)

    def fill(tmp: Path) -> None:
        write_json_atomic(tmp / REPORT_JSON, report)
        (tmp / REPORT_HTML).write_text(page, encoding="utf-8")

    return publish_dir(root, stamp(moment), fill)
