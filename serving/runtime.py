"""MLServer runtime of the churn model: customer ids in, churn probabilities out.

Request path (all on MLServer's event loop, no pandas, nothing built per request
beyond the arrays of the batch):

1. validate the V2 request (serving.contract) -> 400 naming the field;
2. read the FeatureService's raw features for every id with pipelined HMGETs on
   one shared Redis connection (serving.online, serving.resp), recompute the derived
   features with churn.features.derived.derive -> 404 naming unknown ids, 503 when
   Redis is down or slower than CHURN_SERVING_REDIS_TIMEOUT_S;
3. decode + derive + score with the bundle's ServingModel (numpy, no pandas), together
   with the other requests whose features arrived in the same event-loop tick
   (serving.scoring: the model's per-call cost is shared under load);
4. answer; the served rows go to the drift monitor by reference (copied and tested
   in a background thread, serving.drift) and, when asked for (request parameter
   "features" or CHURN_SERVING_EMIT_FEATURES), into the response as one output per
   feature, for a chained drift model (serving.drift_runtime, deployment.seldon);
5. every answered customer is handed to the prediction log (churn.loop.predlog) by
   reference: a bounded buffer drained by a background thread into partitioned
   parquet (CHURN_SERVING_PREDICTION_LOG_*). The request never waits for the sink; a
   full buffer or a failing sink drops records and counts them
   (churn_serving_prediction_log_records{result="dropped"}), the answer stays 200.

load() verifies and loads the bundle, resolves the Feast FeatureService in the
registry (once) and prepares the Redis client; any failure raises ModelLoadError,
so MLServer never marks the model ready (at startup the server does not come up; on
a reload the previous instance keeps serving). A drift detector that fails to load
only disables drift checks.

Extension seam: `load_detector()` is the one method a subclass overrides to supply
another detector (the serving tests use it to install a detector that raises).

Streaming (POST .../infer_stream, .../generate_stream) is MLServer's default
predict_stream: one predict, answered as one server-sent event. It is deliberately
not overridden: a request that fails there gets MLServer's text/plain 500 whatever
status our error carries, because MLServer 1.7.1 starts the 200 response before it
looks the model up and no runtime hook runs earlier (tests/serving/test_fuzz.py pins
it); raising in an override would only turn the valid streams into 500s too.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from mlserver import MLModel
from mlserver.handlers.custom import CustomHandler, register_custom_handler
from mlserver.types import InferenceRequest, InferenceResponse, MetadataModelResponse, Parameters
from mlserver.utils import get_model_uri

from churn.drift.base import DriftDetector
from churn.loop.predlog import ONLINE, PredictionBatch, PredictionLogWriter
from churn.models.serialize import BIAS, ServingModel, aggregation_matrix
from serving.bundle import LoadedBundle, load_bundle
from serving.contract import TimeFormatter, build_response, parse_request, reason_codes
from serving.drift import DriftMonitor, latest_status, publish_disabled
from serving.errors import (
    FeatureDataError,
    IncompleteFeaturesError,
    ModelLoadError,
    ModelUnavailableError,
    OnlineStoreUnavailable,
    ServingError,
    UnknownCustomerError,
)
from serving.metrics import ServingMetrics, serving_metrics
from serving.online import (
    MissingFeaturesError,
    OnlineFeatureReader,
    check_online_store,
    layout_from_json,
    layout_from_store,
)
from serving.resp import RedisReplyError, RedisUnavailable, RespClient, endpoint_from_options
from serving.scoring import CoalescingScorer, Scored
from serving.settings import ServingSettings, get_serving_settings

logger = logging.getLogger(__name__)

OUTCOMES = (
    "ok", "bad_request", "unknown_customer", "incomplete_features", "store_unavailable",
    "feature_data_error", "error",
)  # fmt: skip


@dataclass
class _Loaded:
    """Everything load() prepares; predict() only reads it."""

    bundle: LoadedBundle
    model: ServingModel
    reader: OnlineFeatureReader
    client: RespClient
    drift: DriftMonitor | None
    scorer: CoalescingScorer
    contribution_map: npt.NDArray[np.float64]
    parameters: dict[str, Any]
    log: PredictionLogWriter | None = None


class ChurnRuntime(MLModel):  # type: ignore[misc]  # MLServer ships no type hints
    """Churn probabilities for customer ids, features read online at request time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: _Loaded | None = None
        self._inflight = 0
        self._settings_serving: ServingSettings = get_serving_settings()
        self._metrics: ServingMetrics = serving_metrics()
        self._outcome = {o: self._metrics.requests.labels(self.name, o) for o in OUTCOMES}
        self._unknown_ids = self._metrics.unknown_ids.labels(self.name)
        self._customers = self._metrics.customers.labels(self.name)
        self._predicted_churn = self._metrics.predicted_churn.labels(self.name)
        self._t_read = self._metrics.stage_seconds.labels(self.name, "online_read")
        self._t_score = self._metrics.stage_seconds.labels(self.name, "score")
        self._t_total = self._metrics.stage_seconds.labels(self.name, "total")
        self._age = self._metrics.feature_age.labels(self.name)
        self._format_times = TimeFormatter()
        # GET /v2/models/<name>/drift: registered per instance, since MLServer adds
        # custom routes by path and a class-level path could not name the model.
        name = self.name

        async def drift_status() -> dict[str, Any]:
            return latest_status(name)

        register_custom_handler(
            CustomHandler(rest_path=f"/v2/models/{name}/drift", rest_method="GET"), drift_status
        )
        self.drift_status = drift_status

    # ------------------------------------------------------------------ loading

    async def load(self) -> bool:
        """Load bundle, Feast layout and Redis client; raise ModelLoadError on any failure."""
        try:
            self._loaded = await self._load()
        except ModelLoadError:
            raise
        except Exception as e:  # Feast, xgboost, OS errors...: one typed error, cause chained
            raise ModelLoadError(f"model {self.name!r} failed to load: {e}") from e
        loaded = self._loaded
        manifest = loaded.bundle.manifest
        self._metrics.model_info.labels(
            self.name, manifest.model_version, manifest.model_kind, loaded.reader.layout.service
        ).set(1)
        # Feast, xgboost, alibi-detect and MLServer leave millions of long-lived objects;
        # a full garbage collection walking them stalled the event loop for ~200 ms
        # (measured: p99 216 ms at 600 req/s). Freezing moves them out of the
        # collector's reach; objects created by requests are collected as usual. (After a
        # reload, cyclic garbage of the replaced instance stays frozen: a bounded cost
        # paid once per deployment.)
        gc.freeze()
        reachable = await loaded.client.ping()
        logger.info(
            "loaded %s version %s (%s, threshold %.4f) from %s; feature service %s; "
            "online store %s %s; drift %s",
            self.name, manifest.model_version, manifest.model_kind, manifest.threshold,
            loaded.bundle.path, loaded.reader.layout.service, loaded.client.endpoint.describe(),
            "reachable" if reachable else f"NOT reachable yet ({loaded.client.last_error})",
            "on" if loaded.drift else "off",
        )  # fmt: skip
        return True

    async def _load(self) -> _Loaded:
        settings = self._settings_serving
        uri = settings.model_uri or await get_model_uri(self.settings)
        bundle = await asyncio.to_thread(load_bundle, Path(uri))
        service = settings.feature_service or bundle.manifest.feature_service
        layout, connection = await asyncio.to_thread(
            self._feast_layout, settings, service, bundle.manifest.feature_layout
        )
        nodes, options = connection
        endpoint = endpoint_from_options(
            nodes, options, f"{settings.feature_store_yaml} online_store"
        )
        client = RespClient(
            endpoint,
            timeout_s=settings.redis_timeout_s,
            retry_interval_s=settings.redis_retry_interval_s,
        )
        if layout.feature_version != bundle.model.feature_version:
            raise ModelLoadError(
                f"feature service {service!r} serves feature set {layout.feature_version}, "
                f"the bundle's model consumes feature set {bundle.model.feature_version}"
            )
        drift = await self._start_drift(bundle, settings)
        try:  # (encoded columns + bias) x raw features, once per load
            contributions = aggregation_matrix(
                [*bundle.model.feature_names, BIAS], bundle.model.input_names
            )
        except ValueError as e:  # a column that maps to no feature: the model does not load
            raise ModelLoadError(str(e)) from e
        reader = OnlineFeatureReader(layout, client)
        scorer = CoalescingScorer(
            reader,
            bundle.model,
            on_scored=drift.observe if drift is not None else None,
            on_batch=self._t_score.observe,
        )
        return _Loaded(
            bundle=bundle,
            model=bundle.model,
            reader=reader,
            scorer=scorer,
            client=client,
            drift=drift,
            contribution_map=contributions,
            parameters={
                "threshold": bundle.manifest.threshold,
                "feature_service": service,
                "model_kind": bundle.manifest.model_kind,
            },
            log=self._start_log(settings),
        )

    def _start_log(self, settings: ServingSettings) -> PredictionLogWriter | None:
        """The prediction log's writer, or None when the log is disabled."""
        if not settings.prediction_log_enabled:
            return None
        counter = self._metrics.prediction_log
        written = counter.labels(self.name, "written")
        dropped = counter.labels(self.name, "dropped")
        return PredictionLogWriter(
            settings.prediction_log_root,
            flush_records=settings.prediction_log_flush_records,
            flush_interval_s=settings.prediction_log_flush_interval_s,
            max_buffered=settings.prediction_log_max_buffered,
            on_written=written.inc,
            on_dropped=dropped.inc,
        )

    @staticmethod
    def _feast_layout(
        settings: ServingSettings, service: str, recorded: Mapping[str, Any] | None
    ) -> tuple[Any, tuple[list[dict[str, str]], dict[str, Any]]]:
        """The service's Redis layout and connection (blocking; run in a thread).

        The layout the bundle recorded for `service` when it has one (no registry
        read, so no registry file, volume or S3 access is needed), else the Feast
        registry's.
        """
        from feast.infra.online_stores.redis import RedisOnlineStore

        from churn.features.store import get_store, repo_config

        if recorded is not None and recorded.get("service") == service:
            config = repo_config(settings.feature_repo, yaml_file=settings.feature_store_yaml)
            check_online_store(config)
            layout = layout_from_json(recorded)
        else:
            store = get_store(settings.feature_repo, yaml_file=settings.feature_store_yaml)
            config = store.config
            layout = layout_from_store(store, service)
        # Feast's own parser of its connection string: serving connects exactly as Feast would.
        connection = RedisOnlineStore._parse_connection_string(
            config.online_store.connection_string
        )
        return layout, connection

    def load_detector(self, bundle: LoadedBundle) -> DriftDetector | None:
        """The bundle's drift detector, or None when it has none (blocking; in a thread)."""
        if bundle.drift_dir is None:
            return None
        from churn.drift.base import load_detector

        return load_detector(bundle.drift_dir, features=bundle.model.input_names)

    async def _start_drift(
        self, bundle: LoadedBundle, settings: ServingSettings
    ) -> DriftMonitor | None:
        if not settings.drift_enabled:
            publish_disabled(self.name, "disabled by CHURN_SERVING_DRIFT_ENABLED", self._metrics)
            return None
        try:
            detector = await asyncio.to_thread(self.load_detector, bundle)
        except Exception as e:
            logger.error("drift detector of %s failed to load; drift checks are OFF: %r",
                         self.name, e, exc_info=e)  # fmt: skip
            publish_disabled(self.name, f"detector failed to load: {e}", self._metrics)
            return None
        if detector is None:
            publish_disabled(self.name, "the bundle has no drift detector", self._metrics)
            return None
        return DriftMonitor(
            self.name,
            detector,
            window_size=settings.drift_window,
            max_pending=settings.drift_max_pending,
            metrics=self._metrics,
        )

    async def unload(self) -> bool:
        """Release Redis and the drift thread once in-flight requests are done."""
        loaded, self._loaded = self._loaded, None
        if loaded is None:
            return True
        deadline = time.monotonic() + 5.0
        while self._inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        loaded.client.close()
        if loaded.drift is not None:
            loaded.drift.close()
        if loaded.log is not None:  # flushes the buffer: a clean unload loses no record
            await asyncio.to_thread(loaded.log.close)
        return True

    async def metadata(self) -> MetadataModelResponse:
        """V2 model metadata, with the served bundle's version, threshold and service."""
        response: MetadataModelResponse = await super().metadata()
        loaded = self._loaded
        if loaded is not None:
            manifest = loaded.bundle.manifest
            response.versions = [manifest.model_version]
            response.parameters = Parameters(
                model_version=manifest.model_version,
                bundle=str(loaded.bundle.path),
                created_at=manifest.created_at,
                **loaded.parameters,
            )
        return response

    # --------------------------------------------------------------- predicting

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Score the requested customers; see serving.contract and serving.errors."""
        loaded = self._loaded
        if loaded is None:
            raise ModelUnavailableError(f"model {self.name!r} is not loaded (unloading?)")
        started = time.perf_counter()
        self._inflight += 1
        try:
            response = await self._predict(loaded, payload, started)
        except ServingError as e:
            self._outcome[e.outcome].inc()
            raise
        except Exception:
            self._outcome["error"].inc()
            raise
        finally:
            self._inflight -= 1
        self._outcome["ok"].inc()
        self._t_total.observe(time.perf_counter() - started)
        return response

    async def _predict(
        self, loaded: _Loaded, payload: InferenceRequest, started: float
    ) -> InferenceResponse:
        settings = self._settings_serving
        request = parse_request(
            payload,
            max_batch=settings.max_batch,
            reasons_default=settings.reasons_default,
            top_k_default=settings.reasons_top_k,
            features_default=settings.emit_features,
        )
        ids = request.customer_ids
        try:
            replies = await loaded.reader.fetch(ids)
            loaded.reader.check_present(ids, replies)
            self._t_read.observe(time.perf_counter() - started)
            scored = await loaded.scorer.score(ids, replies)
        except MissingFeaturesError as e:
            if e.unknown:
                self._unknown_ids.inc(len(e.unknown))
                raise UnknownCustomerError(e.unknown) from e
            raise IncompleteFeaturesError(e.incomplete) from e
        except (RedisUnavailable, RedisReplyError) as e:
            raise OnlineStoreUnavailable(f"online feature store unavailable: {e}") from e
        except ValueError as e:
            raise FeatureDataError(f"online features cannot be scored: {e}") from e
        reasons = None
        if request.reasons:
            try:
                reasons = self._reasons(loaded, scored.columns(), request.top_k)
            except ValueError as e:
                raise FeatureDataError(f"reason codes cannot be computed: {e}") from e
        self._customers.inc(len(ids))
        self._predicted_churn.inc(
            int(np.count_nonzero(scored.probabilities >= loaded.bundle.manifest.threshold))
        )
        self._age.observe(max(0.0, time.time() - float(scored.event_time.min())))
        parameters = dict(loaded.parameters)
        if reasons is not None:
            parameters["reason_units"] = loaded.model.contribution_units
        response = build_response(
            model_name=self.name,
            model_version=loaded.bundle.manifest.model_version,
            request_id=payload.id,
            probabilities=scored.probabilities,
            threshold=loaded.bundle.manifest.threshold,
            event_times=self._format_times(scored.event_time),
            reasons=reasons,
            parameters=parameters,
            features=(
                self._served_features(loaded, scored.columns()) if request.features else None
            ),
        )
        if loaded.log is not None:
            self._log(loaded, loaded.log, payload.id, ids, scored)
        return response

    def _log(
        self,
        loaded: _Loaded,
        log: PredictionLogWriter,
        request_id: str | None,
        ids: list[str],
        scored: Scored,
    ) -> None:
        """Hand the request's predictions to the log: references only, no I/O, never raises."""
        try:
            log.offer(
                PredictionBatch(
                    request_id=request_id or uuid.uuid4().hex,
                    customer_ids=ids,
                    model_name=self.name,
                    model_version=loaded.bundle.manifest.model_version,
                    probabilities=scored.probabilities,
                    threshold=loaded.bundle.manifest.threshold,
                    event_times=scored.event_time,
                    predicted_at=time.time(),
                    source=ONLINE,
                    features=(
                        self._served_features(loaded, scored.columns())
                        if self._settings_serving.prediction_log_features
                        else None
                    ),
                )
            )
        except Exception as e:  # a logging bug must never cost the prediction
            logger.error("prediction log: record of %s not kept: %r", self.name, e)

    @staticmethod
    def _served_features(loaded: _Loaded, columns: dict[str, Any]) -> dict[str, Any]:
        """The request's feature columns in model input order (what a drift model reads)."""
        return {name: columns[name] for name in loaded.model.input_names}

    @staticmethod
    def _reasons(loaded: _Loaded, columns: dict[str, Any], top_k: int) -> list[str]:
        values, _names = loaded.model.contributions(columns)
        per_feature = values @ loaded.contribution_map
        return reason_codes(per_feature, loaded.model.input_names, columns, top_k)
