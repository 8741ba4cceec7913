"""A Feast batch materialization engine that writes Redis in bulk: Feast's bytes, faster.

Why: Feast 0.49's local engine loads ~15k feature-view rows/s into Redis (1M customers
x 3 views: 198 s, measured). Profiled, its time goes to converting every value of
every row to a protobuf one at a time (~40%) and to redis-py building, sending and
parsing two commands per row (~55%). This engine keeps Feast's own pieces and
semantics and removes that per-value work:

- rows come from the configured offline store's `pull_latest_from_table_or_query`,
  exactly as the local engine pulls them (latest row per customer in the window);
- values are converted by Feast's own `python_values_to_proto_values`, once per
  DISTINCT value of a column (Telco-like data has few: categories, tenure months,
  rounded charges), then serialized and gathered back per row;
- keys and hash fields are Feast's (churn.features.redis_layout, checked against Feast);
- Feast's write rule is kept: a customer whose stored `_ts:view` is newer than or
  equal to the row's event time (whole seconds) is not overwritten; a row that is
  written gets `_ts:view` and every feature field in one HSET, plus EXPIRE when the
  online store sets key_ttl_seconds;
- commands go to Redis as pre-encoded RESP in large pipelined batches over one
  connection of Feast's own Redis client (its host, TLS, password and db); replies
  are parsed by hiredis.

Select it in feature_store.yaml (`batch_engine: type:
churn.features.bulk_engine.RedisBulkEngine`); `feast materialize` and
`materialize-incremental` on the command line use it too. A single Redis endpoint
only (ElastiCache cluster mode disabled); other online stores are refused at start.
tests/integration/test_bulk_engine.py compares its Redis contents byte for byte with
Feast's local engine and reads every row back through get_online_features.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
from feast.feature_view import FeatureView
from feast.infra.common.materialization_job import (
    MaterializationJob,
    MaterializationJobStatus,
    MaterializationTask,
)
from feast.infra.materialization.local_engine import (
    LocalMaterializationEngine,
    LocalMaterializationJob,
)
from feast.infra.offline_stores.offline_store import OfflineStore
from feast.infra.online_stores.online_store import OnlineStore
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from feast.infra.registry.base_registry import BaseRegistry
from feast.repo_config import FeastConfigBaseModel, RepoConfig
from feast.type_map import python_values_to_proto_values
from feast.utils import _get_column_names, _run_pyarrow_field_mapping
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import StrictInt, StrictStr

from churn.features.env import BATCH_ENGINE_TYPES
from churn.features.redis_layout import (
    entity_key_prefix,
    feature_field,
    redis_key,
    single_redis,
    timestamp_field,
)
from churn.schema import ENTITY_KEY

ENGINE_TYPE = BATCH_ENGINE_TYPES["bulk"]


class RedisBulkEngineConfig(FeastConfigBaseModel):
    """`batch_engine:` options: rows per pipelined round trip to Redis."""

    type: StrictStr = ENGINE_TYPE
    batch_rows: StrictInt = 50_000


class BulkEngineError(RuntimeError):
    """The engine cannot write this online store, or Redis refused a command."""


def _bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def encode_values(values: npt.NDArray[Any], value_type: Any) -> npt.NDArray[np.object_]:
    """Feast's serialized Value of every element, converted once per distinct value.

    `values` is what Feast's local engine hands its converter (an arrow column's
    to_numpy); nulls (None/NaN) are distinct values too, converted by Feast as well.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    distinct = np.asarray(uniques, dtype=values.dtype)  # the array type Feast is handed
    protos = python_values_to_proto_values(distinct, value_type)  # type: ignore[arg-type]
    encoded = np.array([_bulk(p.SerializeToString()) for p in protos], dtype=object)
    return encoded[codes]


