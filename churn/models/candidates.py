"""Candidate model families and their selection by cross-validated ROC-AUC.

Three families, from the simplest to the strongest, so that every report shows how
much the complex model buys over a linear baseline:

- "logreg": SchemaEncoder -> StandardScaler -> LogisticRegression(class_weight=balanced)
- "random_forest": SchemaEncoder -> RandomForestClassifier
- "xgboost": SchemaEncoder -> XGBClassifier(tree_method=hist)

Each family's hyper-parameters are chosen on a SMALL grid by stratified k-fold ROC-AUC
on the training set only (the held-out set is never seen here), then the family is
refitted on the whole training set. Everything is seeded: the same data, grid and
seed give the same models and scores. Thread counts are fixed and small (2 cores on
the development machines; XGBoost's hist method and sklearn's forests are
deterministic for a fixed seed regardless of threads).
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

from churn.models.encoding import SchemaEncoder

ModelKind = Literal["logreg", "random_forest", "xgboost"]
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
}


def build_pipeline(kind: ModelKind, params: Mapping[str, Any], seed: int) -> Pipeline:
    """An unfitted pipeline: encoder -> (scaler for logreg) -> estimator of `kind`.

    `params` are passed to the estimator and override the family's defaults; the
    seed fixes every source of randomness of the estimator.
    """
    encoder = ("encoder", SchemaEncoder())
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
    raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")


@dataclass(frozen=True)
class CvResult:
    """Cross-validated ROC-AUC of one parameter set."""

    params: dict[str, Any]
    mean_auc: float
    std_auc: float
    fold_aucs: tuple[float, ...]


@dataclass
class TrainedCandidate:
    """One family's chosen parameters, CV evidence, and the model refitted on all of X.

    `oof_scores` are the out-of-fold churn probabilities of the chosen parameters on
    the training rows (in X's row order): an honest, held-out-free basis for choosing
    the operating threshold.
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


def _as_labels(y: Sequence[int] | npt.NDArray[Any] | pd.Series[Any]) -> npt.NDArray[np.int64]:
    labels = np.asarray(y).astype(np.int64)
    values = set(np.unique(labels).tolist())
    if not values <= {0, 1}:
        raise ValueError(f"labels must be 0/1, got values {sorted(values)}")
    return labels


def _cross_validate(
    kind: ModelKind,
    params: dict[str, Any],
    X: pd.DataFrame,  # noqa: N803 (ML convention)
    y: npt.NDArray[np.int64],
    seed: int,
    cv_folds: int,
) -> tuple[CvResult, npt.NDArray[np.float64]]:
    folds = StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
    oof = np.zeros(len(y), dtype=np.float64)
    aucs: list[float] = []
    template = build_pipeline(kind, params, seed)
    for train_idx, valid_idx in folds.split(np.zeros(len(y)), y):
        model = clone(template).fit(X.iloc[train_idx], y[train_idx])
        scores = model.predict_proba(X.iloc[valid_idx])[:, 1]
        oof[valid_idx] = scores
        aucs.append(float(roc_auc_score(y[valid_idx], scores)))
    result = CvResult(dict(params), float(np.mean(aucs)), float(np.std(aucs)), tuple(aucs))
    return result, oof


def train_candidate(
    kind: ModelKind,
    X: pd.DataFrame,  # noqa: N803 (ML convention)
    y: Sequence[int] | npt.NDArray[Any] | pd.Series[Any],
    param_grid: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    cv_folds: int = 5,
) -> TrainedCandidate:
    """Choose `kind`'s parameters by CV ROC-AUC (first best wins ties), refit on all of X."""
    if not param_grid:
        raise ValueError(f"empty parameter grid for model kind {kind!r}")
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
    labels = _as_labels(y)
    X = X.reset_index(drop=True)  # noqa: N806
    started = time.perf_counter()
    results: list[tuple[CvResult, npt.NDArray[np.float64]]] = [
        _cross_validate(kind, dict(params), X, labels, seed, cv_folds) for params in param_grid
    ]
    best, oof = max(results, key=lambda r: r[0].mean_auc)  # max keeps the first on ties
    pipeline = build_pipeline(kind, best.params, seed).fit(X, labels)
    return TrainedCandidate(
        kind=kind,
        params=best.params,
        seed=seed,
        cv_folds=cv_folds,
        pipeline=pipeline,
        cv_auc=best.mean_auc,
        cv_auc_std=best.std_auc,
        cv_results=[r for r, _ in results],
        oof_scores=oof,
        fit_seconds=time.perf_counter() - started,
    )


def train_candidates(
    X: pd.DataFrame,  # noqa: N803 (ML convention)
    y: Sequence[int] | npt.NDArray[Any] | pd.Series[Any],
    grid: Mapping[str, Sequence[Mapping[str, Any]]],
    seed: int,
    cv_folds: int = 5,
) -> dict[str, TrainedCandidate]:
    """Train every family named in `grid` (kind -> list of parameter dicts)."""
    unknown = sorted(set(grid) - set(MODEL_KINDS))
    if unknown:
        raise ValueError(f"unknown model kinds in grid: {unknown}; expected {MODEL_KINDS}")
    return {
        kind: train_candidate(kind, X, y, params, seed=seed, cv_folds=cv_folds)  # type: ignore[arg-type]
        for kind, params in grid.items()
    }


def best_candidate(candidates: Mapping[str, TrainedCandidate]) -> TrainedCandidate:
    """The candidate with the highest CV ROC-AUC (training data only, never held-out)."""
    if not candidates:
        raise ValueError("no candidates to choose from")
    return max(candidates.values(), key=lambda c: c.cv_auc)
