"""The Streamlit dashboard in a real headless Chromium against the real stack.

Stack (stack_support.running_stack): the real Telco features in a real Redis, a
champion trained, logged, registered and promoted in a SQLite MLflow, its bundle served
by a real MLServer, a batch-scoring run and a drift report written by the monitoring
code. The dashboard runs as `streamlit run dashboard/app.py` in a
subprocess with the stack's CHURN_* environment; Debian's Chromium (/usr/bin/chromium,
nothing installed by the test: a missing browser fails with the install command)
renders it and is driven by Playwright's sync API, launched on that executable
(Playwright's own browser download, `playwright install`, is never needed).

One scenario, in order, each step on the page a user sees:
1. the page loads and the sidebar reports the server ready;
2. a customer lookup shows the probability the endpoint returns for that customer
   (compared as floats, exactly) and its reasons;
3. what-if: the unedited customer scores exactly as served (same champion, same
   derive()), and a longer tenure lowers the risk;
4. model tab: the champion's metrics and its five plots (images really loaded);
5. at risk: the newest batch-scoring run (real, written by churn.monitoring.batch)
   with its totals; a filter changes the count; the CSV download serves the rows shown;
6. drift: the newest drift report (real, churn.monitoring.drift_report, on customers
   whose charges were raised 30%) says drift, naming monthly_charges; the live drift
   monitor of the served traffic shows its windows;
7. Redis stopped -> the lookup says the online feature store is unavailable;
8. server stopped -> the lookup says the inference server is not reachable.
No step may show a Python traceback. Screenshots of each step are saved (and were
looked at when this test was written).

Page text is always the visible text (innerText): Streamlit keeps every tab's content
in the page, the hidden tabs' too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, ViewportSize, expect, sync_playwright
from ports import free_port
from stack_support import Stack, running_stack

from churn import redis_local
from churn.settings import PROJECT_ROOT
from deployment import local_server

pytestmark = pytest.mark.integration

APP = PROJECT_ROOT / "dashboard" / "app.py"
EXACT = re.compile(r"(?<!What-if )P\(churn\) = ([0-9.eE+-]+)")
WHATIF = re.compile(r"What-if P\(churn\) = ([0-9.eE+-]+)")

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = (
    "Debian's Chromium is required for the dashboard's browser test and is missing at "
    f"{CHROMIUM}. Install it (as root): apt-get update && apt-get install -y chromium "
    "chromium-driver  (scripts/setup.sh does this on Debian/Ubuntu)."
)
# A headless Chromium on a machine without network or GPU: background networking off,
# or Chromium keeps trying (and failing) to reach Google's hosts. Headless itself is
# Playwright's headless=True (it adds --headless); it talks to Chromium over a pipe, so
# no --remote-debugging-port.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]
VIEWPORT: ViewportSize = {"width": 1400, "height": 1000}
WAIT_MS = 30_000  # every expect() and action; a slow first load gets SLOW_MS
SLOW_MS = 60_000


@dataclass(frozen=True)
class Dashboard:
    """The running Streamlit app and the stack behind it."""

    url: str
    stack: Stack
    log: Path


def require_chromium() -> None:
    """Fail (never skip) with the install command when Debian's Chromium is missing."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(INSTALL_HINT, pytrace=False)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited ({process.returncode}):\n{log.read_text()}")
        try:
            if requests.get(f"{url}/_stcore/health", timeout=1).text == "ok":
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"streamlit not healthy after {timeout_s}s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory, telco_csv: Path) -> Iterator[Dashboard]:
    """The stack with a registered champion, and `streamlit run dashboard/app.py` on it."""
    require_chromium()  # before the stack: a missing browser fails in a second
    home = tmp_path_factory.mktemp("dashboard_home")
    with running_stack(home, telco_csv, registry=True, monitoring_outputs=True) as stack:
        port = free_port()
        log = home / "streamlit.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable, "-m", "streamlit", "run", str(APP),
                    "--server.headless", "true",
                    "--server.address", "127.0.0.1",
                    "--server.port", str(port),
                    "--server.fileWatcherType", "none",
                    "--browser.gatherUsageStats", "false",
                ],
                cwd=PROJECT_ROOT,
                env=dict(os.environ),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process, log, timeout_s=60)
            yield Dashboard(url=url, stack=stack, log=log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    """One page of Debian's headless Chromium (fresh profile), shared by the scenario."""
    require_chromium()
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
        except PlaywrightError as e:
            pytest.fail(f"Playwright could not launch {CHROMIUM}: {e}", pytrace=False)
        try:
            context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
            context.set_default_timeout(WAIT_MS)
            yield context.new_page()
        finally:
            browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (printed, so they can be opened after the run)."""
    path = tmp_path_factory.mktemp("screenshots")
    print(f"dashboard screenshots: {path}")
    return path


def endpoint_probability(stack: Stack, customer_id: str) -> float:
    """What the inference endpoint answers for one customer, asked directly."""
    body = {
        "inputs": [
            {"name": "customer_id", "datatype": "BYTES", "shape": [1], "data": [customer_id]}
        ]
    }
    r = requests.post(f"{stack.url}/v2/models/churn/infer", json=body, timeout=10)
    r.raise_for_status()
    outputs = {o["name"]: o["data"] for o in r.json()["outputs"]}
    return float(outputs["churn_probability"][0])


def text_of(page: Page) -> str:
    """The page's visible text."""
    return page.locator("body").inner_text()


def settled(page: Page, needle: str, timeout_ms: float = WAIT_MS) -> str:
    """Wait for `needle`, then for Streamlit's run to finish (no running indicator, no
    stale elements of the previous run left); returns the page text."""
    body = page.locator("body")
    expect(body).to_contain_text(needle, use_inner_text=True, timeout=timeout_ms)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=timeout_ms)
    expect(page.locator("[data-stale='true']")).to_have_count(0, timeout=timeout_ms)
    expect(body).to_contain_text(needle, use_inner_text=True, timeout=timeout_ms)
    return text_of(page)


