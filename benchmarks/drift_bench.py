"""Drift detector figures on the real Telco: timings, false-alarm rate, detection speed.

Run: .venv/bin/python benchmarks/drift_bench.py [--csv PATH] [--splits 5] [--windows 200]

Prints
- cold import of alibi-detect, fit, save, load (in-process and in a fresh process),
  predict median/p95 for 100- and 500-row windows (from a DataFrame and from a
  mapping of numpy arrays, the serving path);
- the false-alarm rate: windows resampled with replacement from a held-out split
  (a "reference-like" population), over several random train/held-out splits, at
  p_val 0.05 and 0.01 (Bonferroni: a window alarms when its smallest per-feature
  p-value is below p_val / n_features, so one set of predictions serves both);
- detection of the shifted population of tests/drift (month-to-month customers,
  monthly charges x1.2): share of windows of each size that alarm, and the first
  alarming window of run_windowed over its first 500 rows.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn import schema
from churn.data.telco import load_telco
from churn.drift import AlibiTabularDrift, fit_detector, run_windowed
from churn.drift.alibi import DEFAULT_P_VAL
from churn.features.derived import add_derived
from churn.settings import PROJECT_ROOT

TRAIN_SHARE = 0.8
P_VALS = (0.05, 0.01)
WINDOW_SIZES = (200, 500)
SHIFT_SIZES = (10, 25, 50, 100, 200, 500)


def split(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A random train / held-out split of the customers."""
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = int(TRAIN_SHARE * len(frame))
    return frame.iloc[order[:cut]], frame.iloc[order[cut:]]


