"""Read a FeatureService's online features straight from Feast's Redis hashes, without pandas.

Why not `FeatureStore.get_online_features`: measured here on the real Telco store it
takes 7-17 ms for ONE customer (protobuf response objects, per-row dicts, the
on-demand transformation through Feast), against ~0.1 ms for the same values read
as below; a naive runtime built on it served ~35 requests/s (docs/decisions.md, 2).

What is reused from Feast, so that nothing about its storage format is guessed:

- the layout comes from Feast's registry: which feature views the FeatureService
  projects, which features of each, the project and the entity key serialization
  version (`layout_from_store`), resolved when the bundle is built and recorded in
  its manifest (`layout_from_json` re-checks it at load), or read from the registry
  at load for a service the bundle does not record;
- Redis keys and hash fields come from churn.features.redis_layout (shared with the
  bulk materialization engine that writes them): Feast's own entity-key
  serialization, derived from Feast at load and checked against its output for
  probe ids (a Feast upgrade that changes the format fails the load, it never reads
  wrong keys), Feast's murmur3 of "view:feature" plus "_ts:view"; values are Feast's
  `Value` protobufs and timestamps protobuf `Timestamp`s, parsed with the real
  classes (decoded values are memoised by their bytes: Telco has a few thousand
  distinct values, so a 100-customer read parses almost nothing).

Derived features (the on-demand view) are recomputed with churn.features.derived.derive,
the same function Feast's python-mode view runs. One HMGET per customer, all of them
pipelined in one write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from churn.features.derived import derive
from churn.features.redis_layout import (
    RedisLayoutError,
    entity_key_prefix,
    feature_field,
    redis_key,
    single_redis,
    timestamp_field,
)
from churn.schema import ENTITY_KEY, Kind, derived_names, feature, feature_names, version_of_derived
from serving.resp import RespClient, pack_bulk

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

_MISS: Final = object()
# Decoded-value memo size; cleared when exceeded (bounded memory for high-cardinality data).
_CACHE_LIMIT: Final = 200_000


class LayoutError(RedisLayoutError):
    """The Feast registry's FeatureService does not match what the model consumes."""


class MissingFeaturesError(LookupError):
    """Customers without features online: `unknown` have none, `incomplete` lack some views."""

    def __init__(self, unknown: list[str], incomplete: dict[str, list[str]]) -> None:
        self.unknown = unknown
        self.incomplete = incomplete
        super().__init__(f"unknown ids {unknown[:20]}, incomplete ids {list(incomplete)[:20]}")


@dataclass(frozen=True)
class ViewFields:
    """One feature view projected by the service: the raw features read from it."""

    view: str
    features: tuple[str, ...]


@dataclass(frozen=True)
class OnlineLayout:
    """Where a FeatureService's raw features live in Redis, resolved once at load."""

    service: str
    project: str
    key_prefix: bytes
    views: tuple[ViewFields, ...]
    derived: tuple[str, ...]
    serialization_version: int
    # The churn.schema feature set the service serves (from its derived features).
    feature_version: int = 1

    def to_json(self) -> dict[str, Any]:
        """What a serving bundle records (layout_from_json reads it back, re-checked)."""
        return {
            "service": self.service,
            "project": self.project,
            "entity_key_serialization_version": self.serialization_version,
            "views": [{"view": v.view, "features": list(v.features)} for v in self.views],
            "derived": list(self.derived),
        }

    @property
    def fields(self) -> tuple[bytes, ...]:
        """HMGET fields in order: each view's feature hashes, then its timestamp field."""
        out: list[bytes] = []
        for v in self.views:
            out.extend(feature_field(v.view, name) for name in v.features)
            out.append(timestamp_field(v.view))
        return tuple(out)

    def redis_key(self, customer_id: str) -> bytes:
        """Feast's Redis key of one customer: serialized entity key + project name."""
        return redis_key(self.key_prefix, self.project, customer_id)


def layout_from_store(store: FeatureStore, service_name: str) -> OnlineLayout:
    """Resolve `service_name` in the Feast registry and check it against churn.schema.

    Raises LayoutError naming the problem: a view that is not online or keyed by
    another entity, raw features missing or unexpected, derived features that are not
    exactly one feature set's, or an online store other than a single Redis endpoint.
    """
    check_online_store(store.config)
    service = store.get_feature_service(service_name)
    odfv_names = {v.name for v in store.list_on_demand_feature_views()}
    views: list[ViewFields] = []
    derived: list[str] = []
    for projection in service.feature_view_projections:
        names = tuple(f.name for f in projection.features)
        if projection.name in odfv_names:
            derived.extend(names)
            continue
        view = store.get_feature_view(projection.name)
        keys = [c.name for c in view.entity_columns]
        if not view.online or keys != [ENTITY_KEY] or projection.join_key_map:
            raise LayoutError(
                f"feature view {view.name!r} must be online and keyed by {ENTITY_KEY!r} "
                f"(online={view.online}, join keys={keys}, key map={projection.join_key_map})"
            )
        views.append(ViewFields(view.name, names))
    return checked_layout(
        service_name,
        store.config.project,
        int(store.config.entity_key_serialization_version),
        views,
        derived,
    )


