"""The Feast feature store end to end, against a real redis-server and real parquet.

One module-scoped store: the real Telco CSV plus two snapshots of one extra
customer are written to an isolated offline store, the repo is applied and
materialized once, and the tests read it. Tests run in file order; the only ones
that change state (idempotent re-materialization, then the incremental run) come
last and say what they change.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from feast import FeatureStore, FileSource
from feast.infra.online_stores.helpers import _redis_key
from feast.infra.online_stores.redis import RedisOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.repo_config import load_repo_config

from churn import redis_local
from churn.data.contract import validate
from churn.data.offline import read_offline_table, write_offline_store
from churn.data.synthetic import generate
from churn.data.telco import load_telco
from churn.data.timestamps import assign_event_time
from churn.features.derived import derive
from churn.features.env import MissingEnvironmentVariableError, feast_env
from churn.features.feast_schema import feast_dtype
from churn.features.names import FEATURE_SERVICE, PROJECT, VIEW_BY_GROUP, feature_refs
from churn.features.store import (
    MissingFeatureRowsError,
    MissingFeatureValuesError,
    UnknownCustomerError,
    apply_repo,
    get_store,
    historical_features,
    materialize,
    materialize_incremental,
    online_features,
    repo_config,
    service_refs,
)
from churn.schema import (
    DERIVED_FEATURES,
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    FEATURES,
    LABEL,
    Group,
    categorical_names,
    derived_names,
    feature_names,
    model_input_names,
    version_of_derived,
)
from churn.settings import FEATURE_REPO, Settings, get_settings

pytestmark = pytest.mark.integration

T_TELCO = datetime(2025, 1, 1, tzinfo=UTC)  # the Telco snapshot
WINDOW_START = T_TELCO - timedelta(days=31)
T1 = datetime(2025, 2, 1, tzinfo=UTC)  # first snapshot of PIT_ID
T2 = datetime(2025, 3, 1, tzinfo=UTC)  # second snapshot of PIT_ID
FIRST_END = datetime(2025, 4, 1, tzinfo=UTC)  # end of the initial materialization
T3 = datetime(2025, 5, 1, tzinfo=UTC)  # a later snapshot for the incremental run
INCREMENTAL_END = datetime(2025, 6, 1, tzinfo=UTC)
PIT_ID = "PIT-0001"
CREATED = datetime(2025, 6, 15, tzinfo=UTC)
DERIVED = [d.name for d in DERIVED_FEATURES]


@dataclass(frozen=True)
class FeatureEnv:
    """The applied, materialized store of this module and what was written to it."""

    store: FeatureStore
    settings: Settings
    telco: pd.DataFrame
    pit: pd.DataFrame
    redis: redis.Redis


def _pit_snapshots(telco: pd.DataFrame) -> pd.DataFrame:
    """Two monthly snapshots of one new customer, built from a real Telco row."""
    base = telco[telco["tenure"] > 5].iloc[[0]].reset_index(drop=True)
    rows = []
    for months, moment in ((5, T1), (6, T2)):
        row = base.copy()
        row[ENTITY_KEY] = PIT_ID
        row["tenure"] = months
        row["total_charges"] = round(months * float(row["monthly_charges"].iloc[0]), 2)
        rows.append(assign_event_time(row, moment))
    return validate(pd.concat(rows, ignore_index=True))


def _offline_latest(settings: Settings) -> pd.DataFrame:
    """Latest offline row per customer, every raw feature, indexed by customer_id."""
    parts = []
    for group in Group:
        table = read_offline_table(group.value, settings.offline_dir)
        latest = table.sort_values(EVENT_TIMESTAMP).groupby(ENTITY_KEY).tail(1)
        parts.append(latest.set_index(ENTITY_KEY)[feature_names(group)])
    return pd.concat(parts, axis=1)[feature_names()]


def _redis_snapshot(client: redis.Redis) -> dict[bytes, dict[bytes, bytes]]:
    """Every key's hash: the whole online store, to compare byte for byte."""
    keys = sorted(client.scan_iter(count=1000))
    pipe = client.pipeline()
    for key in keys:
        pipe.hgetall(key)
    return dict(zip(keys, pipe.execute(), strict=True))


