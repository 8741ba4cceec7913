"""Prometheus metrics of the churn runtime, served on MLServer's /metrics endpoint.

Registry: prometheus_client's default REGISTRY. Measured on MLServer 1.7.1 with
parallel_workers=0 (our setting, see serving.bundle): /metrics renders exactly that
registry, and metrics created through `mlserver.register()/log()` (MLServer's own
MetricsRegistry) do NOT appear there (they only do in multi-process mode). MLServer's
built-in series (model_infer_request_*, rest_server_*) sit next to ours.

Metrics are created on first use and looked up again when they already exist:
MLServer re-imports the runtime module on every model (re)load, so nothing here may
be created at import time or twice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

PREFIX = "churn_serving"
# Seconds: 1 min .. 1 year; the Telco snapshot is months old, live data minutes to days.
AGE_BUCKETS = (60.0, 600.0, 3600.0, 6 * 3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0, 90 * 86400.0,
               365 * 86400.0, float("inf"))  # fmt: skip
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    float("inf"),
)

_M = TypeVar("_M", Counter, Gauge, Histogram)
_LOCK = threading.Lock()


def _get_or_create(kind: type[_M], name: str, doc: str, labels: tuple[str, ...], **kw: Any) -> _M:
    """The registered collector called `name`, creating it on first use."""
    with _LOCK:
        existing = REGISTRY._names_to_collectors.get(name)
        if existing is not None:
            if not isinstance(existing, kind):
                raise TypeError(f"metric {name!r} already registered as {type(existing).__name__}")
            return existing
        return kind(name, doc, labels, registry=REGISTRY, **kw)


@dataclass(frozen=True)
class ServingMetrics:
    """Every series the runtime writes; labels always start with the model name."""

    requests: Counter
    customers: Counter
    predicted_churn: Counter
    unknown_ids: Counter
    stage_seconds: Histogram
    feature_age: Histogram
    drift_windows: Counter
    drift_p_value: Gauge
    drift_is_drift: Gauge
    drift_threshold: Gauge
    drift_feature_p_value: Gauge
    drift_feature_distance: Gauge
    drift_detector_loaded: Gauge
    model_info: Gauge


def serving_metrics() -> ServingMetrics:
    """The runtime's metrics, registered once per process."""
    return ServingMetrics(
        requests=_get_or_create(
            Counter,
            f"{PREFIX}_requests",
            "Inference requests by outcome "
            "(ok, bad_request, unknown_customer, incomplete_features, store_unavailable, "
            "feature_data_error, error).",
            ("model", "outcome"),
        ),
        customers=_get_or_create(
            Counter,
            f"{PREFIX}_customers_scored",
            "Customers scored (rows of successful requests).",
            ("model",),
        ),
        predicted_churn=_get_or_create(
            Counter,
            f"{PREFIX}_predicted_churn",
            "Customers scored at or above the model's threshold (churn_label true).",
            ("model",),
        ),
        unknown_ids=_get_or_create(
            Counter,
            f"{PREFIX}_unknown_ids",
            "Requested customer ids with no features online.",
            ("model",),
        ),
        stage_seconds=_get_or_create(
            Histogram,
            f"{PREFIX}_stage_seconds",
            "Time per request in each runtime stage "
            "(online_read: Redis + decode + derived; score; total).",
            ("model", "stage"),
            buckets=LATENCY_BUCKETS,
        ),
        feature_age=_get_or_create(
            Histogram,
            f"{PREFIX}_feature_age_seconds",
            "Age of the stalest feature snapshot "
            "used by a request (now - oldest feature view event time).",
            ("model",),
            buckets=AGE_BUCKETS,
        ),
        drift_windows=_get_or_create(
            Counter,
            f"{PREFIX}_drift_windows",
            "Drift checks of served windows by result (drift, no_drift, error; dropped "
            "counts chunks of rows skipped because the detector fell behind).",
            ("model", "result"),
        ),
        drift_p_value=_get_or_create(
            Gauge,
            f"{PREFIX}_drift_p_value",
            "Smallest per-feature p-value of the last window.",
            ("model",),
        ),
        drift_is_drift=_get_or_create(
            Gauge,
            f"{PREFIX}_drift_is_drift",
            "1 if the last checked window drifted, else 0.",
            ("model",),
        ),
        drift_threshold=_get_or_create(
            Gauge,
            f"{PREFIX}_drift_threshold",
            "Corrected p-value threshold of the detector.",
            ("model",),
        ),
        drift_feature_p_value=_get_or_create(
            Gauge,
            f"{PREFIX}_drift_feature_p_value",
            "Per-feature p-value of the last window.",
            ("model", "feature"),
        ),
        drift_feature_distance=_get_or_create(
            Gauge,
            f"{PREFIX}_drift_feature_distance",
            "Per-feature test statistic of the last window (K-S distance or Chi-squared).",
            ("model", "feature"),
        ),
        drift_detector_loaded=_get_or_create(
            Gauge,
            f"{PREFIX}_drift_detector_loaded",
            "1 if a drift detector watches the "
            "served traffic, 0 if the bundle has none or it failed to load.",
            ("model",),
        ),
        model_info=_get_or_create(
            Gauge,
            f"{PREFIX}_model_info",
            "The loaded bundle (value 1).",
            ("model", "version", "kind", "feature_service"),
        ),
    )
