"""Noise-aware promotion: a paired bootstrap of the challenger-minus-champion difference.

Why: on Telco's 1409 held-out customers one split's ROC-AUC moves by about ±0.01
with the split alone, more than the difference between good models. Comparing two
point estimates promotes whichever model the split favoured. Here both models score
the SAME held-out customers; those customers are resampled (stratified: churners and
stayers separately, so every resample has both classes) `n_bootstrap` times, the
metric difference is computed on each resample, and the challenger is promoted only
when the lower end of the `confidence` interval of the difference is above
`min_improvement`. The pairing removes the customers' shared difficulty from the
noise, so a real gain of a few thousandths can still show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class NoiseRule:
    """The training YAML's `promotion_noise`."""

    n_bootstrap: int
    confidence: float
    seed: int

    def __post_init__(self) -> None:
        if self.n_bootstrap < 100 or not 0.5 < self.confidence < 1.0:
            raise ValueError(
                f"promotion_noise needs n_bootstrap >= 100 and confidence in (0.5, 1), got "
                f"{self.n_bootstrap}, {self.confidence}"
            )


@dataclass(frozen=True)
class PairedDifference:
    """Challenger minus champion (in the metric's better direction) and its interval."""

    difference: float
    low: float
    high: float
    n: int
    n_bootstrap: int
    confidence: float


def paired_bootstrap(
    y: Any,
    challenger: Any,
    champion: Any,
    scorer: Callable[[Any, Any], float],
    higher_is_better: bool,
    rule: NoiseRule,
) -> PairedDifference:
    """The metric's gain of `challenger` over `champion` on the same customers, with a
    percentile interval from stratified resamples of those customers."""
    labels = np.asarray(y).astype(np.int64)
    a = np.asarray(challenger, dtype=np.float64)
    b = np.asarray(champion, dtype=np.float64)
    if not a.shape == b.shape == labels.shape:
        raise ValueError(f"scores {a.shape} and {b.shape} do not match labels {labels.shape}")
    sign = 1.0 if higher_is_better else -1.0

    def gain(index: Any) -> float:
        return sign * (scorer(labels[index], a[index]) - scorer(labels[index], b[index]))

    rng = np.random.default_rng(rule.seed)
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    gains = np.empty(rule.n_bootstrap, dtype=np.float64)
    for i in range(rule.n_bootstrap):
        index = np.concatenate(
            [
                rng.choice(positives, size=positives.size, replace=True),
                rng.choice(negatives, size=negatives.size, replace=True),
            ]
        )
        gains[i] = gain(index)
    tail = (1.0 - rule.confidence) / 2.0
    low, high = np.quantile(gains, [tail, 1.0 - tail])
    return PairedDifference(
        difference=gain(np.arange(labels.size)),
        low=float(low),
        high=float(high),
        n=int(labels.size),
        n_bootstrap=rule.n_bootstrap,
        confidence=rule.confidence,
    )
