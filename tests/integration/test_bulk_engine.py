"""The bulk materialization engine writes exactly what Feast's local engine writes.

Two homes get the same offline data (synthetic customers over three monthly
snapshots, plus a re-ingested correction with a later created_timestamp) and the
same feature repo; one materializes with Feast's own local engine into one Redis
database, the other with churn.features.bulk_engine into another, on the session's
real redis-server. After each step the two databases must hold the same keys with
the same hashes, byte for byte:

1. `materialize` of the whole history (the latest row per customer wins);
2. `materialize` of the first month again (older rows: Feast's rule leaves every
   stored customer unchanged, and the engine must too);
3. a new snapshot for some customers, then `materialize_incremental`;

and every customer read back through Feast's own `get_online_features` equals the
offline store's latest row. The engine is also checked to batch (several round
trips) and to refuse an online store it cannot write.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import redis
from feast import FeatureStore

# The feature-store module's helpers (same directory, on sys.path under pytest).
from test_feature_store import (
    _assert_matches_offline,
    _offline_latest,
    _redis_snapshot,
)

from churn import redis_local
from churn.data.offline import write_offline_store
from churn.data.synthetic import generate
from churn.data.timestamps import assign_event_time
from churn.features.bulk_engine import RedisBulkEngine, redis_config
from churn.features.redis_layout import RedisLayoutError
from churn.features.store import (
    apply_repo,
    get_store,
    materialize,
    materialize_incremental,
    online_features,
    repo_config,
)
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP
from churn.settings import Settings, get_settings

pytestmark = pytest.mark.integration

N_CUSTOMERS = 2500
DB_LOCAL, DB_BULK = 4, 5  # other modules use dbs 0-2
CREATED = datetime(2025, 6, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Side:
    """One home materialized by one engine into its own Redis database."""

    settings: Settings
    store: FeatureStore
    redis: redis.Redis


@dataclass(frozen=True)
class Pair:
    local: Side
    bulk: Side
    customers: pd.DataFrame
    snapshots: list[pd.Timestamp]


def _side(
    home: Path,
    engine: str,
    db: int,
    server: redis_local.RedisServerConfig,
    data: list[pd.DataFrame],
) -> Side:
    settings = get_settings().model_copy(
        update={"home": home, "redis_db": db, "materialization_engine": engine}
    )
    for frame, created in zip(data, (CREATED, CREATED + timedelta(days=1)), strict=True):
        write_offline_store(frame, settings.offline_dir, created_at=created)
    store = get_store(settings=settings)
    apply_repo(store, settings=settings)
    client = redis.Redis(host=server.host, port=server.port, password=server.password, db=db)
    client.flushdb()
    return Side(settings, store, client)


@pytest.fixture(scope="module")
def pair(
    redis_server: redis_local.RedisServerConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    customers = generate(N_CUSTOMERS, seed=13, n_snapshots=3)
    snapshots = sorted(customers[EVENT_TIMESTAMP].unique())
    corrected = customers[customers[EVENT_TIMESTAMP] == snapshots[-1]].tail(100).copy()
    corrected["monthly_charges"] = (corrected["monthly_charges"] + 3.5).round(2)
    data = [customers, corrected]
    # The feature repo reads CHURN_HOME from the environment when applied: one per side.
    sides = []
    for name, engine, db in (("local", "local", DB_LOCAL), ("bulk", "bulk", DB_BULK)):
        home = tmp_path_factory.mktemp(f"engine_{name}")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CHURN_HOME", str(home))
            get_settings.cache_clear()
            sides.append(_side(home, engine, db, redis_server, data))
    get_settings.cache_clear()
    yield Pair(sides[0], sides[1], customers, snapshots)
    get_settings.cache_clear()


def _assert_same_redis(pair: Pair) -> dict[bytes, dict[bytes, bytes]]:
    local, bulk = _redis_snapshot(pair.local.redis), _redis_snapshot(pair.bulk.redis)
    assert len(bulk) == len(local)
    assert bulk == local
    return bulk


def test_engines_are_the_configured_ones(pair: Pair) -> None:
    assert isinstance(pair.bulk.store._get_provider().batch_engine, RedisBulkEngine)
    assert pair.local.store.config.batch_engine.type == "local"
    assert get_settings().materialization_engine == "bulk"  # the default


def test_full_history_then_older_rows_then_incremental(pair: Pair) -> None:
    start, end = pair.snapshots[0] - timedelta(days=1), pair.snapshots[-1] + timedelta(days=1)
    for side in (pair.local, pair.bulk):
        materialize(side.store, start.to_pydatetime(), end.to_pydatetime())
    first = _assert_same_redis(pair)
    assert len(first) == pair.customers[ENTITY_KEY].nunique()

    # Older rows again: nothing stored is replaced (Feast keeps the newer timestamp).
    month_one = (pair.snapshots[0] + timedelta(days=1)).to_pydatetime()
    for side in (pair.local, pair.bulk):
        materialize(side.store, start.to_pydatetime(), month_one)
    assert _assert_same_redis(pair) == first

    # A new snapshot for 300 customers, loaded incrementally.
    latest = pair.customers[pair.customers[EVENT_TIMESTAMP] == pair.snapshots[-1]]
    later = assign_event_time(
        latest.head(300).drop(columns=[EVENT_TIMESTAMP]),
        pair.snapshots[-1] + pd.DateOffset(months=1),
    )
    later["tenure"] += 1
    later = later.drop(columns=["churn", "label_observed_at"])
    for side in (pair.local, pair.bulk):
        write_offline_store(later, side.settings.offline_dir, created_at=CREATED)
        materialize_incremental(side.store, (end + pd.DateOffset(months=2)).to_pydatetime())
    final = _assert_same_redis(pair)
    assert final != first  # the incremental run changed something, on both sides

    # Every customer, read back through Feast, is the offline store's latest row (the
    # corrected rows and the new snapshot included).
    ids = sorted(pair.customers[ENTITY_KEY].unique())
    got = online_features(pair.bulk.store, ids).to_frame().set_index(ENTITY_KEY)
    expected = _offline_latest(pair.bulk.settings)
    assert (expected.loc[later[ENTITY_KEY], "tenure"].to_numpy() == later["tenure"]).all()
    _assert_matches_offline(got.loc[ids], expected.loc[ids])


def test_batches_write_the_same_bytes(
    pair: Pair, redis_server: redis_local.RedisServerConfig
) -> None:
    """batch_rows far below the data size (many round trips) writes what one batch does."""
    start, end = pair.snapshots[0] - timedelta(days=1), pair.snapshots[-1] + timedelta(days=1)
    snapshots = []
    for db, batch_rows in ((6, 333), (7, 1_000_000)):
        store = get_store(settings=pair.bulk.settings.model_copy(update={"redis_db": db}))
        store.config.batch_engine.batch_rows = batch_rows
        client = redis.Redis(
            host=redis_server.host, port=redis_server.port, password=redis_server.password, db=db
        )
        client.flushdb()
        materialize(store, start.to_pydatetime(), end.to_pydatetime())
        engine = store._get_provider().batch_engine
        assert engine.repo_config.batch_engine.batch_rows == batch_rows
        snapshots.append(_redis_snapshot(client))
        client.flushdb()
    assert len(snapshots[0]) == pair.customers[ENTITY_KEY].nunique()
    assert snapshots[0] == snapshots[1]


def test_refuses_an_online_store_it_cannot_write(pair: Pair) -> None:
    config = repo_config(settings=pair.bulk.settings)
    config.online_store.redis_type = "redis_cluster"
    with pytest.raises(RedisLayoutError, match="single Redis endpoint"):
        redis_config(config)