def assert_no_traceback(page: Page) -> None:
    text = text_of(page)
    assert "Traceback" not in text and "streamlit.errors" not in text, text[-2000:]


def screenshot(page: Page, path: Path) -> Path:
    """A PNG of the whole page. Streamlit scrolls an inner element (stMain), not the
    document, so a full_page screenshot would stop at the viewport: the viewport is
    stretched to the content's height for the shot instead."""
    measured = page.evaluate(
        """() => {
            const main = document.querySelector('[data-testid="stMain"]');
            const doc = document.documentElement.scrollHeight;
            if (!main) return doc;
            return Math.max(doc, main.scrollHeight + main.getBoundingClientRect().top);
        }"""
    )
    height = max(VIEWPORT["height"], min(int(measured), 8000))
    page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
    try:
        page.wait_for_timeout(500)  # let the page lay out at the new size
        page.screenshot(path=path)
    finally:
        page.set_viewport_size(VIEWPORT)
    return path


def tab(page: Page, name: str) -> None:
    """Open one of the dashboard's tabs."""
    page.get_by_role("tab", name=name, exact=True).click()


def look_up(page: Page, customer_id: str) -> None:
    """Type the id into the lookup form and submit it with Enter."""
    tab(page, "Customer")
    field = page.get_by_label("Customer id", exact=True)
    field.fill(customer_id)
    field.press("Enter")


def test_page_loads_with_the_server_ready(dashboard: Dashboard, page: Page, shots: Path) -> None:
    page.goto(dashboard.url)
    expect(page.get_by_label("Customer id", exact=True)).to_be_visible(timeout=SLOW_MS)
    text = settled(page, "Inference server ready")
    assert "Customer churn" in text
    for name in ("Customer", "What-if", "At risk", "Model", "Drift"):
        expect(page.get_by_role("tab", name=name, exact=True)).to_be_visible()
    screenshot(page, shots / "01_loaded.png")
    assert_no_traceback(page)


def test_lookup_shows_the_endpoints_probability_and_reasons(
    dashboard: Dashboard, page: Page, shots: Path
) -> None:
    expected = endpoint_probability(dashboard.stack, dashboard.stack.risky_customer)
    look_up(page, dashboard.stack.risky_customer)
    text = settled(page, "P(churn) = ")
    shown = EXACT.search(text)
    assert shown, text
    assert float(shown.group(1)) == expected
    assert f"{expected:.1%}" in text
    assert f"Customer {dashboard.stack.risky_customer}" in text
    assert dashboard.stack.model_version in text
    # the reasons table renders after the headline (seen: only its caption in the text
    # on a loaded machine); tenure 1 is this customer's top risk
    reasons = settled(page, "tenure", timeout_ms=SLOW_MS)
    assert "Top reasons" in reasons and "tenure" in reasons
    screenshot(page, shots / "02_lookup.png")
    assert_no_traceback(page)


def test_whatif_scores_like_the_server_and_responds_to_edits(
    dashboard: Dashboard, page: Page, shots: Path
) -> None:
    served = endpoint_probability(dashboard.stack, dashboard.stack.risky_customer)
    tab(page, "What-if")
    body = page.locator("body")
    expect(body).to_contain_text("What-if P(churn) = ", use_inner_text=True, timeout=SLOW_MS)
    text = text_of(page)
    as_is = WHATIF.search(text)
    assert as_is, text
    assert float(as_is.group(1)) == pytest.approx(served, abs=1e-9)
    assert f"scored by churn-classifier v{dashboard.stack.registry_version}" in text
    tenure = page.get_by_label("tenure", exact=True)
    tenure.fill("72")
    tenure.press("Enter")
    expect(body).not_to_contain_text(f"What-if P(churn) = {as_is.group(1)}", use_inner_text=True)
    edited = WHATIF.search(settled(page, "What-if P(churn) = "))
    assert edited and float(edited.group(1)) < served  # 6 years of tenure lowers the risk
    screenshot(page, shots / "03_whatif.png")
    assert_no_traceback(page)


