"""The churn runtime in a real MLServer process, over HTTP, on real Telco features in Redis.

One server per module (cold start 8-15 s) hosting two models on the same bundle:
"churn" (the real runtime and its alibi-detect detector) and "churn-faulty-drift"
(the real runtime with a detector that raises, serving_faults.py). Tests that change
shared state (Redis stopped or paused, a reload) restore it and run last, in file
order.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from ports import free_port
from serving_faults import FAILURE
from serving_support import (
    DRIFT_WINDOW,
    REDIS_TIMEOUT_S,
    THRESHOLD,
    ServingEnv,
    make_bundle,
)

from churn import redis_local
from churn.data.telco import load_telco
from churn.data.timestamps import DEFAULT_SNAPSHOT_TIME
from churn.features.store import get_store, historical_features
from churn.files import write_json_atomic
from churn.models.serialize import load_model
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, model_input_names
from deployment import local_server
from deployment.bundle import model_settings
from serving.bundle import MODEL_DIR, BundleError
from serving.errors import MAX_QUOTED_IDS

pytestmark = pytest.mark.integration

MODEL = "churn"
FAULTY = "churn-faulty-drift"
CORRUPT = "churn-corrupt"
SNAPSHOT_ISO = DEFAULT_SNAPSHOT_TIME.isoformat()


@dataclass(frozen=True)
class Server:
    """The module's running MLServer."""

    url: str
    metrics_url: str
    pid: int
    env: ServingEnv
    bundle: Path
    ids: list[str]


def body(ids: list[Any], **parameters: Any) -> dict[str, Any]:
    """A V2 request for `ids`."""
    out: dict[str, Any] = {
        "inputs": [{"name": ENTITY_KEY, "shape": [len(ids)], "datatype": "BYTES", "data": ids}]
    }
    if parameters:
        out["parameters"] = parameters
    return out


def infer(
    server: Server, payload: Any, model: str = MODEL, timeout: float = 10.0
) -> requests.Response:
    """POST a JSON payload to the model's infer endpoint."""
    return requests.post(f"{server.url}/v2/models/{model}/infer", json=payload, timeout=timeout)


def outputs(response: requests.Response) -> dict[str, list[Any]]:
    """Output name -> data of a 200 response."""
    assert response.status_code == 200, response.text
    return {o["name"]: o["data"] for o in response.json()["outputs"]}


def score_all(server: Server, ids: list[str], model: str = MODEL) -> dict[str, list[Any]]:
    """Outputs for many ids, in requests of at most 1000."""
    merged: dict[str, list[Any]] = {}
    for start in range(0, len(ids), 1000):
        for name, data in outputs(infer(server, body(ids[start : start + 1000]), model)).items():
            merged.setdefault(name, []).extend(data)
    return merged


