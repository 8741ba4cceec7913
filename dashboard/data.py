"""What the dashboard shows, as plain functions: no Streamlit here, so all of it is testable.

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

Every expected absence raises a DashboardError subclass whose message tells the user
what to run; anything else propagates (the page shows its message and logs it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Final, Literal
from urllib.parse import unquote

import numpy as np
import pandas as pd
import requests
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from churn.features.derived import derive
from churn.models.serialize import ServingModel
from churn.schema import (
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    FEATURES,
    Group,
    Kind,
    feature_names,
    model_input_names,
)

DEFAULT_REGISTERED_MODEL: Final = "churn-classifier"
PROBABILITY: Final = "churn_probability"
Level = Literal["error", "warning", "info"]


class DashboardSettings(BaseSettings):
    """Where the dashboard finds its sources (CHURN_DASHBOARD_*); the rest is churn.settings."""

    model_config = SettingsConfigDict(
        env_prefix="CHURN_DASHBOARD_", extra="ignore", protected_namespaces=()
    )

    endpoint: str | None = Field(
        default=None,
        description="Base URL of the V2 inference endpoint (e.g. a Seldon ingress). "
        "Unset: the project's local MLServer (CHURN_SERVING_HOST / _HTTP_PORT).",
    )
    served_model: str | None = Field(
        default=None,
        description="Model name in the endpoint's URL; unset: CHURN_SERVING_MODEL_NAME.",
    )
    registered_model: str = Field(
        default=DEFAULT_REGISTERED_MODEL,
        description="MLflow registered model whose 'champion' the what-if and model "
        "pages load (the training pipeline's model_name).",
    )
    timeout_s: float = Field(
        default=5.0, gt=0, description="HTTP timeout of one call to the inference endpoint."
    )
    top_k: int = Field(default=3, ge=1, le=50, description="Reason codes shown per customer.")

    def endpoint_url(self) -> str:
        """The endpoint's base URL without a trailing slash."""
        if self.endpoint:
            return self.endpoint.rstrip("/")
        from serving.local_server import base_url

        return base_url()

    def model_path(self) -> str:
        """The served model's name in /v2/models/<name>/..."""
        if self.served_model:
            return self.served_model
        from serving.settings import get_serving_settings

        return get_serving_settings().model_name


@lru_cache(maxsize=1)
def get_dashboard_settings() -> DashboardSettings:
    """Dashboard settings read once from the environment (tests clear the cache)."""
    return DashboardSettings()


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


# ----------------------------------------------------------------- live predictions


@dataclass(frozen=True)
class Reason:
    """One reason code: a feature, its served value and its push towards churn."""

    feature: str
    value: Any
    contribution: float


@dataclass(frozen=True)
class LivePrediction:
    """The endpoint's answer for one customer."""

    customer_id: str
    probability: float
    label: bool
    threshold: float | None
    model_version: str
    feature_event_time: str
    reasons: list[Reason]
    reason_units: str | None


def infer_body(
    customer_ids: Sequence[str], *, reasons: bool = True, top_k: int = 3
) -> dict[str, Any]:
    """A V2 request for the churn model (the README's client contract)."""
    return {
        "inputs": [
            {
                "name": ENTITY_KEY,
                "datatype": "BYTES",
                "shape": [len(customer_ids)],
                "data": list(customer_ids),
            }
        ],
        "parameters": {"reasons": reasons, "top_k": top_k},
    }


def clean_customer_id(text: str) -> str:
    """The id as typed, trimmed; BadInput when nothing is left."""
    cid = text.strip()
    if not cid:
        raise BadInput("Enter a customer id (for example 7590-VHVEG).")
    return cid