def test_model_tab_shows_champion_metrics_and_plots(
    dashboard: Dashboard, page: Page, shots: Path
) -> None:
    tab(page, "Model")
    version = dashboard.stack.registry_version
    expect(page.locator("body")).to_contain_text(
        f"Champion: churn-classifier v{version} (xgboost)", use_inner_text=True, timeout=SLOW_MS
    )
    text = text_of(page)
    assert "roc_auc" in text and "recall" in text
    plots = page.get_by_test_id("stImage").locator("img")
    expect(plots).to_have_count(5)
    # Really loaded: each image decoded, and a plot, not a broken-image icon.
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('[data-testid="stImage"] img'))
                 .every(i => i.complete && i.naturalWidth > 100)"""
    )
    screenshot(page, shots / "04_model.png")
    assert_no_traceback(page)


def test_at_risk_tab_lists_the_batch_scores_filters_and_downloads(
    dashboard: Dashboard, page: Page, shots: Path
) -> None:
    from churn.monitoring.batch import latest_predictions

    run = latest_predictions()
    assert run is not None
    summary = json.loads((run / "summary.json").read_text())
    flagged = summary["at_risk"]
    scored = len(dashboard.stack.customer_ids)
    assert 0 < flagged < scored
    tab(page, "At risk")
    text = settled(page, "match the filters")
    assert f"{scored:,}" in text and f"{flagged:,}" in text and run.name in text
    # Defaults: every segment, predicted churners only.
    assert f"{flagged:,} customers match the filters; showing the first 100." in text
    screenshot(page, shots / "05_at_risk.png")
    # Untick "only predicted churners": every scored customer matches.
    only_churners = page.get_by_role("checkbox", name="Only customers predicted to churn")
    expect(only_churners).to_be_checked()
    page.locator("label").filter(has_text="Only customers predicted to churn").click()
    expect(only_churners).not_to_be_checked()
    settled(page, f"{scored:,} customers match the filters")
    # The CSV button serves what is shown: the first 100 rows, ranked by expected loss.
    with page.expect_download() as download:
        page.get_by_test_id("stDownloadButton").get_by_role("button").click()
    rows = Path(download.value.path()).read_text().splitlines()
    assert len(rows) == 101 and rows[0].startswith("rank,customer_id,")
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(1, 101))
    assert_no_traceback(page)


def test_drift_tab_shows_the_report_and_the_live_monitor(
    dashboard: Dashboard, page: Page, shots: Path
) -> None:
    # Served traffic: 100 customers in one request complete several live drift windows.
    ids = dashboard.stack.customer_ids[:100]
    body = {"inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [100], "data": ids}]}
    r = requests.post(f"{dashboard.stack.url}/v2/models/churn/infer", json=body, timeout=30)
    assert r.status_code == 200
    tab(page, "Drift")
    text = settled(page, "Drift detected")  # monthly charges were raised 30%
    assert "monthly_charges" in text.split("drifted features:")[1].split(".")[0]
    # Switching tabs does not rerun the script: ask for the live status after the traffic.
    page.get_by_role("button", name="Refresh live status").click()
    live = page.locator("body")
    expect(live).to_contain_text("Windows checked", use_inner_text=True)
    expect(live).not_to_contain_text("no window yet", use_inner_text=True)
    text = settled(page, "Windows checked")
    assert "no window yet" not in text
    assert "alibi-detect TabularDrift" in text
    screenshot(page, shots / "06_drift.png")
    assert_no_traceback(page)


def test_redis_down_is_explained(dashboard: Dashboard, page: Page, shots: Path) -> None:
    redis_local.stop(dashboard.stack.redis)
    look_up(page, dashboard.stack.risky_customer)
    text = settled(page, "online feature store (Redis) is unavailable")
    assert "make redis-start" in text
    assert EXACT.search(text) is None  # the old answer is gone
    screenshot(page, shots / "07_redis_down.png")
    assert_no_traceback(page)


def test_server_down_is_explained(dashboard: Dashboard, page: Page, shots: Path) -> None:
    assert local_server.stop(dashboard.stack.serving)
    look_up(page, dashboard.stack.risky_customer)
    text = settled(page, "is not reachable")
    assert f"The inference server at {dashboard.stack.url} is not reachable" in text
    assert "Inference server not reachable" in text  # the sidebar too
    screenshot(page, shots / "08_server_down.png")
    assert_no_traceback(page)
