"""The Streamlit dashboard in a real headless Chromium against the real stack.

Stack (stack_support.running_stack): the real Telco features in a real Redis, a
champion trained, logged, registered and promoted in a SQLite MLflow, its bundle served
by a real MLServer, a batch-scoring run and a drift report written by the monitoring
code. The dashboard runs as `streamlit run dashboard/app.py` in a
subprocess with the stack's CHURN_* environment; Debian's Chromium (nothing installed
by the test: a missing browser fails with the install command) renders it and is
driven over the DevTools protocol (cdp_browser.py).

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
from cdp_browser import CHROMIUM, INSTALL_HINT, Browser
from ports import free_port
from stack_support import Stack, running_stack

from churn import redis_local
from churn.settings import PROJECT_ROOT
from serving import local_server

pytestmark = pytest.mark.integration

APP = PROJECT_ROOT / "dashboard" / "app.py"
EXACT = re.compile(r"(?<!What-if )P\(churn\) = ([0-9.eE+-]+)")
WHATIF = re.compile(r"What-if P\(churn\) = ([0-9.eE+-]+)")


@dataclass(frozen=True)
class Dashboard:
    """The running Streamlit app and the stack behind it."""

    url: str
    stack: Stack
    log: Path


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
    if not CHROMIUM.is_file():
        pytest.fail(INSTALL_HINT, pytrace=False)
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
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Headless Chromium with a fresh profile."""
    with Browser(tmp_path_factory.mktemp("chromium") / "profile") as b:
        yield b


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


def settled(browser: Browser, needle: str, timeout_s: float = 30.0) -> str:
    """Wait for `needle`, then for Streamlit's run to finish (no running indicator, no
    stale elements of the previous run left); returns the page text."""
    browser.wait_for_text(needle, timeout_s)
    browser.wait_for(
        """!document.querySelector('[data-testid="stStatusWidget"]')
           && !document.querySelector('[data-stale="true"]')""",
        timeout_s,
        what="the script run to finish",
    )
    return browser.wait_for_text(needle, timeout_s)


def assert_no_traceback(browser: Browser) -> None:
    text = browser.text()
    assert "Traceback" not in text and "streamlit.errors" not in text, text[-2000:]


def look_up(browser: Browser, customer_id: str) -> None:
    """Type the id into the lookup form and submit it with Enter."""
    browser.click("[role='tab']", "Customer")
    browser.type_into("input[aria-label='Customer id']", customer_id)
    browser.press_enter()


def test_page_loads_with_the_server_ready(
    dashboard: Dashboard, browser: Browser, shots: Path
) -> None:
    browser.navigate(dashboard.url)
    browser.wait_for_selector("input[aria-label='Customer id']", timeout_s=60)
    text = settled(browser, "Inference server ready")
    assert "Customer churn" in text
    for tab in ("Customer", "What-if", "At risk", "Model", "Drift"):
        browser.center_of("[role='tab']", tab)
    browser.screenshot(shots / "01_loaded.png")
    assert_no_traceback(browser)


def test_lookup_shows_the_endpoints_probability_and_reasons(
    dashboard: Dashboard, browser: Browser, shots: Path
) -> None:
    expected = endpoint_probability(dashboard.stack, dashboard.stack.risky_customer)
    look_up(browser, dashboard.stack.risky_customer)
    text = settled(browser, "P(churn) = ")
    shown = EXACT.search(text)
    assert shown, text
    assert float(shown.group(1)) == expected
    assert f"{expected:.1%}" in text
    assert f"Customer {dashboard.stack.risky_customer}" in text
    assert dashboard.stack.model_version in text
    assert "Top reasons" in text and "tenure" in text  # tenure 1 is this customer's top risk
    browser.screenshot(shots / "02_lookup.png")
    assert_no_traceback(browser)


def test_whatif_scores_like_the_server_and_responds_to_edits(
    dashboard: Dashboard, browser: Browser, shots: Path
) -> None:
    served = endpoint_probability(dashboard.stack, dashboard.stack.risky_customer)
    browser.click("[role='tab']", "What-if")
    text = browser.wait_for_text("What-if P(churn) = ", timeout_s=60)
    as_is = WHATIF.search(text)
    assert as_is, text
    assert float(as_is.group(1)) == pytest.approx(served, abs=1e-9)
    assert f"scored by churn-classifier v{dashboard.stack.registry_version}" in text
    browser.type_into("input[aria-label='tenure']", "72")
    browser.press_enter()
    browser.wait_for(
        f"!document.body.innerText.includes('What-if P(churn) = {as_is.group(1)}')",
        timeout_s=30,
        what="the what-if probability to change",
    )
    edited = WHATIF.search(browser.text())
    assert edited and float(edited.group(1)) < served  # 6 years of tenure lowers the risk
    browser.screenshot(shots / "03_whatif.png")
    assert_no_traceback(browser)


