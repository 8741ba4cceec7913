"""Schema-driven feature encoding shared by training and serving.

`SchemaEncoder` one-hot encodes every categorical feature with the categories
declared in churn.schema and passes numeric features (raw and derived) through as
float64. It learns nothing from data, so:

- the serving runtime rebuilds it from the schema alone (no pickled encoder), and a
  saved model only records its feature set version and that set's schema fingerprint;
- one encoder per feature set (churn.schema.FEATURE_VERSIONS): a model of set 1 never
  sees, and never needs, the derived features set 2 added, and set 1's fingerprint
  does not change when a set is added;
- columns the schema does not declare (customer_id, timestamps, the label) are
  ignored, which makes predictions invariant to them by construction;
- an unseen category is an error, never a silent all-zero row: a category that the
  schema does not know means the data contract and the model disagree.

It accepts a pandas DataFrame or any mapping of column name -> 1-D array/list (the
serving runtime passes a dict of numpy arrays and never builds a DataFrame).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, TransformerMixin

from churn import schema

if TYPE_CHECKING:
    import pandas as pd

# Anything with column lookup by name: a DataFrame or a dict of arrays/lists.
Columns: TypeAlias = "Mapping[str, Any] | pd.DataFrame"
FloatMatrix = npt.NDArray[np.float64]

# Separator between feature and category in one-hot names ("contract=Two year").
NAME_SEPARATOR = "="


@dataclass(frozen=True)
class _Layout:
    """Column layout derived from the schema once per process (pure, no I/O)."""

    # (feature name, {category: encoded column index}) per categorical feature.
    categorical: tuple[tuple[str, dict[str, int]], ...]
    numeric: tuple[str, ...]
    numeric_start: int
    names: tuple[str, ...]
    fingerprint: str


@cache
def _layout(version: int = 1) -> _Layout:
    categorical: list[tuple[str, dict[str, int]]] = []
    names: list[str] = []
    for name in schema.categorical_names():
        lookup: dict[str, int] = {}
        for category in schema.feature(name).categories:
            lookup[category] = len(names)
            names.append(f"{name}{NAME_SEPARATOR}{category}")
        categorical.append((name, lookup))
    numeric = tuple(schema.numeric_names(version))
    numeric_start = len(names)
    names.extend(numeric)
    spec = {
        "categorical": [[name, list(lookup)] for name, lookup in categorical],
        "numeric": list(numeric),
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    return _Layout(tuple(categorical), numeric, numeric_start, tuple(names), digest)


def schema_fingerprint(version: int = 1) -> str:
    """sha256 of feature set `version`'s encoded layout: changes iff one of its features,
    categories or their order changes.

    A saved model stores it; loading a model under a different schema fails instead of
    feeding columns to the wrong coefficients.
    """
    return _layout(version).fingerprint


def encoded_feature_names(version: int = 1) -> list[str]:
    """Readable names of the encoded columns, e.g. "contract=Month-to-month", "tenure"."""
    return list(_layout(version).names)


def _values(column: Any) -> Any:
    """A column as something cheap to iterate: lists of Python scalars beat numpy/pandas."""
    tolist = getattr(column, "tolist", None)
    return tolist() if tolist is not None else column


def _check_columns(columns: Columns, layout: _Layout) -> int:
    """Row count; ValueError naming missing columns or a column of another length."""
    required = [name for name, _ in layout.categorical] + list(layout.numeric)
    missing = [name for name in required if name not in columns]
    if missing:
        raise ValueError(f"missing columns required by the model: {missing}")
    n_rows = len(columns[layout.numeric[0]])
    for name in required:
        if len(columns[name]) != n_rows:
            raise ValueError(
                f"column {name!r} has {len(columns[name])} rows, expected {n_rows} "
                f"(the length of {layout.numeric[0]!r})"
            )
    return n_rows


def _numeric_error(columns: Columns, layout: _Layout) -> ValueError:
    """The ValueError naming the first numeric column that is not finite numbers."""
    for name in layout.numeric:
        raw = np.asarray(_values(columns[name]), dtype=object)
        try:
            values = raw.astype(np.float64)
        except (TypeError, ValueError) as e:
            return ValueError(f"column {name!r} is not numeric: {e}")
        if values.ndim != 1:
            return ValueError(f"column {name!r} must be 1-D, got shape {values.shape}")
        finite = np.isfinite(values)
        if not finite.all():
            bad = sorted(set(raw[~finite].tolist()), key=repr)[:10]
            return ValueError(f"column {name!r} has missing or non-finite values {bad}")
    return ValueError("numeric columns could not be encoded")


def encode(columns: Columns, version: int = 1) -> FloatMatrix:
    """Encode a batch of rows into feature set `version`'s float64 matrix (rows x columns).

    Categories are looked up in per-feature dicts (one C-level lookup per value:
    cheaper than numpy string comparison for the 1-100 rows of a serving call, and
    linear for training batches); numeric columns are stacked in one numpy call.
    Raises ValueError naming the column for a missing column, a length mismatch, an
    unknown or missing category, or a non-finite / non-numeric numeric value.
    """
    layout = _layout(version)
    n_rows = _check_columns(columns, layout)
    out = np.zeros((n_rows, len(layout.names)), dtype=np.float64)
    if n_rows == 0:
        return out
    codes = np.empty((len(layout.categorical), n_rows), dtype=np.intp)
    for j, (name, lookup) in enumerate(layout.categorical):
        values = _values(columns[name])
        codes[j] = [lookup.get(v, -1) for v in values]
        if (codes[j] < 0).any():
            bad = sorted({v for v, c in zip(values, codes[j], strict=True) if c < 0}, key=repr)
            raise ValueError(f"column {name!r} has unknown values {bad}; allowed: {list(lookup)}")
    out[np.arange(n_rows)[None, :], codes] = 1.0
    try:
        numeric = np.asarray([columns[name] for name in layout.numeric], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise _numeric_error(columns, layout) from e
    if numeric.shape != (len(layout.numeric), n_rows) or not np.isfinite(numeric).all():
        raise _numeric_error(columns, layout)
    out[:, layout.numeric_start :] = numeric.T
    return out


class SchemaEncoder(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """sklearn transformer around `encode()`; stateless, so fit() learns nothing.

    Being a real sklearn transformer lets it sit first in a Pipeline that MLflow logs
    and that cross-validation clones, while the serving runtime calls `encode()`
    directly on a dict of arrays. `feature_version` is an sklearn parameter, so clones
    keep it and `set_params(encoder__feature_version=2)` picks the set.
    """

    def __init__(self, feature_version: int = 1) -> None:
        self.feature_version = feature_version

    def fit(self, X: Columns, y: Any = None) -> SchemaEncoder:  # noqa: N803 (sklearn API)
        """Check the version and that X can be encoded (fail at fit time, not at first predict)."""
        schema.check_version(self.feature_version)
        encode(X, self.feature_version)
        return self

    def transform(self, X: Columns) -> FloatMatrix:  # noqa: N803 (sklearn API)
        """Encode X (DataFrame or mapping of columns) to a float64 matrix."""
        return encode(X, self.feature_version)

    def feature_names_out(self) -> list[str]:
        """Readable encoded column names, in matrix order."""
        return encoded_feature_names(self.feature_version)

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        """sklearn's feature-name protocol (used by Pipeline.get_feature_names_out)."""
        return np.asarray(encoded_feature_names(self.feature_version), dtype=object)

    def fingerprint(self) -> str:
        """Schema fingerprint of the layout this encoder produces."""
        return schema_fingerprint(self.feature_version)

    def __sklearn_is_fitted__(self) -> bool:
        """Always fitted: nothing is learned from data."""
        return True
