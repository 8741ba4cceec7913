"""Feast's Redis key and field layout, derived from Feast itself and checked.

One home for what both sides of the online store must agree on byte for byte: the
bulk materialization engine (churn.features.bulk_engine) writes these keys and
fields, serving (serving.online) reads them. Nothing is guessed:

- a customer's key is Feast's serialized entity key followed by the project name;
  the bytes before the id's length are taken from
  `feast.infra.online_stores.helpers._redis_key` for a probe id, and the
  construction is checked against Feast's own output for more probe ids (ASCII,
  Telco-shaped, non-ASCII), so a Feast upgrade that changes the format fails loudly
  instead of reading or writing other keys;
- a feature's hash field is Feast's murmur3 of "view:feature", a view's event time
  lives in the field "_ts:view".
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

from churn.schema import ENTITY_KEY

if TYPE_CHECKING:
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig
    from feast.repo_config import RepoConfig

PROBE_IDS: Final = ("x", "7590-VHVEG", "\u00e9t\u00e9-0042")


class RedisLayoutError(ValueError):
    """Feast's key or field layout is not the one this project reads and writes."""


def entity_key_prefix(project: str, version: int) -> bytes:
    """Feast's entity-key bytes before the id's length, checked against Feast for probe ids."""
    first = feast_redis_key(project, version, PROBE_IDS[0])
    probe = PROBE_IDS[0].encode()
    tail = struct.pack("<I", len(probe)) + probe + project.encode()
    if not first.endswith(tail):
        raise RedisLayoutError(
            f"Feast's entity key layout (serialization version {version}) is not "
            "<prefix><uint32 length><id><project>; cannot build Redis keys"
        )
    prefix = first[: -len(tail)]
    for cid in PROBE_IDS[1:]:
        if redis_key(prefix, project, cid) != feast_redis_key(project, version, cid):
            raise RedisLayoutError(f"Redis key of probe id {cid!r} differs from Feast's")
    return prefix


def redis_key(prefix: bytes, project: str, customer_id: str) -> bytes:
    """Feast's Redis key of one customer: serialized entity key + project name."""
    raw = customer_id.encode("utf-8")
    return b"".join((prefix, struct.pack("<I", len(raw)), raw, project.encode()))


def feast_redis_key(project: str, version: int, customer_id: str) -> bytes:
    """The key as Feast itself computes it (slow; for checks and tests)."""
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=[ENTITY_KEY], entity_values=[Value(string_val=customer_id)])
    return bytes(_redis_key(project, key, entity_key_serialization_version=version))


def feature_field(view: str, feature: str) -> bytes:
    """Hash field of one feature: Feast's murmur3 of "view:feature"."""
    from feast.infra.online_stores.helpers import _mmh3

    return bytes(_mmh3(f"{view}:{feature}"))


def timestamp_field(view: str) -> bytes:
    """Hash field holding a view's event time (a protobuf Timestamp)."""
    return f"_ts:{view}".encode()


def single_redis(config: RepoConfig, user: str) -> RedisOnlineStoreConfig:
    """The online store's Redis config; RedisLayoutError unless it is one Redis endpoint.

    Both the reader (serving) and the bulk writer address keys on one endpoint; a
    Redis Cluster shards them by hash slot, which neither does.
    """
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig, RedisType

    online = config.online_store
    if not isinstance(online, RedisOnlineStoreConfig) or online.redis_type != RedisType.redis:
        raise RedisLayoutError(
            f"{user} needs a single Redis endpoint; the feature store's online store is "
            f"{getattr(online, 'type', online)!r} ({getattr(online, 'redis_type', '')})"
        )
    return online