def _customer_key(customer_id: str) -> bytes:
    """The Redis key Feast stores a customer under (serialization version 3)."""
    key = EntityKey(join_keys=[ENTITY_KEY], entity_values=[Value(string_val=customer_id)])
    return _redis_key(PROJECT, key, entity_key_serialization_version=3)


def _assert_matches_offline(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Raw features equal offline values exactly; derived equal derive() on them."""
    for name in feature_names():
        if name in categorical_names():
            assert got[name].tolist() == expected[name].tolist(), name
        else:
            np.testing.assert_array_equal(
                got[name].to_numpy(np.float64), expected[name].to_numpy(np.float64), err_msg=name
            )
    served = [name for name in got.columns if name in DERIVED]  # the set the read asked for
    assert served == derived_names(version_of_derived(served))
    for name, values in derive(expected, served).items():
        np.testing.assert_allclose(got[name].to_numpy(np.float64), values, rtol=1e-12, err_msg=name)


@pytest.fixture(scope="module")
def env(
    redis_server: redis_local.RedisServerConfig,
    tmp_path_factory: pytest.TempPathFactory,
    telco_csv: Path,
) -> Iterator[FeatureEnv]:
    """Telco + PIT customer ingested into an isolated home, applied, materialized."""
    home = tmp_path_factory.mktemp("feature_store_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHURN_HOME", str(home))
        get_settings.cache_clear()
        settings = get_settings()
        client = redis_local.client(redis_server, timeout_s=10.0)
        client.flushdb()
        telco = assign_event_time(load_telco(telco_csv), T_TELCO)
        pit = _pit_snapshots(telco)
        write_offline_store(telco, created_at=CREATED)
        write_offline_store(pit, created_at=CREATED)
        store = get_store(settings=settings)
        apply_repo(store, settings=settings)
        materialize(store, WINDOW_START, FIRST_END)
        yield FeatureEnv(store=store, settings=settings, telco=telco, pit=pit, redis=client)
    get_settings.cache_clear()


# ------------------------------------------------------------------ configuration


def test_yaml_resolves_to_the_settings(env: FeatureEnv) -> None:
    config = env.store.config
    assert config.project == PROJECT
    assert Path(config.registry.path) == env.settings.feast_registry_path
    assert config.online_store.connection_string == env.settings.redis_connection_string
    assert config.entity_key_serialization_version == 3


def test_feast_cli_loader_sees_the_same_config_when_env_is_exported(
    env: FeatureEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `eval "$(python -m churn.features.env)"; feast ...` gives Feast's own loader."""
    for name, value in feast_env(env.settings).items():
        monkeypatch.setenv(name, value)
    theirs = load_repo_config(FEATURE_REPO, FEATURE_REPO / "feature_store.yaml")
    assert theirs.registry.path == env.store.config.registry.path
    assert theirs.online_store.connection_string == env.store.config.online_store.connection_string


def test_env_module_prints_shell_exports(env: FeatureEnv) -> None:
    """`eval "$(python -m churn.features.env)"` exports exactly feast_env(settings)."""
    result = subprocess.run(
        [sys.executable, "-m", "churn.features.env"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CHURN_HOME": str(env.settings.home)},
    )
    exported = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in result.stdout.splitlines()
    )
    assert exported == feast_env(env.settings)


def test_unset_variable_is_named(tmp_path: Path) -> None:
    (tmp_path / "feature_store.yaml").write_text(
        "project: churn\nregistry: ${NOT_SET_ANYWHERE}/r.db\n"
    )
    with pytest.raises(MissingEnvironmentVariableError, match="NOT_SET_ANYWHERE"):
        repo_config(tmp_path, environ={})


def test_eks_config_validates_with_feast(env: FeatureEnv) -> None:
    config = repo_config(
        yaml_file="feature_store.eks.yaml",
        environ={"CHURN_S3_BUCKET": "churn-artifacts"},
        settings=env.settings.model_copy(
            update={"redis_host": "churn.abc123.use1.cache.amazonaws.com"}
        ),
    )
    assert config.project == PROJECT
    assert config.registry.path == "s3://churn-artifacts/churn/feast/registry.db"
    assert config.offline_store.type == "churn.features.offline_duckdb.ChurnDuckDBOfflineStore"
    assert config.offline_store.staging_location == "s3://churn-artifacts/churn/feast/staging"
    # Feast's k8s engine only where CHURN_MATERIALIZATION_ENGINE=k8s (tests/infra has its Jobs).
    assert config.batch_engine.type == "churn.features.bulk_engine.RedisBulkEngine"
    nodes, params = RedisOnlineStore._parse_connection_string(config.online_store.connection_string)
    assert nodes == [
        {"host": "churn.abc123.use1.cache.amazonaws.com", "port": str(env.settings.redis_port)}
    ]
    assert params["ssl"] is True
    assert params["password"] == env.settings.redis_password.get_secret_value()


def test_apply_refuses_settings_other_than_the_environment(env: FeatureEnv, tmp_path: Path) -> None:
    other = env.settings.model_copy(update={"home": tmp_path})
    with pytest.raises(ValueError, match="CHURN_HOME"):
        apply_repo(env.store, settings=other)


def test_feature_service_is_exactly_the_model_inputs(env: FeatureEnv) -> None:
    service = env.store.get_feature_service(FEATURE_SERVICE)
    served = [f.name for p in service.feature_view_projections for f in p.features]
    assert served == model_input_names()
    assert [r.split(":")[1] for r in feature_refs()] == model_input_names()
    assert service_refs(env.store) == feature_refs()


def test_views_are_typed_from_the_schema(env: FeatureEnv) -> None:
    for group, view_name in VIEW_BY_GROUP.items():
        view = env.store.get_feature_view(view_name)
        assert [f.name for f in view.features] == feature_names(group)
        assert all(f.description for f in view.features)
        expected = {f.name: feast_dtype(f.kind) for f in FEATURES if f.group is group}
        assert {f.name: f.dtype for f in view.features} == expected
        source = view.batch_source
        assert isinstance(source, FileSource)
        assert source.path == str(env.settings.offline_table(group.value))


# ------------------------------------------------------------------------- online


def test_online_equals_offline_for_random_customers(env: FeatureEnv) -> None:
    rng = np.random.default_rng(20250101)
    ids = rng.choice(env.telco[ENTITY_KEY].to_numpy(), size=250, replace=False).tolist()
    got = online_features(env.store, ids)
    assert got.unknown == [] and got.incomplete == []
    assert list(got.columns) == model_input_names()
    frame = got.to_frame()
    assert frame[ENTITY_KEY].tolist() == ids
    _assert_matches_offline(frame.set_index(ENTITY_KEY), _offline_latest(env.settings).loc[ids])


def test_online_raw_views_without_the_on_demand_view(env: FeatureEnv) -> None:
    ids = env.telco[ENTITY_KEY].iloc[:20].tolist()
    got = online_features(env.store, ids, features=feature_refs(include_derived=False))
    assert list(got.columns) == feature_names()
    expected = _offline_latest(env.settings).loc[ids]
    assert got.to_frame()["contract"].tolist() == expected["contract"].tolist()


def test_online_serves_the_latest_snapshot(env: FeatureEnv) -> None:
    got = online_features(env.store, [PIT_ID]).to_frame()
    assert got["tenure"].tolist() == [6]  # T2's row, not T1's


def test_unknown_ids_are_reported_not_served_as_none(env: FeatureEnv) -> None:
    known = env.telco[ENTITY_KEY].iloc[0]
    got = online_features(env.store, ["NOPE-0001", known, "NOPE-0002"], strict=False)
    assert got.unknown == ["NOPE-0001", "NOPE-0002"]
    assert all(values[0] is None and values[2] is None for values in got.columns.values())
    assert all(values[1] is not None for values in got.columns.values())
    with pytest.raises(UnknownCustomerError, match="NOPE-0001") as info:
        online_features(env.store, ["NOPE-0001", known])
    assert info.value.customer_ids == ["NOPE-0001"]


# --------------------------------------------------------------------- historical


def test_training_frame_from_labels_is_complete_and_equals_offline(env: FeatureEnv) -> None:
    labels = read_offline_table("labels", env.settings.offline_dir)
    labels = labels[labels[ENTITY_KEY] != PIT_ID].sample(frac=1.0, random_state=3)
    out = historical_features(env.store, labels[[ENTITY_KEY, EVENT_TIMESTAMP, LABEL]])
    assert len(out) == len(labels) == len(env.telco)
    assert out[ENTITY_KEY].tolist() == labels[ENTITY_KEY].tolist()  # entity order kept
    assert out[LABEL].tolist() == labels[LABEL].tolist()
    _assert_matches_offline(
        out.set_index(ENTITY_KEY), _offline_latest(env.settings).loc[labels[ENTITY_KEY]]
    )


def test_point_in_time_picks_the_snapshot_valid_at_each_row(env: FeatureEnv) -> None:
    entity = pd.DataFrame(
        {
            ENTITY_KEY: [PIT_ID] * 4,
            EVENT_TIMESTAMP: pd.to_datetime(
                [T2 + timedelta(days=10), T1, T1 + timedelta(days=27), T2], utc=True
            ),
            LABEL: [1, 0, 0, 0],
        }
    )
    out = historical_features(env.store, entity)
    assert len(out) == len(entity)
    assert out[EVENT_TIMESTAMP].tolist() == entity[EVENT_TIMESTAMP].tolist()
    # T1 and just before T2 see the first snapshot (no future leak); T2 onwards the second.
    assert out["tenure"].tolist() == [6, 5, 5, 6]
    assert (
        out["total_charges"].tolist()
        == env.pit.set_index("tenure").loc[[6, 5, 5, 6], "total_charges"].tolist()
    )
    np.testing.assert_allclose(out["avg_monthly_spend"], derive(out)["avg_monthly_spend"])


@pytest.mark.parametrize("offline_store", ["duckdb", "file"])
def test_entity_row_before_any_snapshot_raises_naming_it(
    env: FeatureEnv, offline_store: str
) -> None:
    """Feast's file store silently drops such a row and its DuckDB store returns it with
    null features; historical_features refuses both, naming the row."""
    store = get_store(settings=env.settings.model_copy(update={"offline_store": offline_store}))
    before = pd.Timestamp(T1 - timedelta(days=1))
    entity = pd.DataFrame(
        {ENTITY_KEY: [PIT_ID, PIT_ID], EVENT_TIMESTAMP: pd.to_datetime([before, T2], utc=True)}
    )
    raw = store.get_historical_features(
        entity_df=entity, features=store.get_feature_service(FEATURE_SERVICE)
    ).to_df()
    # The pitfalls this guards against (if Feast changes, revisit).
    if offline_store == "file":
        assert len(raw) == 1
        with pytest.raises(MissingFeatureRowsError, match="1 of 2 entity rows") as dropped:
            historical_features(store, entity)
        assert dropped.value.missing[ENTITY_KEY].tolist() == [PIT_ID]
        assert dropped.value.missing[EVENT_TIMESTAMP].tolist() == [before]
    else:
        assert len(raw) == 2
        assert raw[feature_names()].isna().all(axis=1).sum() == 1
        with pytest.raises(MissingFeatureValuesError, match=PIT_ID) as nulls:
            historical_features(store, entity)
        assert nulls.value.keys == [{ENTITY_KEY: PIT_ID, EVENT_TIMESTAMP: before}]


def test_unknown_customer_in_entity_frame_raises(env: FeatureEnv) -> None:
    entity = pd.DataFrame(
        {ENTITY_KEY: ["NOPE-0001"], EVENT_TIMESTAMP: pd.to_datetime([T2], utc=True)}
    )
    with pytest.raises(MissingFeatureValuesError, match="NOPE-0001"):
        historical_features(env.store, entity)
    out = historical_features(env.store, entity, allow_missing_values=True)
    assert out[feature_names()].isna().all(axis=None)


def test_entity_frame_is_checked(env: FeatureEnv) -> None:
    naive = pd.DataFrame({ENTITY_KEY: [PIT_ID], EVENT_TIMESTAMP: [pd.Timestamp("2025-03-01")]})
    with pytest.raises(ValueError, match="timezone-aware"):
        historical_features(env.store, naive)
    twice = pd.DataFrame(
        {ENTITY_KEY: [PIT_ID] * 2, EVENT_TIMESTAMP: pd.to_datetime([T2, T2], utc=True)}
    )
    with pytest.raises(ValueError, match="duplicate"):
        historical_features(env.store, twice)


# ---------------------------------------------------- materialization (changes state)


def test_materialize_twice_is_idempotent(env: FeatureEnv) -> None:
    before = _redis_snapshot(env.redis)
    assert len(before) == env.telco[ENTITY_KEY].nunique() + 1  # one hash per customer
    materialize(env.store, WINDOW_START, FIRST_END)
    assert env.redis.dbsize() == len(before)
    assert _redis_snapshot(env.redis) == before


def test_materialize_incremental_loads_only_new_rows(env: FeatureEnv) -> None:
    ids = env.telco[ENTITY_KEY].tolist()
    updated, untouched, deleted = ids[100:105], ids[200:210], ids[300]
    newer = assign_event_time(env.telco.set_index(ENTITY_KEY).loc[updated].reset_index(), T3)
    newer["tenure"] += 4
    newer["total_charges"] = (newer["total_charges"] + 4 * newer["monthly_charges"]).round(2)
    write_offline_store(newer, created_at=CREATED)
    # A key removed from Redis stays removed unless its (old) row is read again.
    assert env.redis.delete(_customer_key(deleted)) == 1
    before = online_features(env.store, untouched).to_frame()

    report = materialize_incremental(env.store, INCREMENTAL_END)

    assert set(report.start.values()) == {FIRST_END}
    got = online_features(env.store, updated).to_frame().set_index(ENTITY_KEY)
    _assert_matches_offline(got, newer.set_index(ENTITY_KEY))
    pd.testing.assert_frame_equal(online_features(env.store, untouched).to_frame(), before)
    assert online_features(env.store, [deleted], strict=False).unknown == [deleted]
    views = {v.name: v for v in env.store.list_feature_views()}
    assert all(v.most_recent_end_time == INCREMENTAL_END for v in views.values())


# ------------------------------------------------------------------- the real CLI


def _feast(args: list[str], environ: dict[str, str]) -> str:
    feast_bin = Path(sys.executable).parent / "feast"
    result = subprocess.run(
        [str(feast_bin), *args],
        cwd=FEATURE_REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, (
        f"feast {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def test_feast_cli_apply_materialize_incremental(
    redis_server: redis_local.RedisServerConfig, tmp_path: Path
) -> None:
    """The engineer's commands, verbatim, with the environment `churn env` exports."""
    settings = Settings(home=tmp_path / "home", redis_db=1)  # own registry and Redis db
    data = generate(40, seed=11, n_snapshots=2)
    first, second = (
        data[data[EVENT_TIMESTAMP] == t] for t in sorted(data[EVENT_TIMESTAMP].unique())
    )
    write_offline_store(first, settings.offline_dir, created_at=CREATED)
    environ = {**os.environ, **feast_env(settings)}

    assert "customer_demographics" in _feast(["apply"], environ)
    start, end = first[EVENT_TIMESTAMP].iloc[0], second[EVENT_TIMESTAMP].iloc[0]
    _feast(["materialize", (start - timedelta(days=1)).isoformat(), start.isoformat()], environ)
    write_offline_store(second, settings.offline_dir, created_at=CREATED)
    _feast(["materialize-incremental", (end + timedelta(days=1)).isoformat()], environ)

    store = get_store(settings=settings)
    ids = second[ENTITY_KEY].tolist()
    got = online_features(store, ids).to_frame().set_index(ENTITY_KEY)
    _assert_matches_offline(got, second.set_index(ENTITY_KEY)[feature_names()])
    db1 = redis.Redis(
        host=redis_server.host, port=redis_server.port, password=redis_server.password, db=1
    )
    assert db1.dbsize() == data[ENTITY_KEY].nunique()  # the CLI wrote to its own db
