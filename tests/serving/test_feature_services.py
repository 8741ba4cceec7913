"""Feature sets v1 and v2 side by side: two FeatureServices, two models, one Redis.

The rollout a real team goes through when it adds features: the v1 champion keeps
serving churn_model_v1 while a v2 model (trained on churn_model_v2, which adds
log_tenure, tenure_bucket and fiber_month_to_month) is served beside it, both reading
the same materialized Redis through one real MLServer process. Each must score
exactly what its own model gives on its own service's offline features, and no
bundle or runtime may pair a model with another set's service.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from mlserver.settings import ModelSettings
from serving_support import THRESHOLD, ServingEnv, make_bundle
from sklearn.pipeline import Pipeline

from churn.data.telco import load_telco
from churn.data.timestamps import DEFAULT_SNAPSHOT_TIME
from churn.features.derived import add_derived
from churn.features.names import FEATURE_SERVICES, feature_refs
from churn.features.store import get_store, historical_features, online_features, service_refs
from churn.files import write_json_atomic
from churn.models.candidates import build_pipeline
from churn.models.serialize import load_model
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, LABEL, derived_names, model_input_names
from deployment import local_server
from deployment.bundle import build_bundle, feature_layout_of, model_settings
from serving.bundle import MANIFEST, MODEL_DIR, MODEL_SETTINGS, BundleError, read_manifest
from serving.errors import ModelLoadError
from serving.online import layout_from_store
from serving.runtime import ChurnRuntime

pytestmark = pytest.mark.integration

V1, V2 = "churn", "churn-v2"
V2_ONLY = [name for name in derived_names(2) if name not in derived_names(1)]


@pytest.fixture(scope="module")
def model_v2(serving_env: ServingEnv) -> Pipeline:
    """Logistic regression on feature set 2: the set whose log_tenure a linear model needs."""
    frame = add_derived(load_telco(serving_env.telco_csv))
    pipeline = build_pipeline("logreg", {"C": 0.1}, seed=0)
    pipeline.set_params(encoder__feature_version=2)
    return pipeline.fit(frame[model_input_names(2)], frame[LABEL])


@pytest.fixture(scope="module")
def bundle_v2(serving_env: ServingEnv, model_v2: Pipeline) -> Path:
    """Version "2" of the model, bundled with churn_model_v2's recorded Redis layout."""
    path = serving_env.settings.home / "bundles" / "v2"
    make_bundle(
        path,
        model_v2,
        "2",
        None,
        feature_service=FEATURE_SERVICES[2],
        feature_layout=feature_layout_of(FEATURE_SERVICES[2], serving_env.serving),
    )
    return path


@dataclass(frozen=True)
class Server:
    url: str
    ids: list[str]


@pytest.fixture(scope="module")
def server(serving_env: ServingEnv, bundle_v1: Path, bundle_v2: Path) -> Iterator[Server]:
    """One MLServer serving bundle_v1 as "churn" and bundle_v2 as "churn-v2"."""
    s = serving_env.serving
    repo = local_server.install(bundle_v1, s)
    (repo / V2).mkdir()
    write_json_atomic(repo / V2 / "model-settings.json", model_settings(V2, str(bundle_v2)))
    local_server.start(settings=s)
    try:
        url = local_server.base_url(s)
        for name in (V1, V2):
            status = requests.get(f"{url}/v2/models/{name}/ready", timeout=5).status_code
            assert status == 200, f"{name} is not ready ({status})"
        yield Server(url, load_telco(serving_env.telco_csv)[ENTITY_KEY].tolist())
    finally:
        local_server.stop(s)


