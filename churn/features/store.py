"""Feast helpers: open the store, apply the repo, materialize, read features.

Small typed functions (no module state) that pipelines, serving and tests call
instead of repeating Feast boilerplate. They add the checks Feast 0.49 leaves out
(measured, see docs/decisions.md, 7):

- historical reads: the file offline store silently DROPS an entity row whose
  feature rows are all later than its timestamp, instead of returning nulls;
  historical_features() insists on exactly one row per entity row, in the entity
  frame's order, and names the rows it could not serve;
- online reads: an unknown customer id comes back as None for every feature,
  without any error; online_features() reports such ids explicitly.

feature_store.yaml is loaded with the variables churn.settings resolves (see
churn.features.env), so Python code needs no exported environment, and the feature
repo's modules are imported from their files (no chdir, unlike `feast apply`).
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import pandas as pd
import yaml
from feast import (
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    FileSource,
    OnDemandFeatureView,
)
from feast.data_source import DataSource
from feast.feature_view import DUMMY_ENTITY
from feast.project import Project
from feast.repo_config import FeastConfigError, RepoConfig
from feast.repo_contents import RepoContents
from feast.repo_operations import extract_objects_for_apply_delete, get_repo_files
from pydantic import ValidationError

from churn.features.derived import DERIVED_INPUTS, derive
from churn.features.env import BATCH_ENGINE_TYPES, feast_env, substitute
from churn.features.feast_schema import offline_path
from churn.features.names import DERIVED_VIEWS, FEATURE_SERVICE, source_name
from churn.schema import (
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    FEATURE_VERSIONS,
    Group,
    feature_names,
    model_input_names,
)
from churn.settings import FEATURE_REPO, Settings, get_settings

_EXAMPLES = 5  # how many offending keys an error message lists


class FeatureStoreError(RuntimeError):
    """Base class of the checks this module adds on top of Feast."""


class MissingFeatureRowsError(FeatureStoreError):
    """Entity rows for which the offline store returned no row at all."""

    def __init__(self, missing: pd.DataFrame, total: int) -> None:
        self.missing = missing
        examples = missing.head(_EXAMPLES).to_dict("records")
        super().__init__(
            f"{len(missing)} of {total} entity rows got no feature row: no snapshot of "
            f"the customer at or before the row's {EVENT_TIMESTAMP} (within the view "
            f"ttl), and Feast's file offline store drops such rows instead of returning "
            f"nulls. First {len(examples)}: {examples}"
        )


class MissingFeatureValuesError(FeatureStoreError):
    """Rows served with some features null (a group's snapshot missing or expired)."""

    def __init__(self, counts: Mapping[str, int], keys: Sequence[Any]) -> None:
        self.counts = dict(counts)
        self.keys = list(keys)
        super().__init__(
            f"{len(self.keys)} rows have null features (nulls per column: {self.counts}); "
            f"first {min(_EXAMPLES, len(self.keys))}: {self.keys[:_EXAMPLES]}"
        )


class UnknownCustomerError(FeatureStoreError, KeyError):
    """Customer ids for which the online store holds no features at all."""

    def __init__(self, customer_ids: Sequence[str]) -> None:
        self.customer_ids = list(customer_ids)
        super().__init__(
            f"{len(self.customer_ids)} unknown customer id(s) (no features in the online "
            f"store; never materialized?): {self.customer_ids[: _EXAMPLES * 4]}"
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


# --------------------------------------------------------------------------- config


def repo_config(
    repo_path: Path = FEATURE_REPO,
    settings: Settings | None = None,
    *,
    yaml_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> RepoConfig:
    """Parse and validate a feature_store yaml with variables from settings.

    `yaml_file` defaults to settings.feature_store_yaml (CHURN_FEATURE_STORE_YAML): a
    pipeline pod on EKS opens feature_store.eks.yaml from its environment alone.
    Values come from `feast_env(settings)` first, then `environ` (os.environ by
    default) for variables settings does not know (e.g. the EKS bucket); an unset
    variable raises MissingEnvironmentVariableError naming it.
    """
    settings = settings or get_settings()
    path = repo_path / (yaml_file or settings.feature_store_yaml)
    env = {**(os.environ if environ is None else environ), **feast_env(settings)}
    raw = yaml.safe_load(substitute(path.read_text(), env, source=str(path)))
    _select_batch_engine(raw, settings)
    try:
        config = RepoConfig(**raw)
    except ValidationError as e:
        raise FeastConfigError(e, path) from e  # type: ignore[no-untyped-call]
    config.repo_path = repo_path
    return config


def _select_batch_engine(raw: dict[str, Any], settings: Settings) -> None:
    """Run a yaml's Kubernetes engine only where CHURN_MATERIALIZATION_ENGINE=k8s.

    feature_store.eks.yaml configures Feast's k8s engine (the EKS ConfigMap sets the
    setting to k8s); the production twin and a laptop open the same file without a
    cluster, so there the setting's in-process engine replaces it. The `feast` CLI
    reads the yaml as written.
    """
    engine = raw.get("batch_engine")
    kind = engine.get("type") if isinstance(engine, dict) else engine
    if kind == "k8s" and settings.materialization_engine != "k8s":
        raw["batch_engine"] = {"type": BATCH_ENGINE_TYPES[settings.materialization_engine]}


def get_store(
    repo_path: Path = FEATURE_REPO,
    settings: Settings | None = None,
    *,
    yaml_file: str | None = None,
) -> FeatureStore:
    """A FeatureStore for the repo, configured from settings (no env export needed).

    Creates the local registry's directory: Feast only creates its last level.
    """
    config = repo_config(repo_path, settings, yaml_file=yaml_file)
    registry_path = config.registry.path
    if "://" not in registry_path:
        Path(registry_path).parent.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(repo_path), config=config)


# ---------------------------------------------------------------------------- apply


@dataclass(frozen=True)
class ApplyReport:
    """What apply_repo registered and removed, by object name."""

    applied: list[str]
    deleted: list[str]


def _load_module(path: Path) -> ModuleType:
    """Execute one repo file as a fresh module (objects re-read settings each time)."""
    spec = importlib.util.spec_from_file_location(f"churn_feature_repo_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import feature repo file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _collect(objects: list[Any], kind: type, new: Any) -> None:
    if isinstance(new, kind) and not any(new is known for known in objects):
        objects.append(new)


def load_repo_contents(repo_path: Path, project: str) -> RepoContents:
    """The Feast objects the repo's .py files define, as `feast apply` collects them.

    Same file selection (.feastignore honoured) and same object kinds as Feast's
    parse_repo, without its os.chdir; like it, adds Feast's dummy entity.
    """
    sources: list[DataSource] = []
    entities: list[Entity] = []
    views: list[FeatureView] = []
    odfvs: list[OnDemandFeatureView] = []
    services: list[FeatureService] = []
    for path in get_repo_files(repo_path):
        module = _load_module(path)
        for name in dir(module):
            obj = getattr(module, name)
            _collect(sources, DataSource, obj)
            _collect(entities, Entity, obj)
            _collect(views, FeatureView, obj)
            _collect(odfvs, OnDemandFeatureView, obj)
            _collect(services, FeatureService, obj)
    for view in views:
        if view.batch_source is not None:
            _collect(sources, DataSource, view.batch_source)
    return RepoContents(
        projects=[Project(name=project)],
        data_sources=sources,
        feature_views=views,
        on_demand_feature_views=odfvs,
        stream_feature_views=[],
        entities=[*entities, DUMMY_ENTITY],
        feature_services=services,
        permissions=[],
    )


def _check_source_paths(repo: RepoContents, settings: Settings) -> None:
    """The definitions read CHURN_HOME through get_settings(): refuse to register
    offline paths that differ from the settings this store was opened with."""
    for group in Group:
        expected = offline_path(group, settings)
        for source in repo.data_sources:
            if (
                source.name == source_name(group)
                and isinstance(source, FileSource)
                and source.path != expected
            ):
                raise ValueError(
                    f"source {source.name!r} points at {source.path}, but the settings "
                    f"give {expected}: the feature repo reads CHURN_HOME from the "
                    "environment (get_settings()), so set it there before applying"
                )


def apply_repo(
    store: FeatureStore, repo_path: Path = FEATURE_REPO, settings: Settings | None = None
) -> ApplyReport:
    """Programmatic `feast apply`: register the repo's objects, delete stale ones.

    `settings` (default get_settings()) must be the ones the store was opened with:
    the offline paths the repo declares are checked against them.
    """
    project = store.config.project
    repo = load_repo_contents(repo_path, project)
    _check_source_paths(repo, settings or get_settings())
    to_apply, to_delete, _, _ = extract_objects_for_apply_delete(  # type: ignore[no-untyped-call]
        project, store.registry, repo
    )
    store.apply(to_apply, objects_to_delete=to_delete, partial=False)
    return ApplyReport(
        applied=sorted(o.name for o in to_apply), deleted=sorted(o.name for o in to_delete)
    )


# ---------------------------------------------------------------------- materialize


@dataclass(frozen=True)
class MaterializationReport:
    """One materialization run: which views, which window, how long it took."""

    views: list[str]
    start: dict[str, datetime | None]
    end: datetime
    seconds: float


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {value.isoformat()})")


def _online_views(store: FeatureStore) -> list[FeatureView]:
    return [v for v in store.list_feature_views() if v.online]


def materialize(store: FeatureStore, start: datetime, end: datetime) -> MaterializationReport:
    """Load every online view's rows with event time in [start, end] into Redis."""
    _require_aware("start", start)
    _require_aware("end", end)
    views = [v.name for v in _online_views(store)]
    began = time.perf_counter()
    store.materialize(start_date=start, end_date=end, feature_views=views)
    return MaterializationReport(
        views=views,
        start=dict.fromkeys(views, start),
        end=end,
        seconds=time.perf_counter() - began,
    )


def materialize_incremental(store: FeatureStore, end: datetime) -> MaterializationReport:
    """Load rows newer than each view's last materialized end (or now - ttl) up to end."""
    _require_aware("end", end)
    views = _online_views(store)
    starts = {v.name: v.most_recent_end_time for v in views}
    began = time.perf_counter()
    store.materialize_incremental(end_date=end, feature_views=list(starts))
    return MaterializationReport(
        views=list(starts), start=starts, end=end, seconds=time.perf_counter() - began
    )


# ------------------------------------------------------------------------ historical


def _entity_keys(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    missing = [c for c in (ENTITY_KEY, EVENT_TIMESTAMP) if c not in frame.columns]
    if missing:
        raise KeyError(f"{what} lacks column(s) {missing}")
    ts = frame[EVENT_TIMESTAMP]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"{what}.{EVENT_TIMESTAMP} must be timezone-aware, got {ts.dtype}")
    return pd.DataFrame(
        {
            ENTITY_KEY: frame[ENTITY_KEY].astype(str).to_numpy(),
            EVENT_TIMESTAMP: ts.dt.tz_convert("UTC").array,  # positional, like the ids
        }
    )


# Entity rows per Feast call: bounds memory at any training-set size (measured with
# benchmarks/scale_bench.py: the DuckDB store peaks ~4.3 GB for 1M rows in one call,
# and a call's cost is linear in its rows, so chunks cost no time).
HISTORICAL_CHUNK_ROWS: Final = 250_000


def historical_features(
    store: FeatureStore,
    entity_df: pd.DataFrame,
    *,
    service: str = FEATURE_SERVICE,
    allow_missing_values: bool = False,
    chunk_rows: int = HISTORICAL_CHUNK_ROWS,
) -> pd.DataFrame:
    """Point-in-time correct features of a FeatureService, one row per entity row.

    `entity_df` needs customer_id and a tz-aware event_timestamp (extra columns such
    as the label pass through, with entity_df's own dtypes); its (customer_id,
    event_timestamp) pairs must be unique. The result has entity_df's rows in
    entity_df's order. Feast is called on `chunk_rows` entity rows at a time, so
    memory stays bounded however many labels there are. Raises
    MissingFeatureRowsError when Feast dropped entity rows (the file store does
    that for rows with no snapshot at or before their time) and, unless
    allow_missing_values, MissingFeatureValuesError when a row came back with null
    raw features (the DuckDB store returns such rows with nulls).
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    keys = _entity_keys(entity_df, "entity_df")
    if keys[ENTITY_KEY].isna().any() or keys[EVENT_TIMESTAMP].isna().any():
        raise ValueError(f"entity_df has null {ENTITY_KEY} or {EVENT_TIMESTAMP} values")
    duplicated = keys.duplicated()
    if duplicated.any():
        raise ValueError(
            f"entity_df has {int(duplicated.sum())} duplicate ({ENTITY_KEY}, {EVENT_TIMESTAMP}) "
            f"pairs, e.g. {keys[duplicated].head(_EXAMPLES).to_dict('records')}"
        )
    features, derived = _offline_plan(store, store.get_feature_service(service))
    parts: list[pd.DataFrame] = []
    missing: list[pd.DataFrame] = []
    for i in range(0, len(keys), chunk_rows):
        part, absent = _historical_chunk(
            store, entity_df.iloc[i : i + chunk_rows], keys.iloc[i : i + chunk_rows], features
        )
        if derived and len(part):
            for name, values in derive(part, derived).items():
                part[name] = values
        parts.append(part)
        missing.append(absent)
    absent = pd.concat(missing, ignore_index=True)
    if len(absent):
        raise MissingFeatureRowsError(absent, len(keys))
    ordered = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    for column in entity_df.columns:  # entity_df's own values and dtypes, not Feast's copies
        if column != EVENT_TIMESTAMP:
            ordered[column] = entity_df[column].array
    ordered[EVENT_TIMESTAMP] = keys[EVENT_TIMESTAMP].array
    if not allow_missing_values:
        _check_no_nulls(ordered, [c for c in feature_names() if c in ordered.columns])
    return ordered


def _offline_plan(
    store: FeatureStore, service: FeatureService
) -> tuple[FeatureService | list[str], list[str]]:
    """What to ask Feast for offline, and which derived features to compute here.

    Feast runs a python-mode on-demand view offline by converting the whole joined
    table to Python lists and back: measured, 75% of a 250k-row training set's time
    (9.3 of 12.5 s) for a transformation that takes 0.3 s on numpy columns. The
    project's derived views (one per feature set) run churn.features.derived.derive, so
    their features are computed here by that same function on the raw columns Feast
    returns (as serving does online); a service with any other on-demand view goes
    through Feast whole.
    """
    odfvs = {v.name for v in store.list_on_demand_feature_views()}
    ours = set(DERIVED_VIEWS.values())
    projections = service.feature_view_projections
    if any(p.name in odfvs and p.name not in ours for p in projections):
        return service, []
    refs = [
        f"{p.name_alias or p.name}:{f.name}"
        for p in projections
        if p.name not in odfvs
        for f in p.features
    ]
    derived = [f.name for p in projections if p.name in ours for f in p.features]
    raw = {ref.split(":", 1)[1] for ref in refs}
    if derived and not set(DERIVED_INPUTS) <= raw:
        return service, []  # Feast names the missing inputs
    return refs, derived


def _historical_chunk(
    store: FeatureStore,
    entity_df: pd.DataFrame,
    keys: pd.DataFrame,
    features: FeatureService | list[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One Feast call: its rows in entity_df's order, and the keys Feast left out."""
    result = store.get_historical_features(entity_df=entity_df, features=features).to_df()
    result_keys = _entity_keys(result, "Feast's result")
    if result_keys.duplicated().any():
        raise FeatureStoreError(
            f"Feast returned {int(result_keys.duplicated().sum())} duplicate entity rows"
        )
    index = pd.MultiIndex.from_frame(result_keys)
    wanted = pd.MultiIndex.from_frame(keys)
    found = wanted.isin(index)
    absent = keys[~found].reset_index(drop=True)
    if len(absent):
        return result.iloc[:0], absent
    return result.set_axis(index).loc[wanted].reset_index(drop=True), absent


def _check_no_nulls(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    nulls = frame[list(columns)].isna()
    rows = nulls.any(axis=1)
    if rows.any():
        counts = {str(c): int(n) for c, n in nulls.sum().items() if n}
        sub = frame.loc[
            rows, [ENTITY_KEY, *([EVENT_TIMESTAMP] if EVENT_TIMESTAMP in frame else [])]
        ]
        raise MissingFeatureValuesError(counts, sub.to_dict("records"))


# ---------------------------------------------------------------------------- online


@dataclass(frozen=True)
class OnlineFeatures:
    """Online features of some customers, column-wise; rows in the requested order,
    columns in model_input_names() order (of the newest feature set, which lists them all).

    `unknown`: ids with no raw feature at all (never materialized); `incomplete`:
    ids with some raw features null (those values are None). Every value of an
    unknown id, derived ones included, is None.
    """

    customer_ids: list[str]
    columns: dict[str, list[Any]]
    unknown: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """customer_id plus one column per feature."""
        return pd.DataFrame({ENTITY_KEY: self.customer_ids, **self.columns})


def service_refs(store: FeatureStore, service: str = FEATURE_SERVICE) -> list[str]:
    """`view:feature` references of a registered FeatureService, in its order.

    Resolve once and pass the list to online_features() on a hot path: a service
    name costs a registry lookup (proto decoding, ~5 ms) on every call.
    """
    fs = store.get_feature_service(service)
    return [
        f"{p.name_alias or p.name}:{f.name}"
        for p in fs.feature_view_projections
        for f in p.features
    ]


def online_features(
    store: FeatureStore,
    customer_ids: Sequence[str],
    *,
    features: str | Sequence[str] = FEATURE_SERVICE,
    strict: bool = True,
) -> OnlineFeatures:
    """Read features from Redis: a FeatureService name, or `view:feature` references.

    Feast answers an unknown id with None for every feature and no error; this
    detects it on the raw features (derived ones are computed even from None).
    strict raises UnknownCustomerError / MissingFeatureValuesError; otherwise the
    ids are listed in the result's `unknown` / `incomplete`.
    """
    ids = [str(c) for c in customer_ids]
    if not ids:
        raise ValueError("customer_ids is empty")
    refs = service_refs(store, features) if isinstance(features, str) else list(features)
    response = store.get_online_features(
        features=refs, entity_rows=[{ENTITY_KEY: c} for c in ids]
    ).to_dict()
    order = {name: i for i, name in enumerate(model_input_names(FEATURE_VERSIONS[-1]))}
    names = sorted((k for k in response if k != ENTITY_KEY), key=lambda k: order.get(k, len(order)))
    columns = {k: list(response[k]) for k in names}
    raw = [c for c in feature_names() if c in columns]
    unknown: list[str] = []
    incomplete: list[str] = []
    for i, cid in enumerate(ids):
        n_null = sum(columns[c][i] is None for c in raw)
        if raw and n_null == len(raw):
            unknown.append(cid)
        elif n_null:
            incomplete.append(cid)
    for i in (ids.index(c) for c in unknown):
        for values in columns.values():  # derived values computed from None mean nothing
            values[i] = None
    if strict and unknown:
        raise UnknownCustomerError(unknown)
    if strict and incomplete:
        counts = {c: sum(v is None for v in columns[c]) for c in raw}
        raise MissingFeatureValuesError({c: n for c, n in counts.items() if n}, incomplete)
    return OnlineFeatures(customer_ids=ids, columns=columns, unknown=unknown, incomplete=incomplete)