def _error_text(response: requests.Response) -> str:
    """The error message of an MLServer error body ({"error": ...} or FastAPI's detail)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        for key in ("error", "detail"):
            if key in body:
                value = body[key]
                return value if isinstance(value, str) else json.dumps(value)[:500]
    return json.dumps(body)[:500]


def error_from_response(response: requests.Response, url: str) -> DashboardError:
    """The DashboardError for a non-200 answer of the inference endpoint."""
    status, message = response.status_code, _error_text(response)
    if status == 503 and "online feature store" in message:
        return StoreUnavailable(
            f"The online feature store (Redis) is unavailable, so the server cannot read "
            f"this customer's features: {message}. Start it with `make redis-start`."
        )
    if status == 503:
        return ServerUnavailable(f"The inference server at {url} is not ready (503): {message}")
    if status == 404 and "customer" in message:
        return UnknownCustomer(f"Unknown customer: {message}")
    if status == 404:
        return ServerUnavailable(
            f"The inference server at {url} does not serve this model (404): {message}. "
            "Deploy it with `make deployment-pipeline`."
        )
    return ServingFailed(f"The inference server answered HTTP {status}: {message}")


def _outputs(payload: Mapping[str, Any]) -> dict[str, list[Any]]:
    try:
        return {str(o["name"]): list(o["data"]) for o in payload["outputs"]}
    except (KeyError, TypeError) as e:
        raise ServingFailed(f"the endpoint's answer is not a V2 response: {e!r}") from e


def parse_reasons(text: str | None) -> list[Reason]:
    """Reason codes from the endpoint's JSON string (empty when none were asked for)."""
    if not text:
        return []
    return [
        Reason(str(r["feature"]), r["value"], float(r["contribution"])) for r in json.loads(text)
    ]


def parse_response(customer_ids: Sequence[str], payload: Mapping[str, Any]) -> list[LivePrediction]:
    """One LivePrediction per requested id from a V2 response body."""
    out = _outputs(payload)
    missing = [n for n in ("churn_probability", "churn_label", "model_version") if n not in out]
    if missing:
        raise ServingFailed(f"the endpoint's answer lacks outputs {missing}")
    params = payload.get("parameters") or {}
    threshold = params.get("threshold")
    n = len(customer_ids)
    if len(out["churn_probability"]) != n:
        raise ServingFailed(
            f"asked for {n} customers, got {len(out['churn_probability'])} probabilities"
        )
    reasons = out.get("reasons", [None] * n)
    times = out.get("feature_event_time", [""] * n)
    return [
        LivePrediction(
            customer_id=cid,
            probability=float(out["churn_probability"][i]),
            label=bool(out["churn_label"][i]),
            threshold=float(threshold) if threshold is not None else None,
            model_version=str(out["model_version"][i]),
            feature_event_time=str(times[i]),
            reasons=parse_reasons(reasons[i]),
            reason_units=params.get("reason_units"),
        )
        for i, cid in enumerate(customer_ids)
    ]


def predict_live(
    customer_id: str, settings: DashboardSettings, session: requests.Session | None = None
) -> LivePrediction:
    """Ask the inference endpoint for one customer, with reason codes."""
    cid = clean_customer_id(customer_id)
    base = settings.endpoint_url()
    url = f"{base}/v2/models/{settings.model_path()}/infer"
    http = session or requests.Session()
    try:
        response = http.post(
            url, json=infer_body([cid], top_k=settings.top_k), timeout=settings.timeout_s
        )
    except requests.ConnectionError as e:
        raise ServerUnavailable(
            f"The inference server at {base} is not reachable (connection refused or "
            "dropped). Start it with `make deployment-pipeline` (or `python -m "
            "serving.local_server start <bundle>`)."
        ) from e
    except requests.Timeout as e:
        raise ServerUnavailable(
            f"The inference server at {base} did not answer within {settings.timeout_s} s."
        ) from e
    if response.status_code != 200:
        raise error_from_response(response, base)
    return parse_response([cid], response.json())[0]


@dataclass(frozen=True)
class ServerHealth:
    """Liveness of the server and readiness of the model, for the sidebar."""

    url: str
    live: bool
    ready: bool