def metric_value(server: Server, prefix: str) -> float:
    """Sum of the samples of /metrics whose line starts with `prefix`."""
    text = requests.get(server.metrics_url, timeout=5).text
    values = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    ]
    if not values:
        raise AssertionError(f"no sample starting with {prefix!r} in /metrics")
    return sum(values)


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    """Poll `predicate` until true; fail naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def ready(server: Server, model: str) -> int:
    """Status of GET /v2/models/<model>/ready."""
    return requests.get(f"{server.url}/v2/models/{model}/ready", timeout=5).status_code


@pytest.fixture(scope="module")
def server(serving_env: ServingEnv, bundle_v1: Path) -> Iterator[Server]:
    """MLServer serving bundle_v1 as "churn" and, with a raising detector, as FAULTY."""
    s = serving_env.serving
    repo = local_server.install(bundle_v1, s)
    (repo / FAULTY).mkdir()
    write_json_atomic(
        repo / FAULTY / "model-settings.json",
        model_settings(FAULTY, str(bundle_v1), implementation="serving_faults.FaultyDriftRuntime"),
    )
    pid = local_server.start(settings=s)
    try:
        srv = Server(
            url=local_server.base_url(s),
            metrics_url=f"http://127.0.0.1:{s.metrics_port}/metrics",
            pid=pid,
            env=serving_env,
            bundle=bundle_v1,
            ids=load_telco(serving_env.telco_csv)[ENTITY_KEY].tolist(),
        )
        wait_for(lambda: ready(srv, FAULTY) == 200, 60, f"{FAULTY} ready")
        yield srv
    finally:
        local_server.stop(s)


# ------------------------------------------------------------------ correctness


def test_served_probabilities_equal_batch_scoring_of_offline_features(server: Server) -> None:
    """Every Telco customer, online through MLServer vs the same model on offline features."""
    ids = server.ids
    served = score_all(server, ids)
    entity_df = pd.DataFrame({ENTITY_KEY: ids, EVENT_TIMESTAMP: DEFAULT_SNAPSHOT_TIME})
    offline = historical_features(get_store(), entity_df)
    model = load_model(server.bundle / MODEL_DIR)
    expected = model.predict_proba(offline)
    probabilities = np.asarray(served["churn_probability"])
    assert probabilities.shape == (len(ids),)
    assert np.max(np.abs(probabilities - expected)) < 1e-6
    assert served["churn_label"] == (probabilities >= THRESHOLD).tolist()
    assert set(served["model_version"]) == {"1"}
    assert set(served["feature_event_time"]) == {SNAPSHOT_ISO}
    # one customer per request: same numbers
    for i in (0, 17, len(ids) - 1):
        single = outputs(infer(server, body([ids[i]])))
        assert abs(single["churn_probability"][0] - expected[i]) < 1e-6


def test_unknown_customer_ids_are_404_and_named(server: Server) -> None:
    known = server.ids[0]
    response = infer(server, body([known, "NOPE-0001", "NOPE-0002"]))
    assert response.status_code == 404
    error = response.json()["error"]
    assert "NOPE-0001" in error and "NOPE-0002" in error and known not in error
    assert "churn_probability" not in response.text  # never a score on null features


def test_unknown_id_list_is_truncated_in_the_message(server: Server) -> None:
    unknown = [f"NOPE-{i:04d}" for i in range(MAX_QUOTED_IDS + 5)]
    response = infer(server, body(unknown))
    assert response.status_code == 404
    assert "+5 more" in response.json()["error"]


def _ids(n: int) -> list[str]:
    return [f"C-{i}" for i in range(n)]


BAD_REQUESTS = {
    "wrong datatype": (
        {"inputs": [{"name": ENTITY_KEY, "shape": [1], "datatype": "INT64", "data": [7]}]},
        400, "inputs[0].datatype",
    ),
    "empty batch": (body([]), 400, "empty batch"),
    "oversize batch": (body(_ids(1001)), 400, "exceeds the maximum of 1000"),
    "wrong input name": (
        {"inputs": [{"name": "customer", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
        400, "inputs[0].name",
    ),
    "shape mismatch": (
        {"inputs": [{"name": ENTITY_KEY, "shape": [3], "datatype": "BYTES", "data": ["a", "b"]}]},
        400, "inputs[0].shape",
    ),
    "non-string id": (body(["a", 5]), 400, "inputs[0].data[1]"),
    "empty id": (body(["a", ""]), 400, "inputs[0].data[1]"),
    "two inputs": (
        {"inputs": [body(["a"])["inputs"][0], body(["b"])["inputs"][0]]}, 400, "'inputs'",
    ),
    "reasons not a bool": (body(["a"], reasons="yes"), 400, "parameters.reasons"),
    "top_k out of range": (body(["a"], reasons=True, top_k=0), 400, "parameters.top_k"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_are_400_naming_the_field(server: Server, case: str) -> None:
    payload, status, field = BAD_REQUESTS[case]
    response = infer(server, payload)
    assert response.status_code == status, response.text
    assert field in response.json()["error"]


MALFORMED = {
    "not JSON": (b'{"inputs": [{"name": "customer_id", "shape": [1]', "json_invalid"),
    "unknown datatype": (
        json.dumps(
            {"inputs": [{"name": ENTITY_KEY, "shape": [1], "datatype": "TEXT", "data": ["a"]}]}
        ).encode(),
        "datatype",
    ),
    "no inputs": (b'{"parameters": {}}', "inputs"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_requests_are_422_with_the_location(server: Server, case: str) -> None:
    raw, location = MALFORMED[case]
    response = requests.post(
        f"{server.url}/v2/models/{MODEL}/infer",
        data=raw,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 422
    assert location in json.dumps(response.json()["detail"])


def test_reasons_are_the_models_feature_contributions(server: Server) -> None:
    ids = server.ids[:5]
    response = infer(server, body(ids, reasons=True, top_k=len(model_input_names())))
    out = outputs(response)
    assert response.json()["parameters"]["reason_units"] == "log-odds"
    entity_df = pd.DataFrame({ENTITY_KEY: ids, EVENT_TIMESTAMP: DEFAULT_SNAPSHOT_TIME})
    offline = historical_features(get_store(), entity_df)
    model = load_model(server.bundle / MODEL_DIR)
    values, names = model.contributions(offline)
    for row, text in enumerate(out["reasons"]):
        reasons = json.loads(text)
        assert [r["feature"] for r in reasons] != []
        contributions = [r["contribution"] for r in reasons]
        assert contributions == sorted(contributions, reverse=True)
        assert {r["feature"] for r in reasons} == set(model_input_names())
        by_name = {r["feature"]: r["value"] for r in reasons}
        assert isinstance(by_name["tenure"], int) and isinstance(by_name["contract"], str)
        for reason in reasons:  # one-hot columns summed back to their feature
            columns = [j for j, n in enumerate(names) if n.split("=")[0] == reason["feature"]]
            assert abs(values[row, columns].sum() - reason["contribution"]) < 1e-5
        # contributions + bias are the model's log-odds
        margin = sum(contributions) + values[row, -1]
        p = out["churn_probability"][row]
        assert abs(margin - math.log(p / (1 - p))) < 1e-4
    top2 = [
        json.loads(t) for t in outputs(infer(server, body(ids, reasons=True, top_k=2)))["reasons"]
    ]
    assert all(len(r) == 2 for r in top2)
    assert "reasons" not in outputs(infer(server, body(ids)))


def test_tritonclient_http_with_json_inputs(server: Server) -> None:
    """The client the README shows: tritonclient.http, binary_data=False (binary inputs get 422)."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    tensor = httpclient.InferInput(ENTITY_KEY, [2], "BYTES")
    tensor.set_data_from_numpy(np.array(server.ids[:2], dtype=object), binary_data=False)
    wanted = [httpclient.InferRequestedOutput("churn_probability", binary_data=False)]
    result = client.infer(MODEL, [tensor], outputs=wanted)
    direct = outputs(infer(server, body(server.ids[:2])))["churn_probability"]
    assert np.allclose(result.as_numpy("churn_probability"), direct, atol=1e-12)


