"""Repeated stratified evaluation: each family's metrics as mean ± sd over many splits.

Why: one 80/20 split decides little on Telco. Across split seeds the best model's
held-out ROC-AUC spans about 0.84-0.86, more than the difference between the
families, so a champion chosen on one split is partly chosen by the split. Here
each family, with its chosen parameters and calibration method, is refitted on
`n_repeats` x `n_splits` stratified folds of the TRAINING rows (never the held-out
set), each repeat with its own fold seed, and every metric is reported per fold:

- roc_auc, pr_auc (average precision), brier and ece of the calibrated scores; the
  calibrator scoring fold k is fitted on the other folds' out-of-fold scores only
  (churn.models.calibration.cross_fitted), as in production;
- precision_at_recall, recall and f1 at the fold's operating point for
  `recall_target`: the highest threshold whose recall on the fold reaches the target
  (churn.models.evaluate.choose_threshold), i.e. "precision at recall >= target".

The champion is the family with the best mean ROC-AUC; the spread is the noise a
promotion must beat (churn.models.promotion).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from churn.models.calibration import (
    CalibrationMethod,
    brier,
    cross_fitted,
    expected_calibration_error,
)
from churn.models.candidates import ModelKind, fold_ids, out_of_fold
from churn.models.evaluate import ThresholdRule, choose_threshold

METRICS: Final = ("roc_auc", "pr_auc", "precision_at_recall", "recall", "f1", "brier", "ece")
# Repeat r's folds are drawn with seed + FOLD_SEED_OFFSET + r: other folds than the
# search's (seed), so the estimate is not the one the parameters were chosen on.
FOLD_SEED_OFFSET: Final = 1


@dataclass(frozen=True)
class RepeatedConfig:
    """The training YAML's `repeated_evaluation`."""

    n_splits: int
    n_repeats: int
    recall_target: float

    def __post_init__(self) -> None:
        if self.n_splits < 2 or self.n_repeats < 1:
            raise ValueError(
                f"repeated evaluation needs n_splits >= 2 and n_repeats >= 1, got "
                f"{self.n_splits}, {self.n_repeats}"
            )
        ThresholdRule("recall_target", recall_target=self.recall_target)  # validates it


def fold_metrics(
    y: npt.NDArray[np.int64], p: npt.NDArray[np.float64], recall_target: float
) -> dict[str, float]:
    """Every METRICS value of one fold's calibrated scores."""
    threshold = choose_threshold(y, p, ThresholdRule("recall_target", recall_target=recall_target))
    flagged = p >= threshold
    tp = int((flagged & (y == 1)).sum())
    precision = tp / int(flagged.sum())
    recall = tp / int(y.sum())
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "precision_at_recall": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "brier": brier(y, p),
        "ece": expected_calibration_error(y, p),
    }


def repeated_evaluation(
    kind: ModelKind,
    params: Mapping[str, Any],
    calibration: CalibrationMethod,
    X: pd.DataFrame,  # noqa: N803 (ML convention)
    y: Any,
    config: RepeatedConfig,
    seed: int,
    *,
    feature_version: int = 1,
) -> dict[str, Any]:
    """{metric: {"mean", "sd", "values"}} over every fold of every repeat, plus "folds".

    `X` holds the inputs of feature set `feature_version`, which the models encode.
    """
    labels = np.asarray(y).astype(np.int64)
    X = X.reset_index(drop=True)  # noqa: N806
    per_fold: dict[str, list[float]] = {m: [] for m in METRICS}
    for r in range(config.n_repeats):
        folds = fold_ids(labels, config.n_splits, seed + FOLD_SEED_OFFSET + r)
        _, _, oof = out_of_fold(
            kind, params, X, labels, folds, seed, feature_version=feature_version
        )
        calibrated = oof if calibration == "none" else cross_fitted(calibration, oof, labels, folds)
        for k in range(config.n_splits):
            inside = folds == k
            for name, value in fold_metrics(
                labels[inside], calibrated[inside], config.recall_target
            ).items():
                per_fold[name].append(value)
    out: dict[str, Any] = {
        name: {
            "mean": float(np.mean(values)),
            "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "values": values,
        }
        for name, values in per_fold.items()
    }
    out["folds"] = config.n_splits * config.n_repeats
    out["rows"] = len(labels)
    return out


def mean_auc(summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """kind -> mean repeated ROC-AUC (what the champion is chosen on)."""
    return {kind: float(s["roc_auc"]["mean"]) for kind, s in summaries.items()}
