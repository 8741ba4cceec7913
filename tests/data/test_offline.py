"""The parquet offline store: layout, dtypes, idempotent merges and atomic writes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churn.data import offline
from churn.data.offline import (
    LABELS_TABLE,
    OfflineStoreError,
    read_offline_table,
    table_columns,
    write_offline_store,
)
from churn.data.synthetic import generate
from churn.data.timestamps import DEFAULT_SNAPSHOT_TIME, assign_event_time
from churn.schema import (
    CREATED_TIMESTAMP,
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    FEATURES,
    LABEL,
    LABEL_OBSERVED_AT,
    Group,
    Kind,
    feature_names,
)
from churn.settings import get_settings

TABLES = [g.value for g in Group] + [LABELS_TABLE]
T1 = datetime(2025, 3, 1, tzinfo=UTC)
T2 = datetime(2025, 4, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def snapshots() -> pd.DataFrame:
    """Two monthly snapshots of 400 synthetic customers."""
    return generate(400, seed=3, n_snapshots=2)


def _snapshot(df: pd.DataFrame, k: int) -> pd.DataFrame:
    times = sorted(df[EVENT_TIMESTAMP].unique())
    rows: pd.DataFrame = df[df[EVENT_TIMESTAMP] == times[k]].reset_index(drop=True)
    return rows


def _read_all(directory: Path) -> dict[str, pd.DataFrame]:
    return {name: read_offline_table(name, directory) for name in TABLES}


def test_layout_one_table_per_group_plus_labels(snapshots: pd.DataFrame, tmp_path: Path) -> None:
    result = write_offline_store(snapshots, tmp_path, created_at=T1)
    assert set(result.paths) == set(TABLES)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{t}.parquet" for t in TABLES)
    for group in Group:
        table = read_offline_table(group.value, tmp_path)
        assert list(table.columns) == [
            ENTITY_KEY,
            EVENT_TIMESTAMP,
            CREATED_TIMESTAMP,
            *feature_names(group),
        ]
        assert LABEL not in table.columns
        assert len(table) == result.rows[group.value] == len(snapshots)
    labels = read_offline_table(LABELS_TABLE, tmp_path)
    assert list(labels.columns) == [ENTITY_KEY, EVENT_TIMESTAMP, LABEL, LABEL_OBSERVED_AT]
    assert int(labels[LABEL].sum()) == int(snapshots[LABEL].sum())


def test_every_feature_is_stored_exactly_once(snapshots: pd.DataFrame, tmp_path: Path) -> None:
    write_offline_store(snapshots, tmp_path, created_at=T1)
    stored = [c for g in Group for c in read_offline_table(g.value, tmp_path).columns]
    assert sorted(c for c in stored if c in feature_names()) == sorted(feature_names())


def test_dtypes_and_timezones(snapshots: pd.DataFrame, tmp_path: Path) -> None:
    result = write_offline_store(snapshots, tmp_path, created_at=T1)
    tables = _read_all(tmp_path)
    kinds = {Kind.CATEGORY: "object", Kind.INT: "int64", Kind.FLOAT: "float64"}
    for feat in FEATURES:
        table = tables[feat.group.value]
        assert str(table[feat.name].dtype) == kinds[feat.kind], feat.name
    for name, table in tables.items():
        for column in (EVENT_TIMESTAMP, CREATED_TIMESTAMP, LABEL_OBSERVED_AT):
            if column in table.columns:
                assert str(table[column].dtype) == "datetime64[ns, UTC]", (name, column)
        # What Feast's file source reads: a parquet timestamp column carrying the UTC zone.
        arrow = pq.read_schema(result.paths[name]).field(EVENT_TIMESTAMP).type
        assert pa.types.is_timestamp(arrow) and arrow.tz == "UTC"
    assert str(tables[LABELS_TABLE][LABEL].dtype) == "int64"
    assert (tables["account"][CREATED_TIMESTAMP] == pd.Timestamp(T1)).all()


def test_writing_twice_is_idempotent(snapshots: pd.DataFrame, tmp_path: Path) -> None:
    first = write_offline_store(snapshots, tmp_path, created_at=T1)
    before = _read_all(tmp_path)
    again = write_offline_store(snapshots, tmp_path, created_at=T2)
    after = _read_all(tmp_path)
    assert again.changed == dict.fromkeys(TABLES, 0)
    assert again.rows == first.rows
    for name in TABLES:
        pd.testing.assert_frame_equal(after[name], before[name])
    # Unchanged rows keep the created_timestamp of their first write.
    assert (after["services"][CREATED_TIMESTAMP] == pd.Timestamp(T1)).all()


def test_new_snapshot_appends_only_its_rows(snapshots: pd.DataFrame, tmp_path: Path) -> None:
    first, second = _snapshot(snapshots, 0), _snapshot(snapshots, 1)
    write_offline_store(first, tmp_path, created_at=T1)
    before = _read_all(tmp_path)
    result = write_offline_store(pd.concat([first, second]), tmp_path, created_at=T2)
    assert result.changed == dict.fromkeys(TABLES, len(second))
    after = _read_all(tmp_path)
    for name in TABLES:
        assert len(after[name]) == len(first) + len(second)
        old = after[name][after[name][EVENT_TIMESTAMP] == first[EVENT_TIMESTAMP].iloc[0]]
        pd.testing.assert_frame_equal(old.reset_index(drop=True), before[name])
    new_rows = after["account"][
        after["account"][EVENT_TIMESTAMP] == second[EVENT_TIMESTAMP].iloc[0]
    ]
    assert (new_rows[CREATED_TIMESTAMP] == pd.Timestamp(T2)).all()


def test_write_order_does_not_change_the_tables(snapshots: pd.DataFrame, tmp_path: Path) -> None:
    first, second = _snapshot(snapshots, 0), _snapshot(snapshots, 1)
    write_offline_store(second, tmp_path / "a", created_at=T1)
    write_offline_store(first, tmp_path / "a", created_at=T1)
    write_offline_store(snapshots, tmp_path / "b", created_at=T1)
    for name in TABLES:
        pd.testing.assert_frame_equal(
            read_offline_table(name, tmp_path / "a"), read_offline_table(name, tmp_path / "b")
        )


def test_a_corrected_row_replaces_the_stored_one(snapshots: pd.DataFrame, tmp_path: Path) -> None:
    first = _snapshot(snapshots, 0)
    write_offline_store(first, tmp_path, created_at=T1)
    row0 = first.index == 0
    fixed = first.assign(
        monthly_charges=first["monthly_charges"].mask(row0, first["monthly_charges"] + 1.0),
        churn=first[LABEL].mask(row0, 1 - first[LABEL]),
    )
    monthly = fixed["monthly_charges"].iloc[0]
    result = write_offline_store(fixed, tmp_path, created_at=T2)
    assert result.changed == {"demographics": 0, "account": 1, "services": 0, LABELS_TABLE: 1}
    account = read_offline_table("account", tmp_path).set_index(ENTITY_KEY)
    cid = str(fixed.loc[0, ENTITY_KEY])
    assert account.loc[cid, "monthly_charges"] == monthly
    assert account.loc[cid, CREATED_TIMESTAMP] == pd.Timestamp(T2)
    assert len(account) == len(first)
    labels = read_offline_table(LABELS_TABLE, tmp_path).set_index(ENTITY_KEY)
    assert labels.loc[cid, LABEL] == 1 - first[LABEL].iloc[0]


def test_an_older_version_does_not_overwrite_a_newer_one(
    snapshots: pd.DataFrame, tmp_path: Path
) -> None:
    first = _snapshot(snapshots, 0)
    write_offline_store(first, tmp_path, created_at=T2)
    stale = first.copy()
    stale["tenure"] = stale["tenure"] + 1
    result = write_offline_store(stale, tmp_path, created_at=T1)
    assert result.changed["account"] == 0
    account = read_offline_table("account", tmp_path)
    assert (account["tenure"] == first["tenure"]).all()


def test_labels_share_the_feature_timestamps(telco_df: pd.DataFrame, tmp_path: Path) -> None:
    stamped = assign_event_time(telco_df, DEFAULT_SNAPSHOT_TIME)
    result = write_offline_store(stamped, tmp_path, created_at=T1)
    assert result.rows == dict.fromkeys(TABLES, len(telco_df))
    labels = read_offline_table(LABELS_TABLE, tmp_path)
    account = read_offline_table("account", tmp_path)
    merged = labels.merge(account, on=[ENTITY_KEY, EVENT_TIMESTAMP], how="inner")
    assert len(merged) == len(telco_df)  # every label row has its features at the same time
    assert (labels[LABEL_OBSERVED_AT] - labels[EVENT_TIMESTAMP] == timedelta(days=30)).all()
    assert int(labels[LABEL].sum()) == int(telco_df[LABEL].sum())


def test_unlabelled_frames_write_features_only(snapshots: pd.DataFrame, tmp_path: Path) -> None:
    result = write_offline_store(snapshots.drop(columns=[LABEL, LABEL_OBSERVED_AT]), tmp_path)
    assert LABELS_TABLE not in result.paths
    assert not (tmp_path / f"{LABELS_TABLE}.parquet").exists()


def test_created_at_defaults_to_the_call_time(snapshots: pd.DataFrame, tmp_path: Path) -> None:
    before = pd.Timestamp(datetime.now(UTC))
    write_offline_store(snapshots, tmp_path)
    after = pd.Timestamp(datetime.now(UTC))
    created = read_offline_table("demographics", tmp_path)[CREATED_TIMESTAMP]
    assert created.nunique() == 1
    assert before <= created.iloc[0] <= after


def test_created_at_must_be_timezone_aware(snapshots: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="created_at"):
        write_offline_store(snapshots, tmp_path, created_at=datetime(2025, 1, 1))
    other_zone = datetime(2025, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    write_offline_store(snapshots, tmp_path, created_at=other_zone)
    created = read_offline_table("account", tmp_path)[CREATED_TIMESTAMP].iloc[0]
    assert created == pd.Timestamp("2025-01-01T00:00:00Z")


def test_timestamps_are_required(telco_df: pd.DataFrame, tmp_path: Path) -> None:
    from churn.data.contract import DataContractError

    with pytest.raises(DataContractError, match=EVENT_TIMESTAMP):
        write_offline_store(telco_df, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def settings_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.setenv("CHURN_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


def test_default_directory_comes_from_settings(
    snapshots: pd.DataFrame, settings_home: Path
) -> None:
    result = write_offline_store(snapshots, created_at=T1)
    for name in TABLES:
        assert result.paths[name] == get_settings().offline_table(name)
        assert result.paths[name].parent == settings_home / "offline"
        assert result.paths[name].is_file()


def test_existing_table_with_other_columns_is_refused(
    snapshots: pd.DataFrame, tmp_path: Path
) -> None:
    write_offline_store(snapshots, tmp_path, created_at=T1)
    path = tmp_path / "account.parquet"
    pd.read_parquet(path).drop(columns=["tenure"]).to_parquet(path, index=False)
    with pytest.raises(OfflineStoreError, match="tenure"):
        write_offline_store(snapshots, tmp_path, created_at=T2)


def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    good = pd.DataFrame({"a": [1, 2]})
    offline.write_parquet_atomic(good, path)
    unserialisable = pd.DataFrame({"a": [{"x": 1}, 3]})  # pyarrow cannot type this column
    with pytest.raises(pa.ArrowException):
        offline.write_parquet_atomic(unserialisable, path)
    pd.testing.assert_frame_equal(pd.read_parquet(path), good)
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_table_columns_cover_labels_and_groups() -> None:
    assert table_columns(LABELS_TABLE) == [ENTITY_KEY, EVENT_TIMESTAMP, LABEL, LABEL_OBSERVED_AT]
    assert table_columns("account")[3:] == feature_names(Group.ACCOUNT)
    with pytest.raises(FileNotFoundError, match="labels"):
        read_offline_table(LABELS_TABLE, Path("/nonexistent-offline-dir"))
