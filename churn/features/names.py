"""Names of the Feast objects, shared by the feature repo, the pipelines and serving.

The feature repo (feature_repo/) defines the objects under these names and every
reader (training, batch scoring, the MLServer runtime) looks them up by the same
constants, so renaming a view or bumping the service version happens here once.
Importing this module is cheap: no Feast, no pandas.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from churn.schema import DERIVED_FEATURES, ENTITY_KEY, Group, feature, model_input_names

# Must equal `project:` in feature_repo/feature_store*.yaml (a test checks it).
PROJECT: Final = "churn"
ENTITY: Final = "customer"
# Versioned: a model trained on v1 keeps reading v1 while v2 is rolled out.
FEATURE_SERVICE: Final = "churn_model_v1"
DERIVED_VIEW: Final = "customer_derived"

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


def feature_refs(*, include_derived: bool = True) -> list[str]:
    """`view:feature` references of every model input, raw first then derived.

    The same set as the FeatureService; useful where a caller wants references
    (e.g. to read the raw views without the on-demand transformation).
    """
    derived = {d.name for d in DERIVED_FEATURES}
    refs = []
    for name in model_input_names():
        if name in derived:
            if include_derived:
                refs.append(f"{DERIVED_VIEW}:{name}")
        else:
            refs.append(f"{VIEW_BY_GROUP[feature(name).group]}:{name}")
    return refs


__all__ = [
    "DERIVED_VIEW",
    "ENTITY",
    "ENTITY_KEY",
    "FEATURE_SERVICE",
    "FEATURE_TTL",
    "PROJECT",
    "VIEW_BY_GROUP",
    "feature_refs",
    "source_name",
]
