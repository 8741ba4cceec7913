"""A calibrated LightGBM champion served by a real MLServer: endpoint = batch scoring.

The bundle holds a LightGBM model (its own text format) with a sigmoid calibration
map; the server reads every Telco customer's features from Redis, the batch path
(churn.monitoring.batch.score_customers) reads them from the offline store through
Feast, and both must give the same calibrated probability (|Δ| < 1e-6) and the same
log-odds reason codes (LightGBM's pred_contrib of the raw model).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from serving_support import THRESHOLD, ServingEnv

from churn.data.telco import load_telco
from churn.data.timestamps import DEFAULT_SNAPSHOT_TIME
from churn.features.derived import add_derived
from churn.features.store import get_store
from churn.models.calibration import Calibrator, fit_calibrator
from churn.models.candidates import train_candidate
from churn.models.reasons import feature_contributions
from churn.models.serialize import load_model
from churn.monitoring.batch import Champion, score_customers
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, LABEL, feature_names, model_input_names
from deployment import local_server
from deployment.bundle import build_bundle_from_pipeline
from serving.bundle import MODEL_DIR

pytestmark = pytest.mark.integration

MODEL = "churn"


@dataclass(frozen=True)
class Served:
    """The running server and what it serves."""

    url: str
    bundle: Path
    frame: pd.DataFrame  # every Telco customer's features (read-only)
    raw: Any  # the uncalibrated pipeline

    @property
    def ids(self) -> list[str]:
        """Every customer id, in file order."""
        return list(self.frame[ENTITY_KEY])


@pytest.fixture(scope="module")
def served(serving_env: ServingEnv) -> Iterator[Served]:
    """A sigmoid-calibrated LightGBM bundle, served by MLServer on the module's Redis."""
    frame = add_derived(load_telco(serving_env.telco_csv))
    candidate = train_candidate(
        "lightgbm",
        frame[model_input_names()],
        frame[LABEL],
        [{"n_estimators": 150, "num_leaves": 8, "learning_rate": 0.05}],
        seed=0,
        cv_folds=3,
    )
    # Forced, so that the served path always applies a map (the real choice may be "none").
    calibrator = fit_calibrator("sigmoid", candidate.oof_scores, candidate.oof_labels)
    bundle = serving_env.settings.home / "bundles" / "lightgbm"
    build_bundle_from_pipeline(
        bundle, candidate.pipeline, model_version="7", threshold=THRESHOLD, calibrator=calibrator
    )
    s = serving_env.serving
    local_server.install(bundle, s)
    local_server.start(settings=s)
    try:
        local_server.wait_ready(settings=s)
        yield Served(local_server.base_url(s), bundle, frame, candidate.pipeline)
    finally:
        local_server.stop(s)


def _infer(served: Served, ids: list[str], **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [{"name": ENTITY_KEY, "shape": [len(ids)], "datatype": "BYTES", "data": ids}]
    }
    if parameters:
        body["parameters"] = parameters
    response = requests.post(f"{served.url}/v2/models/{MODEL}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()
    return payload


def _outputs(payload: dict[str, Any]) -> dict[str, list[Any]]:
    return {o["name"]: o["data"] for o in payload["outputs"]}


def test_served_calibrated_probabilities_equal_batch_scoring(served: Served) -> None:
    model = load_model(served.bundle / MODEL_DIR)
    assert model.kind == "lightgbm" and isinstance(model.calibrator, Calibrator)
    probabilities: list[float] = []
    for start in range(0, len(served.ids), 1000):
        chunk = served.ids[start : start + 1000]
        probabilities.extend(_outputs(_infer(served, chunk))["churn_probability"])
    online = pd.Series(probabilities, index=served.ids)
    entities = pd.DataFrame({ENTITY_KEY: served.ids, EVENT_TIMESTAMP: DEFAULT_SNAPSHOT_TIME})
    champion = Champion(model=model, model_version="7", threshold=THRESHOLD)
    batch = score_customers(get_store(), entities, champion, top_k=0).set_index(ENTITY_KEY)
    batch_p = batch.loc[served.ids, "churn_probability"].to_numpy()
    assert np.max(np.abs(online.to_numpy() - batch_p)) < 1e-6
    # the calibration is really applied: the raw model's probabilities differ
    raw = served.raw.predict_proba(served.frame[model_input_names()])[:, 1]
    assert np.max(np.abs(online.to_numpy() - raw)) > 1e-3
    assert np.max(np.abs(model.calibrator.apply(raw) - online.to_numpy())) < 1e-6


def test_reasons_are_lightgbm_log_odds_of_the_raw_model(served: Served) -> None:
    ids = served.ids[:5]
    payload = _infer(served, ids, reasons=True, top_k=len(model_input_names()))
    assert payload["parameters"]["model_kind"] == "lightgbm"
    assert payload["parameters"]["reason_units"] == "log-odds"
    model = load_model(served.bundle / MODEL_DIR)
    out = _outputs(payload)
    for row, text in enumerate(out["reasons"]):
        reasons = json.loads(text)
        assert {r["feature"] for r in reasons} == set(model_input_names())
        contributions = [r["contribution"] for r in reasons]
        assert contributions == sorted(contributions, reverse=True)
        p = out["churn_probability"][row]
        assert 0.0 < p < 1.0
    # contributions + bias = the raw model's log-odds, not the calibrated probability's
    rows = served.frame.head(len(ids))
    values, names = feature_contributions(model, rows)
    raw_p = served.raw.predict_proba(rows[model_input_names()])[:, 1]
    full, _ = model.contributions(rows)
    assert np.allclose(full.sum(axis=1), np.log(raw_p / (1 - raw_p)), atol=1e-6)
    for row, text in enumerate(out["reasons"]):
        by_feature = {r["feature"]: r["contribution"] for r in json.loads(text)}
        for j, name in enumerate(names):
            assert abs(by_feature[name] - values[row, j]) < 1e-5
    calibrated = model.predict_proba(rows)
    assert np.max(np.abs(calibrated - raw_p)) > 1e-3
    assert math.isclose(out["churn_probability"][0], calibrated[0], abs_tol=1e-6)


def test_the_dashboards_what_if_scores_like_the_endpoint(served: Served) -> None:
    """The what-if (dashboard.champion.score_features) on a customer's unchanged raw
    features gives the served calibrated probability and the same top reasons."""
    from dashboard.champion import score_features

    customer = served.frame.iloc[3]
    payload = _infer(served, [str(customer[ENTITY_KEY])], reasons=True, top_k=3)
    out = _outputs(payload)
    model = load_model(served.bundle / MODEL_DIR)
    raw = {name: customer[name] for name in feature_names()}
    what_if = score_features(model, THRESHOLD, raw, top_k=3)
    assert abs(what_if.probability - out["churn_probability"][0]) < 1e-6
    assert what_if.label == out["churn_label"][0]
    served_reasons = json.loads(out["reasons"][0])
    assert [r.feature for r in what_if.reasons] == [r["feature"] for r in served_reasons]
    for mine, theirs in zip(what_if.reasons, served_reasons, strict=True):
        assert abs(mine.contribution - theirs["contribution"]) < 1e-5
