"""churn-mlops dashboard: who is at risk and why, how the model does, whether data drifted.

Run it (the project's venv; sources are found through CHURN_* settings):

    .venv/bin/streamlit run dashboard/app.py

Tabs: Customer (live prediction from the inference endpoint, with reasons), What-if
(edit a customer's features, scored in-process by the registry's champion), At risk
(newest batch scores, filters, CSV download), Model (champion metrics and plots from
MLflow), Drift (newest drift report and the live drift status of served traffic),
Business (newest business KPI report: realized churn, realized vs expected
performance, uplift and money; the newest campaign's contact list with download).
A source that is down or empty is explained in words on its tab (dashboard.data's
DashboardError messages); an unexpected error shows its message and is logged with
its traceback, never printed on the page.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# `streamlit run dashboard/app.py` puts only dashboard/ on sys.path: make the project
# importable when it is not installed (an entry-point script, so this is its job).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402
import streamlit.components.v1 as components  # noqa: E402

from churn.inference import format_value  # noqa: E402
from churn.schema import FEATURES, Group, Kind  # noqa: E402
from churn.settings import get_settings  # noqa: E402
from dashboard import data  # noqa: E402

logger = logging.getLogger("churn.dashboard")

LOOKUP_KEY = "lookup_id"
RESULT_KEY = "live_result"
WHATIF_ID_KEY = "whatif_customer"
# p-values span 1 to 1e-300: scientific notation, or tiny ones print as 0.0000.
P_VALUE_COLUMNS = {
    name: st.column_config.NumberColumn(name, format="scientific")
    for name in ("p_value", "min_p_value")
}


# ----------------------------------------------------------------------- helpers


def show_problem(error: data.DashboardError) -> None:
    """A DashboardError as an error, warning or info box, by its level."""
    {"error": st.error, "warning": st.warning, "info": st.info}[error.level](str(error))


def guarded(title: str, render: Any, *args: Any) -> None:
    """Run one tab's renderer; explain expected problems, log unexpected ones."""
    try:
        render(*args)
    except data.DashboardError as e:
        show_problem(e)
    except Exception as e:
        logger.exception("dashboard tab %r failed", title)
        st.error(f"{title}: unexpected error ({type(e).__name__}: {e}). See the dashboard log.")


@st.cache_resource(show_spinner="Loading the champion model…", max_entries=4)
def cached_champion(name: str, version: str, run_id: str, tracking_uri: str) -> data.Champion:
    """The champion's serving model, loaded once per registry version."""
    ref = data.ChampionRef(name=name, version=version, run_id=run_id)
    dst = Path(tempfile.mkdtemp(prefix=f"dashboard-{name}-v{version}-"))
    return data.load_champion(ref, dst, tracking_uri)


@st.cache_data(show_spinner=False, max_entries=4)
def cached_report(name: str, version: str, run_id: str, tracking_uri: str) -> data.ChampionReport:
    """Metrics and plots of one champion run (immutable once logged)."""
    ref = data.ChampionRef(name=name, version=version, run_id=run_id)
    dst = Path(tempfile.mkdtemp(prefix=f"dashboard-report-{run_id}-"))
    return data.champion_report(ref, dst, tracking_uri)


@st.cache_data(show_spinner=False, ttl=60)
def cached_offline_features(offline_dir: str) -> pd.DataFrame:
    """Latest raw features of every customer (re-read at most once a minute)."""
    return data.load_offline_features(Path(offline_dir))


def reasons_frame(reasons: Sequence[data.Reason]) -> pd.DataFrame:
    """Reason codes as a table (values as text for people: they mix numbers and categories)."""
    return pd.DataFrame(
        [
            {
                "feature": r.feature,
                "value": format_value(r.feature, r.value),
                "contribution": r.contribution,
            }
            for r in reasons
        ]
    )


# ------------------------------------------------------------------------- tabs


