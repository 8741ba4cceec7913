"""dashboard.data without a browser: parsing, error mapping, what-if scoring, file readers.

Real inputs throughout: a model trained on the real Telco data and loaded through the
safe serialization, a real offline store written by the project's writer, batch
scores and drift reports written by churn.monitoring's own writers, real HTTP
servers on loopback (a closed port, a slow one) and real requests.Response objects.
The full path against MLServer, MLflow and Redis is the browser test's.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from ports import free_port
from stack_support import risky_customer, train_model

from churn.data.offline import write_offline_store
from churn.features.derived import add_derived
from churn.features.pipeline import DataSource, load_customers
from churn.models.evaluate import churn_scores
from churn.models.serialize import ServingModel, load_model, save_model
from churn.monitoring import batch, drift_report
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, feature_names, model_input_names
from dashboard import data

CUSTOMER = "7590-VHVEG"
# A real answer of the endpoint (README, "Client's view").
V2_ANSWER: dict[str, Any] = {
    "model_name": "churn",
    "model_version": "churn-classifier-v1",
    "parameters": {"threshold": 0.24743232131004333, "reason_units": "log-odds"},
    "outputs": [
        {"name": "churn_probability", "shape": [1], "datatype": "FP64",
         "data": [0.7167770862579346]},
        {"name": "churn_label", "shape": [1], "datatype": "BOOL", "data": [True]},
        {"name": "model_version", "shape": [1], "datatype": "BYTES",
         "data": ["churn-classifier-v1"]},
        {"name": "feature_event_time", "shape": [1], "datatype": "BYTES",
         "data": ["2025-01-01T00:00:00+00:00"]},
        {"name": "reasons", "shape": [1], "datatype": "BYTES", "data": [
            '[{"feature": "tenure", "value": 1, "contribution": 1.134951}, '
            '{"feature": "contract", "value": "Month-to-month", "contribution": 0.471742}]'
        ]},
    ],
}  # fmt: skip


def response(status: int, body: Any) -> requests.Response:
    """A real requests.Response carrying `body` (JSON unless bytes)."""
    r = requests.Response()
    r.status_code = status
    r._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return r


# ------------------------------------------------------------------ live endpoint


def test_empty_customer_id_is_refused_before_any_request() -> None:
    with pytest.raises(data.BadInput, match="Enter a customer id"):
        data.clean_customer_id("   ")
    assert data.clean_customer_id(" 7590-VHVEG\n") == CUSTOMER


def test_parse_response_reads_probability_label_and_reasons() -> None:
    (p,) = data.parse_response([CUSTOMER], V2_ANSWER)
    assert p.probability == 0.7167770862579346 and p.label is True
    assert p.threshold == pytest.approx(0.2474323)
    assert p.model_version == "churn-classifier-v1"
    assert p.feature_event_time == "2025-01-01T00:00:00+00:00"
    assert p.reasons[0] == data.Reason("tenure", 1, 1.134951)
    assert p.reason_units == "log-odds"


def test_parse_response_rejects_answers_that_are_not_the_contract() -> None:
    broken = {**V2_ANSWER, "outputs": V2_ANSWER["outputs"][1:]}
    with pytest.raises(data.ServingFailed, match="churn_probability"):
        data.parse_response([CUSTOMER], broken)
    with pytest.raises(data.ServingFailed, match="asked for 2 customers"):
        data.parse_response([CUSTOMER, "x"], V2_ANSWER)
    with pytest.raises(data.ServingFailed, match="not a V2 response"):
        data.parse_response([CUSTOMER], {"detail": "nope"})


@pytest.mark.parametrize(
    ("status", "body", "kind", "says"),
    [
        (503, {"error": "[store_unavailable] online feature store unavailable: redis down"},
         data.StoreUnavailable, "(Redis) is unavailable"),
        (503, {"error": "[model_unavailable] model 'churn' is not loaded (unloading?)"},
         data.ServerUnavailable, "not ready"),
        (404, {"error": "[unknown_customer] 1 unknown customer id(s), no features online: ['x']"},
         data.UnknownCustomer, "unknown customer"),
        # the code decides, not the wording: a message that merely mentions the store
        (503, {"error": "[model_unavailable] online feature store fine, model unloading"},
         data.ServerUnavailable, "not ready"),
        (404, {"error": "Model churn with version  not found"},
         data.ServerUnavailable, "does not serve this model"),
        (400, {"error": "[bad_request] invalid request field 'inputs[0].data[0]': empty"},
         data.ServingFailed, "inputs[0].data[0]"),
        (422, {"detail": [{"loc": ["body"], "msg": "bad"}]}, data.ServingFailed, "HTTP 422"),
        (500, b"<html>Internal Server Error</html>", data.ServingFailed, "Internal Server Error"),
    ],
)  # fmt: skip
def test_error_answers_become_messages_naming_the_component(
    status: int, body: Any, kind: type[data.DashboardError], says: str
) -> None:
    error = data.error_from_response(response(status, body), "http://127.0.0.1:8480")
    assert type(error) is kind
    assert says in str(error)


def settings_for(url: str, timeout_s: float = 5.0) -> data.DashboardSettings:
    return data.DashboardSettings(endpoint=url, served_model="churn", timeout_s=timeout_s)


def test_a_closed_port_is_a_server_that_is_not_reachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(data.ServerUnavailable, match="is not reachable") as caught:
        data.predict_live(CUSTOMER, settings_for(url))
    assert url in str(caught.value) and "make deployment-pipeline" in str(caught.value)
    health = data.server_health(settings_for(url))
    assert health == data.ServerHealth(url=url, live=False, ready=False)
    with pytest.raises(data.ServerUnavailable):
        data.live_drift_status(settings_for(url))


class _Slow(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        time.sleep(1.0)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    """A real HTTP server on loopback that answers after 1 s."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_server_slower_than_the_timeout_is_reported_as_such(slow_server: str) -> None:
    with pytest.raises(data.ServerUnavailable, match=r"did not answer within 0.2 s"):
        data.predict_live(CUSTOMER, settings_for(slow_server, timeout_s=0.2))


