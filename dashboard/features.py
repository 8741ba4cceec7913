"""The offline store: each customer's latest snapshot, the what-if starting point
(so what-if works while the server or Redis is down).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn.schema import (
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    Group,
    feature_names,
)
from dashboard.endpoint import clean_customer_id
from dashboard.errors import NoOfflineFeatures

# --------------------------------------------------------------- offline features


def latest_snapshot(frame: pd.DataFrame) -> pd.DataFrame:
    """The newest row per customer (by event_timestamp), indexed by customer_id."""
    newest = frame.sort_values(EVENT_TIMESTAMP).drop_duplicates(ENTITY_KEY, keep="last")
    return newest.set_index(ENTITY_KEY)


def load_offline_features(offline_dir: Path | None = None) -> pd.DataFrame:
    """Every customer's latest raw features (one row per customer, columns in schema order).

    NoOfflineFeatures when a group's table has not been written (feature pipeline not run).
    """
    from churn.data.offline import read_offline_table

    parts = []
    for group in Group:
        try:
            table = read_offline_table(group.value, offline_dir)
        except FileNotFoundError as e:
            raise NoOfflineFeatures(
                f"No offline features yet ({e}). Run the feature pipeline: `make features`."
            ) from e
        parts.append(latest_snapshot(table)[feature_names(group)])
    joined = pd.concat(parts, axis=1, join="inner")
    return joined[feature_names()]


def customer_features(frame: pd.DataFrame, customer_id: str) -> dict[str, Any]:
    """One customer's raw features as Python scalars; NoOfflineFeatures if absent."""
    cid = clean_customer_id(customer_id)
    if cid not in frame.index:
        raise NoOfflineFeatures(f"Customer {cid!r} is not in the offline store.")
    row = frame.loc[cid]
    return {name: _scalar(row[name]) for name in feature_names()}


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