def shifted(
    population: pd.DataFrame,
    n_rows: int,
    seed: int,
    *,
    month_to_month: bool = True,
    charge_factor: float = 1.2,
) -> pd.DataFrame:
    """Customers resampled (only month-to-month ones by default), monthly charges scaled
    and clipped to the schema max, derived features recomputed: the shift of tests/drift."""
    pool = population[population["contract"] == "Month-to-month"] if month_to_month else population
    rows = pool.iloc[np.random.default_rng(seed).integers(0, len(pool), n_rows)].copy()
    rows["monthly_charges"] = np.minimum(
        rows["monthly_charges"] * charge_factor, schema.MONTHLY_CHARGES_RANGE[1]
    )
    return add_derived(rows[schema.feature_names()])


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Wall times in ms of `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def summary(times: list[float]) -> str:
    """median / p95 in ms."""
    p95 = float(np.percentile(times, 95))
    return f"median {statistics.median(times):7.2f} ms  p95 {p95:7.2f} ms"


def bench_timings(train: pd.DataFrame, held: pd.DataFrame) -> None:
    """Import, fit, predict, save and load times."""
    start = time.perf_counter()
    import alibi_detect.cd  # noqa: F401  (measuring the cold import)

    print(f"import alibi_detect.cd (cold):  {time.perf_counter() - start:6.2f} s")
    start = time.perf_counter()
    detector = fit_detector(train)
    print(f"fit ({detector.n_reference_rows} reference rows): {time.perf_counter() - start:6.2f} s")
    rng = np.random.default_rng(7)
    for n in (100, 500):
        window = held.iloc[rng.integers(0, len(held), n)]
        arrays = {name: window[name].to_numpy() for name in detector.feature_names}
        detector.predict(window)
        for label, rows in (("DataFrame: ", window), ("numpy dict:", arrays)):
            times = timed(partial(detector.predict, rows), 50)
            print(f"predict {n:3d} rows, {label}  {summary(times)}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "detector"
        start = time.perf_counter()
        detector.save(path)
        print(f"save:                           {time.perf_counter() - start:6.3f} s")
        size_kb = sum(f.stat().st_size for f in path.iterdir()) / 1024
        print(f"saved size:                     {size_kb:6.0f} KiB")
        load_times = timed(partial(AlibiTabularDrift.load, path), 5)
        print(f"load (alibi already imported):  {summary(load_times)}")
        code = (
            "import time, pathlib; t = time.perf_counter(); "
            "from churn.drift import load_detector; "
            f"load_detector(pathlib.Path({str(path)!r})); "
            "print(time.perf_counter() - t)"
        )
        out = (
            subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        print(
            f"load in a fresh process:        {float(out):6.2f} s (includes importing alibi-detect)"
        )


def bench_false_alarms(frame: pd.DataFrame, n_splits: int, n_windows: int) -> None:
    """False-alarm rate of reference-like windows over several random splits."""
    print(f"\nfalse-alarm rate: {n_windows} windows per split, resampled with replacement")
    print(
        "split  window  "
        + "  ".join(f"p_val={p:<5}" for p in P_VALS)
        + "  held-out as one window: min p"
    )
    totals = {(p, n): 0.0 for p in P_VALS for n in WINDOW_SIZES}
    for seed in range(n_splits):
        train, held = split(frame, seed)
        detector = fit_detector(train)
        whole = detector.predict(held)
        n_features = len(detector.feature_names)
        for n in WINDOW_SIZES:
            rng = np.random.default_rng(1000 + seed)
            smallest = np.array(
                [
                    detector.predict(held.iloc[rng.integers(0, len(held), n)]).p_value
                    for _ in range(n_windows)
                ]
            )
            rates = [float((smallest < p / n_features).mean()) for p in P_VALS]
            for p, rate in zip(P_VALS, rates, strict=True):
                totals[(p, n)] += rate / n_splits
            worst = min(whole.p_values, key=whole.p_values.__getitem__)
            print(
                f"{seed:5d}  {n:6d}  "
                + "  ".join(f"{r:11.3f}" for r in rates)
                + f"  {whole.p_value:.1e} ({worst})"
            )
    for n in WINDOW_SIZES:
        print(f" mean  {n:6d}  " + "  ".join(f"{totals[(p, n)]:11.3f}" for p in P_VALS))


def bench_detection(frame: pd.DataFrame, n_draws: int) -> None:
    """How soon the shifted population of the tests alarms, at the default p_val."""
    train, held = split(frame, 0)
    detector = fit_detector(train)
    variants: dict[str, dict[str, Any]] = {
        "month-to-month, charges x1.2 (tests)": {},
        "month-to-month only": {"charge_factor": 1.0},
        "all customers, charges x1.05": {"month_to_month": False, "charge_factor": 1.05},
    }
    print(f"\nshifted populations (p_val={DEFAULT_P_VAL}): share of {n_draws} windows that alarm")
    print("rows  " + "  ".join(f"{name:>36}" for name in variants))
    for n in SHIFT_SIZES:
        rates = [
            sum(
                detector.predict(shifted(held, n, 100 + d, **kwargs)).is_drift
                for d in range(n_draws)
            )
            / n_draws
            for kwargs in variants.values()
        ]
        print(f"{n:4d}  " + "  ".join(f"{r:36.2f}" for r in rates))
    stream = shifted(held, 500, 0)
    for window_size in (50, 100, 500):
        results = run_windowed(detector, stream, window_size)
        first = next((i for i, r in enumerate(results) if r.is_drift), None)
        rows = "never" if first is None else f"window {first}, by row {(first + 1) * window_size}"
        top = results[0].drifted_features()[:3]
        print(f"  run_windowed(window_size={window_size}): first alarm {rows}; top features {top}")


def _test_inputs() -> Any:
    """tests/inputs.py, the one place that finds the Telco CSV (imported on demand)."""
    sys.path.insert(0, str(PROJECT_ROOT / "tests"))
    import inputs

    return inputs


def main() -> None:
    """Parse arguments, load the real Telco once, print every figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--csv", type=Path, default=None, help="Telco CSV (default: tests/inputs.py finds it)"
    )
    parser.add_argument(
        "--splits", type=int, default=5, help="random splits for the false-alarm rate"
    )
    parser.add_argument("--windows", type=int, default=200, help="windows per split and size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="churn-drift-bench-") as tmp:
        csv, label = _test_inputs().benchmark_telco_csv(args.csv, Path(tmp))
        frame = add_derived(load_telco(csv))
    train, held = split(frame, 0)
    print(f"{label}: {len(frame)} customers, train {len(train)}, held-out {len(held)}")
    bench_timings(train, held)
    bench_false_alarms(frame, args.splits, args.windows)
    bench_detection(frame, n_draws=50)


if __name__ == "__main__":
    main()
