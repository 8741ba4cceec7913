"""Where the dashboard finds its sources (CHURN_DASHBOARD_*)."""

from __future__ import annotations

from functools import lru_cache
from typing import Final, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REGISTERED_MODEL: Final = "churn-classifier"
PROBABILITY: Final = "churn_probability"
Level = Literal["error", "warning", "info"]


class DashboardSettings(BaseSettings):
    """Where the dashboard finds its sources (CHURN_DASHBOARD_*); the rest is churn.settings."""

    model_config = SettingsConfigDict(
        env_prefix="CHURN_DASHBOARD_", extra="ignore", protected_namespaces=()
    )

    endpoint: str | None = Field(
        default=None,
        description="Base URL of the V2 inference endpoint (e.g. a Seldon ingress). "
        "Unset: the project's local MLServer (CHURN_SERVING_HOST / _HTTP_PORT).",
    )
    served_model: str | None = Field(
        default=None,
        description="Model name in the endpoint's URL; unset: CHURN_SERVING_MODEL_NAME.",
    )
    registered_model: str = Field(
        default=DEFAULT_REGISTERED_MODEL,
        description="MLflow registered model whose 'champion' the what-if and model "
        "pages load (the training pipeline's model_name).",
    )
    timeout_s: float = Field(
        default=5.0, gt=0, description="HTTP timeout of one call to the inference endpoint."
    )
    top_k: int = Field(default=3, ge=1, le=50, description="Reason codes shown per customer.")

    def endpoint_url(self) -> str:
        """The endpoint's base URL without a trailing slash."""
        if self.endpoint:
            return self.endpoint.rstrip("/")
        from deployment.local_server import base_url

        return base_url()

    def model_path(self) -> str:
        """The served model's name in /v2/models/<name>/..."""
        if self.served_model:
            return self.served_model
        from serving.settings import get_serving_settings

        return get_serving_settings().model_name


@lru_cache(maxsize=1)
def get_dashboard_settings() -> DashboardSettings:
    """Dashboard settings read once from the environment (tests clear the cache)."""
    return DashboardSettings()