def test_settings_default_to_the_local_mlserver(monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.settings import get_serving_settings

    monkeypatch.setenv("CHURN_SERVING_HTTP_PORT", "9123")
    monkeypatch.delenv("CHURN_DASHBOARD_ENDPOINT", raising=False)
    get_serving_settings.cache_clear()
    try:
        settings = data.DashboardSettings()
        assert settings.endpoint_url() == "http://127.0.0.1:9123"
        assert settings.model_path() == "churn"
        assert settings.registered_model == "churn-classifier"
    finally:
        get_serving_settings.cache_clear()


def test_live_drift_status_is_summarised_per_feature() -> None:
    status = {
        "model": "churn", "enabled": True, "detector": "alibi-detect TabularDrift",
        "windows_checked": 3, "errors": 0, "last_error": None, "last_checked_at": 1.7e9,
        "last_result": {
            "is_drift": True, "threshold": 0.001,
            "p_values": {"tenure": 0.5, "monthly_charges": 1e-9},
            "distances": {"tenure": 0.1, "monthly_charges": 0.4},
        },
    }  # fmt: skip
    live = data.live_drift(status)
    assert live.enabled and live.is_drift and live.windows_checked == 3
    assert live.features["feature"].tolist() == ["monthly_charges", "tenure"]
    assert live.features["drifted"].tolist() == [True, False]
    assert live.checked_at == datetime.fromtimestamp(1.7e9, UTC)
    idle = data.live_drift({"model": "churn", "enabled": True, "last_result": None})
    assert idle.is_drift is None and idle.features.empty


# ------------------------------------------------------------------ what-if


@pytest.fixture(scope="module")
def telco(telco_csv: Path) -> pd.DataFrame:
    """The Telco-format customers as the feature pipeline loads them (with timestamps)."""
    return load_customers(DataSource(kind="telco", csv_path=telco_csv))


@pytest.fixture(scope="module")
def customer(telco: pd.DataFrame) -> str:
    """A clear churn risk of the loaded data (7590-VHVEG in the real file)."""
    return risky_customer(telco)


@pytest.fixture(scope="module")
def model_and_pipeline(
    telco_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ServingModel, Any]:
    """XGBoost trained on the data, saved and loaded back as serving loads it."""
    pipeline = train_model(telco_csv)
    path = tmp_path_factory.mktemp("model") / "serving_model"
    save_model(pipeline, path, {"threshold": 0.3})
    return load_model(path), pipeline


def test_whatif_scores_exactly_like_the_training_pipeline(
    model_and_pipeline: tuple[ServingModel, Any],
    telco: pd.DataFrame,
    customer: str,
) -> None:
    model, pipeline = model_and_pipeline
    row = telco[telco[ENTITY_KEY] == customer]
    features = {name: row[name].iloc[0] for name in feature_names()}
    score = data.score_features(model, 0.3, features, top_k=3)
    expected = float(churn_scores(pipeline, add_derived(row)[model_input_names()])[0])
    assert score.probability == pytest.approx(expected, abs=1e-7)
    assert score.label is (expected >= 0.3)
    assert set(score.derived) == {"num_services", "avg_monthly_spend", "charges_trend"}
    assert len(score.reasons) == 3
    assert {r.feature for r in score.reasons} <= set(model_input_names())
    assert score.reasons[0].contribution >= score.reasons[-1].contribution


def test_whatif_edits_move_the_score_the_expected_way(
    model_and_pipeline: tuple[ServingModel, Any],
    telco: pd.DataFrame,
    customer: str,
) -> None:
    model, _ = model_and_pipeline
    row = telco[telco[ENTITY_KEY] == customer].iloc[0]
    base = {name: row[name] for name in feature_names()}
    risky = data.score_features(model, 0.3, base).probability
    loyal = {**base, "tenure": 60, "total_charges": 60 * base["monthly_charges"]}
    assert data.score_features(model, 0.3, loyal).probability < risky
    two_year = {**base, "contract": "Two year"}
    assert data.score_features(model, 0.3, two_year).probability < risky


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        ({"contract": "Weekly"}, "'contract': 'Weekly' is not one of"),
        ({"tenure": -1}, "'tenure': -1 is outside"),
        ({"monthly_charges": float("nan")}, "'monthly_charges' must be a finite number"),
        ({"gender": None}, "feature 'gender' is missing"),
    ],
)
def test_whatif_refuses_values_outside_the_schema(
    model_and_pipeline: tuple[ServingModel, Any],
    telco: pd.DataFrame,
    edit: dict[str, Any],
    says: str,
    customer: str,
) -> None:
    model, _ = model_and_pipeline
    row = telco[telco[ENTITY_KEY] == customer].iloc[0]
    features = {**{name: row[name] for name in feature_names()}, **edit}
    with pytest.raises(data.BadInput, match=says.replace("(", r"\(")):
        data.score_features(model, 0.3, features)