def sidebar(settings: data.DashboardSettings) -> None:
    """Endpoint health and where each source lives."""
    health = data.server_health(settings)
    st.sidebar.header("Sources")
    if health.ready:
        st.sidebar.success(f"Inference server ready at {health.url}")
    elif health.live:
        st.sidebar.warning(f"Inference server at {health.url} is up, model not ready")
    else:
        st.sidebar.error(f"Inference server not reachable at {health.url}")
    core = get_settings()
    st.sidebar.caption(f"MLflow: {core.tracking_uri}")
    st.sidebar.caption(f"State: {core.home}")


def customer_tab(settings: data.DashboardSettings) -> None:
    """Look a customer up on the live endpoint; show probability, label and reasons."""
    with st.form("lookup"):
        text = st.text_input("Customer id", key=LOOKUP_KEY, placeholder="7590-VHVEG")
        submitted = st.form_submit_button("Look up")
    if submitted:
        st.session_state[WHATIF_ID_KEY] = text.strip()
        answer: data.LivePrediction | data.DashboardError
        try:
            answer = data.predict_live(text, settings)
        except data.DashboardError as e:
            logger.info("lookup of %r: %s", text, e)
            answer = e
        # Kept across reruns (edits on other tabs rerun the script without a submit).
        st.session_state[RESULT_KEY] = answer
    result = st.session_state.get(RESULT_KEY)
    if result is None:
        st.caption("Enter a customer id to ask the inference endpoint for a live prediction.")
        return
    if isinstance(result, data.DashboardError):
        show_problem(result)
        return
    render_prediction(result)


def render_prediction(p: data.LivePrediction) -> None:
    """One live prediction: probability, label at the threshold, model, reasons."""
    st.subheader(f"Customer {p.customer_id}")
    c1, c2, c3 = st.columns(3)
    c1.metric("Churn probability", f"{p.probability:.1%}")
    c2.metric("Predicted to churn", "yes" if p.label else "no")
    c3.metric("Model version", p.model_version)
    threshold = f"{p.threshold:.4f}" if p.threshold is not None else "unknown"
    st.caption(
        f"P(churn) = {p.probability!r} · threshold {threshold} · "
        f"features as of {p.feature_event_time}"
    )
    if p.reasons:
        units = f" ({p.reason_units})" if p.reason_units else ""
        st.markdown(f"**Top reasons**{units}: contributions towards churn")
        st.table(reasons_frame(p.reasons).set_index("feature"))


def whatif_tab(settings: data.DashboardSettings) -> None:
    """Edit the last looked-up customer's features; score them with the champion in-process."""
    cid = st.session_state.get(WHATIF_ID_KEY, "")
    if not cid:
        st.info("Look up a customer on the Customer tab first; their features start here.")
        return
    core = get_settings()
    ref = data.champion_ref(settings.registered_model, core.tracking_uri)
    champion = cached_champion(ref.name, ref.version, ref.run_id, core.tracking_uri)
    base = data.customer_features(cached_offline_features(str(core.offline_dir)), cid)
    st.caption(
        f"Customer {cid}: latest offline snapshot, scored by {ref.name} v{ref.version} "
        "(the registry's champion) with the same derived features as serving. "
        "When you change tenure or monthly charges, change total_charges too "
        "(about tenure × monthly charges), as a real bill would."
    )
    results = st.container()  # above the editor, filled once the edits are known
    edited = feature_editor(cid, base)
    before = data.score_features(champion.model, champion.threshold, base, settings.top_k)
    after = data.score_features(champion.model, champion.threshold, edited, settings.top_k)
    with results:
        c1, c2 = st.columns(2)
        c1.metric("As is", f"{before.probability:.1%}")
        c2.metric(
            "What-if",
            f"{after.probability:.1%}",
            delta=f"{(after.probability - before.probability) * 100:+.1f} pts",
            delta_color="inverse",
        )
        st.caption(
            f"What-if P(churn) = {after.probability!r} · predicted to churn: "
            f"{'yes' if after.label else 'no'} (threshold {champion.threshold:.4f})"
        )
        left, right = st.columns(2)
        left.markdown("**Top reasons (what-if)**")
        left.table(reasons_frame(after.reasons).set_index("feature"))
        right.markdown("**Derived features (what-if)**")
        right.table(pd.DataFrame([after.derived]).T.rename(columns={0: "value"}))
        st.divider()


