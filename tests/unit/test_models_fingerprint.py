"""Data fingerprints: invariant to row/column order and index, sensitive to content."""

from __future__ import annotations

import pandas as pd
import pytest

from churn.data.synthetic import generate
from churn.models.fingerprint import data_fingerprint, evaluation_fingerprint


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate(200, seed=11)


def test_order_and_index_do_not_matter(frame: pd.DataFrame) -> None:
    reference = data_fingerprint(frame)
    shuffled = frame.sample(frac=1.0, random_state=0)
    assert data_fingerprint(shuffled) == reference
    assert data_fingerprint(shuffled.reset_index(drop=True)) == reference
    assert data_fingerprint(frame[list(reversed(frame.columns))]) == reference


def test_any_value_name_or_dtype_change_matters(frame: pd.DataFrame) -> None:
    reference = data_fingerprint(frame)
    changed = frame.copy()
    changed["monthly_charges"] = changed["monthly_charges"].where(changed.index != 7, 19.99)
    assert data_fingerprint(changed) != reference
    assert data_fingerprint(frame.rename(columns={"tenure": "months"})) != reference
    assert data_fingerprint(frame.astype({"tenure": "float64"})) != reference
    assert data_fingerprint(frame.iloc[1:]) != reference


def test_evaluation_fingerprint_includes_the_labels(frame: pd.DataFrame) -> None:
    X, y = frame.drop(columns=["churn"]), frame["churn"].to_numpy()  # noqa: N806
    assert evaluation_fingerprint(X, y) == evaluation_fingerprint(X.iloc[::-1], y[::-1])
    assert evaluation_fingerprint(X, y) != evaluation_fingerprint(X, 1 - y)
    with pytest.raises(ValueError, match="rows"):
        evaluation_fingerprint(X, y[:-1])
