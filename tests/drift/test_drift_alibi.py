"""The alibi-detect backend on the real Telco: false alarms, detection, persistence, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn import schema
from churn.drift import (
    SIDECAR_NAME,
    AlibiTabularDrift,
    DetectorMismatchError,
    DriftDetector,
    DriftInputError,
    FeatureEncoder,
    fit_detector,
    load_detector,
    run_windowed,
)
from churn.drift.alibi import DEFAULT_P_VAL
from churn.features.derived import add_derived

FALSE_ALARM_WINDOWS = 100
FALSE_ALARM_ROWS = 200
MAX_FALSE_ALARM_RATE = 0.05
SHIFT_ROWS = 500


def shifted_population(population: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
    """Month-to-month customers resampled, monthly charges x1.2 clipped to the schema max."""
    m2m = population[population["contract"] == "Month-to-month"]
    rows = m2m.iloc[np.random.default_rng(seed).integers(0, len(m2m), n_rows)].copy()
    rows["monthly_charges"] = np.minimum(
        rows["monthly_charges"] * 1.2, schema.MONTHLY_CHARGES_RANGE[1]
    )
    return add_derived(rows[schema.feature_names()])


def test_reference_like_windows_rarely_alarm(
    detector: AlibiTabularDrift, telco_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    held = telco_split[1]
    rng = np.random.default_rng(1)
    results = [
        detector.predict(held.iloc[rng.integers(0, len(held), FALSE_ALARM_ROWS)])
        for _ in range(FALSE_ALARM_WINDOWS)
    ]
    alarms = [r for r in results if r.is_drift]
    rate = len(alarms) / FALSE_ALARM_WINDOWS
    print(f"false-alarm rate: {rate:.3f} ({len(alarms)}/{FALSE_ALARM_WINDOWS} windows)")
    assert rate <= MAX_FALSE_ALARM_RATE, [r.drifted_features() for r in alarms]
    n_features = len(schema.model_input_names())
    assert all(r.n_rows == FALSE_ALARM_ROWS for r in results)
    assert all(r.threshold == pytest.approx(DEFAULT_P_VAL / n_features) for r in results)
    assert all(r.is_drift == (r.p_value < r.threshold) for r in results)


def test_shifted_population_alarms_in_first_window(
    detector: AlibiTabularDrift, telco_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    stream = shifted_population(telco_split[1], SHIFT_ROWS, seed=0)
    for window_size in (50, 100, SHIFT_ROWS):
        results = run_windowed(detector, stream, window_size)
        assert len(results) == SHIFT_ROWS // window_size
        first = results[0]
        print(
            f"window_size={window_size}: first window drifted features {first.drifted_features()}"
        )
        assert first.is_drift, first.p_values
        assert first.n_rows == window_size
        # The shift changed the contract mix and the bill: the result must say so.
        assert {"contract", "charges_trend"} <= set(first.drifted_features())


def test_fit_uses_schema_features_and_caps_reference(
    detector: AlibiTabularDrift, telco_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    # Statically (mypy) and at run time, the backend satisfies the neutral protocol.
    backend: type[DriftDetector] = AlibiTabularDrift
    assert isinstance(detector, DriftDetector) and isinstance(detector, backend)
    assert detector.feature_names == tuple(schema.model_input_names())
    assert detector.n_reference_rows == 5000 < len(telco_split[0])
    assert (detector.p_val, detector.correction) == (DEFAULT_P_VAL, "bonferroni")
    small = fit_detector(telco_split[0], max_reference_rows=300, features=["contract", "tenure"])
    assert small.n_reference_rows == 300
    assert small.predict(telco_split[1]).feature_names == ("contract", "tenure")


def test_save_load_round_trip_gives_identical_p_values(
    detector: AlibiTabularDrift, telco_split: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    path = tmp_path / "detector"
    detector.save(path)
    assert {"config.toml", "x_ref.npy", SIDECAR_NAME} <= {p.name for p in path.iterdir()}
    sidecar = json.loads((path / SIDECAR_NAME).read_text())
    assert sidecar["features"] == schema.model_input_names()
    assert sidecar["backend"] == "alibi-detect"
    assert sidecar["categories"]["contract"] == ["Month-to-month", "One year", "Two year"]

    window = telco_split[1].iloc[:300]
    shifted = shifted_population(telco_split[1], 300, seed=1)
    for loaded in (
        load_detector(path, features=schema.model_input_names()),
        AlibiTabularDrift.load(path),
    ):
        assert loaded.feature_names == detector.feature_names
        for rows in (window, shifted):
            before, after = detector.predict(rows), loaded.predict(rows)
            assert after.p_values == before.p_values
            assert after.distances == before.distances
            assert (after.is_drift, after.threshold) == (before.is_drift, before.threshold)

    with pytest.raises(FileExistsError, match="not an empty directory"):
        detector.save(path)


def _rewrite_sidecar(path: Path, **changes: object) -> None:
    sidecar = json.loads((path / SIDECAR_NAME).read_text())
    sidecar.update(changes)
    (path / SIDECAR_NAME).write_text(json.dumps(sidecar))


def test_load_refuses_a_detector_for_other_features(
    detector: AlibiTabularDrift, telco_split: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    full = tmp_path / "full"
    detector.save(full)
    with pytest.raises(
        DetectorMismatchError,
        match=r"checked by the detector but not expected: \['charges_trend'\]",
    ):
        load_detector(full, features=schema.model_input_names()[:-1])

    subset = tmp_path / "subset"
    fit_detector(telco_split[0], features=["contract", "tenure"]).save(subset)
    with pytest.raises(DetectorMismatchError, match="expected but not checked by the detector"):
        load_detector(subset, features=schema.model_input_names())
    with pytest.raises(DetectorMismatchError, match="different order"):
        load_detector(subset, features=["tenure", "contract"])

    # Sidecar says the features are in another order: its fingerprint no longer matches.
    swapped = tmp_path / "swapped"
    fit_detector(telco_split[0], features=["contract", "tenure"]).save(swapped)
    _rewrite_sidecar(swapped, features=["tenure", "contract"])
    with pytest.raises(DetectorMismatchError, match="different schema"):
        load_detector(swapped)

    # A consistent sidecar (own fingerprint) for fewer columns than the saved reference.
    narrow = tmp_path / "narrow"
    detector.save(narrow)
    names = ["gender", "senior_citizen"]
    _rewrite_sidecar(
        narrow, features=names, schema_fingerprint=FeatureEncoder.from_schema(names).fingerprint()
    )
    with pytest.raises(DetectorMismatchError, match="22 reference columns"):
        load_detector(narrow)

    # The schema's categories changed since the save: codes would mean other values.
    stale = tmp_path / "stale"
    detector.save(stale)
    categories = json.loads((stale / SIDECAR_NAME).read_text())["categories"]
    categories["contract"] = ["Month-to-month", "Two year"]
    _rewrite_sidecar(stale, categories=categories, schema_fingerprint="0" * 64)
    with pytest.raises(DetectorMismatchError, match=r"categories or kind differ: \['contract'\]"):
        load_detector(stale)

    unknown = tmp_path / "unknown"
    detector.save(unknown)
    _rewrite_sidecar(unknown, features=["contract", "shoe_size"])
    with pytest.raises(DetectorMismatchError, match="'shoe_size' is not defined"):
        load_detector(unknown)

    (tmp_path / "empty").mkdir()
    with pytest.raises(DetectorMismatchError, match=f"no {SIDECAR_NAME}"):
        load_detector(tmp_path / "empty")


def test_unknown_category_and_bad_numbers_are_rejected_by_name(
    detector: AlibiTabularDrift, telco_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    window = telco_split[1].iloc[:50].copy()
    bad = window.copy()
    bad.loc[bad.index[3], "contract"] = "Quarterly"
    with pytest.raises(DriftInputError, match=r"feature 'contract': 1 rows .* 'Quarterly'"):
        detector.predict(bad)
    with pytest.raises(DriftInputError, match="'payment_method'"):
        fit_detector(window.assign(payment_method="Cash"))

    nan = window.copy()
    nan.loc[nan.index[0], "monthly_charges"] = np.nan
    with pytest.raises(DriftInputError, match="feature 'monthly_charges': 1 rows"):
        detector.predict(nan)
    with pytest.raises(DriftInputError, match="feature 'tenure' is missing"):
        detector.predict(window.drop(columns=["tenure"]))
    with pytest.raises(DriftInputError, match="no rows"):
        detector.predict(window.iloc[:0])

    arrays = {name: window[name].to_numpy() for name in detector.feature_names}
    assert detector.predict(arrays).p_values == detector.predict(window).p_values


def test_importing_the_package_does_not_import_alibi_detect() -> None:
    code = (
        "import sys, churn.drift, churn.drift.alibi, churn.drift.window; "
        "assert 'alibi_detect' not in sys.modules, 'alibi_detect imported eagerly'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
