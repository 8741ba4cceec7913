"""Daily snapshot pipeline: customer database -> contract + quarantine -> offline store
(changed rows, labels observed that day) -> feast apply -> materialize-incremental.

Run: zenml pipeline run pipelines.daily_snapshot_pipeline.daily_snapshot_pipeline \
       -c configs/daily_snapshot_pipeline.yaml
Scheduled on EKS with configs/daily_snapshot_pipeline.eks.yaml (a cron schedule the
Kubernetes orchestrator turns into a CronJob); locally `make db-daily` from cron.
"""

from zenml import pipeline

from churn import console
from churn.features.daily import DatabaseSnapshotSource
from steps.data.materialize_snapshots import materialize_snapshots
from steps.data.snapshot_customer_db import snapshot_customer_db
from steps.features.feast_apply import feast_apply


@pipeline(enable_cache=False)
def daily_snapshot_pipeline(
    source: DatabaseSnapshotSource, day: str | None, backfill_from: str | None
) -> None:
    """One day (`day`, null: today in UTC) or a backfill from `backfill_from` to `day`
    (not cached: every run must read the database and reach the stores)."""
    console.install()
    snapshots = snapshot_customer_db(source, day, backfill_from)
    feast_apply(after="snapshot_customer_db")
    materialize_snapshots(snapshots, after="feast_apply")
