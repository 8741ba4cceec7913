"""Save trained pipelines in formats that do not unpickle code, and load them for serving.

A saved model is a directory with `manifest.json` (format version, model kind, the
SchemaEncoder's feature set version and its schema fingerprint, encoded feature
names, sha256 of every file, free-form metadata) and one model file:

- xgboost: `booster.ubj`, XGBoost's own UBJSON model format (no Python objects).
- lightgbm: `lightgbm.txt`, LightGBM's own text model format (trees as text; no
  Python objects).
- logreg: `logreg.json`, the scaler's mean/scale and the coefficients as JSON arrays
  (Python's float repr round-trips exactly, so predictions match bit for bit).
- random_forest: scikit-learn has no model format of its own. `forest.skops` uses
  skops (already required by MLflow), which rebuilds objects from a schema instead
  of unpickling, so loading never runs code from the file. skops still flags
  sklearn's `Tree` as untrusted: its node arrays are not bounds-checked at predict
  time, so a crafted file could read out-of-bounds memory. We trust that one type
  explicitly AND validate every tree's node arrays after loading (children inside
  the node table and after their parent, features inside the encoded width), which
  closes that gap; the manifest's sha256 also catches a file swapped after saving.
  Nothing is pickled in any format.

A calibrated model also holds `calibration.json` (churn.models.calibration: the
method and its parameters as JSON numbers, checksummed like the model file);
`predict_proba` returns calibrated probabilities, `contributions` keep explaining
the raw model (log-odds or probability: `contribution_units`).

The encoder is never stored: it is rebuilt from churn.schema for the recorded feature
set (1 when a manifest predates feature sets), and loading fails if the current
schema's fingerprint of that set differs from the one the model was trained with.

`ServingModel.predict_proba(columns)` is the serving hot path: a dict of 1-D arrays in,
P(churn) out, with no pandas and nothing built per call beyond the encoded matrix.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from churn.files import file_sha256
from churn.models.calibration import Calibrator, is_finite_map
from churn.models.encoding import (
    NAME_SEPARATOR,
    Columns,
    SchemaEncoder,
    encode,
    encoded_feature_names,
    schema_fingerprint,
)
from churn.schema import check_version, model_input_names

FORMAT: Final = "churn-serving-model"
FORMAT_VERSION: Final = 1
MANIFEST: Final = "manifest.json"
MODEL_FILES: Final[dict[str, str]] = {
    "xgboost": "booster.ubj",
    "logreg": "logreg.json",
    "random_forest": "forest.skops",
    "lightgbm": "lightgbm.txt",
}
CALIBRATION_FILE: Final = "calibration.json"
BIAS: Final = "bias"
# Types skops must be told to trust, per kind, when a whole Pipeline is stored with
# skops (MLflow's sklearn flavour). Reviewed: our stateless encoder; XGBoost's
# Booster/XGBClassifier restore from XGBoost's own binary model; Tree see above.
SKOPS_TRUSTED_TYPES: Final[dict[str, list[str]]] = {
    "logreg": ["churn.models.encoding.SchemaEncoder"],
    "random_forest": ["churn.models.encoding.SchemaEncoder", "sklearn.tree._tree.Tree"],
    "xgboost": [
        "churn.models.encoding.SchemaEncoder",
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
    ],
    # skops stores LightGBM's booster as its own model text.
    "lightgbm": [
        "churn.models.encoding.SchemaEncoder",
        "collections.OrderedDict",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
    ],
}

FloatArray = npt.NDArray[np.float64]
ContributionUnits = Literal["log-odds", "probability"]


class ModelFormatError(ValueError):
    """A saved model directory is incomplete, tampered with, or from another schema."""


def model_kind(pipeline: Pipeline) -> str:
    """The candidate family of a fitted pipeline (from its final estimator's type)."""
    from xgboost import XGBClassifier

    estimator = pipeline.steps[-1][1]
    if isinstance(estimator, XGBClassifier):
        return "xgboost"
    if type(estimator).__module__.startswith("lightgbm"):
        return "lightgbm"
    if isinstance(estimator, LogisticRegression):
        return "logreg"
    if isinstance(estimator, RandomForestClassifier):
        return "random_forest"
    raise TypeError(f"no safe format for estimator {type(estimator).__name__}")


def _check_pipeline(pipeline: Pipeline) -> None:
    if not isinstance(pipeline.steps[0][1], SchemaEncoder):
        raise TypeError("the pipeline's first step must be churn's SchemaEncoder")


def _write_logreg(pipeline: Pipeline, path: Path) -> None:
    scaler = pipeline.named_steps.get("scaler")
    model = pipeline.steps[-1][1]
    if not isinstance(scaler, StandardScaler):
        raise TypeError("a logreg pipeline must have a StandardScaler step named 'scaler'")
    if list(model.classes_) != [0, 1]:
        raise ValueError(f"expected classes [0, 1], got {list(model.classes_)}")
    payload = {
        "mean": [float(v) for v in scaler.mean_],
        "scale": [float(v) for v in scaler.scale_],
        "coef": [float(v) for v in np.ravel(model.coef_)],
        "intercept": float(np.ravel(model.intercept_)[0]),
    }
    path.write_text(json.dumps(payload))


def save_model(
    pipeline: Pipeline,
    directory: Path,
    metadata: Mapping[str, Any] | None = None,
    calibrator: Calibrator | None = None,
) -> Path:
    """Write `pipeline` to `directory` (created) in its safe format; returns the manifest path.

    `metadata` (JSON-serialisable: threshold, model version, ...) is stored verbatim;
    a `calibrator` other than "none" is written beside the model and applied on load.
    """
    _check_pipeline(pipeline)
    kind = model_kind(pipeline)
    version = int(pipeline.steps[0][1].feature_version)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / MODEL_FILES[kind]
    if kind == "xgboost":
        pipeline.steps[-1][1].get_booster().save_model(str(model_path))
    elif kind == "lightgbm":
        pipeline.steps[-1][1].booster_.save_model(str(model_path))
    elif kind == "logreg":
        _write_logreg(pipeline, model_path)
    else:
        import skops.io as sio

        sio.dump(pipeline.steps[-1][1], model_path)
    files = {model_path.name: file_sha256(model_path)}
    if calibrator is not None and calibrator.method != "none":
        calibration_path = directory / CALIBRATION_FILE
        calibration_path.write_text(json.dumps(calibrator.to_json()))
        files[calibration_path.name] = file_sha256(calibration_path)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "feature_version": version,
        "schema_fingerprint": schema_fingerprint(version),
        "feature_names": encoded_feature_names(version),
        "files": files,
        "metadata": dict(metadata or {}),
    }
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return path


