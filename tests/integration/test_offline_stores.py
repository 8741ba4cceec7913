"""The DuckDB offline store gives exactly the file store's training sets.

Same registry, same parquet tables, two feature_store configurations
(CHURN_OFFLINE_STORE=duckdb, the default, and file, Feast's dask store). The data
makes a point-in-time join work: five monthly snapshots of synthetic customers
(stayers age, churners leave, new customers join), a re-ingested correction of one
snapshot with a later created_timestamp (the tie-break), and entity rows at each
label's snapshot, 12 days and 45 days after it (the next snapshot, or the last one
of a customer who left), in shuffled order. Every entity row is at or after its
customer's first snapshot: before it the stores differ by design (see
test_feature_store's row-before-any-snapshot test). The DuckDB side runs in small
chunks, so the chunked path is compared too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from feast import FeatureStore

from churn.data.offline import LABELS_TABLE, read_offline_table, write_offline_store
from churn.data.synthetic import generate
from churn.features.names import FEATURE_SERVICE, FEATURE_SERVICES
from churn.features.offline_duckdb import ChurnDuckDBOfflineStore
from churn.features.pipeline import apply_features
from churn.features.store import get_store, historical_features
from churn.schema import (
    DERIVED_FEATURES,
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    FEATURE_VERSIONS,
    LABEL,
    derived_names,
    feature_names,
)
from churn.settings import Settings, get_settings

pytestmark = pytest.mark.integration

DERIVED_NAMES = {d.name for d in DERIVED_FEATURES}

N_CUSTOMERS = 400
N_SNAPSHOTS = 5
CREATED = datetime(2025, 6, 1, tzinfo=UTC)
CORRECTED = CREATED + timedelta(days=1)


@dataclass(frozen=True)
class Stores:
    """One home, applied once, opened with each offline store."""

    settings: Settings
    duckdb: FeatureStore
    file: FeatureStore
    entity: pd.DataFrame
    corrected: pd.DataFrame


def _entity_rows(labels: pd.DataFrame) -> pd.DataFrame:
    """Label rows at their snapshot, 12 and 45 days later (unique pairs: months are 28-31 days)."""
    shifted = [labels.assign(**{EVENT_TIMESTAMP: labels[EVENT_TIMESTAMP] + d}) for d in (
        timedelta(0), timedelta(days=12), timedelta(days=45))]  # fmt: skip
    frame = pd.concat(shifted, ignore_index=True)
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True)  # any order


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    home = tmp_path_factory.mktemp("offline_stores_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHURN_HOME", str(home))
        get_settings.cache_clear()
        settings = get_settings()
        customers = generate(N_CUSTOMERS, seed=21, n_snapshots=N_SNAPSHOTS)
        write_offline_store(customers, created_at=CREATED)
        # A correction of the second snapshot for 50 customers: later created_timestamp.
        second = sorted(customers[EVENT_TIMESTAMP].unique())[1]
        corrected = customers[customers[EVENT_TIMESTAMP] == second].head(50).copy()
        corrected["monthly_charges"] = (corrected["monthly_charges"] + 7.25).round(2)
        write_offline_store(corrected, created_at=CORRECTED)
        apply_features(settings)
        entity = _entity_rows(read_offline_table(LABELS_TABLE))
        yield Stores(
            settings=settings,
            duckdb=get_store(settings=settings.model_copy(update={"offline_store": "duckdb"})),
            file=get_store(settings=settings.model_copy(update={"offline_store": "file"})),
            entity=entity,
            corrected=corrected,
        )
    get_settings.cache_clear()


def test_the_two_configurations_select_the_two_stores(stores: Stores) -> None:
    assert isinstance(stores.duckdb._get_provider().offline_store, ChurnDuckDBOfflineStore)
    assert stores.file.config.offline_store.type == "file"
    assert stores.settings.offline_store == "duckdb"  # the default


def test_training_sets_are_identical(stores: Stores) -> None:
    by_file = historical_features(stores.file, stores.entity, service=FEATURE_SERVICE)
    by_duckdb = historical_features(
        stores.duckdb, stores.entity, service=FEATURE_SERVICE, chunk_rows=700
    )
    assert len(by_file) == len(stores.entity) == N_CUSTOMERS * N_SNAPSHOTS * 3
    pd.testing.assert_frame_equal(by_duckdb, by_file, check_exact=True)
    # Not vacuous: the rows 12 days after a snapshot see that snapshot, and the
    # correction won the tie-break in both.
    keyed = by_duckdb.set_index([ENTITY_KEY, EVENT_TIMESTAMP])
    fixed = stores.corrected.set_index([ENTITY_KEY, EVENT_TIMESTAMP])["monthly_charges"]
    assert keyed.loc[fixed.index, "monthly_charges"].tolist() == fixed.tolist()
    later = fixed.copy()
    later.index = pd.MultiIndex.from_arrays(
        [fixed.index.get_level_values(0), fixed.index.get_level_values(1) + timedelta(days=12)]
    )
    assert keyed.loc[later.index, "monthly_charges"].tolist() == fixed.tolist()
    assert by_duckdb[LABEL].tolist() == stores.entity[LABEL].tolist()
    assert by_duckdb[feature_names()].notna().all(axis=None)


@pytest.mark.parametrize("version", FEATURE_VERSIONS)
def test_derived_features_equal_feasts_on_demand_view(stores: Stores, version: int) -> None:
    """historical_features computes each set's derived views with derive() on Feast's raw
    columns; Feast's own offline on-demand transformations give the same frame."""
    entity = stores.entity.head(3000)
    ours = historical_features(stores.duckdb, entity, service=FEATURE_SERVICES[version])
    service = stores.duckdb.get_feature_service(FEATURE_SERVICES[version])
    feasts = stores.duckdb.get_historical_features(entity_df=entity, features=service).to_df()
    keys = [ENTITY_KEY, EVENT_TIMESTAMP]
    feasts = feasts.set_index(keys).loc[pd.MultiIndex.from_frame(ours[keys])].reset_index()
    derived = derived_names(version)
    assert [c for c in ours.columns if c in DERIVED_NAMES] == derived  # the service's order
    # Feast appends several on-demand views' outputs in no fixed order (seen both ways for
    # churn_model_v2): the same columns, with the raw ones in the same order.
    assert sorted(ours.columns) == sorted(feasts.columns)
    raw = [c for c in ours.columns if c not in DERIVED_NAMES]
    assert raw == [c for c in feasts.columns if c not in DERIVED_NAMES]
    for name in derived:
        assert ours[name].dtype == feasts[name].dtype, name
        np.testing.assert_array_equal(ours[name].to_numpy(), feasts[name].to_numpy(), name)