# ------------------------------------------------------------------ offline store


@pytest.fixture(scope="module")
def offline_dir(telco: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline store of the Telco-format snapshot, written by the project's writer."""
    path = tmp_path_factory.mktemp("offline")
    write_offline_store(telco, path)
    return path


def test_customer_features_come_from_the_latest_snapshot(
    offline_dir: Path,
    telco: pd.DataFrame,
    customer: str,
) -> None:
    frame = data.load_offline_features(offline_dir)
    assert len(frame) == len(telco) and list(frame.columns) == feature_names()
    features = data.customer_features(frame, customer)
    expected = telco.set_index(ENTITY_KEY).loc[customer]
    assert features == {name: expected[name] for name in feature_names()}
    assert isinstance(features["tenure"], int) and isinstance(features["contract"], str)
    with pytest.raises(data.NoOfflineFeatures, match="'nobody' is not in the offline store"):
        data.customer_features(frame, "nobody")


def test_latest_snapshot_keeps_the_newest_row_per_customer() -> None:
    t0 = pd.Timestamp("2025-01-01", tz="UTC")
    frame = pd.DataFrame(
        {
            ENTITY_KEY: ["a", "a", "b"],
            EVENT_TIMESTAMP: [t0 + pd.Timedelta(days=31), t0, t0],
            "tenure": [2, 1, 7],
        }
    )
    latest = data.latest_snapshot(frame)
    assert latest.loc["a", "tenure"] == 2 and latest.loc["b", "tenure"] == 7


def test_missing_offline_store_is_explained(tmp_path: Path) -> None:
    with pytest.raises(data.NoOfflineFeatures, match="make features"):
        data.load_offline_features(tmp_path)


# ------------------------------------------------------------------ batch scores


@pytest.fixture(scope="module")
def batch_root(
    model_and_pipeline: tuple[ServingModel, Any],
    telco: pd.DataFrame,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """Two real batch runs (the second one newer), written by churn.monitoring.batch."""
    model, _ = model_and_pipeline
    champion = batch.Champion(model=model, model_version="churn-classifier-v7", threshold=0.3)
    features = add_derived(telco)
    root = tmp_path_factory.mktemp("predictions")
    first = datetime(2025, 1, 2, tzinfo=UTC)
    for i, rows in enumerate((features.head(50), features)):
        ranked = batch.rank_by_expected_loss(batch.score_frame(rows, champion))
        batch.write_predictions(ranked, 0.3, root=root, now=first + timedelta(days=i))
    return root


def test_no_batch_run_yet_is_explained(tmp_path: Path) -> None:
    with pytest.raises(data.NoBatchScores, match="Run the batch inference pipeline"):
        data.latest_batch_scores(tmp_path)


def test_the_newest_batch_run_is_read_ranked_with_its_summary(
    batch_root: Path, telco: pd.DataFrame
) -> None:
    scores = data.latest_batch_scores(batch_root)
    assert scores.path.name.startswith("20250103T")
    assert len(scores.frame) == len(telco) and scores.summary["rows"] == len(telco)
    assert scores.frame["rank"].tolist() == list(range(1, len(telco) + 1))
    assert scores.frame["expected_loss"].is_monotonic_decreasing
    assert scores.summary["at_risk"] == int(scores.frame["churn_label"].sum())


def test_segments_are_joined_at_the_scored_snapshot(
    batch_root: Path,
    offline_dir: Path,
    telco: pd.DataFrame,
    customer: str,
) -> None:
    scores = data.latest_batch_scores(batch_root)
    frame = data.with_segments(scores.frame, offline_dir)
    assert len(frame) == len(telco) and frame[list(data.SEGMENTS)].notna().all().all()
    truth = telco.set_index(ENTITY_KEY)
    row = frame[frame[ENTITY_KEY] == customer].iloc[0]
    assert row["contract"] == truth.loc[customer, "contract"]
    assert row["tenure"] == truth.loc[customer, "tenure"]
    # A snapshot the offline store does not hold gets no segments (not another snapshot's).
    shifted = scores.frame.assign(snapshot_time=pd.Timestamp("2030-01-01", tz="UTC"))
    assert data.with_segments(shifted.head(5), offline_dir)["contract"].isna().all()


def test_filters_and_csv(batch_root: Path, offline_dir: Path) -> None:
    frame = data.with_segments(data.latest_batch_scores(batch_root).frame, offline_dir)
    everyone = data.filter_at_risk(frame, data.AtRiskFilter())
    assert len(everyone) == len(frame)
    flagged = data.filter_at_risk(frame, data.AtRiskFilter(only_flagged=True))
    assert len(flagged) == int(frame["churn_label"].sum())
    rule = data.AtRiskFilter(
        min_probability=0.5, contracts=["Month-to-month"], internet_services=["Fiber optic"],
        tenure=(0, 12), top_n=20,
    )  # fmt: skip
    picked = data.filter_at_risk(frame, rule)
    assert 0 < len(picked) <= 20
    assert (picked["churn_probability"] >= 0.5).all()
    assert set(picked["contract"]) == {"Month-to-month"}
    assert set(picked["internet_service"]) == {"Fiber optic"}
    assert picked["tenure"].between(0, 12).all()
    assert picked["rank"].is_monotonic_increasing  # order kept: ranked by expected loss
    csv = data.to_csv_bytes(picked).decode().splitlines()
    assert len(csv) == len(picked) + 1 and csv[0].startswith("rank,customer_id,")


# ------------------------------------------------------------------ drift report


def _report(created: datetime, drifted: bool) -> dict[str, Any]:
    """A drift report as churn.monitoring.drift_report builds it (two features)."""
    tenure = drift_report.FeatureDrift(
        name="tenure", kind="numeric", test="kolmogorov-smirnov", statistic=0.3,
        p_value=1e-12 if drifted else 0.4, min_p_value=1e-15 if drifted else 0.2,
        drifted_windows=3 if drifted else 0, drifted=drifted,
        distribution={"bin_edges": [0.0, 36.0, 72.0], "reference": [0.5, 0.5],
                      "current": [0.2, 0.8], "reference_mean": 32.0, "current_mean": 50.0,
                      "reference_median": 29.0, "current_median": 55.0},
    )  # fmt: skip
    contract = drift_report.FeatureDrift(
        name="contract", kind="categorical", test="chi-squared", statistic=1.0, p_value=0.6,
        min_p_value=0.3, drifted_windows=0, drifted=False,
        distribution={"categories": ["Month-to-month", "One year", "Two year"],
                      "reference": [0.55, 0.21, 0.24], "current": [0.54, 0.22, 0.24]},
    )  # fmt: skip
    report = drift_report.DriftReport(
        created_at=created.isoformat(), model_version="churn-classifier-v7",
        detector="alibi-detect TabularDrift", threshold=0.0005, reference_rows=5000,
        source={"kind": "test"}, current_rows=1500, rows_tested=1500, window_size=500,
        windows=3, windows_drifted=3 if drifted else 0, drift_share=0.5, is_drift=drifted,
        drifted_features=["tenure"] if drifted else [], features=[tenure, contract],
    )  # fmt: skip
    return report.to_dict()


def test_no_drift_report_yet_is_explained(tmp_path: Path) -> None:
    with pytest.raises(data.NoDriftReport, match="Run the drift monitoring pipeline"):
        data.latest_drift_report(tmp_path / "reports" / "drift")


def test_the_newest_drift_report_is_read_with_its_html(tmp_path: Path) -> None:
    root = tmp_path / "drift"
    t0 = datetime(2025, 3, 1, 10, 15, tzinfo=UTC)
    drift_report.write_drift_report(_report(t0, drifted=False), root)
    newest = drift_report.write_drift_report(_report(t0 + timedelta(hours=1), True), root)
    (root / ".20990101T000000Z.tmp").mkdir()  # a report still being written: skipped
    report = data.latest_drift_report(root)
    assert report.path == newest
    assert report.content["is_drift"] is True and report.content["drifted_features"] == ["tenure"]
    assert report.html_path is not None and "tenure" in report.html_path.read_text()
    assert report.features["name"].tolist() == ["tenure", "contract"]  # lowest p-value first
    assert "distribution" not in report.features.columns


# ------------------------------------------------------------------ champion (MLflow)


def test_split_metrics_separates_slices() -> None:
    overall, slices = data.split_metrics(
        {
            "test_roc_auc": 0.85,
            "test_recall": 0.8,
            "cv_roc_auc": 0.84,
            "test_slice.contract.Month-to-month.roc_auc": 0.77,
            "test_slice.contract.Month-to-month.n": 802.0,
            "test_slice.tenure_bucket.0-12.recall": 0.91,
        }
    )
    assert overall == {"roc_auc": 0.85, "recall": 0.8}
    rows = slices.set_index(["feature", "segment"])
    assert rows.loc[("contract", "Month-to-month"), "roc_auc"] == 0.77
    assert rows.loc[("contract", "Month-to-month"), "n"] == 802
    assert rows.loc[("tenure_bucket", "0-12"), "recall"] == 0.91


def test_no_mlflow_database_means_no_champion_and_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "mlflow" / "mlflow.db"
    with pytest.raises(data.NoChampion, match="make training-pipeline"):
        data.champion_ref("churn-classifier", f"sqlite:///{db}")
    assert not db.parent.exists()


def test_a_registry_without_the_model_has_no_champion(tmp_path: Path) -> None:
    from churn.models.registry import use_tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    use_tracking(uri).search_registered_models()  # creates the (empty) database
    with pytest.raises(data.NoChampion, match="no 'champion' of 'churn-classifier'"):
        data.champion_ref("churn-classifier", uri)


def test_numpy_scalars_are_plain_python_for_the_widgets(offline_dir: Path, customer: str) -> None:
    features = data.customer_features(data.load_offline_features(offline_dir), customer)
    assert not any(isinstance(v, np.generic) for v in features.values())
