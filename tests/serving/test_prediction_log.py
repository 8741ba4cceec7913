"""The prediction log of a real MLServer process: every answered customer, durably.

Real parts only: the module's Redis with the Telco features (serving_env), the real
runtime in MLServer over HTTP, the log read back from parquet. Each test starts its
own server (the log's settings are the process's environment), about 10 s each.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from serving_support import THRESHOLD, ServingEnv

from churn.data.telco import load_telco
from churn.loop.predlog import read_log
from churn.schema import ENTITY_KEY
from deployment import local_server

pytestmark = pytest.mark.integration

MODEL = "churn"


@contextmanager
def serving(env: ServingEnv, bundle: Path, log_uri: str) -> Iterator[str]:
    """MLServer serving `bundle` with its prediction log at `log_uri`; yields the URL."""
    s = env.serving
    local_server.install(bundle, s)
    local_server.start(
        settings=s,
        env={
            "CHURN_SERVING_PREDICTION_LOG_URI": log_uri,
            "CHURN_SERVING_PREDICTION_LOG_FLUSH_INTERVAL_S": "0.3",
            "CHURN_SERVING_PREDICTION_LOG_FLUSH_RECORDS": "50",
            "CHURN_SERVING_DRIFT_ENABLED": "false",
        },
    )
    try:
        yield local_server.base_url(s)
    finally:
        local_server.stop(s)


def predict(url: str, ids: list[str], request_id: str) -> dict[str, list[Any]]:
    """POST one V2 request; its outputs by name (asserting 200)."""
    payload = {
        "id": request_id,
        "inputs": [{"name": ENTITY_KEY, "shape": [len(ids)], "datatype": "BYTES", "data": ids}],
    }
    response = requests.post(f"{url}/v2/models/{MODEL}/infer", json=payload, timeout=10)
    assert response.status_code == 200, response.text
    return {o["name"]: o["data"] for o in response.json()["outputs"]}


def log_metric(env: ServingEnv, result: str) -> float:
    """churn_serving_prediction_log_records{result=...} of the running server."""
    text = requests.get(f"http://127.0.0.1:{env.serving.metrics_port}/metrics", timeout=5).text
    prefix = f'churn_serving_prediction_log_records_total{{model="{MODEL}",result="{result}"}}'
    values = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    ]
    return sum(values)


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    """Poll until true; fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def ids(serving_env: ServingEnv) -> list[str]:
    """Real Telco customer ids (their features are online in the module's Redis)."""
    return [str(i) for i in load_telco(serving_env.telco_csv)[ENTITY_KEY].tolist()[:40]]


def send(url: str, ids: list[str], n: int, tag: str) -> dict[tuple[str, str], float]:
    """n requests of 1-3 customers each; (request id, customer) -> served probability."""
    served: dict[tuple[str, str], float] = {}
    for i in range(n):
        chosen = [ids[(i * 7 + j) % len(ids)] for j in range(1 + i % 3)]
        out = predict(url, chosen, f"{tag}-{i}")
        for customer, p in zip(chosen, out["churn_probability"], strict=True):
            served[(f"{tag}-{i}", customer)] = p
    return served


def test_every_served_customer_is_logged_and_a_restart_keeps_the_flushed(
    serving_env: ServingEnv, bundle_v1: Path, ids: list[str], tmp_path: Path
) -> None:
    root = str(tmp_path / "log")
    with serving(serving_env, bundle_v1, root) as url:
        first = send(url, ids, 60, "a")
        wait_for(lambda: log_metric(serving_env, "written") >= len(first), "first flush")
        assert log_metric(serving_env, "dropped") == 0
    flushed = read_log(root)
    assert len(flushed) == len(first)
    with serving(serving_env, bundle_v1, root) as url:
        second = send(url, ids, 25, "b")
    # the second server stopped on SIGTERM: its buffer was flushed on exit
    log = read_log(root)
    served = {**first, **second}
    assert len(log) == len(served)
    assert set(flushed["prediction_id"]) <= set(log["prediction_id"])  # nothing lost
    per_customer = Counter(log[ENTITY_KEY])
    assert per_customer == Counter(customer for _, customer in served)
    for row in log.itertuples():
        assert row.probability == pytest.approx(served[(row.request_id, row.customer_id)], abs=1e-6)
        assert row.label == (row.probability >= THRESHOLD)
    assert set(log["model_version"]) == {"1"} and set(log["source"]) == {"online"}
    assert set(log["model_name"]) == {MODEL} and log["prediction_id"].is_unique
    assert log["feature_event_time"].notna().all() and log["predicted_at"].notna().all()


def test_an_unwritable_log_drops_records_and_every_prediction_answers(
    serving_env: ServingEnv, bundle_v1: Path, ids: list[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the log's directory should be")
    with serving(serving_env, bundle_v1, str(blocker / "log")) as url:
        served = send(url, ids, 30, "c")  # asserts 200 for each
        wait_for(lambda: log_metric(serving_env, "dropped") >= len(served), "drops counted")
        assert log_metric(serving_env, "dropped") == len(served)
        assert log_metric(serving_env, "written") == 0
