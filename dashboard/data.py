"""What the dashboard shows, as plain functions: no Streamlit here, so all of it is testable.

One module per source (dashboard.endpoint, .features, .champion, .batch, .drift,
.business;
settings and errors beside them); this module is the page's single import of them.

Sources, and what the page says when one is missing (never a traceback):

- live predictions: the inference endpoint over HTTP (Open Inference Protocol, V2),
  exactly as a client application calls it. Connection refused or a timeout ->
  ServerUnavailable; HTTP 503 from the runtime's online-store check ->
  StoreUnavailable (Redis down or slow); 404 -> UnknownCustomer.
- what-if scores: the registry's champion loaded in-process (churn.models.serialize,
  no pickle) and fed the customer's edited raw features plus the same derive() as
  training and serving; reason codes use serving's own aggregation (reason_codes).
  The customer's starting point is their latest snapshot in the offline store, so
  what-if works while the server or Redis is down.
- champion metrics and plots: MLflow (test_* metrics and the plots/ artifacts of the
  champion's run).
- at-risk list: the newest batch-scoring output under <CHURN_HOME>/predictions.
- drift: the newest drift report under <CHURN_HOME>/reports/drift, and the live
  drift status of the served traffic (GET /v2/models/<model>/drift).
- business: the newest business KPI report under <CHURN_HOME>/reports/kpi and the
  newest campaign's contact list under <CHURN_HOME>/campaigns.

Every expected absence raises a DashboardError subclass whose message tells the user
what to run; anything else propagates (the page shows its message and logs it).
"""

from __future__ import annotations

from churn.inference import Reason
from churn.models.registry import ChampionRef
from dashboard.batch import (
    SEGMENTS,
    AtRiskFilter,
    BatchScores,
    filter_at_risk,
    latest_batch_scores,
    to_csv_bytes,
    with_segments,
)
from dashboard.business import (
    CampaignFiles,
    KpiReportFiles,
    decile_frame,
    interval,
    latest_campaign,
    latest_kpi_report,
    performance_table,
)
from dashboard.champion import (
    MONEY_METRICS,
    OPERATING_METRICS,
    QUALITY_METRICS,
    Champion,
    ChampionReport,
    WhatIfScore,
    champion_ref,
    champion_report,
    check_features,
    load_champion,
    score_features,
    split_metrics,
)
from dashboard.drift import (
    DriftReportFiles,
    LiveDrift,
    feature_table,
    latest_drift_report,
    live_drift,
)
from dashboard.endpoint import (
    LivePrediction,
    ServerHealth,
    clean_customer_id,
    error_from_response,
    live_drift_status,
    parse_response,
    predict_live,
    server_health,
)
from dashboard.errors import (
    BadInput,
    DashboardError,
    NoBatchScores,
    NoCampaign,
    NoChampion,
    NoDriftReport,
    NoKpiReport,
    NoOfflineFeatures,
    ServerUnavailable,
    ServingFailed,
    StoreUnavailable,
    UnknownCustomer,
)
from dashboard.features import (
    customer_features,
    latest_snapshot,
    load_offline_features,
)
from dashboard.settings import (
    DEFAULT_REGISTERED_MODEL,
    PROBABILITY,
    DashboardSettings,
    Level,
    get_dashboard_settings,
)

__all__ = [
    "DEFAULT_REGISTERED_MODEL",
    "MONEY_METRICS",
    "OPERATING_METRICS",
    "PROBABILITY",
    "QUALITY_METRICS",
    "SEGMENTS",
    "AtRiskFilter",
    "BadInput",
    "BatchScores",
    "CampaignFiles",
    "Champion",
    "ChampionRef",
    "ChampionReport",
    "DashboardError",
    "DashboardSettings",
    "DriftReportFiles",
    "KpiReportFiles",
    "Level",
    "LiveDrift",
    "LivePrediction",
    "NoBatchScores",
    "NoCampaign",
    "NoChampion",
    "NoDriftReport",
    "NoKpiReport",
    "NoOfflineFeatures",
    "Reason",
    "ServerHealth",
    "ServerUnavailable",
    "ServingFailed",
    "StoreUnavailable",
    "UnknownCustomer",
    "WhatIfScore",
    "champion_ref",
    "champion_report",
    "check_features",
    "clean_customer_id",
    "customer_features",
    "decile_frame",
    "error_from_response",
    "feature_table",
    "filter_at_risk",
    "get_dashboard_settings",
    "interval",
    "latest_batch_scores",
    "latest_campaign",
    "latest_drift_report",
    "latest_kpi_report",
    "latest_snapshot",
    "live_drift",
    "live_drift_status",
    "load_champion",
    "load_offline_features",
    "parse_response",
    "performance_table",
    "predict_live",
    "score_features",
    "server_health",
    "split_metrics",
    "to_csv_bytes",
    "with_segments",
]
