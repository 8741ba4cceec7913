"""Feast's DuckDB offline store over the project's parquet tables, local or on S3.

Why a subclass and not `offline_store: type: duckdb` as shipped (Feast 0.49):

- Feast's DuckDB reader only opens a FileSource whose `file_format` is set and returns
  None otherwise (the join then fails on `None.mutate`); the project's sources were
  registered without one, and adding it breaks `feast apply` over an existing registry
  (Feast compares the new ParquetFormat with the stored None and crashes). Every table
  here is parquet, so this reader opens it whatever the format field says.
- DuckDB reads `s3://` through its httpfs extension, which it downloads at first use;
  a pod without internet access (or a locked-down EKS node group) cannot. Here an
  `s3://` table is opened as a pyarrow dataset over fsspec's S3 filesystem (s3fs, the
  same one the prediction log uses; endpoint and credentials from the usual AWS
  variables), which DuckDB scans lazily with projection and filter push-down.

- Feast's Kubernetes materialization engine asks the pulled rows for
  `to_remote_storage()`; Feast's ibis job writes them as a Delta table (the
  `deltalake` package, not installed) and then lists them with its S3 helper's
  arguments swapped, so `batch_engine: k8s` cannot work with Feast's DuckDB store.
  Here the rows are written as parquet parts of at most `staging_rows` rows under
  `staging_location` (one part = one materialization pod), and their URIs returned.

Everything else (the point-in-time join, TTLs, created-timestamp tie-break, on-demand
views) is Feast's own ibis implementation. Select it in feature_store.yaml with
`offline_store: type: churn.features.offline_duckdb.ChurnDuckDBOfflineStore`; the
`feast` command line then uses it too, as long as the project is importable.

DuckDB and ibis are imported only when the store is used: the store and job classes
are built on first access (module __getattr__), so a process that merely parses a
config naming this store (the MLServer image, which reads only Redis) needs neither.
"""

from __future__ import annotations

import functools
import itertools
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from feast.data_source import DataSource
from feast.feature_view import FeatureView
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.offline_store import RetrievalJob
from feast.infra.registry.base_registry import BaseRegistry
from feast.repo_config import FeastConfigBaseModel, RepoConfig
from pydantic import StrictInt, StrictStr

from churn.features.env import OFFLINE_STORE_TYPES

if TYPE_CHECKING:
    from ibis.expr.types import Table

_names = itertools.count()
_LAZY = ("ChurnDuckDBOfflineStore", "StagedParquetJob")


class ChurnDuckDBOfflineStoreConfig(FeastConfigBaseModel):
    """Feast's DuckDB options (staging_location: where rows for Kubernetes
    materialization pods are written, e.g. s3://bucket/churn/feast/staging) plus
    staging_rows, the most rows one staged part (one pod) gets. Same fields as
    Feast's DuckDBOfflineStoreConfig, declared here so parsing needs no DuckDB."""

    type: StrictStr = OFFLINE_STORE_TYPES["duckdb"]
    staging_location: StrictStr | None = None
    staging_location_endpoint_override: StrictStr | None = None
    staging_rows: StrictInt = 250_000


class StagingError(RuntimeError):
    """Rows cannot be staged for remote materialization (no staging_location)."""


def read_parquet_source(data_source: DataSource, repo_path: str) -> Table:
    """An ibis table over a FileSource's parquet file or folder (local or s3://)."""
    import ibis

    if not isinstance(data_source, FileSource):
        raise TypeError(
            f"source {data_source.name!r} is a {type(data_source).__name__}; the DuckDB "
            "offline store reads FileSources (parquet) only"
        )
    path = data_source.path
    if "://" not in path or path.startswith("file://"):
        return ibis.read_parquet(path.removeprefix("file://"))
    return _read_remote(uri=path)


def _read_remote(uri: str) -> Table:
    """Register a lazy pyarrow dataset over fsspec (no DuckDB extension download)."""
    import fsspec
    import ibis
    import pyarrow.dataset as ds
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    fs, path = fsspec.core.url_to_fs(uri)
    dataset = ds.dataset(path, filesystem=PyFileSystem(FSSpecHandler(fs)), format="parquet")
    backend = ibis.get_backend()  # the default connection Feast's ibis functions use
    name = f"churn_remote_{next(_names)}"
    backend.con.register(name, dataset)
    return backend.table(name)


def _ibis_options(config: RepoConfig) -> dict[str, Any]:
    """What every ibis function gets: this module's reader, Feast's writer, staging."""
    from feast.infra.offline_stores.duckdb import _write_data_source

    offline = config.offline_store
    return {
        "data_source_reader": read_parquet_source,
        "data_source_writer": _write_data_source,
        "staging_location": offline.staging_location,
        "staging_location_endpoint_override": offline.staging_location_endpoint_override,
    }