def event_seconds(column: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.int64]:
    """Whole epoch seconds of event timestamps, as Feast's Redis store truncates them."""
    stamps = pd.to_datetime(column.to_numpy(zero_copy_only=False), utc=True)
    return np.asarray(stamps.as_unit("ns").asi8 // 1_000_000_000, dtype=np.int64)


def _timestamp_bytes(seconds: npt.NDArray[np.int64]) -> npt.NDArray[np.object_]:
    """RESP bulk of the protobuf Timestamp Feast stores, per row (one per distinct second)."""
    codes, uniques = pd.factorize(seconds)
    encoded = np.array(
        [_bulk(Timestamp(seconds=int(s)).SerializeToString()) for s in uniques], dtype=object
    )
    return encoded[codes]


def _stored_seconds(replies: Sequence[bytes | None]) -> npt.NDArray[np.int64]:
    """Seconds of each stored `_ts:view` (0 where absent, as Feast treats it)."""
    memo: dict[bytes, int] = {}
    out = np.zeros(len(replies), dtype=np.int64)
    for i, raw in enumerate(replies):
        if raw:
            seconds = memo.get(raw)
            if seconds is None:
                ts = Timestamp()
                ts.ParseFromString(raw)
                seconds = memo[raw] = ts.seconds
            out[i] = seconds
    return out


class _Pipe:
    """Pre-encoded RESP commands over one connection of Feast's Redis client.

    The connection comes from Feast's client (host, TLS, AUTH and db already set up);
    replies are parsed by hiredis straight off its socket, one C call per reply,
    instead of redis-py's per-reply Python path (2 us each: 1.5M replies per 250k
    customers, measured). The connection is used by nothing else meanwhile.
    """

    _RECV = 1 << 20

    def __init__(self, client: Any) -> None:
        self._pool = client.connection_pool
        self._conn = self._pool.get_connection("HSET")

    def run(self, payload: bytes, n_replies: int) -> list[Any]:
        """Send the commands in one write, read their replies in order.

        Raises BulkEngineError naming the first error reply, ConnectionError when
        Redis closes the connection.
        """
        import hiredis

        sock = self._conn._sock  # connected by get_connection
        sock.sendall(payload)
        reader = hiredis.Reader()
        replies: list[Any] = []
        while len(replies) < n_replies:
            data = sock.recv(self._RECV)
            if not data:
                raise ConnectionError(
                    f"Redis closed the connection after {len(replies)} of {n_replies} replies"
                )
            reader.feed(data)
            reply = reader.gets()
            while reply is not False:
                replies.append(reply)
                reply = reader.gets()
        errors = [r for r in replies if isinstance(r, Exception)]
        if errors:
            raise BulkEngineError(f"Redis refused {len(errors)} command(s): {errors[0]}")
        return replies

    def close(self) -> None:
        """Return the connection to Feast's client's pool."""
        self._pool.release(self._conn)


@dataclass(frozen=True)
class ViewWriter:
    """How one feature view's rows become Redis commands."""

    view: str
    project: str
    key_prefix: bytes
    features: tuple[tuple[str, Any], ...]  # (name, Feast ValueType)
    key_ttl_seconds: int | None

    @property
    def _ts_field(self) -> bytes:
        return _bulk(timestamp_field(self.view))

    def keys(self, ids: Sequence[str]) -> list[bytes]:
        """RESP bulk of each customer's key (Feast's serialized entity key + project)."""
        prefix, project = self.key_prefix, self.project
        return [_bulk(redis_key(prefix, project, cid)) for cid in ids]

    def read_stamps(self, pipe: _Pipe, keys: Sequence[bytes]) -> npt.NDArray[np.int64]:
        """The stored `_ts:view` seconds of each key (0 where the view was never written)."""
        head = b"*3\r\n$4\r\nHGET\r\n"
        payload = b"".join(chain.from_iterable(zip(repeat(head), keys, repeat(self._ts_field))))
        return _stored_seconds(pipe.run(payload, len(keys)))

    def write(self, pipe: _Pipe, batch: pa.Table, timestamp_column: str) -> int:
        """Write the batch's rows that are newer than what Redis holds; return how many."""
        ids = batch.column(ENTITY_KEY).to_numpy(zero_copy_only=False)
        keys = self.keys(ids)
        seconds = event_seconds(batch.column(timestamp_column))
        stored = self.read_stamps(pipe, keys)
        newer = ~((stored != 0) & (seconds <= stored))
        if not newer.any():
            return 0
        rows = np.flatnonzero(newer)
        columns: list[Iterator[bytes] | npt.NDArray[np.object_] | list[bytes]] = [
            repeat(b"*%d\r\n$4\r\nHSET\r\n" % (2 + 2 * (len(self.features) + 1))),
            [keys[i] for i in rows],
            repeat(self._ts_field),
            _timestamp_bytes(seconds[rows]),
        ]
        for name, value_type in self.features:
            values = batch.column(name).take(pa.array(rows)).to_numpy(zero_copy_only=False)
            field = _bulk(feature_field(self.view, name))
            columns += [repeat(field), encode_values(values, value_type)]
        n_commands = len(rows)
        if self.key_ttl_seconds:
            ttl = _bulk(str(self.key_ttl_seconds).encode())
            columns += [repeat(b"*3\r\n$6\r\nEXPIRE\r\n"), [keys[i] for i in rows], repeat(ttl)]
            n_commands *= 2
        # One row's commands after another; repeat() columns end with the finite ones.
        payload = b"".join(chain.from_iterable(zip(*columns, strict=False)))
        pipe.run(payload, n_commands)
        return len(rows)


def redis_config(config: RepoConfig) -> RedisOnlineStoreConfig:
    """The online store's config; RedisLayoutError when it is not one Redis endpoint
    (use batch_engine local, or k8s, for other online stores)."""
    return single_redis(config, f"batch engine {ENGINE_TYPE}")


class RedisBulkEngine(LocalMaterializationEngine):
    """Feast's local engine with the write path replaced (see the module docstring)."""

    def __init__(
        self,
        *,
        repo_config: RepoConfig,
        offline_store: OfflineStore,
        online_store: OnlineStore,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            repo_config=repo_config,
            offline_store=offline_store,
            online_store=online_store,
            **kwargs,
        )
        redis_config(repo_config)
        if not isinstance(online_store, RedisOnlineStore):
            raise BulkEngineError(f"online store {type(online_store).__name__} is not Redis")

    def materialize(
        self, registry: BaseRegistry, tasks: list[MaterializationTask]
    ) -> list[MaterializationJob]:
        """One job per task; a failed job carries its error (Feast raises it)."""
        return [self._run(registry, task) for task in tasks]

    def _run(self, registry: BaseRegistry, task: MaterializationTask) -> MaterializationJob:
        view = task.feature_view
        job_id = f"{view.name}-{task.start_time}-{task.end_time}"
        try:
            self._materialize_view(registry, task)
        except Exception as e:  # Feast's contract: the job reports, the provider raises
            return LocalMaterializationJob(
                job_id=job_id, status=MaterializationJobStatus.ERROR, error=e
            )
        return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.SUCCEEDED)

    def _materialize_view(self, registry: BaseRegistry, task: MaterializationTask) -> int:
        view = task.feature_view
        if not isinstance(view, FeatureView):
            raise BulkEngineError(f"{view.name}: only batch feature views are materialized")
        entities = [registry.get_entity(name, task.project) for name in view.entities]
        join_keys, features, timestamp, created = _get_column_names(view, entities)
        if join_keys != [ENTITY_KEY]:
            raise BulkEngineError(f"{view.name}: keyed by {join_keys}, expected [{ENTITY_KEY!r}]")
        table = self.offline_store.pull_latest_from_table_or_query(
            config=self.repo_config,
            data_source=view.batch_source,
            join_key_columns=join_keys,
            feature_name_columns=features,
            timestamp_field=timestamp,
            created_timestamp_column=created,
            start_date=task.start_time,
            end_date=task.end_time,
        ).to_arrow()
        if view.batch_source.field_mapping:
            table = _run_pyarrow_field_mapping(table, view.batch_source.field_mapping)
        writer = self._writer(view)
        client = self.online_store._get_client(redis_config(self.repo_config))  # type: ignore[attr-defined]
        pipe = _Pipe(client)
        written = 0
        batch_rows = self.repo_config.batch_engine.batch_rows
        try:
            with task.tqdm_builder(table.num_rows) as bar:
                for start in range(0, table.num_rows, batch_rows):
                    batch = table.slice(start, batch_rows)
                    written += writer.write(pipe, batch, view.batch_source.timestamp_field)
                    bar.update(batch.num_rows)
        finally:
            pipe.close()
        return written

    def _writer(self, view: FeatureView) -> ViewWriter:
        config = self.repo_config
        return ViewWriter(
            view=view.name,
            project=config.project,
            key_prefix=entity_key_prefix(config.project, config.entity_key_serialization_version),
            features=tuple((f.name, f.dtype.to_value_type()) for f in view.features),
            key_ttl_seconds=redis_config(config).key_ttl_seconds,
        )
