"""Training at scale, in-process: the cost of the default budget and the AUC cost of sampling.

Run: .venv/bin/python benchmarks/training_scale_bench.py --customers 1000000 \\
         [--config configs/training_pipeline.yaml] [--kinds lightgbm xgboost] \\
         [--fit-rows 50000 200000 full]

On synthetic customers (churn.data.synthetic.generate, one snapshot, seeded), split
80/20 stratified as the pipeline does, each family is trained with the config's
search budget, sampling and calibration (train_candidate, as the train_<family>
steps call it), once per `--fit-rows` value (the final fit on a stratified sample of
that many rows, or every training row), and scored on the held-out rows. Prints per
family and fit size: seconds, held-out ROC-AUC and PR-AUC, and the difference to the
full fit (the AUC cost of sampling); last, the process's peak RSS. The repeated
evaluation step costs about twice one search trial times n_repeats (it runs on the
same tuning sample) and is reported separately by --repeated.

This measures the training steps alone, not Feast's point-in-time join or ZenML's
overhead: benchmarks/scale_bench.py times the whole pipeline.
"""

from __future__ import annotations

import argparse
import resource
import time
from typing import Any

import yaml
from sklearn.metrics import average_precision_score, roc_auc_score

from churn.data.synthetic import generate
from churn.features.derived import add_derived
from churn.models.candidates import train_candidate
from churn.models.repeated import RepeatedConfig, repeated_evaluation
from churn.models.sampling import Sampling, stratified_rows
from churn.models.search import SearchBudget
from churn.models.split import split_frame
from churn.schema import LABEL, model_input_names
from churn.settings import PROJECT_ROOT


def _parameters(config: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / config).read_text())
    return data["parameters"]


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def main() -> None:
    """Parse the arguments, train, print one line per family and fit size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--config", default="configs/training_pipeline.yaml")
    parser.add_argument("--kinds", nargs="*", default=None)
    parser.add_argument("--fit-rows", nargs="*", default=["full"])
    parser.add_argument("--repeated", action="store_true")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    params = _parameters(args.config)
    started = time.perf_counter()
    frame = add_derived(generate(args.customers, seed=7))
    train, test = split_frame(frame, strategy="stratified", test_size=0.2, seed=args.seed)
    del frame
    print(
        f"{args.customers} synthetic customers: {len(train)} training, {len(test)} held-out "
        f"rows ({time.perf_counter() - started:.1f} s to generate)"
    )
    X, y = train[model_input_names()], train[LABEL].to_numpy()  # noqa: N806
    X_test, y_test = test[model_input_names()], test[LABEL].to_numpy()  # noqa: N806
    search = params["search"] and SearchBudget(**params["search"])
    sampling = params["sampling"]
    for kind in args.kinds or list(params["param_grid"]):
        full_auc: float | None = None
        for rows in args.fit_rows:
            fit_max = None if rows == "full" else int(rows)
            t0 = time.perf_counter()
            candidate = train_candidate(
                kind,
                X,
                y,
                params["param_grid"][kind],
                seed=args.seed,
                cv_folds=params["cv_folds"],
                search=search or None,
                sampling=Sampling(sampling["tune_max_rows"], fit_max),
                calibration=params["calibration"],
            )
            seconds = time.perf_counter() - t0
            p = candidate.model.predict_proba(X_test)[:, 1]
            auc = float(roc_auc_score(y_test, p))
            full_auc = auc if full_auc is None else full_auc
            print(
                f"{kind:14s} fit on {candidate.fit_rows:>7d} rows (tuned on "
                f"{candidate.tune_rows}, {candidate.search['trials']} trials, stopped by "
                f"{candidate.search['stopped_by']}): {seconds:6.1f} s, held-out ROC-AUC "
                f"{auc:.4f} (vs first fit {auc - full_auc:+.4f}), PR-AUC "
                f"{average_precision_score(y_test, p):.4f}, calibration "
                f"{candidate.calibrator.method}, peak RSS {_peak_rss_gb():.2f} GB",
                flush=True,
            )
        if args.repeated:
            t0 = time.perf_counter()
            rows_idx = stratified_rows(y, sampling["tune_max_rows"], args.seed)
            repeated_evaluation(
                kind,
                candidate.params,
                candidate.calibrator.method,
                X.iloc[rows_idx],
                y[rows_idx],
                RepeatedConfig(**params["repeated_evaluation"]),
                args.seed,
            )
            print(f"{kind:14s} repeated evaluation: {time.perf_counter() - t0:6.1f} s")
    print(f"total {time.perf_counter() - started:.1f} s, peak RSS {_peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
