"""The "current" rows a drift report compares with the training reference.

Two sources, chosen in configs/drift_monitoring_pipeline.yaml:

- "snapshot" (default): every customer of one snapshot of the offline store (the
  newest unless `snapshot_time` is given), with point-in-time features from Feast's
  FeatureService, exactly as batch scoring reads them;
- "file": rows the model actually saw, e.g. served traffic exported to parquet or
  CSV, with the model's input columns (derived ones are computed when absent, by the
  same churn.features.derived.derive). The serving runtime checks its own traffic
  for drift online (serving.drift) but does not write such a log; this path is for
  logs collected elsewhere (a request log, a data warehouse export).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from feast import FeatureStore
from pydantic import BaseModel, model_validator

from churn.data.timestamps import as_utc
from churn.features.derived import add_derived
from churn.features.names import FEATURE_SERVICE
from churn.monitoring.snapshots import newest_snapshot, read_features, select_entities
from churn.schema import DERIVED_FEATURES, feature_names


class CurrentWindow(BaseModel):
    """Where the current rows come from (a tunable of the drift monitoring config)."""

    kind: Literal["snapshot", "file"] = "snapshot"
    snapshot_time: datetime | None = None  # kind "snapshot": None = the newest snapshot
    path: Path | None = None  # kind "file": parquet or CSV of served rows

    @model_validator(mode="after")
    def _check(self) -> CurrentWindow:
        if self.kind == "file" and self.path is None:
            raise ValueError("current window kind 'file' needs `path`")
        if self.kind == "snapshot" and self.path is not None:
            raise ValueError("current window kind 'snapshot' takes no `path`")
        if self.snapshot_time is not None:
            as_utc(self.snapshot_time, what="current window snapshot_time")
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
