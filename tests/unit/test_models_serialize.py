"""Safe model files: round trip, schema and checksum guards, forest node validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.tree._tree import Tree

from churn.data.synthetic import generate
from churn.features.derived import add_derived
from churn.models.candidates import build_pipeline
from churn.models.encoding import encode
from churn.models.serialize import (
    ForestServingModel,
    ModelFormatError,
    XGBoostServingModel,
    load_model,
    save_model,
)
from churn.schema import model_input_names

PARAMS: dict[str, dict[str, Any]] = {
    "logreg": {"C": 1.0},
    "random_forest": {"n_estimators": 10, "max_depth": 5},
    "xgboost": {"n_estimators": 20, "max_depth": 3},
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return add_derived(generate(800, seed=4))


@pytest.mark.parametrize("kind", sorted(PARAMS))
def test_round_trip_equals_the_pipeline(kind: str, frame: pd.DataFrame, tmp_path: Path) -> None:
    pipeline = build_pipeline(kind, PARAMS[kind], seed=0).fit(frame, frame["churn"])  # type: ignore[arg-type]
    save_model(pipeline, tmp_path)
    loaded = load_model(tmp_path)
    columns = {c: frame[c].to_numpy() for c in frame.columns}
    np.testing.assert_allclose(
        loaded.predict_proba(columns), pipeline.predict_proba(frame)[:, 1], rtol=0, atol=1e-6
    )
    assert loaded.kind == kind


def test_a_model_from_another_schema_is_refused(frame: pd.DataFrame, tmp_path: Path) -> None:
    save_model(build_pipeline("logreg", {}, seed=0).fit(frame, frame["churn"]), tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["schema_fingerprint"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="retrain"):
        load_model(tmp_path)


def test_a_directory_without_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match=r"manifest\.json"):
        load_model(tmp_path)


def test_forest_with_out_of_range_nodes_is_refused(frame: pd.DataFrame, tmp_path: Path) -> None:
    """skops cannot bounds-check sklearn's Tree; load_model must, before any predict."""
    pipeline = build_pipeline("random_forest", PARAMS["random_forest"], seed=0)
    pipeline.fit(frame, frame["churn"])
    estimator = pipeline.steps[-1][1].estimators_[0]
    tree = estimator.tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 10**6
    state["nodes"] = nodes
    crafted = Tree(tree.n_features, np.asarray(tree.n_classes), tree.n_outputs)
    crafted.__setstate__(state)
    estimator.tree_ = crafted
    save_model(pipeline, tmp_path)
    with pytest.raises(ModelFormatError, match=r"tree 0 .* out-of-range"):
        load_model(tmp_path)


def test_xgboost_contributions_are_treeshap_on_a_bounded_dmatrix(
    frame: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Serving's DMatrix uses load_model's n_threads (XGBoost's default is every core,
    whose thread pool costs more than 1-100 rows of work), with identical values."""
    pipeline = build_pipeline("xgboost", PARAMS["xgboost"], seed=0).fit(frame, frame["churn"])
    save_model(pipeline, tmp_path)
    columns = {c: frame[c].to_numpy() for c in frame.columns}
    expected = (
        pipeline.steps[-1][1]
        .get_booster()
        .predict(xgboost.DMatrix(encode(columns)), pred_contribs=True)
    )
    threads: list[int] = []

    class RecordingDMatrix(xgboost.DMatrix):
        def __init__(self, data: Any, **kwargs: Any) -> None:
            super().__init__(data, **kwargs)
            threads.append(self.nthread)

    monkeypatch.setattr(xgboost, "DMatrix", RecordingDMatrix)
    for n_threads in (1, 2):
        loaded = load_model(tmp_path, n_threads=n_threads)
        assert isinstance(loaded, XGBoostServingModel)
        config = json.loads(loaded.booster.save_config())["learner"]["generic_param"]
        assert config["nthread"] == str(n_threads)
        values, _names = loaded.contributions(columns)
        np.testing.assert_array_equal(values, expected)
    assert threads == [1, 2]


def test_forest_threads_follow_n_threads(frame: pd.DataFrame, tmp_path: Path) -> None:
    pipeline = build_pipeline("random_forest", PARAMS["random_forest"], seed=0)
    save_model(pipeline.fit(frame, frame["churn"]), tmp_path)
    for n_threads in (1, 2):
        loaded = load_model(tmp_path, n_threads=n_threads)
        assert isinstance(loaded, ForestServingModel) and loaded.forest.n_jobs == n_threads


@pytest.mark.parametrize("kind", sorted(PARAMS))
def test_a_set_two_model_round_trips_and_records_its_set(
    kind: str, frame: pd.DataFrame, tmp_path: Path
) -> None:
    pipeline = build_pipeline(kind, PARAMS[kind], seed=0).set_params(encoder__feature_version=2)
    pipeline.fit(frame, frame["churn"])
    save_model(pipeline, tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text())["feature_version"] == 2
    loaded = load_model(tmp_path)
    assert loaded.feature_version == 2
    assert loaded.input_names == model_input_names(2)
    columns = {c: frame[c].to_numpy() for c in loaded.input_names}
    np.testing.assert_allclose(
        loaded.predict_proba(columns), pipeline.predict_proba(frame)[:, 1], rtol=0, atol=1e-6
    )
    values, names = loaded.contributions(columns)
    assert values.shape == (len(frame), len(names)) and "log_tenure" in names


def test_a_manifest_without_a_feature_set_is_set_one_and_a_wrong_set_is_refused(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    save_model(build_pipeline("logreg", {}, seed=0).fit(frame, frame["churn"]), tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["feature_version"]  # a model saved before feature sets existed
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert load_model(tmp_path).feature_version == 1
    manifest["feature_version"] = 2  # set 1's fingerprint under set 2's name
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="feature set 2"):
        load_model(tmp_path)
    manifest["feature_version"] = 9
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="unknown feature set version 9"):
        load_model(tmp_path)