def test_model_tab_shows_champion_metrics_and_plots(
    dashboard: Dashboard, browser: Browser, shots: Path
) -> None:
    browser.click("[role='tab']", "Model")
    version = dashboard.stack.registry_version
    text = browser.wait_for_text(f"Champion: churn-classifier v{version} (xgboost)", timeout_s=60)
    assert "roc_auc" in text and "recall" in text
    loaded = browser.wait_for(
        """(() => {
            const imgs = Array.from(document.querySelectorAll('[data-testid="stImage"] img'))
                .filter(i => i.complete && i.naturalWidth > 100);
            return imgs.length >= 5 ? imgs.length : 0;
        })()""",
        timeout_s=30,
        what="five loaded plot images",
    )
    assert loaded == 5
    browser.screenshot(shots / "04_model.png")
    assert_no_traceback(browser)


def test_at_risk_tab_lists_the_batch_scores_filters_and_downloads(
    dashboard: Dashboard, browser: Browser, shots: Path
) -> None:
    from churn.monitoring.batch import latest_predictions

    run = latest_predictions()
    assert run is not None
    summary = json.loads((run / "summary.json").read_text())
    flagged = summary["at_risk"]
    scored = len(dashboard.stack.customer_ids)
    assert 0 < flagged < scored
    browser.click("[role='tab']", "At risk")
    text = settled(browser, "match the filters")
    assert f"{scored:,}" in text and f"{flagged:,}" in text and run.name in text
    # Defaults: every segment, predicted churners only.
    assert f"{flagged:,} customers match the filters; showing the first 100." in text
    browser.screenshot(shots / "05_at_risk.png")
    # Untick "only predicted churners": every scored customer matches.
    browser.click("label", "Only customers predicted to churn")
    settled(browser, f"{scored:,} customers match the filters")
    # The CSV button serves what is shown: the first 100 rows, ranked by expected loss.
    downloads = dashboard.log.parent / "downloads"
    browser.send("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
    browser.click("[data-testid='stDownloadButton'] button")
    csv = browser_download(downloads)
    rows = csv.read_text().splitlines()
    assert len(rows) == 101 and rows[0].startswith("rank,customer_id,")
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(1, 101))
    assert_no_traceback(browser)


def test_drift_tab_shows_the_report_and_the_live_monitor(
    dashboard: Dashboard, browser: Browser, shots: Path
) -> None:
    # Served traffic: 100 customers in one request complete several live drift windows.
    ids = dashboard.stack.customer_ids[:100]
    body = {"inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [100], "data": ids}]}
    r = requests.post(f"{dashboard.stack.url}/v2/models/churn/infer", json=body, timeout=30)
    assert r.status_code == 200
    browser.click("[role='tab']", "Drift")
    text = settled(browser, "Drift detected")  # monthly charges were raised 30%
    assert "monthly_charges" in text.split("drifted features:")[1].split(".")[0]
    # Switching tabs does not rerun the script: ask for the live status after the traffic.
    browser.click("button", "Refresh live status")
    browser.wait_for(
        """document.body.innerText.includes('Windows checked')
           && !document.body.innerText.includes('no window yet')""",
        30,
        "a live drift window",
    )
    text = settled(browser, "Windows checked")
    assert "alibi-detect TabularDrift" in text
    browser.screenshot(shots / "06_drift.png")
    assert_no_traceback(browser)


def browser_download(folder: Path, timeout_s: float = 30.0) -> Path:
    """The one finished download in `folder` (Chromium writes *.crdownload until done)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = [p for p in folder.glob("*") if not p.name.endswith(".crdownload")]
        if done:
            (path,) = done
            return path
        time.sleep(0.1)
    raise AssertionError(f"no download finished in {folder} within {timeout_s}s")


def test_redis_down_is_explained(dashboard: Dashboard, browser: Browser, shots: Path) -> None:
    redis_local.stop(dashboard.stack.redis)
    look_up(browser, dashboard.stack.risky_customer)
    text = settled(browser, "online feature store (Redis) is unavailable")
    assert "make redis-start" in text
    assert EXACT.search(text) is None  # the old answer is gone
    browser.screenshot(shots / "07_redis_down.png")
    assert_no_traceback(browser)


def test_server_down_is_explained(dashboard: Dashboard, browser: Browser, shots: Path) -> None:
    assert local_server.stop(dashboard.stack.serving)
    look_up(browser, dashboard.stack.risky_customer)
    text = settled(browser, "is not reachable")
    assert f"The inference server at {dashboard.stack.url} is not reachable" in text
    assert "Inference server not reachable" in text  # the sidebar too
    browser.screenshot(shots / "08_server_down.png")
    assert_no_traceback(browser)
