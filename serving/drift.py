"""Drift checks on served traffic, off the request path.

The request path only keeps a reference to the served feature columns; every
CHUNK_ROWS rows they go to a single background thread that copies them into a
churn.drift.DriftWindow and, whenever a window fills, runs the detector
(alibi-detect's TabularDrift: 13-18 ms per 500-row window, docs/decisions.md) and publishes
the result to Prometheus, to the log, and to `latest_status()` (served by the
runtime at GET /v2/models/<name>/drift).

A detector failure never fails a prediction: errors in append or in the check are
logged and counted (churn_serving_drift_windows{result="error"}), and if the
detector falls behind, whole chunks are dropped and counted (result="dropped")
rather than queued without bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from churn.drift.base import DriftDetector, DriftResult
from churn.drift.window import DriftWindow
from serving.metrics import ServingMetrics

logger = logging.getLogger(__name__)

# Served rows buffered before they are copied into the window (see observe()).
CHUNK_ROWS = 50

# model name -> last published status; module state so that the status survives the
# runtime module being re-imported by MLServer on reload, and is found by whichever
# instance of the model answers the HTTP call.
_STATUS: dict[str, dict[str, Any]] = {}
_STATUS_LOCK = threading.Lock()


def latest_status(model_name: str) -> dict[str, Any]:
    """What the drift monitor of `model_name` last published (JSON types only)."""
    with _STATUS_LOCK:
        status = _STATUS.get(model_name)
        return dict(status) if status is not None else {"model": model_name, "enabled": False}


def _publish(model_name: str, **fields: Any) -> None:
    with _STATUS_LOCK:
        _STATUS.setdefault(model_name, {"model": model_name}).update(fields)


class DriftMonitor:
    """Windows of served rows -> detector in a background thread -> metrics, log, status."""

    def __init__(
        self,
        model_name: str,
        detector: DriftDetector,
        *,
        window_size: int,
        max_pending: int,
        metrics: ServingMetrics,
    ) -> None:
        self.model_name = model_name
        self.detector = detector
        self.window = DriftWindow(window_size, detector.feature_names)
        self._max_pending = max_pending
        self._buffer: list[Mapping[str, Any]] = []
        self._buffered = 0
        self._pending = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="churn-drift")
        self._metrics = metrics
        self._windows = {
            result: metrics.drift_windows.labels(model_name, result)
            for result in ("drift", "no_drift", "error", "dropped")
        }
        metrics.drift_detector_loaded.labels(model_name).set(1)
        _publish(
            model_name,
            enabled=True,
            detector=detector.name,
            window_size=window_size,
            features=list(detector.feature_names),
            windows_checked=0,
            chunks_dropped=0,
            errors=0,
            last_error=None,
            last_result=None,
        )

    def observe(self, columns: Mapping[str, Any]) -> None:
        """Hand served rows to the monitor (request path): O(1), never a test, never raises.

        Batches are buffered by reference (the runtime never reuses them); every
        CHUNK_ROWS rows the buffer goes to the background thread, which copies it into
        the DriftWindow and runs the detector on each window it completes. Nothing is
        converted or copied on the event loop.
        """
        try:
            self._buffer.append(columns)
            self._buffered += len(next(iter(columns.values())))
            if self._buffered < CHUNK_ROWS:
                return
            chunk, self._buffer, self._buffered = self._buffer, [], 0
            with self._lock:
                if self._pending >= self._max_pending:
                    self._windows["dropped"].inc()
                    _bump(self.model_name, "chunks_dropped")
                    return
                self._pending += 1
            self._executor.submit(self._ingest, chunk)
        except Exception as e:
            self._record_error(e)

    def _ingest(self, chunk: list[Mapping[str, Any]]) -> None:
        """Background thread: copy a chunk into the window, test every window it completes."""
        try:
            windows = self.window.append(_concat_batches(chunk, self.window.features))
            for window in windows:
                started = time.perf_counter()
                result = self.detector.predict(window)
                self._publish_result(result, time.perf_counter() - started)
        except Exception as e:
            self._record_error(e)
        finally:
            with self._lock:
                self._pending -= 1

    def _publish_result(self, result: DriftResult, seconds: float) -> None:
        name = self.model_name
        summary = publish_drift_result(self._metrics, self._windows, name, result, seconds)
        _bump(name, "windows_checked")
        _publish(name, last_result=summary, last_checked_at=time.time())

    def _record_error(self, error: Exception) -> None:
        self._windows["error"].inc()
        logger.error("drift check of %s failed: %r", self.model_name, error, exc_info=error)
        _bump(self.model_name, "errors")
        _publish(self.model_name, last_error=f"{type(error).__name__}: {error}")

    def close(self) -> None:
        """Stop the background thread after the checks already queued."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _concat_batches(batches: list[Mapping[str, Any]], features: tuple[str, ...]) -> dict[str, Any]:
    """Batches of columns joined per feature (lists or arrays, as served)."""
    if len(batches) == 1:
        return dict(batches[0])
    return {name: np.concatenate([np.asarray(b[name]) for b in batches]) for name in features}


def _bump(model_name: str, counter: str) -> None:
    with _STATUS_LOCK:
        status = _STATUS.setdefault(model_name, {"model": model_name})
        status[counter] = int(status.get(counter, 0)) + 1


def publish_disabled(model_name: str, reason: str, metrics: ServingMetrics) -> None:
    """Record that no detector watches `model_name` (none in the bundle, or load failed)."""
    metrics.drift_detector_loaded.labels(model_name).set(0)
    with _STATUS_LOCK:
        _STATUS[model_name] = {"model": model_name, "enabled": False, "reason": reason}


def publish_drift_result(
    metrics: ServingMetrics,
    windows: Mapping[str, Any],
    model_name: str,
    result: DriftResult,
    seconds: float,
) -> dict[str, Any]:
    """Metrics and a log line for one checked window; returns the JSON summary.

    Shared by the in-runtime monitor and the separate drift model (serving.drift_runtime)
    so that both report a window the same way.
    """
    windows["drift" if result.is_drift else "no_drift"].inc()
    metrics.drift_is_drift.labels(model_name).set(1.0 if result.is_drift else 0.0)
    metrics.drift_p_value.labels(model_name).set(result.p_value)
    metrics.drift_threshold.labels(model_name).set(result.threshold)
    for feature, p in result.p_values.items():
        metrics.drift_feature_p_value.labels(model_name, feature).set(p)
    for feature, d in result.distances.items():
        metrics.drift_feature_distance.labels(model_name, feature).set(d)
    summary = result.to_dict()
    logger.info(
        "drift check of %s: is_drift=%s p_value=%.3g threshold=%.3g rows=%d drifted=%s "
        "(%.1f ms)",
        model_name, result.is_drift, result.p_value, result.threshold, result.n_rows,
        summary["drifted_features"], seconds * 1e3,
    )  # fmt: skip
    return summary
