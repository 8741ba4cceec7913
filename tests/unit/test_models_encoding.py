"""SchemaEncoder: schema-driven one-hot, dict == DataFrame, loud errors naming the column."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from churn import schema
from churn.data.synthetic import generate
from churn.features.derived import add_derived
from churn.models.encoding import SchemaEncoder, encode, encoded_feature_names, schema_fingerprint


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return add_derived(generate(300, seed=5))


def test_layout_follows_the_schema(frame: pd.DataFrame) -> None:
    names = SchemaEncoder().feature_names_out()
    n_onehot = sum(len(schema.feature(c).categories) for c in schema.categorical_names())
    assert len(names) == n_onehot + len(schema.numeric_names())
    assert "contract=Month-to-month" in names and "payment_method=Electronic check" in names
    assert names[n_onehot:] == schema.numeric_names()
    matrix = SchemaEncoder().fit_transform(frame)
    assert matrix.shape == (len(frame), len(names)) and matrix.dtype == np.float64
    # exactly one 1 per categorical feature per row
    assert np.all(matrix[:, :n_onehot].sum(axis=1) == len(schema.categorical_names()))
    col = names.index("contract=Two year")
    np.testing.assert_array_equal(matrix[:, col], (frame["contract"] == "Two year").to_numpy())
    np.testing.assert_array_equal(matrix[:, names.index("tenure")], frame["tenure"].to_numpy())


def test_dict_of_arrays_lists_and_dataframe_encode_identically(frame: pd.DataFrame) -> None:
    from_frame = encode(frame)
    arrays = {c: frame[c].to_numpy() for c in frame.columns}
    lists = {c: frame[c].tolist() for c in frame.columns}
    np.testing.assert_array_equal(encode(arrays), from_frame)
    np.testing.assert_array_equal(encode(lists), from_frame)
    one = {c: v[:1] for c, v in arrays.items()}
    np.testing.assert_array_equal(encode(one), from_frame[:1])


def test_customer_id_and_unknown_extra_columns_are_ignored(frame: pd.DataFrame) -> None:
    changed = frame.assign(customer_id="someone-else", whatever=np.arange(len(frame)))
    np.testing.assert_array_equal(encode(changed), encode(frame.drop(columns=["customer_id"])))


def test_unknown_category_names_column_and_value(frame: pd.DataFrame) -> None:
    bad = frame.copy()
    bad.loc[3, "contract"] = "Weekly"
    with pytest.raises(
        ValueError, match=re.escape("column 'contract' has unknown values ['Weekly']")
    ):
        encode(bad)
    missing_value = frame.copy()
    missing_value.loc[0, "internet_service"] = None
    with pytest.raises(ValueError, match=r"'internet_service'.*None"):
        encode(missing_value)


def test_missing_column_is_named(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"missing columns required by the model: \['tenure'\]"):
        encode(frame.drop(columns=["tenure"]))


def test_non_finite_or_non_numeric_numbers_are_named(frame: pd.DataFrame) -> None:
    nan = frame.copy()
    nan.loc[5, "total_charges"] = np.nan
    with pytest.raises(ValueError, match="column 'total_charges' has missing or non-finite"):
        encode(nan)
    columns = {c: frame[c].to_numpy() for c in frame.columns}
    columns["monthly_charges"] = np.array(["cheap"] * len(frame), dtype=object)
    with pytest.raises(ValueError, match="column 'monthly_charges' is not numeric"):
        encode(columns)


def test_columns_of_different_lengths_are_rejected(frame: pd.DataFrame) -> None:
    columns = {c: frame[c].to_numpy() for c in frame.columns}
    columns["gender"] = columns["gender"][:-1]
    with pytest.raises(ValueError, match="column 'gender' has 299 rows, expected 300"):
        encode(columns)


def test_encoder_is_stateless_and_clonable(frame: pd.DataFrame) -> None:
    fitted = SchemaEncoder().fit(frame)
    fresh = clone(fitted)
    np.testing.assert_array_equal(fresh.transform(frame), fitted.transform(frame))
    assert list(fresh.get_feature_names_out()) == encoded_feature_names()
    assert re.fullmatch(r"[0-9a-f]{64}", schema_fingerprint())
    assert fitted.fingerprint() == schema_fingerprint()


def test_empty_batch_encodes_to_zero_rows(frame: pd.DataFrame) -> None:
    assert encode(frame.iloc[:0]).shape == (0, len(encoded_feature_names()))


# ------------------------------------------------------------------ feature sets

# Set 1's fingerprint before feature set 2 existed (commit cefc770): every model and
# bundle saved since carries it, so adding a set must leave it exactly as it was.
V1_FINGERPRINT = "bead4272d2df25278b261e031bc94f8f098ab1a073473d42c1ca5b02d83681f4"


def test_adding_a_feature_set_leaves_set_one_unchanged(frame: pd.DataFrame) -> None:
    assert schema_fingerprint() == schema_fingerprint(1) == V1_FINGERPRINT
    assert schema_fingerprint(2) != V1_FINGERPRINT
    v1, v2 = encoded_feature_names(1), encoded_feature_names(2)
    assert v2[: len(v1)] == v1  # set 2 appends its derived features
    assert v2[len(v1) :] == [n for n in schema.derived_names(2) if n not in v1]
    # frame carries every set's derived columns; set 1 ignores the ones it does not know
    np.testing.assert_array_equal(encode(frame, 2)[:, : len(v1)], encode(frame, 1))


def test_the_encoder_of_a_set_requires_that_set_and_clones_keep_it(frame: pd.DataFrame) -> None:
    encoder = SchemaEncoder(feature_version=2)
    assert clone(encoder).feature_version == 2
    assert encoder.fit_transform(frame).shape[1] == len(encoded_feature_names(2))
    v1_only = frame[schema.model_input_names(1)]
    SchemaEncoder().fit(v1_only)
    with pytest.raises(ValueError, match="log_tenure"):
        encoder.fit(v1_only)
    with pytest.raises(ValueError, match="unknown feature set version 7"):
        SchemaEncoder(feature_version=7).fit(frame)