def server_health(settings: DashboardSettings, timeout_s: float = 1.0) -> ServerHealth:
    """GET /v2/health/live and /v2/models/<model>/ready; never raises for a down server."""
    base = settings.endpoint_url()

    def ok(path: str) -> bool:
        try:
            return requests.get(f"{base}{path}", timeout=timeout_s).status_code == 200
        except requests.RequestException:
            return False

    live = ok("/v2/health/live")
    ready = live and ok(f"/v2/models/{settings.model_path()}/ready")
    return ServerHealth(url=base, live=live, ready=ready)


def live_drift_status(settings: DashboardSettings) -> dict[str, Any]:
    """The served model's latest drift check (GET /v2/models/<model>/drift)."""
    base = settings.endpoint_url()
    try:
        response = requests.get(
            f"{base}/v2/models/{settings.model_path()}/drift", timeout=settings.timeout_s
        )
    except requests.RequestException as e:
        raise ServerUnavailable(
            f"The inference server at {base} is not reachable, so its live drift status is unknown."
        ) from e
    if response.status_code != 200:
        raise error_from_response(response, base)
    status: dict[str, Any] = response.json()
    return status


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


# ------------------------------------------------------------------ champion model


def _sqlite_file(uri: str) -> Path | None:
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return Path(unquote(uri[len(prefix) :].split("?", 1)[0]))


def _require_tracking(tracking_uri: str, name: str) -> None:
    """NoChampion without touching MLflow when its SQLite file does not exist yet.

    (Opening a missing SQLite URI would create and migrate an empty database.)
    """
    db = _sqlite_file(tracking_uri)
    if db is not None and not db.is_file():
        raise NoChampion(
            f"No MLflow database at {db} yet, so no champion of {name!r}. "
            "Run `make training-pipeline`."
        )


@dataclass(frozen=True)
class ChampionRef:
    """Which registry version is the champion, and its run."""

    name: str
    version: str
    run_id: str


def champion_ref(name: str, tracking_uri: str | None = None) -> ChampionRef:
    """The version behind alias "champion"; NoChampion when there is none."""
    from mlflow.exceptions import MlflowException

    from churn.models.registry import CHAMPION, resolve_tracking_uri, use_tracking

    uri = resolve_tracking_uri(tracking_uri)
    _require_tracking(uri, name)
    client = use_tracking(uri)
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as e:
        raise NoChampion(
            f"MLflow at {uri} has no {CHAMPION!r} of {name!r} yet: run `make training-pipeline`."
        ) from e
    return ChampionRef(name=name, version=str(version.version), run_id=str(version.run_id))


@dataclass(frozen=True)
class Champion:
    """The champion's serving model, loaded in-process for what-if scores."""

    ref: ChampionRef
    model: ServingModel
    threshold: float


def load_champion(ref: ChampionRef, dst: Path, tracking_uri: str | None = None) -> Champion:
    """Download and load the champion's serving model (verified, no pickle)."""
    from churn.models.registry import load_serving_model

    model = load_serving_model(ref.name, ref.version, tracking_uri, dst)
    threshold = model.metadata.get("threshold")
    if threshold is None:
        raise ServingFailed(f"{ref.name} v{ref.version}: serving model metadata has no threshold")
    return Champion(ref=ref, model=model, threshold=float(threshold))


@dataclass(frozen=True)
class WhatIfScore:
    """An in-process score of (possibly edited) features."""

    probability: float
    label: bool
    derived: dict[str, float]
    reasons: list[Reason]


