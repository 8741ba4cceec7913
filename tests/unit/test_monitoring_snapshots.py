"""Which customers are scored or tested: latest per customer, or one snapshot; chunks;
and the file source of served rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from churn.data.offline import write_offline_store
from churn.data.synthetic import generate
from churn.features.derived import add_derived
from churn.monitoring.current import CurrentWindow, load_current, read_rows_file
from churn.monitoring.snapshots import (
    SnapshotNotFoundError,
    chunk_bounds,
    newest_snapshot,
    select_entities,
    snapshot_times,
)
from churn.schema import DERIVED_FEATURES

JAN = datetime(2025, 1, 1, tzinfo=UTC)
FEB = datetime(2025, 2, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def offline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two snapshots: 30 customers in January, the first 20 of them again in February."""
    path = tmp_path_factory.mktemp("offline")
    write_offline_store(generate(30, seed=1, start=JAN), path)
    write_offline_store(generate(20, seed=2, start=FEB), path)
    return path


def test_latest_snapshot_per_customer(offline_dir: Path) -> None:
    rows = select_entities(None, offline_dir)
    assert len(rows) == 30 and rows["customer_id"].is_unique
    assert rows["customer_id"].is_monotonic_increasing
    by_id = rows.set_index("customer_id")["event_timestamp"]
    assert by_id["SYN-0000001"] == pd.Timestamp(FEB)
    assert by_id["SYN-0000030"] == pd.Timestamp(JAN)


def test_one_snapshot(offline_dir: Path) -> None:
    rows = select_entities(JAN, offline_dir)
    assert len(rows) == 30
    assert (rows["event_timestamp"] == pd.Timestamp(JAN)).all()
    assert snapshot_times(offline_dir) == [pd.Timestamp(JAN), pd.Timestamp(FEB)]
    assert newest_snapshot(offline_dir) == FEB


def test_a_missing_snapshot_lists_the_stored_ones(offline_dir: Path) -> None:
    with pytest.raises(SnapshotNotFoundError, match=r"2025-02-01T00:00:00\+00:00"):
        select_entities(datetime(2025, 1, 15, tzinfo=UTC), offline_dir)
    with pytest.raises(ValueError, match="timezone-aware"):
        select_entities(datetime(2025, 1, 1), offline_dir)


def test_an_empty_store_says_run_the_feature_pipeline(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="feature pipeline"):
        select_entities(None, tmp_path)


def test_chunks_cover_every_row_once() -> None:
    assert chunk_bounds(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert chunk_bounds(0, 2) == []
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_bounds(5, 0)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_served_rows_file_gets_derived_features(tmp_path: Path, suffix: str) -> None:
    rows = generate(50, seed=4)
    path = tmp_path / f"served{suffix}"
    if suffix == ".csv":
        rows.to_csv(path, index=False)
    else:
        rows.to_parquet(path)
    frame, source = load_current(CurrentWindow(kind="file", path=path))
    expected = add_derived(rows)
    for d in DERIVED_FEATURES:
        pd.testing.assert_series_equal(frame[d.name], expected[d.name], check_dtype=False)
    assert source == {"kind": "file", "path": str(path), "rows": 50}


def test_served_rows_file_errors_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "served.parquet"
    generate(5, seed=4).drop(columns=["tenure"]).to_parquet(path)
    with pytest.raises(KeyError, match="tenure"):
        read_rows_file(path)
    with pytest.raises(FileNotFoundError, match=r"nope\.parquet"):
        read_rows_file(tmp_path / "nope.parquet")
    (tmp_path / "rows.json").write_text("[]")
    with pytest.raises(ValueError, match=r"\.json"):
        read_rows_file(tmp_path / "rows.json")


def test_window_config_is_validated() -> None:
    with pytest.raises(ValueError, match="path"):
        CurrentWindow(kind="file")
    with pytest.raises(ValueError, match="takes no"):
        CurrentWindow(kind="snapshot", path=Path("/tmp/x.parquet"))
    with pytest.raises(ValueError, match="timezone-aware"):
        CurrentWindow(snapshot_time=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="feature store"):
        load_current(CurrentWindow())
