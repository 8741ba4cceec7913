"""DriftWindow boundaries and thread safety; run_windowed on real rows."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn.drift import AlibiTabularDrift, DriftWindow, run_windowed
from churn.drift.window import window_bounds

FEATURES = ("row", "label")


def _batch(start: int, n: int) -> dict[str, np.ndarray[Any, Any]]:
    rows = np.arange(start, start + n)
    return {"row": rows, "label": np.array([f"r{i}" for i in rows], dtype=object), "extra": rows}


def test_window_emits_exactly_at_size_and_keeps_the_rest() -> None:
    window = DriftWindow(5, FEATURES)
    assert window.append(_batch(0, 3)) == []
    assert window.pending == 3
    (full,) = window.append(_batch(3, 2))
    np.testing.assert_array_equal(full["row"], np.arange(5))
    assert list(full["label"]) == [f"r{i}" for i in range(5)]
    assert set(full) == set(FEATURES)  # "extra" is not kept
    assert window.pending == 0

    windows = window.append(_batch(5, 12))
    assert [list(w["row"]) for w in windows] == [list(range(5, 10)), list(range(10, 15))]
    assert window.pending == 2
    assert window.append(_batch(17, 0)) == []
    assert window.windows_emitted == 3

    rest = window.flush()
    assert rest is not None
    np.testing.assert_array_equal(rest["row"], [15, 16])
    assert window.flush() is None
    assert window.pending == 0


def test_window_copies_its_input() -> None:
    window = DriftWindow(2, FEATURES)
    batch = _batch(0, 1)
    window.append(batch)
    batch["row"][0] = 99
    (full,) = window.append(_batch(1, 1))
    np.testing.assert_array_equal(full["row"], [0, 1])


def test_window_rejects_bad_batches_before_storing() -> None:
    window = DriftWindow(3, FEATURES)
    with pytest.raises(ValueError, match="'label' is missing"):
        window.append({"row": [1]})
    with pytest.raises(ValueError, match="'label' has 1 rows, 'row' has 2"):
        window.append({"row": [1, 2], "label": ["a"]})
    with pytest.raises(ValueError, match="'row' must be one-dimensional"):
        window.append({"row": [[1, 2]], "label": ["a"]})
    assert window.pending == 0
    with pytest.raises(ValueError, match="must be positive"):
        DriftWindow(0, FEATURES)


def test_window_is_thread_safe() -> None:
    size, n_threads, batches_per_thread = 50, 8, 300
    window = DriftWindow(size, FEATURES)
    emitted: list[dict[str, np.ndarray[Any, Any]]] = []
    emitted_lock = threading.Lock()
    start = threading.Barrier(n_threads)

    def producer(thread: int) -> None:
        rng = np.random.default_rng(thread)
        start.wait()
        for b in range(batches_per_thread):
            first = (thread * batches_per_thread + b) * 10
            out = window.append(_batch(first, int(rng.integers(1, 8))))
            if out:
                with emitted_lock:
                    emitted.extend(out)

    threads = [threading.Thread(target=producer, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    rest = window.flush()
    assert all(len(w["row"]) == size and len(w["label"]) == size for w in emitted)
    seen = np.concatenate([w["row"] for w in emitted] + ([rest["row"]] if rest else []))
    expected_total = sum(
        int(np.random.default_rng(t).integers(1, 8, batches_per_thread).sum())
        for t in range(n_threads)
    )
    assert len(seen) == expected_total
    assert len(np.unique(seen)) == expected_total  # every row exactly once
    assert window.windows_emitted == len(emitted) == expected_total // size
    for w in emitted:  # rows and labels stayed aligned
        assert list(w["label"]) == [f"r{i}" for i in w["row"]]


def test_window_bounds_merge_a_short_tail() -> None:
    assert window_bounds(1000, 500, 250) == [(0, 500), (500, 1000)]
    assert window_bounds(1100, 500, 250) == [(0, 500), (500, 1100)]
    assert window_bounds(1300, 500, 250) == [(0, 500), (500, 1000), (1000, 1300)]
    assert window_bounds(300, 500, 250) == [(0, 300)]
    with pytest.raises(ValueError, match="too few"):
        window_bounds(100, 500, 250)


def test_run_windowed_checks_every_row_in_order(
    detector: AlibiTabularDrift, telco_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    held = telco_split[1]
    results = run_windowed(detector, held.iloc[:1100], 500)
    assert [r.n_rows for r in results] == [500, 600]
    assert results[0].p_values == detector.predict(held.iloc[:500]).p_values
    assert results[1].p_values == detector.predict(held.iloc[500:1100]).p_values
    with pytest.raises(ValueError, match="too few"):
        run_windowed(detector, held.iloc[:100], 500)
