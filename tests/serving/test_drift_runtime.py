"""The drift model (serving.drift_runtime) in-process: real detector, real Telco rows.

DriftRuntime is loaded the way MLServer loads it (ModelSettings parsed from the
model-settings.json that build_drift_model writes, `load()`, `predict()` with real
InferenceRequest objects), on the alibi-detect detector fitted on the real Telco
customers (conftest: 5000 reference rows). The last test chains the real churn runtime
(real Redis, real Feast features) into it, as a Seldon Core v2 Pipeline does: the
churn model's outputs become the drift model's inputs.
"""

from __future__ import annotations

import asyncio
import gc
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlserver.settings import ModelSettings
from mlserver.types import InferenceRequest, InferenceResponse, Parameters, RequestInput
from prometheus_client import REGISTRY
from serving_faults import FAILURE, RaisingDetector
from serving_support import DRIFT_WINDOW, ServingEnv, make_bundle
from sklearn.pipeline import Pipeline

from churn.data.telco import load_telco
from churn.data.timestamps import DEFAULT_SNAPSHOT_TIME
from churn.drift.base import DriftDetector
from churn.features.derived import add_derived
from churn.features.store import get_store, historical_features
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, categorical_names, model_input_names
from deployment.bundle import DRIFT_IMPLEMENTATION
from deployment.drift_model import build_drift_model, drift_model_name
from serving.bundle import DRIFT_DIR, MODEL_SETTINGS, BundleError
from serving.contract import parse_request
from serving.drift_runtime import DriftCheckError, DriftRuntime
from serving.errors import BadRequestError, ModelLoadError
from serving.runtime import ChurnRuntime
from serving.settings import get_serving_settings

WINDOW = 200
CATEGORICAL = frozenset(categorical_names())


# ------------------------------------------------------------------ fixtures / helpers


@pytest.fixture(scope="module")
def telco(telco_csv: Path) -> pd.DataFrame:
    """Every Telco customer with raw and derived features."""
    return add_derived(load_telco(telco_csv))


@pytest.fixture(scope="module")
def bundle(
    tmp_path_factory: pytest.TempPathFactory, churn_model: Pipeline, drift_detector_dir: Path
) -> Path:
    """A serving bundle of the real model with the real detector."""
    path = tmp_path_factory.mktemp("drift_bundle") / "churn-v1"
    make_bundle(path, churn_model, "1", drift_detector_dir)
    return path


