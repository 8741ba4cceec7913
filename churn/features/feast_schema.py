"""churn.schema translated into Feast types, for the declarative feature repo.

feature_repo/ only declares objects; the per-feature Fields, the offline paths and
the on-demand transformation body come from here so that no feature name, type or
path is typed twice. Importing this module imports Feast but touches nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from feast import Field
from feast.types import Float64, Int64, PrimitiveFeastType, String

from churn.features.derived import derive
from churn.schema import DERIVED_FEATURES, ENTITY_KEY, FEATURES, Group, Kind
from churn.settings import Settings

_FEAST_TYPE: dict[Kind, PrimitiveFeastType] = {
    Kind.CATEGORY: String,
    Kind.INT: Int64,
    Kind.FLOAT: Float64,
}


def feast_dtype(kind: Kind) -> PrimitiveFeastType:
    """The Feast type storing one schema Kind (categories are plain strings)."""
    return _FEAST_TYPE[kind]


def entity_field() -> Field:
    """The join key as a typed Field.

    Declaring it in each view's schema spares Feast from opening the parquet file to
    infer the key type, so `feast apply` works before any data has been ingested.
    """
    return Field(name=ENTITY_KEY, dtype=String, description="Telco customer id.")


def group_fields(group: Group) -> list[Field]:
    """Typed, described Fields of one feature group, in schema order."""
    return [
        Field(name=f.name, dtype=feast_dtype(f.kind), description=f.description)
        for f in FEATURES
        if f.group is group
    ]


def introduced(version: int) -> list[str]:
    """Derived features feature set `version` added: the outputs of its on-demand view."""
    return [d.name for d in DERIVED_FEATURES if d.version == version]


def derived_fields(version: int = 1) -> list[Field]:
    """Output Fields of feature set `version`'s on-demand view, from schema.DERIVED_FEATURES.

    Without descriptions: Feast 0.49 checks declared fields against the ones it
    infers by running the transformation, and Field equality includes the
    description (inferred ones have none), so a described field "is not found".
    The descriptions go into the view's description instead (derived_description).
    """
    return [
        Field(name=d.name, dtype=feast_dtype(d.kind))
        for d in DERIVED_FEATURES
        if d.version == version
    ]


def derived_description(version: int = 1) -> str:
    """Feature set `version`'s on-demand view description: one line per feature it adds."""
    return "\n".join(f"{d.name}: {d.description}" for d in DERIVED_FEATURES if d.version == version)


def offline_path(group: Group, settings: Settings) -> str:
    """Absolute path of a group's offline table, exactly where churn.data writes it.

    Absolute on purpose: Feast resolves a relative FileSource path against the
    feature repo directory at apply time, which would silently disagree with
    CHURN_HOME. The path is captured in the registry at `feast apply`; the
    registry lives under the same CHURN_HOME, so the two cannot drift apart.
    """
    return str(settings.offline_table(group.value))


def derive_python(inputs: Mapping[str, Sequence[Any]], version: int = 1) -> dict[str, list[Any]]:
    """Python-mode transformation of feature set `version`'s view: derive() as plain lists.

    Feast hands a dict of column lists (online and offline) and serialises the
    result value by value; plain Python scalars avoid numpy-scalar conversions.
    Only the derived columns are returned: offline, Feast appends every returned
    column to the training frame.
    """
    return {name: values.tolist() for name, values in derive(inputs, introduced(version)).items()}