# --------------------------------------------------------------- observability


def test_drift_is_checked_on_served_rows(server: Server) -> None:
    score_all(server, server.ids[: 4 * DRIFT_WINDOW])

    def checked() -> bool:
        status = requests.get(f"{server.url}/v2/models/{MODEL}/drift", timeout=5).json()
        return int(status.get("windows_checked", 0)) >= 1

    wait_for(checked, 30, "a drift window to be checked")
    status = requests.get(f"{server.url}/v2/models/{MODEL}/drift", timeout=5).json()
    assert status["enabled"] is True and status["errors"] == 0
    result = status["last_result"]
    assert set(result["p_values"]) == set(model_input_names())
    assert result["n_rows"] == DRIFT_WINDOW
    assert metric_value(server, f'churn_serving_drift_p_value{{model="{MODEL}"}}') >= 0.0
    checked_windows = metric_value(server, f'churn_serving_drift_windows_total{{model="{MODEL}"')
    assert checked_windows >= 1


def test_a_detector_that_raises_never_fails_a_prediction(server: Server) -> None:
    ids = server.ids[: 3 * DRIFT_WINDOW]
    faulty = score_all(server, ids, model=FAULTY)
    healthy = score_all(server, ids, model=MODEL)
    assert faulty["churn_probability"] == healthy["churn_probability"]

    def failed() -> bool:
        status = requests.get(f"{server.url}/v2/models/{FAULTY}/drift", timeout=5).json()
        return int(status.get("errors", 0)) >= 1

    wait_for(failed, 30, "the raising detector to be called")
    status = requests.get(f"{server.url}/v2/models/{FAULTY}/drift", timeout=5).json()
    assert FAILURE in status["last_error"]
    errors = metric_value(
        server, f'churn_serving_drift_windows_total{{model="{FAULTY}",result="error"}}'
    )
    assert errors >= 1
    assert outputs(infer(server, body(ids[:1]), model=FAULTY))["churn_probability"]


