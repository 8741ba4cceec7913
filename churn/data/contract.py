"""The data contract: what a customer frame must satisfy before it is stored or trained on.

The pandera schema is BUILT from churn.schema (names, kinds, categories, ranges), so
adding a feature there extends the contract with no edit here. On top of per-column
rules it enforces the cross-field facts of the Telco domain that a model silently
learns garbage from when broken:

- total_charges is about tenure x monthly_charges: within
  [TOTAL_RATIO_MIN, TOTAL_RATIO_MAX] x tenure x monthly_charges, with one month's
  charge of slack either way (billing cycles and prorating); a customer with
  tenure 0 has been billed at most one month;
- the internet add-ons are "No internet service" exactly when internet_service is "No";
- multiple_lines is "No phone service" exactly when phone_service is "No";
- one row per customer per event_timestamp (per customer when untimed);
- label_observed_at is never before the row's event_timestamp.

`validate` runs every check (lazy) and raises one DataContractError listing all
failures, each with its column, check and a few offending customers, so a bad file
is fixed in one pass rather than one error at a time.

Speed: categorical columns are declared as object dtype plus an isin() check (isin
implies every value is one of the str categories), because pandera's `str` dtype
check tests each value in Python and costs ~3x more. Validating 1M rows takes a few
seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
import pandera.errors as pa_errors
import pandera.pandas as pa

from churn.data.timestamps import UTC_DTYPE
from churn.schema import (
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    FEATURES,
    INTERNET_ADDONS,
    LABEL,
    LABEL_OBSERVED_AT,
    NO_INTERNET,
    NO_PHONE,
    TOTAL_RATIO_MAX,
    TOTAL_RATIO_MIN,
    Feature,
    Kind,
)

MAX_EXAMPLES: Final = 5
# Rounding slack for money comparisons (charges are given to the cent).
_CENT: Final = 0.01


class DataContractError(ValueError):
    """A frame broke the data contract; `.failures` lists every broken rule."""

    def __init__(self, failures: Sequence[ContractFailure]) -> None:
        self.failures: list[ContractFailure] = list(failures)
        lines = [f"data contract violated ({len(self.failures)} failures):"]
        lines += [f"- {failure}" for failure in self.failures]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class ContractFailure:
    """One broken rule: which column, which check, how many rows, a few examples.

    `column` is None only for frame-level failures that concern no single column.
    `examples` holds up to MAX_EXAMPLES (customer_id, offending value) pairs;
    customer_id is None when the frame has no usable id for that row.
    """

    column: str | None
    check: str
    count: int
    examples: tuple[tuple[str | None, Any], ...]

    def __str__(self) -> str:
        where = f"column {self.column!r}" if self.column is not None else "frame"
        shown = ", ".join(f"customer_id={cid!r} value={value!r}" for cid, value in self.examples)
        return f"{where}, check {self.check}: {self.count} failing case(s)" + (
            f", e.g. {shown}" if shown else ""
        )


@dataclass(frozen=True)
class CrossFieldRule:
    """A row-wise rule over several columns, reported against one column.

    `predicate` gets the whole frame (which holds every column in `inputs`) and
    returns True for rows that pass. Rows whose inputs are themselves invalid
    (wrong type, null) pass here: their own column check reports them, once.
    """

    name: str
    column: str
    inputs: tuple[str, ...]
    predicate: Callable[[pd.DataFrame], pd.Series]


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as float (NaN where not a number), whatever dtype it arrived with."""
    return pd.to_numeric(frame[column], errors="coerce").astype("float64")


def _total_charges_ok(frame: pd.DataFrame) -> pd.Series:
    tenure = _numeric(frame, "tenure")
    monthly = _numeric(frame, "monthly_charges")
    total = _numeric(frame, "total_charges")
    unknown = tenure.isna() | monthly.isna() | total.isna()
    low = TOTAL_RATIO_MIN * tenure * monthly - monthly - _CENT
    high = TOTAL_RATIO_MAX * tenure * monthly + monthly + _CENT
    # Tenure 0: at most the first month has been billed.
    first_month = (tenure == 0) & (total <= monthly + _CENT)
    return unknown | first_month | ((tenure > 0) & (total >= low) & (total <= high))


def _absent_iff(
    column: str, sentinel: str, parent: str, parent_off: str
) -> Callable[[pd.DataFrame], pd.Series]:
    """Predicate: `column == sentinel` exactly when `parent == parent_off`."""

    def predicate(frame: pd.DataFrame) -> pd.Series:
        return (frame[column] == sentinel) == (frame[parent] == parent_off)

    return predicate