def score(server: Server, model: str, ids: list[str], **parameters: Any) -> dict[str, Any]:
    """Outputs and parameters of one request for `ids` to `model`."""
    payload: dict[str, Any] = {
        "inputs": [{"name": ENTITY_KEY, "shape": [len(ids)], "datatype": "BYTES", "data": ids}]
    }
    if parameters:
        payload["parameters"] = parameters
    response = requests.post(f"{server.url}/v2/models/{model}/infer", json=payload, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    return {
        "outputs": {o["name"]: o["data"] for o in body["outputs"]},
        "parameters": body.get("parameters") or {},
    }


def test_both_services_resolve_in_feast_and_read_the_same_redis(serving_env: ServingEnv) -> None:
    store = get_store()
    ids = load_telco(serving_env.telco_csv)[ENTITY_KEY].tolist()[:50]
    for version, service in FEATURE_SERVICES.items():
        assert service_refs(store, service) == feature_refs(version)
        layout = layout_from_store(store, service)
        assert layout.feature_version == version
        assert list(layout.derived) == derived_names(version)
        online = online_features(store, ids, features=service)
        assert list(online.columns) == model_input_names(version)
    v1 = online_features(store, ids, features=FEATURE_SERVICES[1]).columns
    v2 = online_features(store, ids, features=FEATURE_SERVICES[2]).columns
    for name in model_input_names(1):  # v2 adds features; it changes none of v1's
        assert v1[name] == v2[name], name
    expected = add_derived(pd.DataFrame(v1), V2_ONLY)
    for name in V2_ONLY:  # Feast's on-demand view computes what derive() computes
        np.testing.assert_allclose(np.asarray(v2[name], dtype=float), expected[name], err_msg=name)


def test_v1_and_v2_models_serve_side_by_side_each_on_its_own_service(
    server: Server, bundle_v1: Path, bundle_v2: Path
) -> None:
    ids = server.ids
    entity_df = pd.DataFrame({ENTITY_KEY: ids, EVENT_TIMESTAMP: DEFAULT_SNAPSHOT_TIME})
    store = get_store()
    probabilities = {}
    for name, version, bundle in ((V1, 1, bundle_v1), (V2, 2, bundle_v2)):
        offline = historical_features(store, entity_df, service=FEATURE_SERVICES[version])
        assert [c for c in offline.columns if c in derived_names(2)] == derived_names(version)
        expected = load_model(bundle / MODEL_DIR).predict_proba(offline)
        got_parts, labels = [], []
        for start in range(0, len(ids), 1000):  # the runtime's batch limit
            served = score(server, name, ids[start : start + 1000])
            assert served["parameters"]["feature_service"] == FEATURE_SERVICES[version]
            got_parts.append(served["outputs"]["churn_probability"])
            labels.extend(served["outputs"]["churn_label"])
        got = np.concatenate(got_parts)
        assert np.max(np.abs(got - expected)) < 1e-6, name
        assert labels == (got >= THRESHOLD).tolist()
        probabilities[name] = got
    # two different models really answered: not one model under two names
    assert np.max(np.abs(probabilities[V1] - probabilities[V2])) > 0.05


def test_reasons_name_the_features_of_the_served_set(server: Server) -> None:
    ids = server.ids[:40]
    for name, version in ((V1, 1), (V2, 2)):
        inputs = model_input_names(version)
        served = score(server, name, ids, reasons=True, top_k=len(inputs))
        for row in served["outputs"]["reasons"]:
            named = {r["feature"] for r in json.loads(row)}
            assert named == set(inputs), name


def test_no_bundle_pairs_a_model_with_another_feature_set(
    serving_env: ServingEnv, bundle_v1: Path, bundle_v2: Path, tmp_path: Path
) -> None:
    v1_model = bundle_v1 / MODEL_DIR
    with pytest.raises(BundleError, match="serves feature set 2, the model consumes feature set 1"):
        build_bundle(
            tmp_path / "a", model_dir=v1_model, model_version="9", threshold=0.4,
            feature_service=FEATURE_SERVICES[2],
        )  # fmt: skip
    with pytest.raises(BundleError, match="recorded layout serves feature set 2"):
        build_bundle(
            tmp_path / "b", model_dir=v1_model, model_version="9", threshold=0.4,
            feature_layout=feature_layout_of(FEATURE_SERVICES[2], serving_env.serving),
        )  # fmt: skip
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert read_manifest(bundle_v2).feature_version == 2
    # a manifest edited to claim another set is refused before anything is served
    copy = tmp_path / "edited"
    shutil.copytree(bundle_v2, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["feature_version"] = 1
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="bundle built for schema"):
        read_manifest(copy)


def test_runtime_refuses_a_service_override_of_another_feature_set(
    serving_env: ServingEnv, bundle_v1: Path
) -> None:
    runtime = ChurnRuntime(ModelSettings.parse_file(str(bundle_v1 / MODEL_SETTINGS)))
    runtime._settings_serving = serving_env.serving.model_copy(
        update={"feature_service": FEATURE_SERVICES[2]}
    )
    with pytest.raises(ModelLoadError, match=r"serves feature set 2.*consumes feature set 1"):
        asyncio.run(runtime.load())