class ServingModel(ABC):
    """A loaded model: encoder rebuilt from the schema + the model's own arrays/booster."""

    kind: str
    contribution_units: ContributionUnits

    def __init__(self, feature_names: list[str], metadata: dict[str, Any]) -> None:
        self.feature_names = feature_names
        self.metadata = metadata
        self.calibrator: Calibrator | None = None  # set by load_model when calibrated
        self.feature_version = 1  # set by load_model from the manifest

    @property
    def input_names(self) -> list[str]:
        """The feature columns the model consumes, in order (its feature set's)."""
        return model_input_names(self.feature_version)

    @abstractmethod
    def raw_encoded(self, x: FloatArray) -> FloatArray:
        """The model's own P(churn) for an encoded float64 matrix (before calibration)."""

    def predict_encoded(self, x: FloatArray) -> FloatArray:
        """P(churn) for an already encoded float64 matrix, calibrated when the model is."""
        raw = self.raw_encoded(x)
        return raw if self.calibrator is None else self.calibrator.apply(raw)

    @abstractmethod
    def contributions_encoded(self, x: FloatArray) -> FloatArray:
        """Per-feature contributions (n, features + 1), last column the bias."""

    def predict_proba(self, columns: Columns) -> FloatArray:
        """P(churn) per row, 1-D. `columns`: name -> 1-D array/list (or a DataFrame)."""
        return self.predict_encoded(encode(columns, self.feature_version))

    def contributions(self, columns: Columns) -> tuple[FloatArray, list[str]]:
        """(values, names) for reason codes: values[i, j] is feature j's push on row i.

        Units are `contribution_units`; each row sums to the raw (uncalibrated) model's
        log-odds (xgboost, lightgbm, logreg) or probability (random forest). The last
        name is "bias".
        """
        return self.contributions_encoded(encode(columns, self.feature_version)), [
            *self.feature_names,
            BIAS,
        ]


