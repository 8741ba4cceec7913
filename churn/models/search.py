"""Hyper-parameter search: Optuna's TPE sampler, seeded, within a trial and time budget.

Each trial is scored by stratified k-fold ROC-AUC on the TRAINING rows only (the
held-out set is never seen), on a stratified subsample of at most `max_rows` rows
(churn.models.sampling): the search's cost is bounded whatever the data size, while
the final model can still be fitted on every training row.

The configured grid points of a family are enqueued as the first trials, so the
search starts from the known good settings and can only improve on them (on the
CV estimate). The study stops after `n_trials` trials or `timeout_s` seconds,
whichever comes first; with the trial budget binding, the same data and seed give
the same trials (TPE is seeded; every model is seeded). A study cut by the clock
says so (`stopped_by`).

Search spaces come from the training YAML, one entry per parameter:
  {low: 2, high: 6}                  integers (both bounds are ints)
  {low: 0.01, high: 0.3, log: true}  floats, optionally on a log scale
  {low: 100, high: 500, step: 50}    integers on a step
  {choices: [100, 200]}              a categorical choice
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
# (mean AUC, fold AUCs, OOF scores, fold id per row) of one parameter set.
Objective = Callable[[dict[str, Any]], tuple[float, tuple[float, ...], FloatArray]]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchBudget:
    """How much search one family gets (the training YAML's `search`)."""

    n_trials: int
    timeout_s: float
    space: Mapping[str, Mapping[str, Mapping[str, Any]]]

    def __post_init__(self) -> None:
        if self.n_trials < 1 or self.timeout_s <= 0:
            raise ValueError(
                f"search needs n_trials >= 1 and timeout_s > 0, got {self.n_trials}, "
                f"{self.timeout_s}"
            )


@dataclass(frozen=True)
class Trial:
    """One evaluated parameter set."""

    number: int
    params: dict[str, Any]
    mean_auc: float
    std_auc: float
    fold_aucs: tuple[float, ...]
    seconds: float


@dataclass
class SearchResult:
    """Every trial, the best one and its out-of-fold scores."""

    trials: list[Trial]
    best: Trial
    best_oof: FloatArray
    stopped_by: str  # "trials", "timeout" or "grid"
    seconds: float


def _suggest(trial: Any, name: str, spec: Mapping[str, Any]) -> Any:
    """One parameter from its YAML spec (module docstring)."""
    if "choices" in spec:
        return trial.suggest_categorical(name, list(spec["choices"]))
    low, high = spec["low"], spec["high"]
    log = bool(spec.get("log", False))
    if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool):
        return trial.suggest_int(name, low, high, step=int(spec.get("step", 1)), log=log)
    step = spec.get("step")
    return trial.suggest_float(
        name, float(low), float(high), step=None if step is None else float(step), log=log
    )


def check_space(
    kind: str, space: Mapping[str, Mapping[str, Any]], grid: Sequence[Mapping[str, Any]]
) -> None:
    """ValueError when a spec is malformed or a grid point names a parameter outside it."""
    for name, spec in space.items():
        if "choices" not in spec and not {"low", "high"} <= set(spec):
            raise ValueError(f"search space {kind}.{name} needs 'choices' or 'low' and 'high'")
    for point in grid:
        outside = sorted(set(point) - set(space))
        if outside:
            raise ValueError(
                f"param_grid point {dict(point)} of {kind!r} sets {outside}, which the search "
                f"space does not tune; add them to search.space.{kind}"
            )
        for name, value in point.items():
            if not _within(space[name], value):
                raise ValueError(
                    f"param_grid point {dict(point)} of {kind!r}: {name}={value!r} is outside "
                    f"search.space.{kind}.{name} {dict(space[name])}"
                )


def _within(spec: Mapping[str, Any], value: Any) -> bool:
    """Whether a grid value lies in its parameter's search range (or choices)."""
    if "choices" in spec:
        return value in list(spec["choices"])
    return bool(spec["low"] <= value <= spec["high"])


def run_search(
    kind: str,
    objective: Objective,
    grid: Sequence[Mapping[str, Any]],
    budget: SearchBudget | None,
    seed: int,
) -> SearchResult:
    """The grid alone (budget None) or a seeded TPE study started from the grid points."""
    started = time.perf_counter()
    if budget is None:
        trials, oofs = [], []
        for number, point in enumerate(grid):
            t0 = time.perf_counter()
            mean, folds, oof = objective(dict(point))
            trials.append(
                Trial(
                    number, dict(point), mean, float(np.std(folds)), folds, time.perf_counter() - t0
                )
            )
            oofs.append(oof)
        best = max(range(len(trials)), key=lambda i: trials[i].mean_auc)  # first on ties
        return SearchResult(trials, trials[best], oofs[best], "grid", time.perf_counter() - started)
    return _study(kind, objective, grid, budget, seed, started)


def _study(
    kind: str,
    objective: Objective,
    grid: Sequence[Mapping[str, Any]],
    budget: SearchBudget,
    seed: int,
    started: float,
) -> SearchResult:
    import optuna

    space = budget.space.get(kind)
    if not space:
        raise ValueError(f"search.space has no entry for model kind {kind!r}")
    check_space(kind, space, grid)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        study_name=f"churn-{kind}",
    )
    for point in grid:
        study.enqueue_trial(dict(point), skip_if_exists=True)
    trials: list[Trial] = []
    best_oof: list[FloatArray] = []

    def run(trial: Any) -> float:
        params = {name: _suggest(trial, name, spec) for name, spec in space.items()}
        t0 = time.perf_counter()
        mean, folds, oof = objective(params)
        trials.append(
            Trial(trial.number, params, mean, float(np.std(folds)), folds, time.perf_counter() - t0)
        )
        if not best_oof or mean > max(t.mean_auc for t in trials[:-1]):
            best_oof[:] = [oof]
        return mean

    study.optimize(run, n_trials=budget.n_trials, timeout=budget.timeout_s)
    best = max(trials, key=lambda t: t.mean_auc)  # first on ties, like the study
    stopped_by = "trials" if len(trials) >= budget.n_trials else "timeout"
    if stopped_by == "timeout":
        logger.warning(
            "%s: search stopped by its %.0f s timeout after %d of %d trials (results then "
            "depend on machine speed)",
            kind,
            budget.timeout_s,
            len(trials),
            budget.n_trials,
        )
    return SearchResult(trials, best, best_oof[0], stopped_by, time.perf_counter() - started)


def history_plot(kind: str, trials: Sequence[Trial], path: Any) -> None:
    """PNG of each trial's CV ROC-AUC and the best so far (MLflow's study artifact)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numbers = [t.number for t in trials]
    values = [t.mean_auc for t in trials]
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    try:
        ax.plot(numbers, values, "o", alpha=0.6, label="trial")
        ax.plot(numbers, np.maximum.accumulate(values), "-", label="best so far")
        ax.set(xlabel="trial", ylabel="CV ROC-AUC", title=f"{kind}: search history")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