@pytest.fixture(scope="module")
def drift_model(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The drift model's folder, as the deployment uploads it."""
    out = tmp_path_factory.mktemp("drift_model") / "churn-drift-v1"
    build_drift_model(bundle, out)
    return out


@pytest.fixture
def window_200(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """CHURN_SERVING_DRIFT_WINDOW=200 for one test."""
    monkeypatch.setenv("CHURN_SERVING_DRIFT_WINDOW", str(WINDOW))
    get_serving_settings.cache_clear()
    yield
    get_serving_settings.cache_clear()


def feature_request(frame: pd.DataFrame, *, as_bytes: bool = False) -> InferenceRequest:
    """The V2 tabular request for `frame`'s rows: one input per model feature."""
    inputs = []
    for name in model_input_names():
        if name in CATEGORICAL:
            data: list[Any] = frame[name].astype(str).tolist()
            if as_bytes:  # how gRPC / Kafka deliver BYTES tensors
                data = [v.encode() for v in data]
            inputs.append(RequestInput(name=name, shape=[len(data)], datatype="BYTES", data=data))
        else:
            data = frame[name].astype(float).tolist()
            inputs.append(RequestInput(name=name, shape=[len(data)], datatype="FP64", data=data))
    return InferenceRequest(inputs=inputs)


def outputs(response: InferenceResponse) -> dict[str, list[Any]]:
    """Output name -> data."""
    return {o.name: list(o.data.root) for o in response.outputs}


def runtime_from(folder: Path, cls: type[DriftRuntime] = DriftRuntime) -> DriftRuntime:
    """The runtime MLServer would build from `folder`'s model-settings.json."""
    settings = ModelSettings.parse_file(str(folder / MODEL_SETTINGS))
    assert settings.implementation_ == DRIFT_IMPLEMENTATION
    return cls(settings)


def metric(name: str, **labels: str) -> float:
    """Current value of one Prometheus sample (0 when absent)."""
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


def pending(response: InferenceResponse) -> int:
    """The rows the drift model holds after a response (its `rows_pending` parameter)."""
    assert response.parameters is not None and response.parameters.model_extra is not None
    return int(response.parameters.model_extra["rows_pending"])


def shifted(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Month-to-month customers with the higher monthly charges: a shifted population."""
    m2m = frame[(frame["contract"] == "Month-to-month") & (frame["monthly_charges"] > 70)]
    return m2m.sample(n, random_state=seed)


# ------------------------------------------------------------------ the artifact


def test_build_drift_model_writes_a_verified_folder_naming_the_runtime(
    drift_model: Path, bundle: Path
) -> None:
    settings = json.loads((drift_model / MODEL_SETTINGS).read_text())
    assert settings["name"] == drift_model_name("churn") == "churn-drift"
    assert settings["implementation"] == DRIFT_IMPLEMENTATION
    assert settings["parameters"] == {"uri": "."}
    assert [i["name"] for i in settings["inputs"]] == model_input_names()
    # the detector is byte-identical to the bundle's
    for path in (bundle / DRIFT_DIR).rglob("*"):
        if path.is_file():
            copy = drift_model / path.relative_to(bundle)
            assert copy.read_bytes() == path.read_bytes()


def test_build_drift_model_refuses_a_bundle_without_detector_or_a_used_folder(
    tmp_path: Path, churn_model: Pipeline, bundle: Path
) -> None:
    plain = tmp_path / "plain"
    make_bundle(plain, churn_model, "1", None)
    with pytest.raises(BundleError, match="has no drift detector"):
        build_drift_model(plain, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("x")
    with pytest.raises(BundleError, match="not an empty directory"):
        build_drift_model(bundle, used)


def test_a_tampered_detector_is_refused_at_build_and_at_load(
    tmp_path: Path, bundle: Path, drift_model: Path
) -> None:
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    reference = next(p for p in (tampered / DRIFT_DIR).rglob("*.npy"))
    reference.write_bytes(reference.read_bytes()[:-8])
    with pytest.raises(BundleError, match="sha256 differs"):
        build_drift_model(tampered, tmp_path / "out")
    # a drift model folder corrupted after deployment: load fails, the model is never ready
    corrupt = tmp_path / "corrupt-model"
    shutil.copytree(drift_model, corrupt)
    (next(p for p in (corrupt / DRIFT_DIR).rglob("*.npy"))).write_bytes(b"garbage")
    runtime = runtime_from(corrupt)
    with pytest.raises(ModelLoadError, match="failed to load") as info:
        asyncio.run(runtime.load())
    assert info.value.status_code == 422
    assert isinstance(info.value.__cause__, BundleError)


# ------------------------------------------------------------------ predictions


def test_reference_like_windows_do_not_alarm_and_a_shifted_population_does(
    drift_model: Path, telco: pd.DataFrame, window_200: None
) -> None:
    runtime = runtime_from(drift_model)
    name = runtime.name
    before = metric("churn_serving_drift_windows_total", model=name, result="drift")

    async def scenario() -> tuple[InferenceResponse, InferenceResponse]:
        assert await runtime.load()
        # five windows of customers drawn from the training population, in one request
        calm = await runtime.predict(feature_request(telco.sample(5 * WINDOW, random_state=1)))
        # then one window of a shifted population, sent as bytes like gRPC would
        moved = await runtime.predict(feature_request(shifted(telco, WINDOW, 2), as_bytes=True))
        return calm, moved

    calm, moved = asyncio.run(scenario())
    out = outputs(calm)
    assert out["is_drift"] == [False] * 5
    assert out["n_rows"] == [WINDOW] * 5
    assert all(p >= t for p, t in zip(out["p_value"], out["threshold"], strict=True))
    assert calm.model_version == "1"
    assert pending(calm) == 0
    shift = outputs(moved)
    assert shift["is_drift"] == [True]
    drifted = json.loads(shift["drifted_features"][0])
    assert "contract" in drifted and "monthly_charges" in drifted
    p_values = json.loads(shift["p_values"][0])
    assert set(p_values) == set(model_input_names())
    assert p_values["contract"] < shift["threshold"][0]
    # metrics and the status endpoint saw the same verdicts
    assert metric("churn_serving_drift_windows_total", model=name, result="drift") == before + 1
    assert metric("churn_serving_drift_is_drift", model=name) == 1.0
    status = asyncio.run(runtime.drift_status())
    assert status["windows_checked"] == 6
    assert status["last_result"]["is_drift"] is True
    assert status["source_model_version"] == "1"


def test_rows_accumulate_until_a_window_is_full(
    drift_model: Path, telco: pd.DataFrame, window_200: None
) -> None:
    runtime = runtime_from(drift_model)
    rows = telco.sample(600, random_state=3)

    async def scenario() -> list[InferenceResponse]:
        await runtime.load()
        return [
            await runtime.predict(feature_request(rows.iloc[0:150])),  # 150 pending
            await runtime.predict(feature_request(rows.iloc[150:250])),  # 1 window, 50 pending
            await runtime.predict(feature_request(rows.iloc[250:600])),  # 2 windows, 0 pending
        ]

    first, second, third = asyncio.run(scenario())
    assert outputs(first)["is_drift"] == [] and first.outputs[0].shape == [0]
    assert len(outputs(second)["is_drift"]) == 1
    assert outputs(second)["n_rows"] == [WINDOW]
    assert len(outputs(third)["is_drift"]) == 2
    assert [pending(r) for r in (first, second, third)] == [150, 50, 0]


def _shorten_monthly_charges(request: InferenceRequest) -> None:
    request.inputs[8].data.root.pop()
    request.inputs[8].shape = [9]


BAD_INPUTS: dict[str, tuple[Callable[[InferenceRequest], Any], str, str]] = {
    "missing feature": (lambda r: r.inputs.pop(5), "inputs", "contract"),
    "categorical as numbers": (
        lambda r: setattr(r.inputs[5], "datatype", "FP64"),
        "inputs[5] (contract).datatype",
        "BYTES",
    ),
    "numeric as strings": (
        lambda r: setattr(r.inputs[4], "datatype", "BYTES"),
        "inputs[4] (tenure).datatype",
        "numeric",
    ),
    "unknown category": (
        lambda r: r.inputs[5].data.root.__setitem__(0, "Weekly"),
        "inputs",
        "contract",
    ),
    "rows of different lengths": (
        _shorten_monthly_charges,
        "inputs[8] (monthly_charges).data",
        "9 rows",
    ),
    "wrong shape": (
        lambda r: setattr(r.inputs[0], "shape", [2, 5]),
        "inputs[0] (gender).shape",
        "expected [10]",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_are_400_naming_the_input_and_never_reach_the_window(
    case: str, drift_model: Path, telco: pd.DataFrame, window_200: None
) -> None:
    mutate, field, fragment = BAD_INPUTS[case]
    runtime = runtime_from(drift_model)
    request = feature_request(telco.iloc[:10])
    assert request.inputs[5].name == "contract" and request.inputs[4].name == "tenure"
    mutate(request)

    async def scenario() -> tuple[BadRequestError, int]:
        await runtime.load()
        await runtime.predict(feature_request(telco.iloc[10:20]))  # 10 good rows pending
        with pytest.raises(BadRequestError) as info:
            await runtime.predict(request)
        return info.value, runtime.status()["rows_pending"]

    error, pending = asyncio.run(scenario())
    assert error.status_code == 400
    assert error.field == field
    assert fragment in str(error)
    assert pending == 10


class RaisingDriftRuntime(DriftRuntime):
    """The drift runtime with a detector that raises on every window (its test seam)."""

    def load_detector(self, path: Path, features: Sequence[str]) -> DriftDetector:
        return RaisingDetector()


def test_a_detector_failure_is_a_500_counted_and_reported(
    drift_model: Path, telco: pd.DataFrame, window_200: None
) -> None:
    runtime = runtime_from(drift_model, RaisingDriftRuntime)
    errors_before = metric("churn_serving_drift_windows_total", model=runtime.name, result="error")

    async def scenario() -> DriftCheckError:
        await runtime.load()
        short = await runtime.predict(feature_request(telco.iloc[:50]))  # no window: no check
        assert outputs(short)["is_drift"] == []
        with pytest.raises(DriftCheckError) as info:
            await runtime.predict(feature_request(telco.iloc[50:250]))
        return info.value

    error = asyncio.run(scenario())
    assert error.status_code == 500 and FAILURE in str(error)
    after = metric("churn_serving_drift_windows_total", model=runtime.name, result="error")
    assert after == errors_before + 1
    assert runtime.status()["errors"] == 1
    assert FAILURE in runtime.status()["last_error"]


# ------------------------------------------------------------------ the churn side


def test_feature_emission_is_opt_in_and_validated() -> None:
    ids = InferenceRequest(
        inputs=[RequestInput(name=ENTITY_KEY, shape=[1], datatype="BYTES", data=["a"])]
    )
    limits: dict[str, Any] = {"max_batch": 10, "reasons_default": False, "top_k_default": 3}
    assert parse_request(ids, **limits).features is False
    assert parse_request(ids, **limits, features_default=True).features is True
    ids.parameters = Parameters(features=False)
    assert parse_request(ids, **limits, features_default=True).features is False
    ids.parameters = Parameters(features="yes")
    with pytest.raises(BadRequestError) as info:
        parse_request(ids, **limits)
    assert info.value.field == "parameters.features"


def test_churn_outputs_feed_the_drift_model_like_a_seldon_pipeline(
    serving_env: ServingEnv, churn_model: Pipeline, drift_detector_dir: Path, telco: pd.DataFrame
) -> None:
    """churn (real Redis + Feast) -> its outputs as the drift model's inputs -> verdicts."""
    home = serving_env.settings.home
    bundle = home / "bundles" / "chained"
    make_bundle(bundle, churn_model, "7", drift_detector_dir)
    drift_folder = home / "bundles" / "chained-drift"
    build_drift_model(bundle, drift_folder)
    churn = ChurnRuntime(ModelSettings.parse_file(str(bundle / MODEL_SETTINGS)))
    drift = runtime_from(drift_folder)
    ids = telco[ENTITY_KEY].tolist()[:1000]

    def ids_request(**parameters: Any) -> InferenceRequest:
        return InferenceRequest(
            inputs=[RequestInput(name=ENTITY_KEY, shape=[len(ids)], datatype="BYTES", data=ids)],
            parameters=Parameters(**parameters) if parameters else None,
        )

    async def scenario() -> tuple[InferenceResponse, InferenceResponse, InferenceResponse]:
        assert await churn.load()
        assert await drift.load()
        try:
            plain = await churn.predict(ids_request())
            scored = await churn.predict(ids_request(features=True))
            # Seldon turns a step's outputs into the next step's inputs, tensor for tensor
            chained = InferenceRequest(
                inputs=[
                    RequestInput(name=o.name, shape=o.shape, datatype=o.datatype, data=o.data)
                    for o in scored.outputs
                ]
            )
            verdicts = await drift.predict(chained)
        finally:
            await churn.unload()
            await drift.unload()
        return plain, scored, verdicts

    try:
        plain, scored, verdicts = asyncio.run(scenario())
    finally:
        gc.unfreeze()  # ChurnRuntime.load() froze the test process's objects
    assert set(outputs(plain)) == {
        "churn_probability", "churn_label", "model_version", "feature_event_time"
    }  # fmt: skip
    served = outputs(scored)
    assert served["churn_probability"] == outputs(plain)["churn_probability"]
    # the emitted rows are the online features of exactly those customers, in order
    entity_df = pd.DataFrame({ENTITY_KEY: ids, EVENT_TIMESTAMP: DEFAULT_SNAPSHOT_TIME})
    offline = historical_features(get_store(), entity_df).set_index(ENTITY_KEY).loc[ids]
    for name in model_input_names():
        if name in CATEGORICAL:
            assert served[name] == offline[name].astype(str).tolist(), name
        else:
            assert np.allclose(served[name], offline[name].astype(float)), name
    # the drift model consumed them: 1000 rows = 1000 / DRIFT_WINDOW verdicts
    verdict = outputs(verdicts)
    assert verdicts.model_name == "churn-drift" and verdicts.model_version == "7"
    assert verdict["n_rows"] == [DRIFT_WINDOW] * (1000 // DRIFT_WINDOW)
    # real customers from the training population: (almost) no alarms
    assert sum(verdict["is_drift"]) <= 1, verdict["p_value"]
