"""The drift pipeline's "prediction_log" window: what was served, as model inputs.

The log is written and read by churn.loop.predlog in a tmp directory; records carry
their served feature values (the server's prediction_log_features setting), so no
feature store is needed here (tests/integration/test_loop.py reads the Feast path).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn.data.synthetic import generate
from churn.features.derived import add_derived
from churn.loop.predlog import PredictionBatch, read_log, write_log
from churn.monitoring.current import CurrentWindow, load_current, log_rows, select_log
from churn.schema import ENTITY_KEY, model_input_names

DAY1 = datetime(2025, 3, 1, 12, tzinfo=UTC)
DAY2 = datetime(2025, 3, 2, 12, tzinfo=UTC)


def _served(rows: pd.DataFrame, at: datetime, source: str, logged: bool) -> PredictionBatch:
    inputs = add_derived(rows)[model_input_names()]
    return PredictionBatch(
        request_id=f"{source}-{at:%d}",
        customer_ids=rows[ENTITY_KEY].tolist(),
        model_name="m",
        model_version="m-v1",
        probabilities=np.full(len(rows), 0.3),
        threshold=0.5,
        event_times=np.full(len(rows), datetime(2025, 3, 1, tzinfo=UTC).timestamp()),
        predicted_at=at.timestamp(),
        source=source,
        features={c: inputs[c].tolist() for c in inputs.columns} if logged else None,
    )


@pytest.fixture
def log_root(tmp_path: Path) -> str:
    customers = generate(60, seed=9)
    root = str(tmp_path / "log")
    write_log(
        root,
        [
            _served(customers.iloc[:20], DAY1, "online", logged=True),
            _served(customers.iloc[:20], DAY2, "online", logged=True),  # asked again
            _served(customers.iloc[20:], DAY2, "batch", logged=False),
        ],
    )
    return root


def test_logged_features_are_the_served_inputs_one_row_a_prediction(log_root: str) -> None:
    window = CurrentWindow(kind="prediction_log", log_uri=log_root, source="online")
    frame, source = load_current(window)
    assert len(frame) == 40 and source["rows"] == 40
    assert source["with_logged_features"] == 40 and source["source"] == "online"
    served = add_derived(generate(60, seed=9).iloc[:20])[model_input_names()]
    for column in model_input_names():
        np.testing.assert_array_equal(
            frame[column].iloc[:20].to_numpy(), served[column].to_numpy(), err_msg=column
        )


def test_since_and_source_select_records(log_root: str) -> None:
    log = read_log(log_root)
    assert len(select_log(log, CurrentWindow(kind="prediction_log", since=DAY2))) == 60
    batch = CurrentWindow(kind="prediction_log", source="batch", since=DAY2)
    assert set(select_log(log, batch)["source"]) == {"batch"}


def test_records_without_features_need_the_store_and_an_empty_log_is_an_error(
    log_root: str,
) -> None:
    log = read_log(log_root)
    with pytest.raises(ValueError, match="feature store"):
        log_rows(log, None)
    with pytest.raises(ValueError, match="no record"):
        log_rows(log.head(0), None)


def test_log_fields_belong_to_the_log_window() -> None:
    with pytest.raises(ValueError, match="takes no"):
        CurrentWindow(kind="snapshot", source="online")
    with pytest.raises(ValueError, match="timezone-aware"):
        CurrentWindow(kind="prediction_log", since=datetime(2025, 1, 1))