def feature_editor(cid: str, base: dict[str, Any]) -> dict[str, Any]:
    """One input per raw feature, grouped by feature group, starting at the customer's values."""
    edited: dict[str, Any] = {}
    columns = st.columns(len(Group))
    for column, group in zip(columns, Group, strict=True):
        column.markdown(f"**{group.value.title()}**")
        for f in (f for f in FEATURES if f.group == group):
            key = f"whatif:{cid}:{f.name}"
            if f.kind is Kind.CATEGORY:
                options = list(f.categories)
                edited[f.name] = column.selectbox(
                    f.name, options, index=options.index(base[f.name]), key=key
                )
            elif f.kind is Kind.INT:
                edited[f.name] = column.number_input(
                    f.name,
                    min_value=int(f.min_value or 0),
                    max_value=int(f.max_value) if f.max_value is not None else None,
                    value=int(base[f.name]),
                    step=1,
                    key=key,
                )
            else:
                edited[f.name] = column.number_input(
                    f.name,
                    min_value=float(f.min_value) if f.min_value is not None else None,
                    max_value=float(f.max_value) if f.max_value is not None else None,
                    value=float(base[f.name]),
                    key=key,
                )
    return edited


def at_risk_tab() -> None:
    """The newest batch scores with their segments, filtered, and a CSV of what is shown."""
    core = get_settings()
    scores = data.latest_batch_scores()
    summary = scores.summary
    frame = data.with_segments(scores.frame, core.offline_dir)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Customers scored", f"{summary.get('rows', len(frame)):,}")
    c2.metric("Predicted to churn", f"{summary.get('at_risk', 0):,}")
    c3.metric("At-risk rate", f"{summary.get('at_risk_rate', 0.0):.1%}")
    c4.metric("Expected monthly loss", f"${summary.get('expected_loss_total', 0.0):,.0f}")
    st.caption(
        f"Run {scores.path.name}: model {summary.get('model_version', '?')}, threshold "
        f"{summary.get('threshold', float('nan')):.4f}, snapshot {summary.get('snapshot', '?')}; "
        "ranked by expected loss = P(churn) × monthly charges."
    )
    f1, f2, f3 = st.columns(3)
    min_p = f1.slider("Minimum churn probability", 0.0, 1.0, 0.0, 0.01)
    only_flagged = f1.checkbox("Only customers predicted to churn", value=True)
    contracts = sorted(frame["contract"].dropna().unique().tolist())
    chosen_contracts = f2.multiselect("Contract", contracts, default=contracts)
    services = sorted(frame["internet_service"].dropna().unique().tolist())
    chosen_services = f2.multiselect("Internet service", services, default=services)
    low, high = int(frame["tenure"].min()), int(frame["tenure"].max())
    tenure = f3.slider("Tenure (months)", low, max(high, low + 1), (low, max(high, low + 1)))
    top_n = int(f3.number_input("Show at most", min_value=1, value=100, step=10))
    rule = data.AtRiskFilter(
        min_probability=min_p,
        only_flagged=only_flagged,
        contracts=chosen_contracts,
        internet_services=chosen_services,
        tenure=(int(tenure[0]), int(tenure[1])),
        top_n=top_n,
    )
    matched = data.filter_at_risk(frame, dataclasses.replace(rule, top_n=None))
    shown = matched.head(top_n)
    st.markdown(
        f"**{len(matched):,} customers** match the filters; showing the first {len(shown)}."
    )
    first = ["rank", "customer_id", "churn_probability", "expected_loss", "monthly_charges",
             *data.SEGMENTS]  # fmt: skip
    order = [c for c in first if c in shown.columns]
    order += [c for c in shown.columns if c.startswith("reason_")]
    st.dataframe(shown, hide_index=True, column_order=order)
    st.download_button(
        f"Download {len(shown)} rows as CSV",
        data.to_csv_bytes(shown),
        file_name=f"at_risk_{scores.path.name}.csv",
        mime="text/csv",
    )