class _BoosterServingModel(ServingModel):
    """A gradient-boosting library's own booster, called with a bounded thread count."""

    contribution_units: ContributionUnits = "log-odds"

    def __init__(
        self,
        booster: Any,
        feature_names: list[str],
        metadata: dict[str, Any],
        *,
        n_threads: int = 1,
    ) -> None:
        super().__init__(feature_names, metadata)
        self.booster = booster
        self.n_threads = n_threads


class XGBoostServingModel(_BoosterServingModel):
    """XGBoost booster loaded from UBJSON; inplace_predict on the encoded matrix.

    `n_threads` bounds every call: the booster's own `nthread` (set by load_model) and
    the DMatrix that contributions build. A DMatrix left at XGBoost's default uses
    every core, and on 1-100 rows its thread pool costs more than the work and competes
    with the server's other requests. Measured on 2 busy cores (DMatrix + pred_contribs,
    300 trees, interleaved runs, default vs nthread=1, results bit-identical): 1 row
    mean 4.1 vs 0.6 ms (p99 21 vs 1.7 ms); 100 rows mean 58 vs 33 ms.
    """

    kind = "xgboost"
    contribution_units: ContributionUnits = "log-odds"

    def raw_encoded(self, x: FloatArray) -> FloatArray:
        """P(churn): the booster's binary:logistic output."""
        return np.asarray(self.booster.inplace_predict(x), dtype=np.float64)

    def contributions_encoded(self, x: FloatArray) -> FloatArray:
        """TreeSHAP values from XGBoost (pred_contribs), in log-odds."""
        from xgboost import DMatrix

        matrix = DMatrix(x, nthread=self.n_threads)
        return np.asarray(self.booster.predict(matrix, pred_contribs=True), dtype=np.float64)


class LightGBMServingModel(_BoosterServingModel):
    """LightGBM booster loaded from its text model; predict on the encoded matrix.

    `num_threads` is passed on every call, for the same reason as XGBoost's nthread:
    serving's 1-100 rows per call are cheaper on one thread than on a pool.
    """

    kind = "lightgbm"
    contribution_units: ContributionUnits = "log-odds"

    def raw_encoded(self, x: FloatArray) -> FloatArray:
        """P(churn): the booster's binary objective output."""
        out = self.booster.predict(x, num_threads=self.n_threads)
        return np.asarray(out, dtype=np.float64)

    def contributions_encoded(self, x: FloatArray) -> FloatArray:
        """TreeSHAP values from LightGBM (pred_contrib), in log-odds; last column bias."""
        out = self.booster.predict(x, pred_contrib=True, num_threads=self.n_threads)
        return np.asarray(out, dtype=np.float64)


class LogRegServingModel(ServingModel):
    """Standardise then a dot product: the whole logistic regression in numpy."""

    kind = "logreg"
    contribution_units: ContributionUnits = "log-odds"

    def __init__(
        self,
        mean: FloatArray,
        scale: FloatArray,
        coef: FloatArray,
        intercept: float,
        feature_names: list[str],
        metadata: dict[str, Any],
    ) -> None:
        super().__init__(feature_names, metadata)
        self.mean, self.scale, self.coef, self.intercept = mean, scale, coef, intercept

    def raw_encoded(self, x: FloatArray) -> FloatArray:
        """P(churn) = sigmoid(((x - mean) / scale) . coef + intercept)."""
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        out: FloatArray = 1.0 / (1.0 + np.exp(-z))
        return out

    def contributions_encoded(self, x: FloatArray) -> FloatArray:
        """coef_j x standardised x_j per feature, the intercept as bias (log-odds)."""
        values = ((x - self.mean) / self.scale) * self.coef
        bias = np.full((x.shape[0], 1), self.intercept)
        return np.hstack([values, bias])


