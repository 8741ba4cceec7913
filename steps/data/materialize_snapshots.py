"""Step: bring the online store up to the last snapshotted day (materialize-incremental)."""

from datetime import date
from typing import Annotated, Any

from zenml import step

from churn.features.daily import materialize_day
from churn.features.store import get_store
from churn.settings import get_settings


@step
def materialize_snapshots(
    snapshots: list[dict[str, Any]],
) -> Annotated[list[str], "materialized_views"]:
    """Views loaded up to the last day of `snapshots` (only rows newer than the last run)."""
    settings = get_settings()
    last = max(date.fromisoformat(str(s["day"])) for s in snapshots)
    wrote = any(int(s["changed_rows"]) for s in snapshots)
    report = materialize_day(get_store(settings=settings), last, settings.offline_dir, wrote=wrote)
    return report.views if report is not None else []
