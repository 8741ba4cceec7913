"""The daily snapshot step's own decisions: which days a run covers, where the URL comes from."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from churn.data.database import DatabaseError
from churn.features.daily import DatabaseSnapshotSource
from churn.settings import get_settings
from configs import pipeline_parameters
from steps.data.snapshot_customer_db import database_url, run_days


def test_a_run_covers_its_day_or_its_backfill() -> None:
    assert run_days("2025-01-31", None) == (date(2025, 1, 31), date(2025, 1, 31))
    assert run_days("2025-01-31", "2025-01-01") == (date(2025, 1, 1), date(2025, 1, 31))
    today = datetime.now(UTC).date()
    first, last = run_days(None, None)  # a cron run: today in UTC, at run time
    assert first == last and last in {today, datetime.now(UTC).date()}


def test_the_url_comes_from_the_environment_when_no_secret_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = DatabaseSnapshotSource(**pipeline_parameters("daily_snapshot_pipeline")["source"])
    assert source.url_secret is None
    monkeypatch.delenv("CHURN_CUSTOMER_DB_URL", raising=False)
    get_settings.cache_clear()
    with pytest.raises(DatabaseError, match=r"CHURN_CUSTOMER_DB_URL.*url_secret"):
        database_url(source)
    monkeypatch.setenv("CHURN_CUSTOMER_DB_URL", "postgresql://u:p@db.internal:5432/customers")
    get_settings.cache_clear()
    try:
        assert database_url(source) == "postgresql://u:p@db.internal:5432/customers"
    finally:
        monkeypatch.delenv("CHURN_CUSTOMER_DB_URL")
        get_settings.cache_clear()