def test_metrics_count_outcomes_unknown_ids_and_feature_age(server: Server) -> None:
    before_ok = metric_value(
        server, f'churn_serving_requests_total{{model="{MODEL}",outcome="ok"}}'
    )
    before_unknown = metric_value(server, f'churn_serving_unknown_ids_total{{model="{MODEL}"}}')
    outputs(infer(server, body(server.ids[:3])))
    assert infer(server, body(["NOPE-A", "NOPE-B"])).status_code == 404
    assert infer(server, body([])).status_code == 400
    assert (
        metric_value(server, f'churn_serving_requests_total{{model="{MODEL}",outcome="ok"}}')
        == before_ok + 1
    )
    assert (
        metric_value(server, f'churn_serving_unknown_ids_total{{model="{MODEL}"}}')
        == before_unknown + 2
    )
    assert (
        metric_value(
            server, f'churn_serving_requests_total{{model="{MODEL}",outcome="bad_request"}}'
        )
        >= 1
    )
    age_sum = metric_value(server, f'churn_serving_feature_age_seconds_sum{{model="{MODEL}"}}')
    age_count = metric_value(server, f'churn_serving_feature_age_seconds_count{{model="{MODEL}"}}')
    assert age_sum / age_count >= time.time() - DEFAULT_SNAPSHOT_TIME.timestamp() - 3600
    info = (
        'churn_serving_model_info{feature_service="churn_model_v1",kind="xgboost",'
        f'model="{MODEL}",version="1"}}'
    )
    assert metric_value(server, info) == 1.0


# ------------------------------------------------------------- load failures


