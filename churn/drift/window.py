"""Windows of rows for drift checks: a live buffer for serving, a splitter for batches.

A drift test compares a window of rows with the reference; one row says nothing, and
200-500 rows are what the tests show is needed to catch a real shift. Serving sees
rows a few at a time, so `DriftWindow` collects them and hands back a full window for
the caller to check off the request path (a background thread or task): appending is
a copy under a lock, never a statistical test. Pipelines already have all their rows
and call `run_windowed`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

    from churn.drift.base import DriftDetector, DriftResult

Window = dict[str, npt.NDArray[Any]]


class DriftWindow:
    """A bounded, thread-safe buffer of served feature rows, emptied a window at a time.

    `append` stores a batch of columns; whenever `size` rows are held, they are cut
    off as one window and returned to exactly one caller (the one whose batch
    completed it), so each row is checked once. The buffer never holds `size` rows or
    more after `append` returns, so memory is bounded by the window size plus the
    largest batch. Only the `features` columns are kept (copies, so callers may reuse
    their arrays); rows keep their arrival order.
    """

    def __init__(self, size: int, features: Sequence[str]) -> None:
        if size < 1:
            raise ValueError(f"window size must be positive, got {size}")
        if not features:
            raise ValueError("a drift window needs at least one feature")
        self._size = size
        self._features = tuple(features)
        self._lock = threading.Lock()
        self._chunks: list[Window] = []
        self._pending = 0
        self._emitted = 0

    @property
    def size(self) -> int:
        """Rows per window."""
        return self._size

    @property
    def features(self) -> tuple[str, ...]:
        """Columns kept from each batch."""
        return self._features

    @property
    def pending(self) -> int:
        """Rows held that do not yet fill a window."""
        with self._lock:
            return self._pending

    @property
    def windows_emitted(self) -> int:
        """Full windows handed out so far."""
        with self._lock:
            return self._emitted

    def append(self, columns: Mapping[str, Any]) -> list[Window]:
        """Add one batch (a mapping of equal-length 1-d columns; extra keys are ignored).

        Returns the windows this batch completed, oldest first: usually none or one,
        several if the batch is larger than a window. Raises ValueError naming the
        column when one is missing, not one-dimensional or of another length, before
        anything is stored.
        """
        batch = _copy_batch(columns, self._features)
        n_rows = len(batch[self._features[0]])
        if n_rows == 0:
            return []
        with self._lock:
            self._chunks.append(batch)
            self._pending += n_rows
            if self._pending < self._size:
                return []
            merged = _concat(self._chunks, self._features)
            n_full = self._pending // self._size
            cut = n_full * self._size
            windows = [
                {name: merged[name][start : start + self._size] for name in self._features}
                for start in range(0, cut, self._size)
            ]
            rest = {name: merged[name][cut:] for name in self._features}
            self._pending -= cut
            self._chunks = [rest] if self._pending else []
            self._emitted += n_full
        return windows

    def flush(self) -> Window | None:
        """Take the rows held (fewer than `size`), e.g. at shutdown; None if there are none."""
        with self._lock:
            if not self._pending:
                return None
            rest = _concat(self._chunks, self._features)
            self._chunks = []
            self._pending = 0
        return rest


def _copy_batch(columns: Mapping[str, Any], features: tuple[str, ...]) -> Window:
    """Copies of the `features` columns, validated to be 1-d and of equal length."""
    batch: Window = {}
    for name in features:
        if name not in columns:
            raise ValueError(f"feature {name!r} is missing from the batch")
        values = np.array(columns[name], copy=True)
        if values.ndim != 1:
            raise ValueError(f"feature {name!r} must be one-dimensional, got shape {values.shape}")
        batch[name] = values
    first = features[0]
    for name in features[1:]:
        if len(batch[name]) != len(batch[first]):
            raise ValueError(
                f"feature {name!r} has {len(batch[name])} rows, {first!r} has {len(batch[first])}"
            )
    return batch


def _concat(chunks: list[Window], features: tuple[str, ...]) -> Window:
    """Chunks joined column by column, in arrival order."""
    if len(chunks) == 1:
        return chunks[0]
    return {name: np.concatenate([c[name] for c in chunks]) for name in features}


def window_bounds(n_rows: int, window_size: int, min_rows: int) -> list[tuple[int, int]]:
    """[start, stop) of consecutive windows covering all `n_rows` rows.

    Windows hold `window_size` rows; a tail shorter than `min_rows` joins the window
    before it (so every row is checked and no window is too small for the tests).
    """
    if window_size < 1:
        raise ValueError(f"window_size must be positive, got {window_size}")
    if not 1 <= min_rows <= window_size:
        raise ValueError(f"min_rows must be in [1, window_size={window_size}], got {min_rows}")
    if n_rows < min_rows:
        raise ValueError(f"{n_rows} rows are too few for a drift check (min_rows={min_rows})")
    bounds = [(start, min(start + window_size, n_rows)) for start in range(0, n_rows, window_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_rows:
        tail = bounds.pop()
        bounds[-1] = (bounds[-1][0], tail[1])
    return bounds


def run_windowed(
    detector: DriftDetector,
    frame: pd.DataFrame,
    window_size: int,
    *,
    min_rows: int | None = None,
) -> list[DriftResult]:
    """Check `frame` in consecutive windows of `window_size` rows, in row order.

    For batch monitoring: a day of scored rows becomes one result per window, so a
    shift that starts part-way through shows up in the windows after it. `min_rows`
    (default half a window) sets the smallest window worth testing: a shorter tail
    joins the previous window; a frame with fewer rows is a ValueError, not a silent
    "no drift".
    """
    smallest = min_rows if min_rows is not None else max(1, window_size // 2)
    return [
        detector.predict(frame.iloc[start:stop])
        for start, stop in window_bounds(len(frame), window_size, smallest)
    ]