def check_features(features: Mapping[str, Any]) -> dict[str, Any]:
    """The raw features in schema order; BadInput naming a missing or out-of-domain one."""
    out: dict[str, Any] = {}
    for f in FEATURES:
        if f.name not in features or features[f.name] is None:
            raise BadInput(f"feature {f.name!r} is missing")
        value = features[f.name]
        if f.kind is Kind.CATEGORY:
            if value not in f.categories:
                raise BadInput(f"feature {f.name!r}: {value!r} is not one of {list(f.categories)}")
        else:
            number = float(value)
            if not math.isfinite(number):
                raise BadInput(f"feature {f.name!r} must be a finite number, got {value!r}")
            low = f.min_value if f.min_value is not None else -math.inf
            high = f.max_value if f.max_value is not None else math.inf
            if not low <= number <= high:
                raise BadInput(f"feature {f.name!r}: {value} is outside [{low}, {high}]")
            value = int(number) if f.kind is Kind.INT else number
        out[f.name] = value
    return out


def score_features(
    model: ServingModel, threshold: float, features: Mapping[str, Any], top_k: int = 3
) -> WhatIfScore:
    """Score one customer's raw features exactly as serving does: derive(), encode, model.

    Reason codes are aggregated to raw features with serving's own functions, so a
    what-if row with unchanged features shows the reasons the endpoint shows.
    """
    from serving.contract import reason_codes
    from serving.runtime import INTEGER_FEATURES, contribution_map

    raw = check_features(features)
    columns: dict[str, Any] = {name: np.asarray([value]) for name, value in raw.items()}
    columns.update(derive(columns))
    probability = float(model.predict_proba(columns)[0])
    values, names = model.contributions(columns)
    per_feature = values @ contribution_map(names, model_input_names())
    reasons = parse_reasons(
        reason_codes(per_feature, model_input_names(), columns, top_k, INTEGER_FEATURES)[0]
    )
    derived = {name: float(columns[name][0]) for name in model_input_names() if name not in raw}
    return WhatIfScore(
        probability=probability,
        label=probability >= threshold,
        derived=derived,
        reasons=reasons,
    )


# ---------------------------------------------------------------- champion report


@dataclass(frozen=True)
class ChampionReport:
    """The champion's held-out metrics, slice metrics and plots from its MLflow run."""

    ref: ChampionRef
    model_kind: str
    metrics: dict[str, float]
    slices: pd.DataFrame
    plots: dict[str, Path] = field(default_factory=dict)


# Held-out metrics shown as headline numbers (names without the test_ prefix).
QUALITY_METRICS: Final = ("roc_auc", "pr_auc", "precision", "recall", "f1", "brier")
OPERATING_METRICS: Final = (
    "threshold", "flagged_rate", "business_cost_per_customer", "net_revenue_impact",
)  # fmt: skip
MONEY_METRICS: Final = frozenset({"business_cost_per_customer", "net_revenue_impact"})


def split_metrics(run_metrics: Mapping[str, float]) -> tuple[dict[str, float], pd.DataFrame]:
    """test_* metrics -> (overall metrics without the prefix, slice table).

    Slice metrics are logged as test_slice.<feature>.<value>.<metric>.
    """
    from churn.models.registry import TEST_PREFIX

    overall: dict[str, float] = {}
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for key, value in run_metrics.items():
        if not key.startswith(TEST_PREFIX):
            continue
        name = key[len(TEST_PREFIX) :]
        if name.startswith("slice."):
            parts = name.split(".")
            if len(parts) >= 4:
                feature, metric = parts[1], parts[-1]
                segment = ".".join(parts[2:-1])
                rows.setdefault((feature, segment), {})[metric] = float(value)
            continue
        overall[name] = float(value)
    slices = pd.DataFrame([{"feature": f, "segment": s, **m} for (f, s), m in sorted(rows.items())])
    return overall, slices


def champion_report(ref: ChampionRef, dst: Path, tracking_uri: str | None = None) -> ChampionReport:
    """Metrics, slices and plot PNGs (downloaded into `dst`) of the champion's run."""
    from churn.models.registry import PLOTS_ARTIFACT, TAG_MODEL_KIND, use_tracking

    client = use_tracking(tracking_uri)
    run = client.get_run(ref.run_id)
    overall, slices = split_metrics(run.data.metrics)
    plots: dict[str, Path] = {}
    artifacts = {a.path for a in client.list_artifacts(ref.run_id)}
    if PLOTS_ARTIFACT in artifacts:
        local = Path(client.download_artifacts(ref.run_id, PLOTS_ARTIFACT, str(dst)))
        plots = {p.stem: p for p in sorted(local.glob("*.png"))}
    return ChampionReport(
        ref=ref,
        model_kind=str(run.data.tags.get(TAG_MODEL_KIND, "unknown")),
        metrics=overall,
        slices=slices,
        plots=plots,
    )


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


