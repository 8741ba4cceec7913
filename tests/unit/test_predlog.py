"""The prediction log's writer: records written partitioned, drops counted, nothing raised."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from churn.loop.predlog import (
    RECORD_COLUMNS,
    PredictionBatch,
    PredictionLogWriter,
    read_log,
    write_log,
)


def batch(ids: list[str], version: str = "1", at: float = 1_700_000_000.0) -> PredictionBatch:
    """A request's predictions: probabilities 0.1, 0.2, ... per id."""
    return PredictionBatch(
        request_id="r-" + ids[0],
        customer_ids=ids,
        model_name="churn",
        model_version=version,
        probabilities=np.arange(1, len(ids) + 1, dtype=np.float64) / 10,
        threshold=0.25,
        event_times=np.full(len(ids), 1_690_000_000.0),
        predicted_at=at,
        source="online",
        features={"tenure": list(range(len(ids)))},
    )


def test_write_log_partitions_by_date_and_version(tmp_path: Path) -> None:
    day2 = 1_700_000_000.0 + 86400
    n = write_log(str(tmp_path), [batch(["a", "b"]), batch(["c"], "2"), batch(["d"], at=day2)])
    assert n == 4
    folders = sorted(str(p.parent.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet"))
    assert folders == [
        "date=2023-11-14/model_version=1",
        "date=2023-11-14/model_version=2",
        "date=2023-11-15/model_version=1",
    ]
    log = read_log(str(tmp_path))
    assert list(log.columns) == list(RECORD_COLUMNS)
    row = log.set_index("customer_id").loc["b"]
    assert row["probability"] == pytest.approx(0.2)
    assert bool(row["label"]) is False
    assert row["features"] == '{"tenure": 1}'
    assert log["prediction_id"].is_unique


def test_writer_flushes_every_n_records_and_on_close(tmp_path: Path) -> None:
    writer = PredictionLogWriter(
        str(tmp_path), flush_records=3, flush_interval_s=60, max_buffered=100
    )
    writer.offer(batch(["a", "b", "c"]))
    deadline = time.monotonic() + 5
    while writer.written < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.written == 3  # by count, long before the 60 s interval
    writer.offer(batch(["d"]))
    writer.close()
    assert sorted(read_log(str(tmp_path))["customer_id"]) == ["a", "b", "c", "d"]


def test_full_buffer_drops_and_counts(tmp_path: Path) -> None:
    dropped: list[int] = []
    writer = PredictionLogWriter(
        str(tmp_path), flush_records=5, flush_interval_s=60, max_buffered=5,
        on_dropped=dropped.append,
    )  # fmt: skip
    assert writer.offer(batch(["a", "b", "c", "d"]))
    assert not writer.offer(batch(["e", "f"]))
    writer.close()
    assert dropped == [2] and writer.dropped == 2
    assert len(read_log(str(tmp_path))) == 4


def test_failing_sink_drops_and_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    dropped: list[int] = []
    writer = PredictionLogWriter(
        str(blocker / "log"), flush_records=1, flush_interval_s=0.05, max_buffered=10,
        on_dropped=dropped.append,
    )  # fmt: skip
    assert writer.offer(batch(["a", "b"]))
    writer.close()
    assert sum(dropped) == 2 and writer.written == 0


def test_interval_flushes_a_small_buffer(tmp_path: Path) -> None:
    writer = PredictionLogWriter(
        str(tmp_path), flush_records=1000, flush_interval_s=0.1, max_buffered=1000
    )
    writer.offer(batch(["a"]))
    deadline = time.monotonic() + 5
    while writer.written < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert writer.written == 1
    writer.close()


def test_a_log_under_a_hidden_directory_is_read_and_staging_files_are_not(tmp_path: Path) -> None:
    """CHURN_HOME defaults to <project>/.churn: the root's own path may hold '/.'."""
    root = tmp_path / ".churn" / "prediction_log"
    assert write_log(str(root), [batch(["a", "b"])]) == 2
    part = next(root.rglob("*.parquet"))
    (part.parent / f".{part.name}.tmp.parquet").write_bytes(part.read_bytes())
    log = read_log(str(root))
    assert sorted(log["customer_id"]) == ["a", "b"]