def __getattr__(name: str) -> Any:
    """ChurnDuckDBOfflineStore and StagedParquetJob, built (with DuckDB) on first use."""
    if name in _LAZY:
        return _classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _classes() -> dict[str, type]:
    """Define the classes that need Feast's DuckDB store and ibis (imported here)."""
    from feast.infra.offline_stores.duckdb import DuckDBOfflineStore
    from feast.infra.offline_stores.ibis import (
        IbisRetrievalJob,
        get_historical_features_ibis,
        pull_all_from_table_or_query_ibis,
        pull_latest_from_table_or_query_ibis,
    )

    class StagedParquetJob(IbisRetrievalJob):
        """Feast's ibis retrieval job whose remote copy is parquet parts, not Delta."""

        staging_rows: int = 250_000

        def to_remote_storage(self) -> list[str]:
            """Write the rows as parquet parts under staging_location/<uuid>/; their URIs.

            Every part is written whole by fsspec (an S3 PUT), so a pod never reads a
            half-written file; an empty result stages no part (and starts no pod).
            """
            import fsspec
            import pyarrow.parquet as pq

            if not self.staging_location:
                raise StagingError(
                    "offline_store.staging_location is not set: Kubernetes materialization "
                    "pods read the rows from there (e.g. s3://<bucket>/churn/feast/staging)"
                )
            table = self.to_arrow()
            folder = f"{self.staging_location.rstrip('/')}/{uuid.uuid4()}"
            fs, root = fsspec.core.url_to_fs(folder)
            fs.makedirs(root, exist_ok=True)
            uris = []
            for index, start in enumerate(range(0, table.num_rows, self.staging_rows)):
                name = f"part-{index:05d}.parquet"
                with fs.open(f"{root}/{name}", "wb") as out:
                    pq.write_table(table.slice(start, self.staging_rows), out)
                uris.append(f"{folder}/{name}")
            return uris

    class ChurnDuckDBOfflineStore(DuckDBOfflineStore):
        """Feast's DuckDB offline store with read_parquet_source as its reader."""

        @staticmethod
        def pull_latest_from_table_or_query(
            config: RepoConfig,
            data_source: DataSource,
            join_key_columns: list[str],
            feature_name_columns: list[str],
            timestamp_field: str,
            created_timestamp_column: str | None,
            start_date: datetime,
            end_date: datetime,
        ) -> RetrievalJob:
            """Latest row per entity in [start, end): what materialization loads (its
            remote copy, for Kubernetes materialization pods, is parquet)."""
            job = pull_latest_from_table_or_query_ibis(
                config=config,
                data_source=data_source,
                join_key_columns=join_key_columns,
                feature_name_columns=feature_name_columns,
                timestamp_field=timestamp_field,
                created_timestamp_column=created_timestamp_column,
                start_date=start_date,
                end_date=end_date,
                **_ibis_options(config),
            )
            if not isinstance(job, IbisRetrievalJob):  # Feast annotates the base class
                raise TypeError(f"Feast's ibis pull returned a {type(job).__name__}")
            staged = StagedParquetJob(
                table=job.table,
                on_demand_feature_views=job.on_demand_feature_views,
                full_feature_names=job.full_feature_names,
                metadata=job.metadata,
                data_source_writer=job.data_source_writer,
                staging_location=job.staging_location,
                staging_location_endpoint_override=job.staging_location_endpoint_override,
                repo_path=job.repo_path,
            )
            staged.staging_rows = config.offline_store.staging_rows
            return staged

        @staticmethod
        def get_historical_features(
            config: RepoConfig,
            feature_views: list[FeatureView],
            feature_refs: list[str],
            entity_df: pd.DataFrame | str,
            registry: BaseRegistry,
            project: str,
            full_feature_names: bool = False,
        ) -> RetrievalJob:
            """Feast's ibis point-in-time join, reading through read_parquet_source."""
            return get_historical_features_ibis(
                config=config,
                feature_views=feature_views,
                feature_refs=feature_refs,
                entity_df=entity_df,
                registry=registry,
                project=project,
                full_feature_names=full_feature_names,
                **_ibis_options(config),
            )

        @staticmethod
        def pull_all_from_table_or_query(
            config: RepoConfig,
            data_source: DataSource,
            join_key_columns: list[str],
            feature_name_columns: list[str],
            timestamp_field: str,
            created_timestamp_column: str | None = None,
            start_date: datetime | None = None,
            end_date: datetime | None = None,
        ) -> RetrievalJob:
            """Every row in the window (saved datasets, full scans)."""
            return pull_all_from_table_or_query_ibis(
                config=config,
                data_source=data_source,
                join_key_columns=join_key_columns,
                feature_name_columns=feature_name_columns,
                timestamp_field=timestamp_field,
                created_timestamp_column=created_timestamp_column,
                start_date=start_date,
                end_date=end_date,
                **_ibis_options(config),
            )

    return {
        "ChurnDuckDBOfflineStore": ChurnDuckDBOfflineStore,
        "StagedParquetJob": StagedParquetJob,
    }
