"""Candidate model families, their parameter search and their calibration.

Four families, from the simplest to the strongest, so that every report shows how
much the complex models buy over a linear baseline:

- "logreg": SchemaEncoder -> StandardScaler -> LogisticRegression(class_weight=balanced)
- "random_forest": SchemaEncoder -> RandomForestClassifier
- "xgboost": SchemaEncoder -> XGBClassifier(tree_method=hist)
- "lightgbm": SchemaEncoder -> LGBMClassifier (leaf-wise trees, histogram splits)

Each family's hyper-parameters are chosen by stratified k-fold ROC-AUC on the training
set only (the held-out set is never seen here): on the configured grid alone, or by
a seeded Optuna TPE search that starts from the grid (churn.models.search), on a
stratified sample of at most `sampling.tune_max_rows` rows. The chosen parameters'
out-of-fold scores decide the probability calibration (churn.models.calibration);
then the family is refitted on every training row, or a stratified sample of
`sampling.fit_max_rows`. Everything is seeded: the same data, budget and seed give
the same models and scores. Thread counts are fixed and small (2 cores on the
development machines; the tree libraries are deterministic for a fixed seed
regardless of threads).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from churn.models.calibration import (
    IDENTITY,
    CalibratedModel,
    CalibrationMethod,
    Calibrator,
    choose_calibration,
)
from churn.models.encoding import SchemaEncoder
from churn.models.sampling import FULL, Sampling, stratified_rows
from churn.models.search import SearchBudget, Trial, run_search

ModelKind = Literal["logreg", "random_forest", "xgboost", "lightgbm"]
MODEL_KINDS: Final[tuple[str, ...]] = get_args(ModelKind)

# Threads per model. Measured on Telco (5.6k rows, 2 cores shared with other work):
# XGBoost fits in 0.37 s with 1 thread vs 1.27 s with 2, and a forest predicts one row
# in 17 ms with 1 thread vs 52 ms with 2: at this size thread start-up dominates.
N_JOBS: Final = 1

# Small default grid: ~10 CV fits per family keep training on Telco well under a
# minute on 2 cores. Values are the usual strong settings for ~5k-row tabular data.
DEFAULT_GRID: Final[dict[str, list[dict[str, Any]]]] = {
    "logreg": [{"C": 0.1}, {"C": 1.0}],
    "random_forest": [
        {"n_estimators": 100, "max_depth": 8, "min_samples_leaf": 5},
        {"n_estimators": 100, "max_depth": 12, "min_samples_leaf": 10},
    ],
    "xgboost": [
        {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8},
        {"n_estimators": 300, "max_depth": 2, "learning_rate": 0.05, "subsample": 0.8},
    ],
    "lightgbm": [
        {"n_estimators": 200, "num_leaves": 8, "learning_rate": 0.05, "min_child_samples": 40},
    ],
}


def _lightgbm(params: Mapping[str, Any], seed: int) -> Any:
    """LGBMClassifier, seeded and deterministic, quiet, one thread by default.

    `subsample` only bags rows when `subsample_freq` > 0: set to 1 whenever subsample
    is below 1, so a tuned subsample is never silently ignored.
    """
    from lightgbm import LGBMClassifier

    args: dict[str, Any] = {
        "n_estimators": 200,
        "n_jobs": N_JOBS,
        "verbose": -1,
        "deterministic": True,
        "force_row_wise": True,
    }
    args.update(params)
    if args.get("subsample", 1.0) < 1.0:
        args.setdefault("subsample_freq", 1)
    return LGBMClassifier(random_state=seed, **args)


def build_pipeline(
    kind: ModelKind, params: Mapping[str, Any], seed: int, feature_version: int = 1
) -> Pipeline:
    """An unfitted pipeline: encoder -> (scaler for logreg) -> estimator of `kind`.

    `params` are passed to the estimator and override the family's defaults; the
    seed fixes every source of randomness of the estimator; the encoder encodes
    churn.schema's feature set `feature_version`.
    """
    encoder = ("encoder", SchemaEncoder(feature_version=feature_version))
    if kind == "logreg":
        # newton-cholesky: exact for ~50 one-hot features and thousands of rows, 4 iterations
        # and 0.06 s on Telco where lbfgs needed 36 iterations and 1.1 s.
        logreg_args: dict[str, Any] = {
            "class_weight": "balanced",
            "solver": "newton-cholesky",
            "max_iter": 200,
        }
        logreg_args.update(params)
        model = LogisticRegression(random_state=seed, **logreg_args)
        return Pipeline([encoder, ("scaler", StandardScaler()), ("model", model)])
    if kind == "random_forest":
        rf_args: dict[str, Any] = {"n_estimators": 100, "n_jobs": N_JOBS}
        rf_args.update(params)
        return Pipeline([encoder, ("model", RandomForestClassifier(random_state=seed, **rf_args))])
    if kind == "xgboost":
        xgb_args: dict[str, Any] = {
            "n_estimators": 200,
            "tree_method": "hist",
            "n_jobs": N_JOBS,
            "eval_metric": "logloss",
        }
        xgb_args.update(params)
        return Pipeline([encoder, ("model", XGBClassifier(random_state=seed, **xgb_args))])
    if kind == "lightgbm":
        return Pipeline([encoder, ("model", _lightgbm(params, seed))])
    raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")


@dataclass(frozen=True)
class CvResult:
    """Cross-validated ROC-AUC of one parameter set (one grid point or search trial)."""

    params: dict[str, Any]
    mean_auc: float
    std_auc: float
    fold_aucs: tuple[float, ...]


@dataclass
class TrainedCandidate:
    """One family's chosen parameters, CV evidence, calibration and its fitted model.

    `oof_scores` are the chosen parameters' raw out-of-fold churn probabilities on the
    tuning rows (every training row unless sampled), `oof_labels` their labels: an
    honest, held-out-free basis for the calibration and the operating threshold.
    `model` is what is evaluated and served: the pipeline through its calibrator.
    """

    kind: ModelKind
    params: dict[str, Any]
    seed: int
    cv_folds: int
    pipeline: Pipeline
    cv_auc: float
    cv_auc_std: float
    cv_results: list[CvResult]
    oof_scores: npt.NDArray[np.float64] = field(repr=False)
    fit_seconds: float
    oof_labels: npt.NDArray[np.int64] = field(
        repr=False, default_factory=lambda: np.zeros(0, np.int64)
    )
    calibrator: Calibrator = IDENTITY
    calibration: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    tune_rows: int = 0
    fit_rows: int = 0

    @property
    def model(self) -> CalibratedModel:
        """The pipeline with its calibration: what evaluation, gates and serving score."""
        return CalibratedModel(self.pipeline, self.calibrator)

    @property
    def calibrated_oof(self) -> npt.NDArray[np.float64]:
        """Out-of-fold scores through the calibrator (the threshold rule's input)."""
        return self.calibrator.apply(self.oof_scores)


def _as_labels(y: Sequence[int] | npt.NDArray[Any] | pd.Series[Any]) -> npt.NDArray[np.int64]:
    labels = np.asarray(y).astype(np.int64)
    values = set(np.unique(labels).tolist())
    if not values <= {0, 1}:
        raise ValueError(f"labels must be 0/1, got values {sorted(values)}")
    return labels


def fold_ids(y: npt.NDArray[np.int64], cv_folds: int, seed: int) -> npt.NDArray[np.int64]:
    """The stratified fold of every row (the one fold assignment of a family's search)."""
    folds = StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
    out = np.empty(len(y), dtype=np.int64)
    for k, (_, valid_idx) in enumerate(folds.split(np.zeros(len(y)), y)):
        out[valid_idx] = k
    return out


def out_of_fold(
    kind: ModelKind,
    params: Mapping[str, Any],
    X: pd.DataFrame,  # noqa: N803 (ML convention)
    y: npt.NDArray[np.int64],
    folds: npt.NDArray[np.int64],
    seed: int,
    *,
    feature_version: int = 1,
) -> tuple[float, tuple[float, ...], npt.NDArray[np.float64]]:
    """(mean fold ROC-AUC, fold AUCs, OOF scores) of `params` over the given folds."""
    oof = np.zeros(len(y), dtype=np.float64)
    aucs: list[float] = []
    template = build_pipeline(kind, params, seed, feature_version)
    for k in np.unique(folds).tolist():
        valid = folds == k
        model = clone(template).fit(X[~valid], y[~valid])
        scores = model.predict_proba(X[valid])[:, 1]
        oof[valid] = scores
        aucs.append(float(roc_auc_score(y[valid], scores)))
    return float(np.mean(aucs)), tuple(aucs), oof


def _cv_result(trial: Trial) -> CvResult:
    return CvResult(dict(trial.params), trial.mean_auc, trial.std_auc, tuple(trial.fold_aucs))


def train_candidate(
    kind: ModelKind,
    X: pd.DataFrame,  # noqa: N803 (ML convention)
    y: Sequence[int] | npt.NDArray[Any] | pd.Series[Any],
    param_grid: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    cv_folds: int = 5,
    search: SearchBudget | None = None,
    sampling: Sampling = FULL,
    calibration: Sequence[CalibrationMethod] = (),
    feature_version: int = 1,
) -> TrainedCandidate:
    """Choose `kind`'s parameters by CV ROC-AUC, calibrate on OOF scores, refit.

    `search` None scores the grid alone (first best wins ties); otherwise a seeded TPE
    study starts from the grid points. `calibration` lists the methods to try
    ("sigmoid", "isotonic"); empty keeps the raw probabilities. The models encode
    churn.schema's feature set `feature_version` (X must hold its inputs).
    """
    if not param_grid:
        raise ValueError(f"empty parameter grid for model kind {kind!r}")
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
    labels = _as_labels(y)
    X = X.reset_index(drop=True)  # noqa: N806
    started = time.perf_counter()
    tune = stratified_rows(labels, sampling.tune_max_rows, seed)
    X_tune, y_tune = X.iloc[tune].reset_index(drop=True), labels[tune]  # noqa: N806
    folds = fold_ids(y_tune, cv_folds, seed)

    def objective(params: dict[str, Any]) -> tuple[float, tuple[float, ...], Any]:
        return out_of_fold(
            kind, params, X_tune, y_tune, folds, seed, feature_version=feature_version
        )

    result = run_search(kind, objective, param_grid, search, seed)
    calibrator, report = choose_calibration(result.best_oof, y_tune, folds, calibration)
    fit = stratified_rows(labels, sampling.fit_max_rows, seed)
    pipeline = build_pipeline(kind, result.best.params, seed, feature_version)
    pipeline.fit(X.iloc[fit], labels[fit])
    return TrainedCandidate(
        kind=kind,
        params=dict(result.best.params),
        seed=seed,
        cv_folds=cv_folds,
        pipeline=pipeline,
        cv_auc=result.best.mean_auc,
        cv_auc_std=result.best.std_auc,
        cv_results=[_cv_result(t) for t in result.trials],
        oof_scores=result.best_oof,
        oof_labels=y_tune,
        fit_seconds=time.perf_counter() - started,
        calibrator=calibrator,
        calibration=report.to_json(),
        search={
            "trials": len(result.trials),
            "stopped_by": result.stopped_by,
            "seconds": result.seconds,
            "best_trial": result.best.number,
        },
        tune_rows=len(tune),
        fit_rows=len(fit),
    )


def train_candidates(
    X: pd.DataFrame,  # noqa: N803 (ML convention)
    y: Sequence[int] | npt.NDArray[Any] | pd.Series[Any],
    grid: Mapping[str, Sequence[Mapping[str, Any]]],
    seed: int,
    cv_folds: int = 5,
    **options: Any,
) -> dict[str, TrainedCandidate]:
    """Train every family named in `grid` (kind -> list of parameter dicts).

    `options` (search, sampling, calibration, feature_version) are passed to
    train_candidate.
    """
    unknown = sorted(set(grid) - set(MODEL_KINDS))
    if unknown:
        raise ValueError(f"unknown model kinds in grid: {unknown}; expected {MODEL_KINDS}")
    return {
        kind: train_candidate(kind, X, y, params, seed=seed, cv_folds=cv_folds, **options)  # type: ignore[arg-type]
        for kind, params in grid.items()
    }


def best_candidate(
    candidates: Mapping[str, TrainedCandidate],
    repeated_auc: Mapping[str, float] | None = None,
) -> TrainedCandidate:
    """The candidate with the highest repeated-evaluation mean ROC-AUC when given,
    else the highest search CV ROC-AUC (training data only, never held-out)."""
    if not candidates:
        raise ValueError("no candidates to choose from")
    if repeated_auc is not None:
        missing = sorted(set(candidates) - set(repeated_auc))
        if missing:
            raise ValueError(f"no repeated evaluation for {missing}")
        return max(candidates.values(), key=lambda c: repeated_auc[c.kind])
    return max(candidates.values(), key=lambda c: c.cv_auc)
