"""Turn feature columns into the numeric matrix a drift test compares.

Every drift backend needs the same thing: one float column per feature, categories
as stable integer codes. The codes come from the schema's category order (never
from the data), so the reference and every served window are encoded identically,
and a value the schema does not know is an error naming its feature instead of a
silently new code. Column-wise numpy only: the serving process encodes windows
without building a DataFrame.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from churn.schema import DERIVED_FEATURES, FEATURES, Kind

if TYPE_CHECKING:
    import pandas as pd

# Rows to check: a DataFrame (pipelines) or a mapping of equal-length arrays (serving,
# which never builds a DataFrame on its hot path). A string so pandas is not imported.
Columns: TypeAlias = "Mapping[str, Any] | pd.DataFrame"

# How many distinct unknown values an error message quotes (a window can hold many).
_MAX_QUOTED: Final = 5

FloatMatrix = npt.NDArray[np.float64]


class DriftInputError(ValueError):
    """Rows handed to a drift detector cannot be encoded; the message names the feature."""


@dataclass(frozen=True)
class FeatureSpec:
    """What encoding needs to know about one feature: its name, kind and categories."""

    name: str
    kind: Kind
    categories: tuple[str, ...] = ()

    @property
    def is_categorical(self) -> bool:
        """True for closed-set string features, tested with Chi-squared rather than K-S."""
        return self.kind is Kind.CATEGORY


def feature_spec(name: str) -> FeatureSpec:
    """The schema's definition of a raw or derived feature; KeyError names an unknown one."""
    for raw in FEATURES:
        if raw.name == name:
            return FeatureSpec(raw.name, raw.kind, raw.categories)
    for derived in DERIVED_FEATURES:
        if derived.name == name:
            return FeatureSpec(derived.name, derived.kind)
    raise KeyError(f"feature {name!r} is not defined in churn.schema")


@dataclass(frozen=True)
class FeatureEncoder:
    """Encodes named columns into an (n_rows, n_features) float matrix, in `specs` order."""

    specs: tuple[FeatureSpec, ...]

    @classmethod
    def from_schema(cls, features: Sequence[str]) -> FeatureEncoder:
        """An encoder for `features`, in that order, as churn.schema defines them."""
        if not features:
            raise ValueError("a drift detector needs at least one feature")
        duplicated = sorted({f for f in features if list(features).count(f) > 1})
        if duplicated:
            raise ValueError(f"features listed more than once: {duplicated}")
        return cls(tuple(feature_spec(name) for name in features))

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Feature names in column order of the encoded matrix."""
        return tuple(s.name for s in self.specs)

    def categorical_columns(self) -> dict[int, tuple[str, ...]]:
        """Column index -> schema categories, for every categorical feature."""
        return {i: s.categories for i, s in enumerate(self.specs) if s.is_categorical}

    def fingerprint(self) -> str:
        """A hash of what the encoding depends on: feature order, kinds and categories.

        Ranges and descriptions are deliberately left out: widening a validation range
        does not change how a value is encoded, so it must not invalidate detectors.
        """
        payload = [[s.name, s.kind.value, list(s.categories)] for s in self.specs]
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def encode(self, columns: Columns) -> FloatMatrix:
        """Encode `columns` (a DataFrame or a mapping of equal-length 1-d arrays).

        Extra columns are ignored. Raises DriftInputError naming the feature for a
        missing column, a length mismatch, an unknown category or a non-finite number.
        """
        arrays = [_column(columns, s.name) for s in self.specs]
        n_rows = len(arrays[0])
        if n_rows == 0:
            raise DriftInputError("no rows to check for drift")
        out = np.empty((n_rows, len(self.specs)), dtype=np.float64)
        for j, (spec, values) in enumerate(zip(self.specs, arrays, strict=True)):
            if len(values) != n_rows:
                raise DriftInputError(
                    f"feature {spec.name!r} has {len(values)} rows, "
                    f"{self.specs[0].name!r} has {n_rows}"
                )
            if spec.is_categorical:
                out[:, j] = _category_codes(spec, values)
            else:
                out[:, j] = _finite_numbers(spec, values)
        return out


def _column(columns: Columns, name: str) -> npt.NDArray[Any]:
    """One column as a 1-d numpy array; DriftInputError names a missing or 2-d column."""
    if name not in columns:
        raise DriftInputError(f"feature {name!r} is missing from the rows to check")
    values = np.asarray(columns[name])
    if values.ndim != 1:
        raise DriftInputError(f"feature {name!r} must be one-dimensional, got shape {values.shape}")
    return values


def _category_codes(spec: FeatureSpec, values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Schema index of each value; unknown values (including None/NaN) are an error."""
    # Compare as Python objects: a numeric or bytes array compared with a str would
    # give numpy's scalar False instead of an element-wise answer.
    objects = values if values.dtype.kind in "OU" else values.astype(object)
    codes = np.full(len(values), -1.0, dtype=np.float64)
    for code, category in enumerate(spec.categories):
        codes[objects == category] = code
    unknown = codes < 0
    if unknown.any():
        seen: list[str] = []
        for value in objects[unknown]:
            text = repr(value)
            if text not in seen:
                seen.append(text)
            if len(seen) == _MAX_QUOTED:
                break
        raise DriftInputError(
            f"feature {spec.name!r}: {int(unknown.sum())} rows have categories the schema "
            f"does not define, e.g. {', '.join(seen)}; allowed: {list(spec.categories)}"
        )
    return codes


def _finite_numbers(spec: FeatureSpec, values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Values as float64; text, None and NaN/inf are errors (K-S cannot rank them)."""
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DriftInputError(f"feature {spec.name!r} must be numeric: {e}") from e
    bad = ~np.isfinite(numbers)
    if bad.any():
        raise DriftInputError(
            f"feature {spec.name!r}: {int(bad.sum())} rows are missing or not finite"
        )
    return numbers