def check_online_store(config: RepoConfig) -> None:
    """LayoutError unless the feature store's online store is one Redis endpoint."""
    try:
        single_redis(config, "serving")
    except RedisLayoutError as e:
        raise LayoutError(str(e)) from e


def layout_from_json(raw: Any) -> OnlineLayout:
    """The layout a serving bundle recorded (OnlineLayout.to_json), checked again here.

    Why a bundle carries it: the server then needs no Feast registry, only Redis; a
    plain container given just a bundle, or a pod without the registry's volume or S3
    rights, serves the FeatureService the model was built against.
    """
    try:
        views = [ViewFields(str(v["view"]), tuple(map(str, v["features"]))) for v in raw["views"]]
        return checked_layout(
            str(raw["service"]),
            str(raw["project"]),
            int(raw["entity_key_serialization_version"]),
            views,
            [str(d) for d in raw["derived"]],
        )
    except LayoutError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise LayoutError(f"the recorded feature layout is malformed: {e!r}") from e


def checked_layout(
    service: str, project: str, version: int, views: Sequence[ViewFields], derived: Sequence[str]
) -> OnlineLayout:
    """An OnlineLayout whose features are exactly one churn.schema feature set's and whose
    keys are Feast's; the set is recognised by the service's derived features."""
    raw = [name for v in views for name in v.features]
    expected = feature_names()
    if sorted(raw) != sorted(expected) or len(raw) != len(set(raw)):
        raise LayoutError(
            f"feature service {service!r} serves raw features that differ from "
            f"churn.schema: missing {sorted(set(expected) - set(raw))}, unexpected "
            f"{sorted(set(raw) - set(expected))}, duplicated "
            f"{sorted({n for n in raw if raw.count(n) > 1})}"
        )
    try:
        feature_version = version_of_derived(derived)
    except ValueError as e:
        raise LayoutError(f"feature service {service!r}: {e}") from e
    return OnlineLayout(
        service=service,
        project=project,
        key_prefix=_checked_prefix(project, version),
        views=tuple(views),
        derived=tuple(derived_names(feature_version)),
        serialization_version=version,
        feature_version=feature_version,
    )


def _checked_prefix(project: str, version: int) -> bytes:
    try:
        return entity_key_prefix(project, version)
    except RedisLayoutError as e:
        raise LayoutError(f"serving cannot build Redis keys: {e}") from e


@dataclass(frozen=True)
class FeatureRows:
    """Online features of a batch of customers, column-wise, in the layout's feature set's
    model_input_names() order.

    Categorical columns are lists of str, numeric ones float64 arrays; `event_time` is,
    per customer, the OLDEST snapshot time among its feature views (epoch seconds): the
    bound on how stale the features used for the score can be.
    """

    customer_ids: list[str]
    columns: dict[str, Any]
    event_time: npt.NDArray[np.float64]


class _Decoder:
    """Memoised decoding of Feast Value / Timestamp protobuf bytes."""

    def __init__(self) -> None:
        from feast.protos.feast.types.Value_pb2 import Value
        from google.protobuf.timestamp_pb2 import Timestamp

        self._value_type = Value
        self._timestamp_type = Timestamp
        self._values: dict[bytes, Any] = {}
        self._times: dict[bytes, float] = {}

    def values(self, column: Sequence[bytes | None]) -> list[Any]:
        """Python values of one field across customers (None where null)."""
        cache = self._values
        out = [cache.get(raw, _MISS) if raw is not None else None for raw in column]
        if _MISS in out:
            if len(cache) > _CACHE_LIMIT:
                cache.clear()
            for i, raw in enumerate(column):
                if out[i] is _MISS:
                    out[i] = cache[raw] = self._parse_value(raw)  # type: ignore[index,arg-type]
        return out

    def _parse_value(self, raw: bytes) -> Any:
        value = self._value_type()
        value.ParseFromString(raw)
        kind = value.WhichOneof("val")
        if kind is None or kind == "null_val":
            return None
        return getattr(value, kind)

    def times(self, column: Sequence[bytes | None]) -> npt.NDArray[np.float64]:
        """Epoch seconds of one view's `_ts` field across customers (present for all)."""
        cache = self._times
        out = np.empty(len(column), dtype=np.float64)
        for i, raw in enumerate(column):
            seconds = cache.get(raw)  # type: ignore[arg-type]
            if seconds is None:
                ts = self._timestamp_type()
                ts.ParseFromString(raw)
                seconds = ts.seconds + ts.nanos * 1e-9
                if len(cache) > _CACHE_LIMIT:
                    cache.clear()
                cache[raw] = seconds  # type: ignore[index]
            out[i] = seconds
        return out


