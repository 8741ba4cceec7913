"""The "current" rows a drift report compares with the training reference.

Two sources, chosen in configs/drift_monitoring_pipeline.yaml:

- "snapshot" (default): every customer of one snapshot of the offline store (the
  newest unless `snapshot_time` is given), with point-in-time features from Feast's
  FeatureService, exactly as batch scoring reads them;
- "file": rows the model actually saw, e.g. served traffic exported to parquet or
  CSV, with the model's input columns (derived ones are computed when absent, by the
  same churn.features.derived.derive); for logs collected elsewhere (a request log,
  a data warehouse export);
- "prediction_log": the project's own prediction log (churn.loop.predlog), online
  traffic and batch runs alike, optionally only records from `since` and of one
  `source` ("online" or "batch"). One row per logged prediction, so traffic is
  tested as it was served (a customer asked for ten times counts ten times). A
  record's model inputs are the served feature values when the server logged them
  (prediction_log_features), else the customer's features as of the record's
  feature_event_time, read through the FeatureService point in time: the values the
  model was given, since the online store held exactly that snapshot.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from feast import FeatureStore
from pydantic import BaseModel, model_validator

from churn.data.timestamps import UTC_DTYPE, as_utc
from churn.features.derived import add_derived
from churn.features.names import FEATURE_SERVICE
from churn.loop import prediction_log_root
from churn.loop.predlog import FEATURES as LOGGED_FEATURES
from churn.loop.predlog import read_log
from churn.monitoring.snapshots import newest_snapshot, read_features, select_entities
from churn.schema import DERIVED_FEATURES, ENTITY_KEY, EVENT_TIMESTAMP, feature_names


class CurrentWindow(BaseModel):
    """Where the current rows come from (a tunable of the drift monitoring config)."""

    kind: Literal["snapshot", "file", "prediction_log"] = "snapshot"
    snapshot_time: datetime | None = None  # kind "snapshot": None = the newest snapshot
    path: Path | None = None  # kind "file": parquet or CSV of served rows
    # kind "prediction_log": the log's directory or s3:// URI (None = CHURN_HOME's), the
    # earliest predicted_at kept (None = all) and which records ("online", "batch", None = both)
    log_uri: str | None = None
    since: datetime | None = None
    source: Literal["online", "batch"] | None = None

    @model_validator(mode="after")
    def _check(self) -> CurrentWindow:
        if self.kind == "file" and self.path is None:
            raise ValueError("current window kind 'file' needs `path`")
        if self.kind != "file" and self.path is not None:
            raise ValueError(f"current window kind {self.kind!r} takes no `path`")
        log_fields = {"log_uri": self.log_uri, "since": self.since, "source": self.source}
        if self.kind != "prediction_log" and any(v is not None for v in log_fields.values()):
            raise ValueError(f"current window kind {self.kind!r} takes no {sorted(log_fields)}")
        for name, moment in (("snapshot_time", self.snapshot_time), ("since", self.since)):
            if moment is not None:
                as_utc(moment, what=f"current window {name}")
        return self


def read_rows_file(path: Path) -> pd.DataFrame:
    """Rows from a parquet or CSV file; derived features added when all are missing.

    A missing raw feature is a KeyError naming the columns and the file.
    """
    if not path.is_file():
        raise FileNotFoundError(f"current window file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif suffix == ".csv":
        frame = pd.read_csv(path)
    else:
        raise ValueError(f"{path}: expected a .parquet or .csv file, got {suffix!r}")
    missing = [c for c in feature_names() if c not in frame.columns]
    if missing:
        raise KeyError(f"{path} lacks feature column(s) {missing}")
    derived = [d.name for d in DERIVED_FEATURES]
    if not any(name in frame.columns for name in derived):
        frame = add_derived(frame)
    return frame


def log_rows(
    log: pd.DataFrame,
    store: FeatureStore | None,
    *,
    service: str = FEATURE_SERVICE,
    chunk_size: int = 50_000,
) -> pd.DataFrame:
    """Model inputs of every prediction-log record (see the module docstring), in log order.

    Records with logged features use them; the others are read from `store` (needed
    only then) as of their feature_event_time.
    """
    if log.empty:
        raise ValueError("the prediction log holds no record to test")
    logged = log[LOGGED_FEATURES].notna().to_numpy()
    parts: list[pd.DataFrame] = []
    if logged.any():
        served = pd.DataFrame.from_records(
            [json.loads(text) for text in log.loc[logged, LOGGED_FEATURES]],
            index=log.index[logged],
        )
        missing = [c for c in feature_names() if c not in served.columns]
        if missing:
            raise KeyError(f"logged features lack column(s) {missing}")
        parts.append(served)
    if not logged.all():
        if store is None:
            raise ValueError("records without logged features need the feature store")
        rows = log.loc[~logged]
        entities = pd.DataFrame(
            {
                ENTITY_KEY: rows[ENTITY_KEY].astype(str).to_numpy(),
                EVENT_TIMESTAMP: pd.to_datetime(rows["feature_event_time"], utc=True)
                .dt.as_unit("ns")
                .to_numpy(),
            }
        ).astype({EVENT_TIMESTAMP: UTC_DTYPE})
        features = read_features(store, entities, service=service, chunk_size=chunk_size)
        parts.append(features.set_index(rows.index))
    frame = pd.concat(parts).loc[log.index].reset_index(drop=True)
    derived = [d.name for d in DERIVED_FEATURES]
    return frame if all(name in frame.columns for name in derived) else add_derived(frame)


def select_log(log: pd.DataFrame, window: CurrentWindow) -> pd.DataFrame:
    """The records the window names: from `since`, of `source` (all when None)."""
    keep = pd.Series(True, index=log.index)
    if window.since is not None:
        since = pd.Timestamp(as_utc(window.since, what="since"))
        keep &= pd.to_datetime(log["predicted_at"], utc=True) >= since
    if window.source is not None:
        keep &= log["source"] == window.source
    return log[keep]


def load_current(
    window: CurrentWindow,
    store: FeatureStore | None = None,
    *,
    service: str = FEATURE_SERVICE,
    chunk_size: int = 50_000,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The current rows and a JSON description of where they came from.

    kind "snapshot" needs `store` (churn.features.store.get_store()).
    """
    if window.kind == "file":
        if window.path is None:
            raise ValueError("current window kind 'file' needs `path`")
        frame = read_rows_file(window.path)
        return frame, {"kind": "file", "path": str(window.path), "rows": len(frame)}
    if window.kind == "prediction_log":
        root = prediction_log_root(window.log_uri)
        log = select_log(read_log(root), window)
        frame = log_rows(log, store, service=service, chunk_size=chunk_size)
        described = {
            "kind": "prediction_log",
            "log": root,
            "since": None if window.since is None else window.since.isoformat(),
            "source": window.source or "online+batch",
            "rows": len(frame),
            "with_logged_features": int(log[LOGGED_FEATURES].notna().sum()),
        }
        return frame, described
    if store is None:
        raise ValueError("a snapshot window needs the feature store")
    moment = window.snapshot_time or newest_snapshot()
    entities = select_entities(moment)
    frame = read_features(store, entities, service=service, chunk_size=chunk_size)
    source = {
        "kind": "snapshot",
        "snapshot_time": as_utc(moment, what="snapshot_time").isoformat(),
        "feature_service": service,
        "rows": len(frame),
    }
    return frame, source
