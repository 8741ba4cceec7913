"""The direct Redis read path (serving.online, serving.resp) against Feast and a real Redis.

The reader must return exactly what Feast's own online read returns, for real Telco
customers materialized by the real feature pipeline; and the client must fail fast
and recover when Redis stops, hangs or refuses the login.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import numpy as np
import pytest
import redis
from feast.infra.online_stores.helpers import _redis_key
from feast.infra.online_stores.redis import RedisOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from ports import free_port
from serving_support import REDIS_TIMEOUT_S, ServingEnv

from churn import redis_local
from churn.data.telco import load_telco
from churn.data.timestamps import DEFAULT_SNAPSHOT_TIME
from churn.features.names import FEATURE_SERVICE, VIEW_BY_GROUP
from churn.features.store import get_store, online_features
from churn.schema import ENTITY_KEY, Group, model_input_names
from serving.online import (
    LayoutError,
    MissingFeaturesError,
    OnlineFeatureReader,
    layout_from_json,
    layout_from_store,
)
from serving.resp import (
    RedisEndpoint,
    RedisReplyError,
    RedisUnavailable,
    RespClient,
    endpoint_from_options,
    pack_command,
)

pytestmark = pytest.mark.integration

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    """Run one coroutine on a fresh event loop (each test owns its client's loop)."""
    return asyncio.run(coro)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def store(serving_env: ServingEnv) -> Any:
    return get_store()


@pytest.fixture(scope="module")
def endpoint(store: Any) -> RedisEndpoint:
    nodes, options = RedisOnlineStore._parse_connection_string(
        store.config.online_store.connection_string
    )
    return endpoint_from_options(nodes, options, "test")


@pytest.fixture(scope="module")
def telco_ids(serving_env: ServingEnv) -> list[str]:
    ids: list[str] = load_telco(serving_env.telco_csv)[ENTITY_KEY].tolist()
    return ids


def reader_for(store: Any, endpoint: RedisEndpoint, **kw: float) -> OnlineFeatureReader:
    timeouts = {"timeout_s": REDIS_TIMEOUT_S, "retry_interval_s": 0.5, **kw}
    return OnlineFeatureReader(
        layout_from_store(store, FEATURE_SERVICE), RespClient(endpoint, **timeouts)
    )


def test_reader_returns_exactly_what_feast_serves(
    store: Any, endpoint: RedisEndpoint, telco_ids: list[str]
) -> None:
    sample = [
        telco_ids[i] for i in np.random.default_rng(0).choice(len(telco_ids), 300, replace=False)
    ]
    rows = run(reader_for(store, endpoint).read(sample))
    feast = online_features(store, sample)
    assert list(rows.columns) == model_input_names()
    for name in model_input_names():
        mine, theirs = rows.columns[name], feast.columns[name]
        if isinstance(mine, np.ndarray):
            np.testing.assert_array_equal(mine, np.asarray(theirs, dtype=np.float64), err_msg=name)
        else:
            assert list(mine) == list(theirs), name
    assert set(rows.event_time.tolist()) == {DEFAULT_SNAPSHOT_TIME.timestamp()}


def test_redis_keys_are_feasts_serialization(store: Any, telco_ids: list[str]) -> None:
    layout = layout_from_store(store, FEATURE_SERVICE)
    for cid in [*telco_ids[:50], "é-ünïcode-42", "x" * 200]:
        key = EntityKey(join_keys=[ENTITY_KEY], entity_values=[Value(string_val=cid)])
        assert layout.redis_key(cid) == _redis_key(store.config.project, key, 3)


def test_a_recorded_layout_reads_like_the_registry_one(
    store: Any, endpoint: RedisEndpoint, telco_ids: list[str]
) -> None:
    """What a bundle records (to_json, through JSON text) is the registry's layout, and
    reads the same rows: the server needs no registry."""
    layout = layout_from_store(store, FEATURE_SERVICE)
    recorded = layout_from_json(json.loads(json.dumps(layout.to_json())))
    assert recorded == layout
    client = RespClient(endpoint, timeout_s=REDIS_TIMEOUT_S, retry_interval_s=0.5)
    rows = run(OnlineFeatureReader(recorded, client).read(telco_ids[:50]))
    theirs = run(reader_for(store, endpoint).read(telco_ids[:50]))
    for name in model_input_names():
        assert list(rows.columns[name]) == list(theirs.columns[name]), name


def test_a_recorded_layout_is_checked_against_the_schema(store: Any) -> None:
    good = layout_from_store(store, FEATURE_SERVICE).to_json()
    first, *rest = good["views"]
    dropped = {**good, "views": [{**first, "features": first["features"][1:]}, *rest]}
    with pytest.raises(LayoutError, match="missing"):
        layout_from_json(dropped)
    with pytest.raises(LayoutError, match="derived"):
        layout_from_json({**good, "derived": []})
    with pytest.raises(LayoutError, match="malformed"):
        layout_from_json({k: v for k, v in good.items() if k != "project"})


def test_unknown_and_incomplete_customers_are_reported(
    serving_env: ServingEnv, store: Any, endpoint: RedisEndpoint, telco_ids: list[str]
) -> None:
    layout = layout_from_store(store, FEATURE_SERVICE)
    victim, partial, known = telco_ids[-1], telco_ids[-2], telco_ids[0]
    client = redis_local.client(serving_env.redis)
    services = VIEW_BY_GROUP[Group.SERVICES]
    account = VIEW_BY_GROUP[Group.ACCOUNT]
    view = next(v for v in layout.views if v.view == services)
    from feast.infra.online_stores.helpers import _mmh3

    # a whole view gone for `victim`; one feature of a present view gone for `partial`
    client.hdel(layout.redis_key(victim), *[_mmh3(f"{services}:{f}") for f in view.features])
    client.hdel(layout.redis_key(victim), f"_ts:{services}")
    client.hdel(layout.redis_key(partial), _mmh3(f"{account}:tenure"))
    with pytest.raises(MissingFeaturesError) as missing:
        run(reader_for(store, endpoint).read([known, "NOPE-1", victim]))
    assert missing.value.unknown == ["NOPE-1"]
    assert missing.value.incomplete == {victim: [services]}
    with pytest.raises(MissingFeaturesError) as null:
        run(reader_for(store, endpoint).read([known, partial]))
    assert null.value.unknown == [] and null.value.incomplete == {partial: ["tenure"]}


def test_decoded_values_are_memoised_not_reparsed(
    store: Any, endpoint: RedisEndpoint, telco_ids: list[str]
) -> None:
    reader = reader_for(store, endpoint)

    async def twice() -> tuple[Any, int, Any]:
        first = await reader.read(telco_ids[:100])
        cached = len(reader._decoder._values)
        return first, cached, await reader.read(telco_ids[:100])

    first, cached, again = run(twice())
    assert cached > 0 and len(reader._decoder._values) == cached  # nothing new parsed
    for name in model_input_names():
        assert np.array_equal(np.asarray(first.columns[name]), np.asarray(again.columns[name]))


# ------------------------------------------------------------------ the client


def test_connection_refused_fails_fast_then_the_breaker_answers_without_trying() -> None:
    async def scenario() -> tuple[float, str, str]:
        client = RespClient(
            RedisEndpoint("127.0.0.1", free_port()), timeout_s=1.0, retry_interval_s=5.0
        )
        started = time.monotonic()
        with pytest.raises(RedisUnavailable) as first:
            await client.execute(pack_command("PING"), 1)
        elapsed = time.monotonic() - started
        with pytest.raises(RedisUnavailable) as second:
            await client.execute(pack_command("PING"), 1)
        return elapsed, str(first.value), str(second.value)

    elapsed, first, second = run(scenario())
    assert elapsed < 0.5
    assert "unreachable" in first
    assert "next attempt in" in second


def test_wrong_password_is_a_login_error(serving_env: ServingEnv) -> None:
    cfg = serving_env.redis
    client = RespClient(
        RedisEndpoint(cfg.host, cfg.port, password="wrong"), timeout_s=1.0, retry_interval_s=0.0
    )
    with pytest.raises(RedisUnavailable, match="login refused"):
        run(client.execute(pack_command("PING"), 1))


def test_error_replies_raise_redis_reply_error(endpoint: RedisEndpoint) -> None:
    client = RespClient(endpoint, timeout_s=1.0, retry_interval_s=0.0)
    with pytest.raises(RedisReplyError, match="unknown command"):
        run(client.execute(pack_command("NOSUCHCOMMAND"), 1))


def test_pipelined_calls_from_concurrent_tasks_get_their_own_replies(
    endpoint: RedisEndpoint,
) -> None:
    async def scenario() -> list[list[Any]]:
        client = RespClient(endpoint, timeout_s=2.0, retry_interval_s=0.0)
        calls = [client.execute(pack_command("ECHO", f"m{i}") * 3, 3) for i in range(50)]
        return list(await asyncio.gather(*calls))

    for i, replies in enumerate(run(scenario())):
        assert replies == [f"m{i}".encode()] * 3


def test_a_hung_redis_times_out_then_the_client_reconnects(
    serving_env: ServingEnv, endpoint: RedisEndpoint
) -> None:
    async def scenario() -> None:
        client = RespClient(endpoint, timeout_s=0.3, retry_interval_s=0.2)
        assert await client.execute(pack_command("PING"), 1) == [b"PONG"]
        pid = int(serving_env.redis.pid_file.read_text().strip())
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(RedisUnavailable, match=r"did not answer within 0\.3s"):
                await client.execute(pack_command("PING"), 1)
            assert 0.25 < time.monotonic() - started < 1.0
        finally:
            os.kill(pid, signal.SIGCONT)
        await asyncio.sleep(0.25)  # past the retry interval
        assert await client.execute(pack_command("PING"), 1) == [b"PONG"]

    run(scenario())


def test_a_closed_client_refuses_calls(endpoint: RedisEndpoint) -> None:
    async def scenario() -> None:
        client = RespClient(endpoint, timeout_s=1.0, retry_interval_s=0.0)
        assert await client.ping()
        client.close()
        with pytest.raises(RedisUnavailable, match="closed"):
            await client.execute(pack_command("PING"), 1)

    run(scenario())


def test_unsupported_connection_options_are_refused() -> None:
    with pytest.raises(ValueError, match="sentinel_master"):
        endpoint_from_options([{"host": "h", "port": "1"}], {"sentinel_master": "m"}, "cfg")
    with pytest.raises(ValueError, match="expected one host"):
        endpoint_from_options([], {}, "cfg")
    ep = endpoint_from_options(
        [{"host": "h", "port": "6380"}], {"password": "p", "db": 2, "ssl": "true"}, "cfg"
    )
    assert ep == RedisEndpoint("h", 6380, password="p", db=2, ssl=True)
    assert "p" not in ep.describe()


def test_the_store_survives_the_pause(serving_env: ServingEnv) -> None:
    """SIGSTOP/SIGCONT lost nothing: every Telco customer is still online."""
    assert (
        redis.Redis(
            host=serving_env.redis.host,
            port=serving_env.redis.port,
            password=serving_env.redis.password,
        ).dbsize()
        > 7000
    )


def test_a_call_timing_out_while_redis_answers_keeps_the_connection(
    endpoint: RedisEndpoint,
) -> None:
    """A timeout is blamed on Redis only if Redis went silent; replies stay in sync.

    300k pipelined ECHOs: Redis answers at once, but parsing ~3 MB of replies takes
    this process far longer than the 50 ms budget, like a server whose event loop is
    overloaded.
    """

    async def scenario() -> None:
        client = RespClient(endpoint, timeout_s=0.05, retry_interval_s=5.0)
        assert await client.execute(pack_command("PING"), 1) == [b"PONG"]
        protocol = client._protocol
        n = 300_000
        with pytest.raises(RedisUnavailable, match="Redis itself is answering"):
            await client.execute(pack_command("ECHO", "x") * n, n)
        await asyncio.sleep(1.0)  # the rest of the replies go to the abandoned call
        assert await client.execute(pack_command("ECHO", "after"), 1) == [b"after"]
        assert client._protocol is protocol  # same connection, breaker never opened

    run(scenario())