# ------------------------------------------------------------------ drift report


@dataclass(frozen=True)
class DriftReportFiles:
    """The newest drift report: report.json's content, its HTML, per-feature table."""

    path: Path
    content: dict[str, Any]
    html_path: Path | None
    features: pd.DataFrame


def feature_table(content: Mapping[str, Any]) -> pd.DataFrame:
    """Per-feature verdicts of a report (distributions left out), lowest p-value first."""
    rows = [
        {k: v for k, v in dict(f).items() if k != "distribution"}
        for f in content.get("features", [])
    ]
    frame = pd.DataFrame(rows)
    if "p_value" in frame.columns:
        frame = frame.sort_values("p_value", kind="stable", na_position="last")
    return frame.reset_index(drop=True)


def latest_drift_report(root: Path | None = None) -> DriftReportFiles:
    """The newest report directory under `root` (default <CHURN_HOME>/reports/drift).

    Directory names are sortable UTC stamps; directories are published atomically, and
    hidden temporary ones are skipped.
    """
    from churn.monitoring.drift_report import REPORT_HTML, REPORT_JSON, drift_reports_root

    root = root if root is not None else drift_reports_root()
    runs = (
        sorted(
            p for p in root.iterdir() if not p.name.startswith(".") and (p / REPORT_JSON).is_file()
        )
        if root.is_dir()
        else []
    )
    if not runs:
        raise NoDriftReport(
            f"No drift report yet (nothing under {root}). Run the drift monitoring pipeline."
        )
    newest = runs[-1]
    content: dict[str, Any] = json.loads((newest / REPORT_JSON).read_text(encoding="utf-8"))
    html = newest / REPORT_HTML
    return DriftReportFiles(
        path=newest,
        content=content,
        html_path=html if html.is_file() else None,
        features=feature_table(content),
    )


@dataclass(frozen=True)
class LiveDrift:
    """The served model's drift monitor: counters and its last window, per feature."""

    enabled: bool
    detector: str | None
    windows_checked: int
    errors: int
    last_error: str | None
    is_drift: bool | None
    threshold: float | None
    checked_at: datetime | None
    features: pd.DataFrame


def live_drift(status: Mapping[str, Any]) -> LiveDrift:
    """GET /v2/models/<model>/drift's body as a LiveDrift (features: lowest p-value first)."""
    last = status.get("last_result") or {}
    p_values: Mapping[str, float] = last.get("p_values") or {}
    distances: Mapping[str, float] = last.get("distances") or {}
    threshold = last.get("threshold")
    frame = pd.DataFrame(
        [
            {
                "feature": name,
                "p_value": float(p),
                "statistic": distances.get(name),
                "drifted": threshold is not None and float(p) < float(threshold),
            }
            for name, p in p_values.items()
        ]
    )
    if not frame.empty:
        frame = frame.sort_values("p_value", kind="stable").reset_index(drop=True)
    checked = status.get("last_checked_at")
    return LiveDrift(
        enabled=bool(status.get("enabled")),
        detector=status.get("detector"),
        windows_checked=int(status.get("windows_checked") or 0),
        errors=int(status.get("errors") or 0),
        last_error=status.get("last_error"),
        is_drift=bool(last["is_drift"]) if "is_drift" in last else None,
        threshold=float(threshold) if threshold is not None else None,
        checked_at=datetime.fromtimestamp(float(checked), UTC) if checked else None,
        features=frame,
    )