class ForestServingModel(ServingModel):
    """RandomForest restored with skops and validated; contributions by Saabas' method."""

    kind = "random_forest"
    contribution_units: ContributionUnits = "probability"

    def __init__(
        self, forest: RandomForestClassifier, feature_names: list[str], metadata: dict[str, Any]
    ) -> None:
        super().__init__(feature_names, metadata)
        self.forest = forest

    def raw_encoded(self, x: FloatArray) -> FloatArray:
        """P(churn): the mean of the trees' leaf class fractions."""
        return np.ascontiguousarray(self.forest.predict_proba(x)[:, 1], dtype=np.float64)

    def contributions_encoded(self, x: FloatArray) -> FloatArray:
        """Saabas path attribution: each split's change of P(churn) goes to its feature.

        Rows sum to the forest's P(churn); the bias is the trees' mean root P(churn).
        """
        n, k = x.shape
        out = np.zeros((n, k + 1), dtype=np.float64)
        for tree_model in self.forest.estimators_:
            tree = tree_model.tree_
            fractions = tree.value[:, 0, :]
            p1 = fractions[:, 1] / fractions.sum(axis=1)
            path = tree_model.decision_path(x.astype(np.float32))
            indptr, nodes = path.indptr, path.indices
            rows = np.repeat(np.arange(n), np.diff(indptr))
            # Consecutive entries of one row are parent -> child (children follow parents).
            step = np.flatnonzero(rows[:-1] == rows[1:])
            parents, children = nodes[step], nodes[step + 1]
            np.add.at(out, (rows[step], tree.feature[parents]), p1[children] - p1[parents])
            out[:, k] += p1[0]
        out /= len(self.forest.estimators_)
        return out


def _validate_forest(forest: Any, n_features: int, n_threads: int) -> RandomForestClassifier:
    """Reject a forest whose node arrays could make sklearn index out of bounds."""
    if not isinstance(forest, RandomForestClassifier):
        raise ModelFormatError(
            f"forest file holds {type(forest).__name__}, not RandomForestClassifier"
        )
    if list(forest.classes_) != [0, 1] or forest.n_features_in_ != n_features:
        raise ModelFormatError(
            f"forest has classes {list(forest.classes_)} and {forest.n_features_in_} features; "
            f"expected [0, 1] and {n_features}"
        )
    for i, estimator in enumerate(forest.estimators_):
        tree = estimator.tree_
        count = tree.node_count
        left, right, feature = tree.children_left, tree.children_right, tree.feature
        nodes = np.arange(count)
        leaf = left == -1
        ok = (
            left.shape == right.shape == feature.shape == (count,)
            and tree.value.shape[0] == count
            and bool(np.all(leaf == (right == -1)))
            and bool(np.all((left[~leaf] > nodes[~leaf]) & (left[~leaf] < count)))
            and bool(np.all((right[~leaf] > nodes[~leaf]) & (right[~leaf] < count)))
            and bool(np.all((feature[~leaf] >= 0) & (feature[~leaf] < n_features)))
            and tree.n_features == n_features
        )
        if not ok:
            raise ModelFormatError(f"tree {i} of the forest has out-of-range node arrays")
    forest.n_jobs = n_threads  # 1 for serving's 1-100 rows: thread start-up would dominate.
    return forest


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise ModelFormatError(f"{directory} has no {MANIFEST}: not a saved churn model")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(
            f"{path}: format {manifest.get('format')!r} v{manifest.get('format_version')!r}, "
            f"expected {FORMAT!r} v{FORMAT_VERSION}"
        )
    version = manifest.setdefault("feature_version", 1)
    try:
        check_version(version)
    except ValueError as e:
        raise ModelFormatError(f"{path}: {e}") from e
    if manifest.get("schema_fingerprint") != schema_fingerprint(version):
        raise ModelFormatError(
            f"{path}: model trained with schema {manifest.get('schema_fingerprint')}, but "
            f"churn.schema's feature set {version} is now {schema_fingerprint(version)}; "
            "retrain the model"
        )
    if manifest.get("feature_names") != encoded_feature_names(version):
        raise ModelFormatError(f"{path}: encoded feature names differ from the current schema")
    files = manifest.get("files", {})
    kind = manifest.get("kind")
    if kind in MODEL_FILES and set(files) - {MODEL_FILES[kind], CALIBRATION_FILE}:
        raise ModelFormatError(f"{path}: lists unexpected files {sorted(files)}")
    for name, digest in files.items():
        if file_sha256(directory / name) != digest:
            raise ModelFormatError(f"{directory / name}: sha256 differs from the manifest")
    return manifest


