"""derive(): the one implementation of the derived features, on hand-made rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn.features.derived import DERIVED_INPUTS, INPUTS_BY_VERSION, add_derived, derive
from churn.features.feast_schema import derive_python, introduced
from churn.models.evaluate import tenure_bucket
from churn.schema import (
    DERIVED_FEATURES,
    FEATURE_VERSIONS,
    INTERNET_ADDONS,
    NO_INTERNET,
    NO_PHONE,
    TENURE_BUCKETS,
    derived_names,
)


def _row(**overrides: Any) -> dict[str, Any]:
    """A DSL customer with phone, one line, no add-ons; overrides change any field."""
    row: dict[str, Any] = {
        "tenure": 10,
        "monthly_charges": 50.0,
        "total_charges": 450.0,
        "phone_service": "Yes",
        "multiple_lines": "No",
        "internet_service": "DSL",
        "contract": "Month-to-month",
        **dict.fromkeys(INTERNET_ADDONS, "No"),
    }
    row.update(overrides)
    return row


def _derive_rows(*rows: dict[str, Any]) -> dict[str, list[Any]]:
    frame = pd.DataFrame(list(rows))
    return {name: values.tolist() for name, values in derive(frame).items()}


def test_tenure_zero_uses_monthly_charges_as_average() -> None:
    out = _derive_rows(_row(tenure=0, monthly_charges=70.0, total_charges=0.0))
    assert out["avg_monthly_spend"] == [70.0]
    assert out["charges_trend"] == [0.0]
    assert np.isfinite(out["avg_monthly_spend"]).all()


def test_average_and_trend_for_a_tenured_customer() -> None:
    out = _derive_rows(_row(tenure=10, monthly_charges=50.0, total_charges=450.0))
    assert out["avg_monthly_spend"] == pytest.approx([45.0])
    assert out["charges_trend"] == pytest.approx([5.0])  # the bill went up


def test_no_internet_counts_only_phone_services() -> None:
    out = _derive_rows(
        _row(
            internet_service="No",
            multiple_lines="Yes",
            **dict.fromkeys(INTERNET_ADDONS, NO_INTERNET),
        )
    )
    assert out["num_services"] == [2]  # phone + multiple lines


def test_all_services_counted() -> None:
    out = _derive_rows(
        _row(
            multiple_lines="Yes",
            internet_service="Fiber optic",
            **dict.fromkeys(INTERNET_ADDONS, "Yes"),
        )
    )
    # phone + lines + internet + every add-on
    assert out["num_services"] == [3 + len(INTERNET_ADDONS)]


def test_no_phone_internet_only() -> None:
    out = _derive_rows(_row(phone_service="No", multiple_lines=NO_PHONE))
    assert out["num_services"] == [1]


def test_rows_are_independent_and_in_order() -> None:
    out = _derive_rows(
        _row(tenure=0), _row(internet_service="No", **dict.fromkeys(INTERNET_ADDONS, NO_INTERNET))
    )
    assert out["num_services"] == [2, 1]
    assert len(out["avg_monthly_spend"]) == 2


def test_output_names_and_dtypes_follow_the_schema() -> None:
    out = derive(pd.DataFrame([_row()]))
    assert list(out) == [d.name for d in DERIVED_FEATURES]
    assert out["num_services"].dtype == np.int64
    assert out["avg_monthly_spend"].dtype == np.float64


def test_missing_inputs_are_named() -> None:
    row = _row()
    del row["tenure"], row["tech_support"]
    with pytest.raises(KeyError) as info:
        derive(pd.DataFrame([row]))
    assert "tenure" in str(info.value)
    assert "tech_support" in str(info.value)


def test_every_input_is_required() -> None:
    for name in DERIVED_INPUTS:
        row = _row()
        del row[name]
        with pytest.raises(KeyError, match=name):
            derive({k: [v] for k, v in row.items()})


def test_add_derived_appends_columns_without_touching_input() -> None:
    frame = pd.DataFrame([_row()])
    out = add_derived(frame)
    assert [d.name for d in DERIVED_FEATURES] == list(out.columns[-len(DERIVED_FEATURES) :])
    assert "num_services" not in frame.columns


def test_add_derived_recomputes_stale_derived_columns() -> None:
    """The gates edit raw features of rows that already carry derived ones (tenure probe):
    add_derived must replace those values, in place of the column, not keep them."""
    stale = add_derived(pd.DataFrame([_row(), _row(tenure=0, total_charges=0.0)]))
    edited = stale.assign(tenure=[20, 5], total_charges=[1000.0, 250.0], internet_service="No")
    out = add_derived(edited)
    assert list(out.columns) == list(edited.columns)
    assert out["avg_monthly_spend"].tolist() == [50.0, 50.0]
    assert out["charges_trend"].tolist() == [0.0, 0.0]
    assert out["num_services"].tolist() == [1, 1]  # phone only: internet switched off
    assert stale["num_services"].tolist() == [2, 2]  # the input frame is untouched


def test_python_mode_wrapper_returns_plain_lists_equal_to_derive() -> None:
    """The Feast on-demand view's body gives the same values as derive(), as Python scalars."""
    rows = [
        _row(),
        _row(tenure=0),
        _row(internet_service="No", **dict.fromkeys(INTERNET_ADDONS, NO_INTERNET)),
    ]
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    everything = _derive_rows(*rows)
    for version in FEATURE_VERSIONS:  # each set's view returns exactly what that set added
        out = derive_python(columns, version)
        assert list(out) == introduced(version)
        assert out == {name: everything[name] for name in introduced(version)}
    v1, v2 = derive_python(columns, 1), derive_python(columns, 2)
    assert all(type(v) is int for v in v1["num_services"] + v2["tenure_bucket"])
    assert all(type(v) is float for v in v1["avg_monthly_spend"] + v2["log_tenure"])


# ------------------------------------------------------------------ feature set 2


def test_tenure_bucket_is_the_index_of_the_slice_bucket_at_every_edge() -> None:
    """One definition of the buckets: the feature's index and the slice label agree."""
    months = [0, 1, 12, 13, 24, 25, 48, 49, 72, 240]
    out = _derive_rows(*(_row(tenure=m, total_charges=50.0 * m) for m in months))
    labels = [label for label, _low, _high in TENURE_BUCKETS]
    assert [labels[i] for i in out["tenure_bucket"]] == tenure_bucket(months).tolist()
    assert out["tenure_bucket"] == [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]


def test_log_tenure_and_fiber_on_a_monthly_contract() -> None:
    out = _derive_rows(
        _row(tenure=0, total_charges=0.0, internet_service="Fiber optic"),
        _row(tenure=10, internet_service="Fiber optic", contract="One year"),
        _row(tenure=30, total_charges=1500.0, internet_service="DSL"),
    )
    assert out["log_tenure"] == pytest.approx([0.0, np.log(11.0), np.log(31.0)])
    assert out["fiber_month_to_month"] == [1, 0, 0]


def test_names_select_and_order_the_output_and_need_only_their_inputs() -> None:
    row = _row()
    del row["contract"]  # only set 2 reads it
    out = derive({k: [v] for k, v in row.items()}, ["charges_trend", "num_services"])
    assert list(out) == ["charges_trend", "num_services"]
    with pytest.raises(KeyError, match="contract"):
        derive({k: [v] for k, v in row.items()}, derived_names(2))
    with pytest.raises(KeyError, match="no derived features"):
        derive(pd.DataFrame([_row()]), ["num_services", "tenure_squared"])
    assert set(INPUTS_BY_VERSION[2]) <= set(DERIVED_INPUTS)
