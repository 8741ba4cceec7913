"""The one definition of the churn features: names, types, domains and groups.

Feast (feature_repo/), the pandera data contract (churn.data.contract), the model
pipelines and the serving runtime all read this module, so a feature is added or
changed in exactly one place. Nothing here imports Feast, pandera or pandas: the
module must stay cheap to import from the serving hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Kind(StrEnum):
    """Logical type of a feature; each consumer maps it to its own type system."""

    CATEGORY = "category"  # a string with a closed set of values
    INT = "int"
    FLOAT = "float"


class Group(StrEnum):
    """Feature groups: one offline table, one Feast source and one FeatureView each."""

    DEMOGRAPHICS = "demographics"
    ACCOUNT = "account"
    SERVICES = "services"


@dataclass(frozen=True)
class Feature:
    """One raw customer feature as it is stored offline and online."""

    name: str
    kind: Kind
    group: Group
    description: str
    categories: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None


ENTITY_KEY: Final = "customer_id"
EVENT_TIMESTAMP: Final = "event_timestamp"
CREATED_TIMESTAMP: Final = "created_timestamp"
LABEL: Final = "churn"
# When the label was observed (end of the churn window); never a model input.
LABEL_OBSERVED_AT: Final = "label_observed_at"

YES_NO: Final = ("No", "Yes")
NO_INTERNET: Final = "No internet service"
NO_PHONE: Final = "No phone service"
INTERNET_ADDON: Final = ("No", "Yes", NO_INTERNET)

# Telco's MonthlyCharges span 18.25-118.75; the contract allows a margin around that
# for price changes, and rejects values no real plan has.
MONTHLY_CHARGES_RANGE: Final = (10.0, 200.0)
# Telco's longest tenure is 72 months (the data's six-year window); synthetic
# snapshots can age customers beyond it, so the contract allows up to 20 years.
TENURE_RANGE: Final = (0, 240)
# Total charges are roughly tenure x monthly charges; real Telco ratios span
# 0.69-1.57 because prices change over a customer's life. The contract accepts
# [TOTAL_RATIO_MIN, TOTAL_RATIO_MAX] x tenure x monthly_charges (+ one month's slack).
TOTAL_RATIO_MIN: Final = 0.5
TOTAL_RATIO_MAX: Final = 2.0

FEATURES: Final[tuple[Feature, ...]] = (
    Feature("gender", Kind.CATEGORY, Group.DEMOGRAPHICS, "Customer gender.", ("Female", "Male")),
    Feature(
        "senior_citizen",
        Kind.INT,
        Group.DEMOGRAPHICS,
        "1 if the customer is 65 or older, else 0.",
        min_value=0,
        max_value=1,
    ),
    Feature("partner", Kind.CATEGORY, Group.DEMOGRAPHICS, "Has a partner.", YES_NO),
    Feature("dependents", Kind.CATEGORY, Group.DEMOGRAPHICS, "Has dependents.", YES_NO),
    Feature(
        "tenure",
        Kind.INT,
        Group.ACCOUNT,
        "Months the customer has been with the company.",
        min_value=TENURE_RANGE[0],
        max_value=TENURE_RANGE[1],
    ),
    Feature(
        "contract",
        Kind.CATEGORY,
        Group.ACCOUNT,
        "Contract term.",
        ("Month-to-month", "One year", "Two year"),
    ),
    Feature("paperless_billing", Kind.CATEGORY, Group.ACCOUNT, "Paperless billing.", YES_NO),
    Feature(
        "payment_method",
        Kind.CATEGORY,
        Group.ACCOUNT,
        "How the customer pays.",
        (
            "Bank transfer (automatic)",
            "Credit card (automatic)",
            "Electronic check",
            "Mailed check",
        ),
    ),
    Feature(
        "monthly_charges",
        Kind.FLOAT,
        Group.ACCOUNT,
        "Current monthly charge in USD.",
        min_value=MONTHLY_CHARGES_RANGE[0],
        max_value=MONTHLY_CHARGES_RANGE[1],
    ),
    Feature(
        "total_charges",
        Kind.FLOAT,
        Group.ACCOUNT,
        "Total billed so far in USD (0 for customers not billed yet).",
        min_value=0.0,
        max_value=TENURE_RANGE[1] * MONTHLY_CHARGES_RANGE[1] * TOTAL_RATIO_MAX,
    ),
    Feature("phone_service", Kind.CATEGORY, Group.SERVICES, "Has phone service.", YES_NO),
    Feature(
        "multiple_lines",
        Kind.CATEGORY,
        Group.SERVICES,
        "Has multiple phone lines.",
        ("No", "Yes", NO_PHONE),
    ),
    Feature(
        "internet_service",
        Kind.CATEGORY,
        Group.SERVICES,
        "Internet service type.",
        ("DSL", "Fiber optic", "No"),
    ),
    Feature(
        "online_security", Kind.CATEGORY, Group.SERVICES, "Online security add-on.", INTERNET_ADDON
    ),
    Feature(
        "online_backup", Kind.CATEGORY, Group.SERVICES, "Online backup add-on.", INTERNET_ADDON
    ),
    Feature(
        "device_protection",
        Kind.CATEGORY,
        Group.SERVICES,
        "Device protection add-on.",
        INTERNET_ADDON,
    ),
    Feature("tech_support", Kind.CATEGORY, Group.SERVICES, "Tech support add-on.", INTERNET_ADDON),
    Feature("streaming_tv", Kind.CATEGORY, Group.SERVICES, "Streaming TV add-on.", INTERNET_ADDON),
    Feature(
        "streaming_movies",
        Kind.CATEGORY,
        Group.SERVICES,
        "Streaming movies add-on.",
        INTERNET_ADDON,
    ),
)

# Add-ons that require internet service: "No internet service" iff internet_service == "No".
INTERNET_ADDONS: Final = tuple(f.name for f in FEATURES if f.categories == INTERNET_ADDON)


@dataclass(frozen=True)
class DerivedFeature:
    """A feature computed from raw features (a Feast on-demand feature view)."""

    name: str
    kind: Kind
    description: str


# Computed by churn.features.derived.derive(); served by the on-demand feature view.
DERIVED_FEATURES: Final[tuple[DerivedFeature, ...]] = (
    DerivedFeature(
        "num_services", Kind.INT, "Number of subscribed services (phone, lines, add-ons)."
    ),
    DerivedFeature(
        "avg_monthly_spend",
        Kind.FLOAT,
        "total_charges / tenure (monthly_charges when tenure is 0): lifetime average bill.",
    ),
    DerivedFeature(
        "charges_trend",
        Kind.FLOAT,
        "monthly_charges - avg_monthly_spend: positive when the bill has gone up.",
    ),
)

# Telco columns as published (CamelCase) -> our snake_case names.
TELCO_COLUMNS: Final[dict[str, str]] = {
    "customerID": ENTITY_KEY,
    "gender": "gender",
    "SeniorCitizen": "senior_citizen",
    "Partner": "partner",
    "Dependents": "dependents",
    "tenure": "tenure",
    "PhoneService": "phone_service",
    "MultipleLines": "multiple_lines",
    "InternetService": "internet_service",
    "OnlineSecurity": "online_security",
    "OnlineBackup": "online_backup",
    "DeviceProtection": "device_protection",
    "TechSupport": "tech_support",
    "StreamingTV": "streaming_tv",
    "StreamingMovies": "streaming_movies",
    "Contract": "contract",
    "PaperlessBilling": "paperless_billing",
    "PaymentMethod": "payment_method",
    "MonthlyCharges": "monthly_charges",
    "TotalCharges": "total_charges",
    "Churn": LABEL,
}


# Integer-valued features (Kind.INT raw and derived): shown as whole numbers, since
# the online store and Feast may hand integers back as floats.
INTEGER_FEATURES: Final = frozenset(
    [f.name for f in FEATURES if f.kind is Kind.INT]
    + [d.name for d in DERIVED_FEATURES if d.kind is Kind.INT]
)


def feature_names(group: Group | None = None) -> list[str]:
    """Raw feature names in their canonical order, optionally of one group."""
    return [f.name for f in FEATURES if group is None or f.group == group]


def feature(name: str) -> Feature:
    """Look one raw feature up by name; KeyError names the unknown feature."""
    for f in FEATURES:
        if f.name == name:
            return f
    raise KeyError(f"unknown feature {name!r}")


def categorical_names() -> list[str]:
    """Raw features the model must one-hot encode."""
    return [f.name for f in FEATURES if f.kind is Kind.CATEGORY]


def numeric_names() -> list[str]:
    """Raw numeric features plus every derived feature (all derived ones are numeric)."""
    raw = [f.name for f in FEATURES if f.kind is not Kind.CATEGORY]
    return raw + [d.name for d in DERIVED_FEATURES]


def model_input_names() -> list[str]:
    """Exactly the columns the model consumes, in order: raw features then derived."""
    return feature_names() + [d.name for d in DERIVED_FEATURES]