def _label_after_event(frame: pd.DataFrame) -> pd.Series:
    observed, event = frame[LABEL_OBSERVED_AT], frame[EVENT_TIMESTAMP]
    if not (
        isinstance(observed.dtype, pd.DatetimeTZDtype)
        and isinstance(event.dtype, pd.DatetimeTZDtype)
    ):
        return pd.Series(True, index=frame.index)  # the dtype checks report it
    return observed.isna() | event.isna() | (observed >= event)


CROSS_FIELD_RULES: Final[tuple[CrossFieldRule, ...]] = (
    CrossFieldRule(
        "total_charges_consistent_with_tenure_x_monthly_charges",
        "total_charges",
        ("tenure", "monthly_charges", "total_charges"),
        _total_charges_ok,
    ),
    *(
        CrossFieldRule(
            f"{addon}_is_{NO_INTERNET.replace(' ', '_').lower()}_iff_internet_service_no",
            addon,
            (addon, "internet_service"),
            _absent_iff(addon, NO_INTERNET, "internet_service", "No"),
        )
        for addon in INTERNET_ADDONS
    ),
    CrossFieldRule(
        "multiple_lines_is_no_phone_service_iff_phone_service_no",
        "multiple_lines",
        ("multiple_lines", "phone_service"),
        _absent_iff("multiple_lines", NO_PHONE, "phone_service", "No"),
    ),
    CrossFieldRule(
        "label_observed_at_not_before_event_timestamp",
        LABEL_OBSERVED_AT,
        (LABEL_OBSERVED_AT, EVENT_TIMESTAMP),
        _label_after_event,
    ),
)
_RULES_BY_NAME: Final = {rule.name: rule for rule in CROSS_FIELD_RULES}


def _as_check(rule: CrossFieldRule) -> pa.Check:
    """A frame-level pandera check that skips itself when an input column is missing."""

    def run(frame: pd.DataFrame) -> pd.Series:
        if any(column not in frame.columns for column in rule.inputs):
            return pd.Series(True, index=frame.index)  # "column_in_dataframe" reports it
        return rule.predicate(frame).fillna(False).astype(bool)

    # ignore_na=False: the predicates handle nulls themselves, and pandera's NA pass
    # (isna() over the whole frame, once per rule) would dominate the validation time.
    return pa.Check(run, name=rule.name, ignore_na=False)


def _all_str(series: pd.Series) -> bool | pd.Series:
    """True when every value is a Python str; else a per-row mask naming the bad rows.

    infer_dtype is a C loop, so the common (valid) case costs almost nothing.
    """
    if pd.api.types.infer_dtype(series, skipna=False) == "string" and not (series == "").any():
        return True
    return series.map(lambda value: isinstance(value, str) and value != "")


def _column(feat: Feature) -> pa.Column:
    """The pandera column for one schema feature, from its kind, categories and range."""
    if feat.kind is Kind.CATEGORY:
        return pa.Column(object, pa.Check.isin(list(feat.categories)), nullable=False)
    dtype = "int64" if feat.kind is Kind.INT else "float64"
    checks = []
    if feat.min_value is not None or feat.max_value is not None:
        low = -np.inf if feat.min_value is None else feat.min_value
        high = np.inf if feat.max_value is None else feat.max_value
        checks.append(pa.Check.in_range(low, high))
    return pa.Column(dtype, checks, nullable=False)


def _entity_column() -> pa.Column:
    return pa.Column(object, pa.Check(_all_str, name="non_empty_str"), nullable=False)


def _label_column() -> pa.Column:
    return pa.Column("int64", pa.Check.isin([0, 1]), nullable=False)


def build_schema(require_timestamps: bool, require_label: bool) -> pa.DataFrameSchema:
    """The contract as a pandera schema.

    require_timestamps: event_timestamp (UTC) is required, and (customer_id,
    event_timestamp) must be unique; otherwise customer_id alone must be unique.
    require_label: churn (int64 0/1) is required, plus label_observed_at (UTC) when
    timestamps are required too. Extra columns are allowed (derived features, for
    instance); the writers select the columns they store.
    """
    columns: dict[str, pa.Column] = {ENTITY_KEY: _entity_column()}
    columns.update({feat.name: _column(feat) for feat in FEATURES})
    if require_timestamps:
        columns[EVENT_TIMESTAMP] = pa.Column(UTC_DTYPE, nullable=False)
    if require_label:
        columns[LABEL] = _label_column()
        if require_timestamps:
            columns[LABEL_OBSERVED_AT] = pa.Column(UTC_DTYPE, nullable=False)
    rules = [rule for rule in CROSS_FIELD_RULES if set(rule.inputs) <= set(columns)]
    return pa.DataFrameSchema(
        columns,
        checks=[_as_check(rule) for rule in rules],
        unique=[ENTITY_KEY, EVENT_TIMESTAMP] if require_timestamps else [ENTITY_KEY],
        report_duplicates="all",
        coerce=False,
        strict=False,
        name="churn_customers",
    )


