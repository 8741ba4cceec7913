"""Feature sets (churn.schema) and their FeatureServices (churn.features.names)."""

from __future__ import annotations

import pytest

from churn.features.names import (
    DERIVED_VIEWS,
    FEATURE_SERVICE,
    FEATURE_SERVICES,
    feature_refs,
    service_inputs,
    service_version,
)
from churn.schema import (
    DERIVED_FEATURES,
    FEATURE_VERSIONS,
    derived_names,
    feature_names,
    model_input_names,
    version_of_derived,
)
from serving.online import LayoutError, ViewFields, checked_layout


def test_each_set_extends_the_previous_one() -> None:
    assert FEATURE_VERSIONS == (1, 2)
    assert derived_names(1) == ["num_services", "avg_monthly_spend", "charges_trend"]
    assert derived_names(2) == [
        *derived_names(1),
        "log_tenure",
        "tenure_bucket",
        "fiber_month_to_month",
    ]
    for version in FEATURE_VERSIONS:
        assert model_input_names(version) == feature_names() + derived_names(version)
    assert model_input_names() == model_input_names(1)
    assert len({d.name for d in DERIVED_FEATURES}) == len(DERIVED_FEATURES)


def test_unknown_sets_and_services_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown feature set version 3; defined: \(1, 2\)"):
        model_input_names(3)
    with pytest.raises(ValueError, match="unknown feature service 'churn_model_v9'"):
        service_version("churn_model_v9")


def test_services_map_to_their_sets_and_views() -> None:
    assert FEATURE_SERVICE == FEATURE_SERVICES[1] == "churn_model_v1"
    assert FEATURE_SERVICES[2] == "churn_model_v2"
    assert DERIVED_VIEWS == {1: "customer_derived", 2: "customer_derived_v2"}
    for version, service in FEATURE_SERVICES.items():
        assert service_version(service) == version
        assert service_inputs(service) == model_input_names(version)
        refs = feature_refs(version)
        assert [r.split(":", 1)[1] for r in refs] == model_input_names(version)
    assert "customer_derived_v2:log_tenure" in feature_refs(2)
    assert not any(r.startswith("customer_derived_v2:") for r in feature_refs(1))
    assert feature_refs(2, include_derived=False) == feature_refs(1, include_derived=False)


def test_a_service_is_recognised_by_its_derived_features() -> None:
    for version in FEATURE_VERSIONS:
        assert version_of_derived(list(reversed(derived_names(version)))) == version
    with pytest.raises(ValueError, match="match no feature set"):
        version_of_derived([*derived_names(1), "log_tenure"])  # half of set 2


def _views() -> list[ViewFields]:
    return [ViewFields("all", tuple(feature_names()))]


def test_the_serving_layout_takes_the_set_of_its_derived_features() -> None:
    layout = checked_layout("svc", "churn", 3, _views(), derived_names(2))
    assert layout.feature_version == 2
    assert list(layout.derived) == derived_names(2)
    assert checked_layout("svc", "churn", 3, _views(), derived_names(1)).feature_version == 1
    with pytest.raises(LayoutError, match=r"feature service 'svc'.*match no feature set"):
        checked_layout("svc", "churn", 3, _views(), ["num_services"])
