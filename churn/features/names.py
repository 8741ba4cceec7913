"""Names of the Feast objects, shared by the feature repo, the pipelines and serving.

The feature repo (feature_repo/) defines the objects under these names and every
reader (training, batch scoring, the MLServer runtime) looks them up by the same
constants, so renaming a view or bumping the service version happens here once.
Importing this module is cheap: no Feast, no pandas.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from churn.schema import (
    DERIVED_FEATURES,
    ENTITY_KEY,
    FEATURE_VERSIONS,
    Group,
    check_version,
    feature,
    model_input_names,
)

# Must equal `project:` in feature_repo/feature_store*.yaml (a test checks it).
PROJECT: Final = "churn"
ENTITY: Final = "customer"
# Versioned: a model trained on v1 keeps reading v1 while v2 is rolled out. One
# FeatureService per feature set of churn.schema (FEATURE_VERSIONS).
FEATURE_SERVICES: Final[dict[int, str]] = {v: f"churn_model_v{v}" for v in FEATURE_VERSIONS}
# The default where no model says otherwise (a model records its own service).
FEATURE_SERVICE: Final = FEATURE_SERVICES[1]
# One on-demand view per feature set, computing the derived features that set added:
# a new set adds a view and leaves the views older services read untouched.
DERIVED_VIEWS: Final[dict[int, str]] = {
    v: "customer_derived" if v == 1 else f"customer_derived_v{v}" for v in FEATURE_VERSIONS
}
DERIVED_VIEW: Final = DERIVED_VIEWS[1]

VIEW_BY_GROUP: Final[dict[Group, str]] = {
    Group.DEMOGRAPHICS: "customer_demographics",
    Group.ACCOUNT: "customer_account",
    Group.SERVICES: "customer_services",
}

# Zero = a snapshot never expires: a customer's last snapshot stays valid until the
# next one replaces it. A finite ttl would make the point-in-time join return
# nothing for customers whose last snapshot is older than the ttl, and the Telco
# data is a frozen 2025-01-01 snapshot: any finite ttl becomes a time bomb as the
# calendar moves on. (With ttl 0, the first `materialize-incremental` without a
# previous run looks back 52 weeks, so load history with `feast materialize`.)
FEATURE_TTL: Final = timedelta(0)


def source_name(group: Group) -> str:
    """Name of the offline (FileSource) data source of one feature group."""
    return f"{VIEW_BY_GROUP[group]}_source"


def service_version(service: str) -> int:
    """The feature set a FeatureService of this project serves; ValueError names the known ones."""
    for version, name in FEATURE_SERVICES.items():
        if name == service:
            return version
    raise ValueError(
        f"unknown feature service {service!r}; defined: {list(FEATURE_SERVICES.values())}"
    )


def service_inputs(service: str) -> list[str]:
    """The model input columns, in order, of the feature set `service` serves."""
    return model_input_names(service_version(service))


def feature_refs(version: int = 1, *, include_derived: bool = True) -> list[str]:
    """`view:feature` references of every input of feature set `version`, raw then derived.

    The same set as its FeatureService; useful where a caller wants references
    (e.g. to read the raw views without the on-demand transformation).
    """
    view_of = {d.name: DERIVED_VIEWS[d.version] for d in DERIVED_FEATURES}
    refs = []
    for name in model_input_names(check_version(version)):
        if name in view_of:
            if include_derived:
                refs.append(f"{view_of[name]}:{name}")
        else:
            refs.append(f"{VIEW_BY_GROUP[feature(name).group]}:{name}")
    return refs


__all__ = [
    "DERIVED_VIEW",
    "DERIVED_VIEWS",
    "ENTITY",
    "ENTITY_KEY",
    "FEATURE_SERVICE",
    "FEATURE_SERVICES",
    "FEATURE_TTL",
    "PROJECT",
    "VIEW_BY_GROUP",
    "feature_refs",
    "service_inputs",
    "service_version",
    "source_name",
]
