"""Settings of the serving runtime and of the local MLServer process (CHURN_SERVING_*).

Only what is specific to serving lives here. Where the online store is, and how to
reach it, is NOT repeated: the runtime opens the Feast store through
churn.features.store.get_store(), whose feature_store yaml is rendered from
churn.settings (CHURN_HOME, CHURN_REDIS_*), and reads Redis with the connection
string Feast itself would use. So the same CHURN_REDIS_* variables drive Feast, the
feature pipeline and serving, on a laptop and on EKS.

Nothing is read at import time: call get_serving_settings() (cached; tests that
change the environment call get_serving_settings.cache_clear()).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from churn.inference import DEFAULT_HOST, DEFAULT_HTTP_PORT, DEFAULT_MODEL_NAME
from churn.loop import prediction_log_root
from churn.settings import FEATURE_REPO, get_settings


class ServingSettings(BaseSettings):
    """Tunables of the churn inference service; every field has a CHURN_SERVING_ variable."""

    model_config = SettingsConfigDict(
        env_prefix="CHURN_SERVING_", extra="ignore", protected_namespaces=()
    )

    model_name: str = Field(
        default=DEFAULT_MODEL_NAME,
        description="Name of the model in MLServer: the URL is /v2/models/<model_name>/infer.",
    )
    model_uri: str | None = Field(
        default=None,
        description="Bundle directory to serve instead of model-settings.json's "
        "parameters.uri (e.g. a bundle mounted at another path in a container). "
        "Unset: the uri MLServer resolves from model-settings.json.",
    )
    feature_repo: Path = Field(
        default=FEATURE_REPO,
        description="Feast repo whose registry defines the FeatureService the bundle names.",
    )
    feature_store_yaml: str = Field(
        default_factory=lambda: get_settings().feature_store_yaml,
        description="Feast config file inside feature_repo: feature_store.yaml locally, "
        "feature_store.eks.yaml on EKS (ElastiCache over TLS). Unset: the pipelines' "
        "own (CHURN_FEATURE_STORE_YAML), so serving reads the store they wrote.",
    )
    feature_service: str | None = Field(
        default=None,
        description="Override of the FeatureService recorded in the bundle's manifest. "
        "Leave unset: a model must read the service it was trained on.",
    )
    redis_timeout_s: float = Field(
        default=0.5,
        gt=0,
        description="Budget for one request's online-store read, connection included; "
        "slower reads are answered 503 instead of holding the client.",
    )
    redis_retry_interval_s: float = Field(
        default=0.5,
        ge=0,
        description="After a failed read, requests are answered 503 at once for this long "
        "before the next attempt to reach Redis (a hung Redis then costs one timeout per "
        "interval, not one per request).",
    )
    max_batch: int = Field(
        default=1000,
        ge=1,
        description="Most customer ids one request may carry; larger requests get 400.",
    )
    reasons_default: bool = Field(
        default=False,
        description="Return reason codes when the request does not say (parameter 'reasons'). "
        "Off by default: contributions cost more than the prediction itself.",
    )
    reasons_top_k: int = Field(
        default=3,
        ge=1,
        description="How many reason codes per customer when the request gives no 'top_k'.",
    )
    drift_enabled: bool = Field(
        default=True,
        description="Feed served feature rows to the bundle's drift detector (if it has one).",
    )
    drift_window: int = Field(
        default=200,
        ge=10,
        description="Served rows per drift test. 200: reference-like windows false-alarm "
        "1.7% of the time at p_val 0.01 (4.4% at 500 rows) and the shifted population "
        "test alarms within its first window (benchmarks/drift_bench.py).",
    )
    drift_max_pending: int = Field(
        default=4,
        ge=1,
        description="Full windows allowed to wait for the detector; more are dropped and "
        "counted, so a slow detector can never hold memory or the request path.",
    )
    emit_features: bool = Field(
        default=False,
        description="Answer with the served feature rows (one output per model input) when "
        "the request does not say (parameter 'features'). On for a Seldon Core v2 Pipeline "
        "whose drift step consumes them (deployment.seldon sets it on the Server): Seldon "
        "rewrites model-settings.json and a Pipeline step has no parameters, so the "
        "server's environment is the one place to turn it on.",
    )
    prediction_log_enabled: bool = Field(
        default=True,
        description="Record every served customer in the prediction log (churn.loop.predlog), "
        "off the request path: a full buffer or a failing sink drops records (counted in "
        "churn_serving_prediction_log_records{result='dropped'}), never a prediction.",
    )
    prediction_log_uri: str | None = Field(
        default=None,
        description="Directory or fsspec URI (s3://bucket/prefix on EKS) of the prediction "
        "log; default <CHURN_HOME>/prediction_log, the directory batch scoring writes too.",
    )
    prediction_log_flush_records: int = Field(
        default=5000,
        ge=1,
        description="Buffered records that trigger a write of one parquet part.",
    )
    prediction_log_flush_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="Longest time a record waits in the buffer: what a crash can lose at most.",
    )
    prediction_log_max_buffered: int = Field(
        default=100_000,
        ge=1,
        description="Records the buffer holds while the sink is slow; more are dropped and "
        "counted (bounds memory: about 100 bytes a record without features).",
    )
    prediction_log_features: bool = Field(
        default=False,
        description="Also record the served model inputs of each customer (a JSON column), "
        "so the drift pipeline can test online traffic offline. Off: it multiplies the "
        "log's size by about ten.",
    )
    host: str = Field(
        default=DEFAULT_HOST,
        description="Interface the local MLServer listens on (0.0.0.0 in a container).",
    )
    http_port: int = Field(default=DEFAULT_HTTP_PORT, description="Local MLServer REST (V2) port.")
    grpc_port: int = Field(default=8481, description="Local MLServer gRPC (V2) port.")
    metrics_port: int = Field(default=8482, description="Local MLServer Prometheus /metrics port.")
    startup_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="How long local_server.start() waits for /v2/health/ready "
        "(MLServer's cold start is 8-10 s, Feast and the drift detector add a few more).",
    )
    home: Path | None = Field(
        default=None,
        description="Where the local server keeps its repository, bundles, pid and log; "
        "default <CHURN_HOME>/serving.",
    )

    @property
    def serving_home(self) -> Path:
        """Root of the local server's state (never committed: under CHURN_HOME)."""
        return self.home if self.home is not None else get_settings().home / "serving"

    @property
    def prediction_log_root(self) -> str:
        """Where the prediction log is written (prediction_log_uri or the default)."""
        return prediction_log_root(self.prediction_log_uri)


@lru_cache(maxsize=1)
def get_serving_settings() -> ServingSettings:
    """Serving settings read once from the environment."""
    return ServingSettings()
