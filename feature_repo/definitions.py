"""Feast objects of the churn project: entity -> sources -> views -> service.

Purely declarative and safe to import: names come from churn.features.names, every
Field from churn.schema (via churn.features.feast_schema), and the offline paths
from churn.settings (CHURN_HOME), so nothing here is typed twice or depends on the
working directory. `feast apply` (cd feature_repo) and churn.features.store.apply_repo
both register exactly these objects.
"""

from typing import Any

from feast import Entity, FeatureService, FeatureView, FileSource, ValueType
from feast.on_demand_feature_view import on_demand_feature_view

from churn.features.feast_schema import (
    derive_python,
    derived_description,
    derived_fields,
    entity_field,
    group_fields,
    offline_path,
)
from churn.features.names import (
    DERIVED_VIEWS,
    ENTITY,
    FEATURE_SERVICES,
    FEATURE_TTL,
    VIEW_BY_GROUP,
    source_name,
)
from churn.schema import CREATED_TIMESTAMP, ENTITY_KEY, EVENT_TIMESTAMP, Group
from churn.settings import get_settings

_settings = get_settings()
_TAGS = {"team": "churn", "domain": "telco"}

# The customer is the only entity: every feature and prediction is per customer.
customer = Entity(
    name=ENTITY,
    join_keys=[ENTITY_KEY],
    value_type=ValueType.STRING,
    description="A telecom customer, keyed by the Telco customerID.",
    tags=_TAGS,
)


def _source(group: Group) -> FileSource:
    # One parquet table per group, written by churn.data.offline: monthly snapshots
    # (event_timestamp) and write time (created_timestamp, which breaks ties when a
    # snapshot is re-ingested with corrected values).
    return FileSource(
        name=source_name(group),
        path=offline_path(group, _settings),
        timestamp_field=EVENT_TIMESTAMP,
        created_timestamp_column=CREATED_TIMESTAMP,
        description=f"Offline snapshots of the {group.value} features.",
        tags=_TAGS,
    )


def _view(group: Group) -> FeatureView:
    # One typed view per group; its fields are generated from churn.schema.
    return FeatureView(
        name=VIEW_BY_GROUP[group],
        entities=[customer],
        ttl=FEATURE_TTL,
        schema=[entity_field(), *group_fields(group)],
        online=True,
        source=_source(group),
        description=f"Customer {group.value} features (monthly snapshots).",
        tags={**_TAGS, "group": group.value},
    )


customer_demographics = _view(Group.DEMOGRAPHICS)
customer_account = _view(Group.ACCOUNT)
customer_services = _view(Group.SERVICES)


# Derived features computed at read time from the raw views by the one shared
# implementation (churn.features.derived.derive). Python mode: it is about twice as
# fast online as pandas mode (docs/decisions.md, 7) and works offline as well.
@on_demand_feature_view(  # type: ignore[untyped-decorator]
    name=DERIVED_VIEWS[1],
    sources=[customer_account, customer_services],
    schema=derived_fields(1),
    mode="python",
    description=derived_description(1),
    tags=_TAGS,
)
def customer_derived(inputs: dict[str, Any]) -> dict[str, Any]:
    return derive_python(inputs, 1)


# Feature set v2's additions, in a view of their own: v1's view and service stay as
# they were, so the v1 champion keeps serving unchanged while v2 models train.
@on_demand_feature_view(  # type: ignore[untyped-decorator]
    name=DERIVED_VIEWS[2],
    sources=[customer_account, customer_services],
    schema=derived_fields(2),
    mode="python",
    description=derived_description(2),
    tags=_TAGS,
)
def customer_derived_v2(inputs: dict[str, Any]) -> dict[str, Any]:
    return derive_python(inputs, 2)


_RAW_VIEWS = [customer_demographics, customer_account, customer_services]

# What each model version consumes: every raw feature plus its set's derived ones, i.e.
# exactly churn.schema.model_input_names(version) (a test checks the equality).
churn_model_v1 = FeatureService(
    name=FEATURE_SERVICES[1],
    features=[*_RAW_VIEWS, customer_derived],
    description="Inputs of the churn model v1.",
    tags=_TAGS,
)
churn_model_v2 = FeatureService(
    name=FEATURE_SERVICES[2],
    features=[*_RAW_VIEWS, customer_derived, customer_derived_v2],
    description="Inputs of the churn model v2: v1's plus log_tenure, tenure_bucket and "
    "fiber_month_to_month.",
    tags=_TAGS,
)
