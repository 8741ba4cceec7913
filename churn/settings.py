"""Runtime settings: where state lives and how to reach Redis and MLflow.

Every value can be overridden by an environment variable with the CHURN_ prefix
(e.g. CHURN_REDIS_PORT=6400), so the same code runs on a laptop and on EKS with only
the environment changed. Paths default to a `.churn/` folder in the project root
(found from this file, never from the working directory) and are gitignored.
Nothing is read or created at import time: call get_settings().
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FEATURE_REPO = PROJECT_ROOT / "feature_repo"


class Settings(BaseSettings):
    """Project settings; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="CHURN_", extra="ignore")

    home: Path = Field(
        default=PROJECT_ROOT / ".churn",
        description="Root of all local state: Redis data, offline store, registries.",
    )
    telco_csv: Path | None = Field(
        default=None, description="Path to the IBM Telco Customer Churn CSV, if on disk."
    )
    telco_url: str | None = Field(
        default=None,
        description="URL to download the Telco CSV from when telco_csv is unset; "
        "the download is verified against telco_sha256.",
    )
    telco_sha256: str = Field(
        default="88be4b93fbe0cc83421af1c503794c97c342eca914c1576db7c276e61d61358a",
        description="sha256 of the published Telco CSV (7043 rows).",
    )
    redis_host: str = Field(default="127.0.0.1", description="Online store host.")
    redis_port: int = Field(
        default=6390, description="Online store port; not 6379, so a system Redis is never touched."
    )
    redis_password: SecretStr = Field(
        default=SecretStr("churn-local-dev"),
        description="Password of the project's own local Redis (requirepass).",
    )
    redis_db: int = Field(default=0, description="Redis logical database.")
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; defaults to SQLite under home."
    )
    customer_db_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of the customer database the daily snapshot pipeline "
        "reads (e.g. postgresql://user:pass@host:5432/customers); on EKS it comes from a "
        "ZenML secret instead (configs: url_secret).",
    )
    feature_store_yaml: str = Field(
        default="feature_store.yaml",
        description="Feast config file inside feature_repo/ that pipelines and serving open: "
        "feature_store.yaml locally, feature_store.eks.yaml on EKS and on the production "
        "twin (ElastiCache over TLS, registry on S3). One setting for every process, so "
        "the pipelines' registry and online store are the ones serving reads.",
    )

    steps_image: str = Field(
        default="churn-steps:0.1.0",
        description="The pipeline-steps image; Feast's Kubernetes materialization Jobs "
        "run it (feature_store.eks.yaml). The EKS ConfigMap sets the ECR image.",
    )
    offline_store: Literal["duckdb", "file"] = Field(
        default="duckdb",
        description="Feast offline store over the parquet tables, for training sets and "
        "materialization reads: duckdb (the project's DuckDB store, churn.features."
        "offline_duckdb; bounded memory, reads s3:// tables too) or file (Feast's dask "
        "file store, the earlier default). Both give identical training sets.",
    )
    materialization_engine: Literal["bulk", "local", "k8s"] = Field(
        default="bulk",
        description="Feast batch engine of `feast materialize` into Redis: bulk "
        "(churn.features.bulk_engine: Feast's values and keys, written in pipelined "
        "batches) or local (Feast's own engine, the earlier default), which write the "
        "same bytes; k8s runs feature_store.eks.yaml's Kubernetes engine (EKS only: "
        "elsewhere that yaml's k8s block is replaced by this setting's engine).",
    )

    @property
    def redis_dir(self) -> Path:
        """Data directory and pid/log files of the project's local Redis."""
        return self.home / "redis"

    @property
    def offline_dir(self) -> Path:
        """Parquet offline store: one file per feature group plus the labels table."""
        return self.home / "offline"

    def offline_table(self, name: str) -> Path:
        """Parquet file of one offline table: a feature group's value, or "labels"."""
        return self.offline_dir / f"{name}.parquet"

    @property
    def feast_registry_path(self) -> Path:
        """Local Feast registry file (never committed)."""
        return self.home / "feast" / "registry.db"

    @property
    def redis_connection_string(self) -> str:
        """Feast's Redis connection string: host:port,password=...,db=..."""
        pw = self.redis_password.get_secret_value()
        auth = f",password={pw}" if pw else ""
        return f"{self.redis_host}:{self.redis_port}{auth},db={self.redis_db}"

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI; SQLite because MLflow's file store is in maintenance mode."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once from the environment (tests clear the cache to override)."""
    return Settings()