def model_tab(settings: data.DashboardSettings) -> None:
    """The champion's held-out metrics, slices and evaluation plots."""
    core = get_settings()
    ref = data.champion_ref(settings.registered_model, core.tracking_uri)
    report = cached_report(ref.name, ref.version, ref.run_id, core.tracking_uri)
    st.subheader(f"Champion: {ref.name} v{ref.version} ({report.model_kind})")
    for names in (data.QUALITY_METRICS, data.OPERATING_METRICS):
        shown = [m for m in names if m in report.metrics]
        for column, metric in zip(st.columns(len(names)), shown, strict=False):
            value = report.metrics[metric]
            column.metric(
                metric, f"${value:,.0f}" if metric in data.MONEY_METRICS else f"{value:.3f}"
            )
    if not report.slices.empty:
        st.markdown("**Held-out metrics by segment**")
        st.dataframe(report.slices, hide_index=True)
    if report.plots:
        columns = st.columns(3)
        for i, (name, path) in enumerate(report.plots.items()):
            columns[i % 3].image(str(path), caption=name)


def drift_tab(settings: data.DashboardSettings) -> None:
    """The newest drift report (batch) and the live drift status (served traffic)."""
    st.subheader("Latest drift report")
    guarded("Drift report", render_drift_report)
    st.subheader("Served traffic (live)")
    # Tabs switch in the browser without rerunning the script: this asks the server again.
    st.button("Refresh live status", key="refresh_live_drift")
    guarded("Live drift", render_live_drift, settings)


def render_drift_report() -> None:
    """Verdict, per-feature table and the self-contained HTML of the newest report."""
    report = data.latest_drift_report()
    content = report.content
    c1, c2, c3 = st.columns(3)
    c1.metric("Verdict", "Drift detected" if content.get("is_drift") else "No drift")
    c2.metric("Windows drifted", f"{content.get('windows_drifted')} / {content.get('windows')}")
    c3.metric("Model", str(content.get("model_version", "?")))
    drifted = content.get("drifted_features") or []
    st.caption(
        f"Report {report.path.name}: {content.get('rows_tested')} rows tested in windows of "
        f"{content.get('window_size')} by {content.get('detector')}; drifted features: "
        f"{', '.join(drifted) if drifted else 'none'}."
    )
    if not report.features.empty:
        order = ["name", "drifted", "test", "p_value", "min_p_value", "statistic",
                 "drifted_windows"]  # fmt: skip
        st.dataframe(
            report.features,
            hide_index=True,
            column_order=[c for c in order if c in report.features.columns],
            column_config=P_VALUE_COLUMNS,
        )
    if report.html_path is not None:
        page = report.html_path.read_text(encoding="utf-8")
        with st.expander("Full report (distributions per feature)"):
            components.html(page, height=700, scrolling=True)
        st.download_button("Download the HTML report", page, file_name="drift_report.html")


def render_live_drift(settings: data.DashboardSettings) -> None:
    """The served model's drift monitor: counters and its last window's p-values."""
    live = data.live_drift(data.live_drift_status(settings))
    if not live.enabled:
        st.info("Drift checks are off for the served model (no detector in its bundle).")
        return
    c1, c2, c3 = st.columns(3)
    c1.metric("Windows checked", f"{live.windows_checked:,}")
    verdict = {None: "no window yet", True: "drift", False: "no drift"}[live.is_drift]
    c2.metric("Last window", verdict)
    c3.metric("Detector errors", f"{live.errors:,}")
    when = f"{live.checked_at:%Y-%m-%d %H:%M:%S} UTC" if live.checked_at else "never"
    st.caption(f"{live.detector}; last checked {when}; corrected threshold {live.threshold}.")
    if live.last_error:
        st.warning(f"Last detector error: {live.last_error}")
    if not live.features.empty:
        st.dataframe(live.features, hide_index=True, column_config=P_VALUE_COLUMNS)


