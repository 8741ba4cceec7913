"""The at-risk list: the newest batch-scoring output under <CHURN_HOME>/predictions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pandas as pd

from churn.schema import (
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    FEATURES,
    Group,
)
from dashboard.errors import NoBatchScores, NoOfflineFeatures
from dashboard.settings import PROBABILITY

# ------------------------------------------------------------------ batch scores

# Segment columns joined onto batch scores (from the customer's scored snapshot), so
# marketing can filter the at-risk list by plan and service.
SEGMENTS: Final = ("contract", "tenure", "internet_service", "payment_method")


@dataclass(frozen=True)
class BatchScores:
    """The newest batch-scoring run: its directory, summary.json and ranked rows."""

    path: Path
    summary: dict[str, Any]
    frame: pd.DataFrame


def latest_batch_scores(root: Path | None = None) -> BatchScores:
    """The run named by <root>/latest.json (written last, so never a partial run); root
    defaults to churn.monitoring.batch.predictions_root() (<CHURN_HOME>/predictions)."""
    from churn.monitoring.batch import (
        PARQUET_NAME,
        SUMMARY_NAME,
        latest_predictions,
        predictions_root,
    )

    root = root if root is not None else predictions_root()
    run = latest_predictions(root)
    if run is None:
        raise NoBatchScores(
            f"No batch scores yet (no run under {root}). Run the batch inference pipeline."
        )
    frame = pd.read_parquet(run / PARQUET_NAME)
    missing = [c for c in (ENTITY_KEY, PROBABILITY) if c not in frame.columns]
    if missing:
        raise ValueError(f"{run / PARQUET_NAME}: batch scores lack columns {missing}")
    summary: dict[str, Any] = json.loads((run / SUMMARY_NAME).read_text(encoding="utf-8"))
    return BatchScores(path=run, summary=summary, frame=frame)


def with_segments(scores: pd.DataFrame, offline_dir: Path | None = None) -> pd.DataFrame:
    """Scores plus SEGMENTS of each customer as of the snapshot they were scored on.

    Joined on (customer_id, snapshot_time = event_timestamp) with the offline store;
    a customer whose snapshot is no longer stored gets empty segments (not another
    snapshot's values). NoOfflineFeatures when the store has not been written.
    """
    from churn.data.offline import read_offline_table
    from churn.monitoring.batch import SNAPSHOT_TIME

    by_group: dict[Group, list[str]] = {}
    for name in SEGMENTS:
        group = next(f.group for f in FEATURES if f.name == name)
        by_group.setdefault(group, []).append(name)
    out = scores
    for group, names in by_group.items():
        try:
            table = read_offline_table(group.value, offline_dir)
        except FileNotFoundError as e:
            raise NoOfflineFeatures(f"No offline features to segment the scores by ({e}).") from e
        table = table[[ENTITY_KEY, EVENT_TIMESTAMP, *names]].rename(
            columns={EVENT_TIMESTAMP: SNAPSHOT_TIME}
        )
        table[SNAPSHOT_TIME] = pd.to_datetime(table[SNAPSHOT_TIME], utc=True)
        out = out.assign(**{SNAPSHOT_TIME: pd.to_datetime(out[SNAPSHOT_TIME], utc=True)})
        out = out.merge(table, on=[ENTITY_KEY, SNAPSHOT_TIME], how="left", validate="m:1")
    return out


@dataclass(frozen=True)
class AtRiskFilter:
    """What the at-risk table shows (None = no constraint)."""

    min_probability: float = 0.0
    only_flagged: bool = False
    contracts: Sequence[str] | None = None
    internet_services: Sequence[str] | None = None
    tenure: tuple[int, int] | None = None
    top_n: int | None = None


def filter_at_risk(frame: pd.DataFrame, rule: AtRiskFilter) -> pd.DataFrame:
    """The rows `rule` keeps, in the frame's order (ranked by expected loss)."""
    keep = frame[PROBABILITY] >= rule.min_probability
    if rule.only_flagged:
        keep &= frame["churn_label"].astype(bool)
    if rule.contracts is not None:
        keep &= frame["contract"].isin(list(rule.contracts))
    if rule.internet_services is not None:
        keep &= frame["internet_service"].isin(list(rule.internet_services))
    if rule.tenure is not None:
        keep &= frame["tenure"].between(rule.tenure[0], rule.tenure[1])
    out = frame[keep]
    return out.head(rule.top_n) if rule.top_n is not None else out


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as UTF-8 CSV (what the download button serves)."""
    return frame.to_csv(index=False).encode("utf-8")
