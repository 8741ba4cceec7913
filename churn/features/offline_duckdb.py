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

Everything else (the point-in-time join, TTLs, created-timestamp tie-break, on-demand
views) is Feast's own ibis implementation. Select it in feature_store.yaml with
`offline_store: type: churn.features.offline_duckdb.ChurnDuckDBOfflineStore`; the
`feast` command line then uses it too, as long as the project is importable.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import ibis
import pandas as pd
from feast.data_source import DataSource
from feast.feature_view import FeatureView
from feast.infra.offline_stores.duckdb import (
    DuckDBOfflineStore,
    DuckDBOfflineStoreConfig,
    _write_data_source,
)
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.ibis import (
    get_historical_features_ibis,
    pull_all_from_table_or_query_ibis,
    pull_latest_from_table_or_query_ibis,
)
from feast.infra.offline_stores.offline_store import RetrievalJob
from feast.infra.registry.base_registry import BaseRegistry
from feast.repo_config import RepoConfig
from ibis.expr.types import Table
from pydantic import StrictStr

from churn.features.env import OFFLINE_STORE_TYPES

_names = itertools.count()


class ChurnDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    """Same options as Feast's DuckDB store (staging_location for saved datasets)."""

    type: StrictStr = OFFLINE_STORE_TYPES["duckdb"]


def read_parquet_source(data_source: DataSource, repo_path: str) -> Table:
    """An ibis table over a FileSource's parquet file or folder (local or s3://)."""
    if not isinstance(data_source, FileSource):
        raise TypeError(
            f"source {data_source.name!r} is a {type(data_source).__name__}; the DuckDB "
            "offline store reads FileSources (parquet) only"
        )
    path = data_source.path
    if "://" not in path or path.startswith("file://"):
        return ibis.read_parquet(path.removeprefix("file://"))
    return _read_remote(path)


def _read_remote(uri: str) -> Table:
    """Register a lazy pyarrow dataset over fsspec (no DuckDB extension download)."""
    import fsspec
    import pyarrow.dataset as ds
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    fs, path = fsspec.core.url_to_fs(uri)
    dataset = ds.dataset(path, filesystem=PyFileSystem(FSSpecHandler(fs)), format="parquet")
    backend = ibis.get_backend()  # the default connection Feast's ibis functions use
    name = f"churn_remote_{next(_names)}"
    backend.con.register(name, dataset)
    return backend.table(name)


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
        """Latest row per entity in [start, end): what materialization loads."""
        return pull_latest_from_table_or_query_ibis(
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


def _ibis_options(config: RepoConfig) -> dict[str, Any]:
    """What every ibis function gets: this module's reader, Feast's writer, staging."""
    offline = config.offline_store
    return {
        "data_source_reader": read_parquet_source,
        "data_source_writer": _write_data_source,
        "staging_location": offline.staging_location,
        "staging_location_endpoint_override": offline.staging_location_endpoint_override,
    }