class OnlineFeatureReader:
    """Pipelined HMGETs of the layout's fields for a batch of ids, decoded column-wise."""

    def __init__(self, layout: OnlineLayout, client: RespClient) -> None:
        self.layout = layout
        self.client = client
        fields = layout.fields
        self._n_fields = len(fields)
        self._hmget_tail = pack_bulk(fields)
        self._decoder = _Decoder()
        # (view, [(feature, field index, is numeric)], timestamp field index)
        slots: list[tuple[str, list[tuple[str, int, bool]], int]] = []
        i = 0
        for v in layout.views:
            feats = []
            for name in v.features:
                feats.append((name, i, feature(name).kind is not Kind.CATEGORY))
                i += 1
            slots.append((v.view, feats, i))
            i += 1
        self._slots = slots
        self._views = [view for view, _f, _ts in slots]
        self._ts_indices = [ts for _v, _f, ts in slots]
        self._order = [*feature_names(), *layout.derived]

    def pack(self, customer_ids: Sequence[str]) -> bytes:
        """All customers' HMGET commands, in RESP, ready to write in one go."""
        head = b"*%d\r\n$5\r\nHMGET\r\n" % (self._n_fields + 2)
        tail = self._hmget_tail
        parts = []
        for cid in customer_ids:
            key = self.layout.redis_key(cid)
            parts.append(b"%s$%d\r\n%s\r\n%s" % (head, len(key), key, tail))
        return b"".join(parts)

    async def fetch(self, customer_ids: Sequence[str]) -> list[list[bytes | None]]:
        """Raw HMGET replies (one list of field values per id), pipelined in one write.

        Raises serving.resp.RedisUnavailable / RedisReplyError from the store.
        """
        return await self.client.execute(self.pack(customer_ids), len(customer_ids))

    async def read(self, customer_ids: Sequence[str]) -> FeatureRows:
        """fetch + check_present + decode: the features of `customer_ids`, derived included."""
        replies = await self.fetch(customer_ids)
        self.check_present(customer_ids, replies)
        return self.decode(customer_ids, replies)

    def check_present(
        self, customer_ids: Sequence[str], replies: Sequence[Sequence[bytes | None]]
    ) -> None:
        """Raise MissingFeaturesError when any id has no feature view, or lacks some.

        Feast writes a view's `_ts` field with its values, so a view is absent for a
        customer exactly when that field is. The whole batch fails: a caller must not
        score some customers on null features.
        """
        ts = self._ts_indices
        if not any(reply[i] is None for reply in replies for i in ts):
            return
        unknown: list[str] = []
        incomplete: dict[str, list[str]] = {}
        for cid, reply in zip(customer_ids, replies, strict=True):
            missing = [view for view, i in zip(self._views, ts, strict=True) if reply[i] is None]
            if len(missing) == len(ts):
                unknown.append(cid)
            elif missing:
                incomplete[cid] = missing
        raise MissingFeaturesError(unknown, incomplete)

    def decode(
        self, customer_ids: Sequence[str], replies: Sequence[Sequence[bytes | None]]
    ) -> FeatureRows:
        """Columns from HMGET replies of customers whose views are all present.

        Raises MissingFeaturesError (as incomplete) for null values inside a present
        view (a feature added to a view after its last materialization).
        """
        fields = list(zip(*replies, strict=True))
        columns: dict[str, Any] = {}
        times = []
        nulls: dict[str, list[str]] = {}
        for _view, feats, ts_index in self._slots:
            times.append(self._decoder.times(fields[ts_index]))
            for name, index, numeric in feats:
                values = self._decoder.values(fields[index])
                if None in values:
                    nulls[name] = [
                        c for c, v in zip(customer_ids, values, strict=True) if v is None
                    ]
                elif numeric:
                    columns[name] = np.asarray(values, dtype=np.float64)
                else:
                    columns[name] = values
        if nulls:
            incomplete: dict[str, list[str]] = {}
            for name, ids in nulls.items():
                for cid in ids:
                    incomplete.setdefault(cid, []).append(name)
            raise MissingFeaturesError([], incomplete)
        columns.update(derive(columns, self.layout.derived))
        event_time = times[0] if len(times) == 1 else np.minimum.reduce(times)
        return FeatureRows(
            customer_ids=list(customer_ids),
            columns={name: columns[name] for name in self._order},
            event_time=event_time,
        )