def validate(
    df: pd.DataFrame,
    *,
    require_timestamps: bool | None = None,
    require_label: bool | None = None,
) -> pd.DataFrame:
    """`df` unchanged if it satisfies the contract, else DataContractError listing all failures.

    By default timestamps and the label are required when their column is present
    (so the cleaned Telco frame, without timestamps, validates); writers pass
    require_timestamps=True to insist on them.
    """
    schema = build_schema(
        EVENT_TIMESTAMP in df.columns if require_timestamps is None else require_timestamps,
        LABEL in df.columns if require_label is None else require_label,
    )
    failures = schema_failures(schema, df)
    if failures:
        raise DataContractError(failures)
    return df


def schema_failures(schema: pa.DataFrameSchema, df: pd.DataFrame) -> list[ContractFailure]:
    """Every failure of `df` against `schema` (empty when it passes), rows named by id."""
    # Failure rows are reported by index label; make labels unique so each names one row.
    frame = df if df.index.is_unique else df.reset_index(drop=True)
    try:
        schema.validate(frame, lazy=True)
    except pa_errors.SchemaErrors as e:
        return _failures(frame, e.failure_cases)
    return []


def build_labels_schema() -> pa.DataFrameSchema:
    """The contract of a labels (outcomes) frame: customer_id, event_timestamp (the
    snapshot the outcome follows), churn 0/1 and label_observed_at, never before the
    snapshot. Uniqueness and the checks against the stores are churn.data.outcomes'."""
    columns = {
        ENTITY_KEY: _entity_column(),
        EVENT_TIMESTAMP: pa.Column(UTC_DTYPE, nullable=False),
        LABEL: _label_column(),
        LABEL_OBSERVED_AT: pa.Column(UTC_DTYPE, nullable=False),
    }
    rules = [rule for rule in CROSS_FIELD_RULES if set(rule.inputs) <= set(columns)]
    return pa.DataFrameSchema(
        columns,
        checks=[_as_check(rule) for rule in rules],
        coerce=False,
        strict=False,
        name="churn_labels",
    )


def _failures(frame: pd.DataFrame, cases: pd.DataFrame) -> list[ContractFailure]:
    """pandera's long failure table -> one ContractFailure per (column, check)."""
    cases = cases.copy()
    # Frame-level rules list every column of a failing row; report them once, against
    # the rule's own column, with that column's value.
    rule_rows = cases["check"].isin(list(_RULES_BY_NAME))
    cases.loc[rule_rows, "column"] = cases.loc[rule_rows, "check"].map(
        lambda name: _RULES_BY_NAME[name].column
    )
    cases = cases.drop_duplicates(subset=["column", "check", "index"])
    # A missing column is reported with no column and the column's name as the case.
    missing = cases["check"] == "column_in_dataframe"
    cases.loc[missing, "column"] = cases.loc[missing, "failure_case"]

    failures = []
    for (column, check), group in cases.groupby(["column", "check"], sort=False, dropna=False):
        col = column if isinstance(column, str) else None
        examples = tuple(
            _example(frame, col, index, value, check in _RULES_BY_NAME)
            for index, value in zip(
                group["index"].head(MAX_EXAMPLES),
                group["failure_case"].head(MAX_EXAMPLES),
                strict=True,
            )
        )
        failures.append(ContractFailure(col, str(check), len(group), examples))
    return failures


def _example(
    frame: pd.DataFrame, column: str | None, index: Any, value: Any, from_rule: bool
) -> tuple[str | None, Any]:
    """(customer_id, value) of one offending row; (None, value) for frame-level cases."""
    if index is None or pd.isna(index) or index not in frame.index:
        return None, value
    cid = frame.at[index, ENTITY_KEY] if ENTITY_KEY in frame.columns else None
    if from_rule and column is not None and column in frame.columns:
        value = frame.at[index, column]
    return (cid if isinstance(cid, str) else None), value