def business_tab() -> None:
    """The newest KPI report and the newest campaign's contact list."""
    st.subheader("Business KPIs")
    guarded("Business KPIs", render_kpi_report)
    st.subheader("Campaign contact list")
    guarded("Contact list", render_contact_list)


def render_kpi_report() -> None:
    """Intervention figures, realized vs expected performance, deciles, segments, HTML."""
    report = data.latest_kpi_report()
    content = report.content
    if content.get("campaigns"):
        effect = content["campaigns"][-1]
        c1, c2, c3, c4, c5 = st.columns(5)
        c1.metric("Relative risk (treated / control)", data.interval(effect, "relative_risk"))
        c2.metric("Customers saved", data.interval(effect, "customers_saved", "{:.0f}"))
        c3.metric("Revenue retained", f"${effect['revenue_retained']:,.0f}")
        roi = effect.get("roi")
        c4.metric("ROI", "n/a" if roi is None else f"{roi:.0%}")
        c5.metric(
            f"Progress to the {effect['goal_churn_reduction']:.0%} goal",
            f"{effect['goal_progress']:.0%}",
        )
        st.caption(
            f"Campaign {effect['campaign_id']}: {effect['n_treated']} contacted, "
            f"{effect['n_control']} held out; churn {effect['churn_rate_treated']:.1%} vs "
            f"{effect['churn_rate_control']:.1%}; cost ${effect['campaign_cost']:,.0f}."
        )
    else:
        st.info("No campaign with outcomes in both arms in this report yet.")
    breaches = content.get("breaches") or []
    if breaches:
        st.error("Realized performance below its floor: " + "; ".join(breaches))
    else:
        st.success("Realized performance within its floors.")
    st.caption(
        f"Report {report.path.name}: outcomes known by {content.get('as_of')}, horizon "
        f"{content.get('horizon_months')} month(s)."
    )
    st.markdown("**Realized vs expected (held-out) performance**")
    st.dataframe(data.performance_table(content), hide_index=True)
    deciles = data.decile_frame(content)
    if not deciles.empty:
        st.markdown("**Realized churn per predicted-risk decile**")
        st.bar_chart(deciles[["mean_predicted", "realized_rate"]], stack=False)
    segments = pd.DataFrame(content.get("segments", []))
    if not segments.empty:
        st.markdown("**Realized churn per segment**")
        st.dataframe(segments, hide_index=True)
    if report.html_path is not None:
        page = report.html_path.read_text(encoding="utf-8")
        with st.expander("Full report (plots)"):
            components.html(page, height=700, scrolling=True)
        st.download_button("Download the HTML report", page, file_name="kpi_report.html")


def render_contact_list() -> None:
    """The treated arm of the newest campaign, ranked, as the CRM gets it."""
    campaign = data.latest_campaign()
    summary = campaign.summary
    st.caption(
        f"Campaign {summary.get('campaign_id')} ({summary.get('rule')}, model "
        f"{summary.get('model_version')}): {summary.get('treated')} to contact, "
        f"{summary.get('control')} held out as control."
    )
    st.dataframe(campaign.contacts, hide_index=True)
    st.download_button(
        f"Download {len(campaign.contacts)} contacts as CSV",
        campaign.contacts_path.read_bytes(),
        file_name=campaign.contacts_path.name,
        mime="text/csv",
    )


def main() -> None:
    """The page."""
    st.set_page_config(page_title="churn-mlops dashboard", layout="wide")
    st.title("Customer churn")
    settings = data.get_dashboard_settings()
    with st.sidebar:
        guarded("Sources", sidebar, settings)
    tabs = st.tabs(["Customer", "What-if", "At risk", "Model", "Drift", "Business"])
    with tabs[0]:
        guarded("Customer", customer_tab, settings)
    with tabs[1]:
        guarded("What-if", whatif_tab, settings)
    with tabs[2]:
        guarded("At risk", at_risk_tab)
    with tabs[3]:
        guarded("Model", model_tab, settings)
    with tabs[4]:
        drift_tab(settings)
    with tabs[5]:
        business_tab()


if __name__ == "__main__":  # `streamlit run` executes the script as __main__
    main()