def load_model(directory: Path, *, n_threads: int = 1) -> ServingModel:
    """Load a directory written by save_model(); verifies format, schema and checksums.

    `n_threads`: threads one prediction or contribution call may use (XGBoost's
    nthread, the forest's n_jobs). 1 suits serving's 1-100 rows per call.
    """
    manifest = _read_manifest(directory)
    kind = manifest["kind"]
    if kind not in MODEL_FILES:
        raise ModelFormatError(f"{directory}: unknown model kind {kind!r}")
    model_path = directory / MODEL_FILES[kind]
    if model_path.name not in manifest["files"]:
        raise ModelFormatError(f"{directory}: manifest lists no checksum for {model_path.name}")
    model = _load_kind(kind, directory, model_path, manifest, n_threads)
    model.feature_version = int(manifest["feature_version"])
    if CALIBRATION_FILE in manifest["files"]:
        model.calibrator = _read_calibrator(directory / CALIBRATION_FILE)
    return model


def _read_calibrator(path: Path) -> Calibrator:
    """The calibration map beside a model; ModelFormatError when it is not a valid one."""
    try:
        calibrator = Calibrator.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as e:
        raise ModelFormatError(f"{path}: not a calibration map: {e}") from e
    if calibrator.method == "none" or not is_finite_map(calibrator):
        raise ModelFormatError(f"{path}: calibration {calibrator.method!r} is not usable")
    return calibrator


def _load_kind(
    kind: str, directory: Path, model_path: Path, manifest: dict[str, Any], n_threads: int
) -> ServingModel:
    """The uncalibrated ServingModel of `kind` from its model file."""
    names: list[str] = manifest["feature_names"]
    metadata: dict[str, Any] = manifest["metadata"]
    if kind == "lightgbm":
        from lightgbm import Booster as LightGBMBooster

        try:
            lgb_booster = LightGBMBooster(model_file=str(model_path))
        except Exception as e:  # LightGBMError for a malformed file
            raise ModelFormatError(f"{model_path}: not a LightGBM model: {e}") from e
        if lgb_booster.num_feature() != len(names):
            raise ModelFormatError(
                f"{model_path}: {lgb_booster.num_feature()} features, expected {len(names)}"
            )
        return LightGBMServingModel(lgb_booster, names, metadata, n_threads=n_threads)
    if kind == "xgboost":
        from xgboost import Booster

        booster = Booster()
        booster.load_model(str(model_path))
        booster.set_param({"nthread": n_threads})
        if booster.num_features() != len(names):
            raise ModelFormatError(
                f"{model_path}: {booster.num_features()} features, expected {len(names)}"
            )
        return XGBoostServingModel(booster, names, metadata, n_threads=n_threads)
    if kind == "logreg":
        payload = json.loads(model_path.read_text())
        arrays = {k: np.asarray(payload[k], dtype=np.float64) for k in ("mean", "scale", "coef")}
        bad = [k for k, v in arrays.items() if v.shape != (len(names),)]
        if bad:
            raise ModelFormatError(f"{model_path}: arrays {bad} do not have {len(names)} values")
        return LogRegServingModel(
            arrays["mean"],
            arrays["scale"],
            arrays["coef"],
            float(payload["intercept"]),
            names,
            metadata,
        )
    import skops.io as sio

    forest = sio.load(model_path, trusted=["sklearn.tree._tree.Tree"])
    return ForestServingModel(_validate_forest(forest, len(names), n_threads), names, metadata)


def aggregation_matrix(encoded_names: Sequence[str], features: Sequence[str]) -> FloatArray:
    """(encoded columns [+ bias]) x features: 1 where an encoded column belongs to a feature.

    contributions @ this matrix sums a one-hot feature's columns into one reason
    code; serving and batch scoring both use it, so their reasons agree.

    The bias row stays zero (it belongs to no feature); an encoded column that maps
    to none of `features` is a ValueError naming it.
    """
    index = {name: j for j, name in enumerate(features)}
    out = np.zeros((len(encoded_names), len(features)), dtype=np.float64)
    for i, name in enumerate(encoded_names):
        if name == BIAS:
            continue
        base = name.split(NAME_SEPARATOR, 1)[0]
        if base not in index:
            raise ValueError(f"encoded column {name!r} maps to no model input feature")
        out[i, index[base]] = 1.0
    return out