def _corrupt_copy(bundle: Path, target: Path, how: str) -> Path:
    shutil.copytree(bundle, target)
    booster = target / MODEL_DIR / "booster.ubj"
    if how == "flip":
        data = bytearray(booster.read_bytes())
        data[len(data) // 2] ^= 0xFF
        booster.write_bytes(bytes(data))
    else:
        booster.unlink()
    return target


@pytest.mark.parametrize(("how", "message"), [("flip", "sha256"), ("delete", "missing")])
def test_a_corrupt_bundle_is_refused_and_never_ready(
    server: Server, tmp_path: Path, how: str, message: str
) -> None:
    corrupt = _corrupt_copy(server.bundle, tmp_path / "corrupt", how)
    entry = local_server.paths(server.env.serving).repository / CORRUPT
    entry.mkdir()
    try:
        write_json_atomic(entry / "model-settings.json", model_settings(CORRUPT, str(corrupt)))
        response = requests.post(f"{server.url}/v2/repository/models/{CORRUPT}/load", timeout=60)
        assert response.status_code == 422
        assert message in response.json()["error"] and "booster.ubj" in response.json()["error"]
        assert ready(server, CORRUPT) != 200
        assert ready(server, MODEL) == 200  # the healthy model is untouched
    finally:
        shutil.rmtree(entry)


def test_a_server_started_on_a_corrupt_bundle_never_becomes_ready(
    server: Server, tmp_path: Path
) -> None:
    corrupt = _corrupt_copy(server.bundle, tmp_path / "corrupt", "flip")
    other = server.env.serving.model_copy(
        update={
            "home": tmp_path / "other",
            "http_port": free_port(),
            "grpc_port": free_port(),
            "metrics_port": free_port(),
        }
    )
    with pytest.raises(BundleError, match="sha256"):
        local_server.start(corrupt, other)  # refused before a process is started
    local_server.install(server.bundle, other)  # a valid repository entry ...
    entry = local_server.paths(other).model_settings_file(other.model_name)
    write_json_atomic(entry, model_settings(other.model_name, str(corrupt)))  # ... pointing at it
    with pytest.raises(local_server.ServerError, match="sha256"):
        local_server.start(settings=other)
    assert local_server.running_pid(other) is None
    assert not local_server.model_ready(other)


# ------------------------------------------------ Redis outages (restore state)


def test_redis_stopped_gives_fast_503_then_recovers_without_restart(server: Server) -> None:
    cfg = server.env.redis
    ids = server.ids[:2]
    outputs(infer(server, body(ids)))
    redis_local.client(cfg).save()  # the restarted server reloads the data from its RDB file
    redis_local.stop(cfg)
    try:
        for _ in range(3):
            started = time.monotonic()
            response = infer(server, body(ids))
            elapsed = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert "unavailable" in response.json()["error"]
            assert elapsed < REDIS_TIMEOUT_S + 0.5
    finally:
        redis_local.start(cfg)
    wait_for(lambda: infer(server, body(ids)).status_code == 200, 10, "answers after Redis is back")
    assert local_server.running_pid(server.env.serving) == server.pid  # no restart
    assert (
        metric_value(
            server, f'churn_serving_requests_total{{model="{MODEL}",outcome="store_unavailable"}}'
        )
        >= 3
    )


def test_redis_slower_than_the_timeout_gives_503_within_the_timeout(server: Server) -> None:
    cfg = server.env.redis
    ids = server.ids[:1]
    outputs(infer(server, body(ids)))
    pid = int(cfg.pid_file.read_text().strip())
    os.kill(pid, signal.SIGSTOP)  # Redis alive but silent: every read would hang
    try:
        started = time.monotonic()
        response = infer(server, body(ids))
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert f"did not answer within {REDIS_TIMEOUT_S}s" in response.json()["error"]
        assert elapsed < REDIS_TIMEOUT_S + 0.5
        started = time.monotonic()
        assert infer(server, body(ids)).status_code == 503  # breaker open: no second wait
        assert time.monotonic() - started < REDIS_TIMEOUT_S
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: infer(server, body(ids)).status_code == 200, 10, "answers after SIGCONT")


# --------------------------------------------------------- reload (last: v1 -> v2)


def test_reload_swaps_the_bundle_without_failing_a_request(
    server: Server, churn_model: Any
) -> None:
    bundle_v2 = server.env.settings.home / "bundles" / "v2"
    make_bundle(bundle_v2, churn_model, "2", None)
    statuses: list[int] = []
    versions: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            response = infer(server, body(server.ids[:1]))
            statuses.append(response.status_code)
            if response.status_code == 200:
                versions.append(outputs(response)["model_version"][0])

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        time.sleep(0.3)
        assert local_server.reload(bundle_v2, server.env.serving) == "2"
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert statuses and set(statuses) == {200}
    assert versions[0] == "1" and versions[-1] == "2"
    assert local_server.served_version(server.env.serving) == "2"
    drift = requests.get(f"{server.url}/v2/models/{MODEL}/drift", timeout=5).json()
    assert drift["enabled"] is False and "no drift detector" in drift["reason"]


def test_churn_predict_prints_people_formatted_reasons(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI as a client: its URL and model from CHURN_SERVING_*, reasons for people."""
    from churn.cli import main

    ids = server.ids[:3]
    assert main(["predict", *ids]) == 0  # no --url: EndpointSettings, as the server's
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ids
    for line in lines:
        assert "P(churn)=0." in line and f"model={MODEL}" not in line  # the bundle's version
        reasons = line.split(" | ", 1)[1].split(", ")
        assert len(reasons) == 3
        for reason in reasons:  # feature=value (+0.12): no float tails
            value = reason.split("=", 1)[1].rsplit(" (", 1)[0]
            assert len(value) <= 24 and not re.search(r"\.\d{5,}", value), reason


def test_churn_predict_reports_unknown_ids_by_code(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    from churn.cli import main

    assert main(["predict", "--url", server.url, "NO-SUCH-ID"]) == 1
    err = capsys.readouterr().err
    assert "HTTP 404 unknown_customer" in err and "NO-SUCH-ID" in err
