"""Prometheus metrics of the churn runtime, served on MLServer's /metrics endpoint.

Registry: prometheus_client's default REGISTRY. Measured on MLServer 1.7.1 with
parallel_workers=0 (our setting, see serving.bundle): /metrics renders exactly that
registry, and metrics created through `mlserver.register()/log()` (MLServer's own
MetricsRegistry) do NOT appear there (they only do in multi-process mode). MLServer's
built-in series (model_infer_request_*, rest_server_*) sit next to ours.

Metrics are created on first use and looked up again when they already exist:
MLServer re-imports the runtime module on every model (re)load, so nothing here may
be created at import time or twice.

Series of unknown models. MLServer labels its per-model series (model_infer_request_
success/failure/duration) with the model name and version taken from the URL, and it
does so before it looks the model up (mlserver/handlers/dataplane.py,
DataPlane._infer_contextmanager), so every POST /v2/models/<anything>/infer (REST or
gRPC) created a series: unbounded cardinality chosen by the client. MLServer 1.7.1
has no setting for it (its metrics settings are the endpoint, port, REST prefix and
multi-process directory), the REST middleware is not the culprit (starlette_exporter
already labels rest_server_* with the route template, group_paths=True, and drops
unmatched paths) and MLServer offers no hook to put a middleware or a check before
its routes. So the fix is at the one place the project does control, the registry
/metrics renders: `serving_metrics()` (called by every runtime of this project)
replaces those three MLServer collectors, once per process, by `ServedModelSeries`
views that expose only served models and drop the other series from memory at each
scrape. A served model is one a runtime of this process was configured with (it has
churn_serving_requests series, created in the runtime's __init__); its version label
is "None" (no /versions/ in the URL) or one that already answered successfully
(model_infer_request_success is only counted for a model MLServer found ready). With
parallel_workers > 0 MLServer renders multi-process files instead and this does not
apply (we run 0, see serving.bundle).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

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


# MLServer's collectors labelled (model, version) from the request URL.
MLSERVER_MODEL_COLLECTORS = (
    "model_infer_request_success",
    "model_infer_request_failure",
    "model_infer_request_duration",
)
# The version label of a request without /versions/<v> in its URL: str(None).
UNVERSIONED = "None"

SeriesKey = tuple[str, str]


def _key(sample: Sample) -> SeriesKey:
    return sample.labels.get("model", ""), sample.labels.get("version", "")


def served_series(requests: Counter, success: MetricWrapperBase) -> set[SeriesKey]:
    """(model, version) pairs of models served here: never taken from a URL alone.

    Names come from the runtimes' own request counter (labelled with self.name in
    their __init__); versions are "None" or one MLServer already served successfully.
    """
    names = {s.labels["model"] for family in requests.collect() for s in family.samples}
    served = {(name, UNVERSIONED) for name in names}
    served.update(
        key for family in success.collect() for s in family.samples if (key := _key(s))[0] in names
    )
    return served


class ServedModelSeries:
    """Registry view of an MLServer per-model collector: served models' series only.

    MLServer keeps incrementing the wrapped collector; series of other (model, version)
    pairs are not rendered, and are removed from it at each scrape so that memory stays
    bounded too.
    """

    def __init__(self, wrapped: MetricWrapperBase, served: Callable[[], set[SeriesKey]]):
        self.wrapped = wrapped
        self._served = served

    def describe(self) -> Iterable[Metric]:
        """The wrapped collector's names (the registry checks them for clashes)."""
        return self.wrapped.describe()

    def collect(self) -> Iterable[Metric]:
        """The wrapped collector's families without the series of unknown models."""
        served = self._served()
        families = list(self.wrapped.collect())
        stray: set[SeriesKey] = set()
        for family in families:
            stray.update(_key(s) for s in family.samples if _key(s) not in served)
            family.samples = [s for s in family.samples if _key(s) in served]
        for model, version in stray:
            self.wrapped.remove_by_labels({"model": model, "version": version})
        return families


def expose_served_models_only(requests: Counter) -> None:
    """Put ServedModelSeries in place of MLServer's per-model collectors (once).

    A no-op outside an MLServer process (its collectors are not registered) and when
    already done (the registered object is then no MetricWrapperBase).
    """
    with _LOCK:
        collectors = REGISTRY._names_to_collectors
        success = collectors.get(MLSERVER_MODEL_COLLECTORS[0])
        if not isinstance(success, MetricWrapperBase):
            return

        def served() -> set[SeriesKey]:
            return served_series(requests, success)

        for name in MLSERVER_MODEL_COLLECTORS:
            collector = collectors.get(name)
            if isinstance(collector, MetricWrapperBase):
                REGISTRY.unregister(collector)
                REGISTRY.register(ServedModelSeries(collector, served))


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
    prediction_log: Counter


def serving_metrics() -> ServingMetrics:
    """The runtime's metrics, registered once per process.

    Every runtime calls this first, so it is also where MLServer's per-model series are
    limited to served models (expose_served_models_only, see the module docstring).
    """
    metrics = _create_serving_metrics()
    expose_served_models_only(metrics.requests)
    return metrics


def _create_serving_metrics() -> ServingMetrics:
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
        prediction_log=_get_or_create(
            Counter,
            f"{PREFIX}_prediction_log_records",
            "Prediction log records by result (written: flushed to the sink; dropped: "
            "buffer full or sink failing, the predictions were still answered).",
            ("model", "result"),
        ),
    )
