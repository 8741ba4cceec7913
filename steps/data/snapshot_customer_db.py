"""Step: daily snapshots of the customer database (churn.features.daily), one day or a backfill."""

import logging
from datetime import UTC, date, datetime
from typing import Annotated, Any

from zenml import log_metadata, step
from zenml.client import Client

from churn.data.database import DatabaseError, create_engine
from churn.features.daily import DatabaseSnapshotSource, DayReport, backfill
from churn.settings import get_settings

URL_KEY = "url"
logger = logging.getLogger(__name__)


def database_url(source: DatabaseSnapshotSource) -> str:
    """The SQLAlchemy URL: key `url` of the ZenML secret `url_secret`, else
    CHURN_CUSTOMER_DB_URL. Why here: the domain package imports no ZenML."""
    if source.url_secret is not None:
        return str(Client().get_secret(source.url_secret).secret_values[URL_KEY])
    url = get_settings().customer_db_url
    if url is None:
        raise DatabaseError(
            "no customer database URL: set CHURN_CUSTOMER_DB_URL (locally `eval "
            '"$(.venv/bin/python -m churn.data.customer_db env)"`) or url_secret in the '
            "pipeline config (a ZenML secret with key 'url')"
        )
    return url.get_secret_value()


def run_days(day: str | None, backfill_from: str | None) -> tuple[date, date]:
    """(first, last) day of this run: `day` (None: today in UTC, at run time, as a cron
    run needs) and, for a backfill, `backfill_from` as the first."""
    last = date.fromisoformat(day) if day else datetime.now(UTC).date()
    first = date.fromisoformat(backfill_from) if backfill_from else last
    return first, last


def _report_line(report: DayReport) -> None:
    """One line per day in the step's log: what was read, quarantined and written."""
    logger.info(
        "%s: read %d rows, quarantined %d (%.2f%%; %s), wrote %d changed rows and %d labels",
        report.day,
        report.rows_read,
        report.quarantined_rows,
        100 * report.quarantine_share,
        report.quarantine_counts or "none",
        report.changed_rows,
        report.labels,
    )


@step
def snapshot_customer_db(
    source: DatabaseSnapshotSource, day: str | None, backfill_from: str | None
) -> Annotated[list[dict[str, Any]], "daily_snapshots"]:
    """Snapshot, quarantine and labels of each day; figures as run metadata."""
    first, last = run_days(day, backfill_from)
    engine = create_engine(database_url(source))
    try:
        reports = backfill(engine, source, first, last, get_settings(), on_day=_report_line)
    finally:
        engine.dispose()
    summaries = [r.summary() for r in reports]
    log_metadata(
        metadata={
            "days": [s["day"] for s in summaries],
            "rows_read": sum(r.rows_read for r in reports),
            "quarantined_rows": sum(r.quarantined_rows for r in reports),
            "changed_rows": sum(r.changed_rows for r in reports),
            "labels": sum(r.labels for r in reports),
        }
    )
    return summaries
