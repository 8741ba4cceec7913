"""What the page says when a source is missing: one DashboardError per case, each
message telling the user what to run (never a traceback).
"""

from __future__ import annotations

from typing import ClassVar

from dashboard.settings import Level

# --------------------------------------------------------------------------- errors


class DashboardError(RuntimeError):
    """A state the page explains in words (a source is down or has no data yet)."""

    level: ClassVar[Level] = "error"


class BadInput(DashboardError):  # noqa: N818 (a state, like the others)
    """What the user typed cannot be sent (e.g. an empty customer id)."""

    level: ClassVar[Level] = "warning"


class ServerUnavailable(DashboardError):  # noqa: N818
    """The inference endpoint is not reachable (not started, stopped, or too slow)."""


class StoreUnavailable(DashboardError):  # noqa: N818
    """The endpoint is up but its online feature store (Redis) is not."""


class UnknownCustomer(DashboardError):  # noqa: N818
    """The endpoint has no online features for the customer id."""

    level: ClassVar[Level] = "warning"


class ServingFailed(DashboardError):  # noqa: N818
    """The endpoint answered with an error the page cannot attribute to a component."""


class NoChampion(DashboardError):  # noqa: N818
    """MLflow has no champion for the registered model yet."""

    level: ClassVar[Level] = "info"


class NoOfflineFeatures(DashboardError):  # noqa: N818
    """The offline store has not been written, or lacks the customer."""

    level: ClassVar[Level] = "info"


class NoBatchScores(DashboardError):  # noqa: N818
    """No batch-scoring output on disk yet."""

    level: ClassVar[Level] = "info"


class NoDriftReport(DashboardError):  # noqa: N818
    """No drift report on disk yet."""

    level: ClassVar[Level] = "info"


class NoKpiReport(DashboardError):  # noqa: N818
    """No business KPI report on disk yet."""

    level: ClassVar[Level] = "info"


class NoCampaign(DashboardError):  # noqa: N818
    """No retention campaign on disk yet."""

    level: ClassVar[Level] = "info"
