"""The customer database as a data source: one declarative mapping onto churn.schema.

Why: in production the customers live in an operational database (on AWS an RDS
PostgreSQL), not in a CSV. Its tables are shaped for the business (a customers table
with signup and churn dates, subscriptions, billing; booleans, dates, numerics), not
for the model. `MAPPING` says once, as data, where each schema feature comes from
and how its value is decoded; everything else is built from it:

- `source_metadata()`: the SQLAlchemy tables the mapping expects (used to seed a
  database, and as the reference a live database is checked against);
- `check_source_schema()`: a missing or renamed table or column fails the run with
  SchemaDriftError naming it (and the columns that appeared instead);
- `read_active()`: one SQL query for the customers active on day D (signed up on or
  before D, not churned on or before D), read with PostgreSQL's COPY: one text
  stream parsed by pandas' C reader, no Python object per row from the driver;
- `decode()`: database values -> the project's schema (booleans -> "Yes"/"No" or
  0/1, signup date -> tenure in whole months as of D), still unvalidated: the
  contract and the quarantine (churn.data.quarantine) judge the rows;
- `check_categories()`: a value outside a feature's categories is schema drift (a new
  plan, a renamed payment method) and fails the run naming column and values: the
  schema must learn it first (churn/schema.py), it is not a bad row.

Table and view names come from configuration (`SourceTables`), the URL from
CHURN_CUSTOMER_DB_URL or a ZenML secret (steps/data), never from code. A view with
the mapped columns works as well as a table (e.g. over a CRM with other names).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Final

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from churn.data.timestamps import UTC_DTYPE
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, FEATURES, Kind, feature

SIGNUP_DATE: Final = "signup_date"
CHURN_DATE: Final = "churn_date"
_CONNECT_TIMEOUT_S: Final = 5
_MAX_LISTED: Final = 10


class Role(StrEnum):
    """The source tables by role; their real names are configuration (SourceTables)."""

    CUSTOMERS = "customers"
    SUBSCRIPTIONS = "subscriptions"
    BILLING = "billing"


class Codec(StrEnum):
    """How a database value becomes a schema value."""

    TEXT = "text"  # a category stored as its text
    YES_NO = "yes_no"  # boolean -> "Yes" / "No"
    FLAG = "flag"  # boolean -> 1 / 0
    NUMBER = "number"  # numeric -> float
    MONTHS_SINCE = "months_since"  # date -> whole months from it to the snapshot day


@dataclass(frozen=True)
class SourceColumn:
    """One schema feature: which table and column it is read from, and how it is decoded."""

    feature: str
    role: Role
    column: str
    codec: Codec


MAPPING: Final[tuple[SourceColumn, ...]] = (
    SourceColumn("gender", Role.CUSTOMERS, "gender", Codec.TEXT),
    SourceColumn("senior_citizen", Role.CUSTOMERS, "is_senior", Codec.FLAG),
    SourceColumn("partner", Role.CUSTOMERS, "has_partner", Codec.YES_NO),
    SourceColumn("dependents", Role.CUSTOMERS, "has_dependents", Codec.YES_NO),
    SourceColumn("tenure", Role.CUSTOMERS, SIGNUP_DATE, Codec.MONTHS_SINCE),
    SourceColumn("contract", Role.SUBSCRIPTIONS, "contract_type", Codec.TEXT),
    SourceColumn("paperless_billing", Role.BILLING, "paperless", Codec.YES_NO),
    SourceColumn("payment_method", Role.BILLING, "payment_method", Codec.TEXT),
    SourceColumn("monthly_charges", Role.BILLING, "monthly_charges", Codec.NUMBER),
    SourceColumn("total_charges", Role.BILLING, "total_charges", Codec.NUMBER),
    SourceColumn("phone_service", Role.SUBSCRIPTIONS, "phone_service", Codec.YES_NO),
    SourceColumn("multiple_lines", Role.SUBSCRIPTIONS, "multiple_lines", Codec.TEXT),
    SourceColumn("internet_service", Role.SUBSCRIPTIONS, "internet_service", Codec.TEXT),
    SourceColumn("online_security", Role.SUBSCRIPTIONS, "online_security", Codec.TEXT),
    SourceColumn("online_backup", Role.SUBSCRIPTIONS, "online_backup", Codec.TEXT),
    SourceColumn("device_protection", Role.SUBSCRIPTIONS, "device_protection", Codec.TEXT),
    SourceColumn("tech_support", Role.SUBSCRIPTIONS, "tech_support", Codec.TEXT),
    SourceColumn("streaming_tv", Role.SUBSCRIPTIONS, "streaming_tv", Codec.TEXT),
    SourceColumn("streaming_movies", Role.SUBSCRIPTIONS, "streaming_movies", Codec.TEXT),
)

_SQL_TYPES: Final[dict[Codec, Any]] = {
    Codec.TEXT: sa.Text(),
    Codec.YES_NO: sa.Boolean(),
    Codec.FLAG: sa.Boolean(),
    Codec.NUMBER: sa.Numeric(12, 2),
    Codec.MONTHS_SINCE: sa.Date(),
}


class SourceTables(BaseModel):
    """Names of the tables (or views) behind each role; values live in configs/*.yaml."""

    customers: str
    subscriptions: str
    billing: str
    db_schema: str | None

    def name(self, role: Role) -> str:
        """The configured table or view name of one role."""
        return str(getattr(self, role.value))


class DatabaseError(RuntimeError):
    """Base class of the customer database source's errors."""


class DatabaseUnavailableError(DatabaseError):
    """The database cannot be reached (down, wrong host or credentials)."""


class SchemaDriftError(DatabaseError):
    """The source no longer has the shape the mapping expects (tables, columns, categories)."""


def mapped_columns(role: Role) -> list[SourceColumn]:
    """The mapping's entries read from one role's table."""
    return [c for c in MAPPING if c.role is role]


def source_metadata(tables: SourceTables) -> sa.MetaData:
    """The tables the mapping expects, as SQLAlchemy Core tables.

    Every table is keyed by customer_id; the customers table also holds the
    lifecycle dates (signup_date decodes to tenure; churn_date ends the customer's
    snapshots and labels their last ones).
    """
    metadata = sa.MetaData(schema=tables.db_schema)
    for role in Role:
        columns: list[sa.Column[Any]] = [sa.Column(ENTITY_KEY, sa.Text(), primary_key=True)]
        columns += [sa.Column(c.column, _SQL_TYPES[c.codec]) for c in mapped_columns(role)]
        if role is Role.CUSTOMERS:
            columns.append(sa.Column(CHURN_DATE, sa.Date(), nullable=True))
        sa.Table(tables.name(role), metadata, *columns)
    return metadata


def create_engine(url: str) -> Engine:
    """An engine for the database URL, failing fast (5 s) when the server does not answer."""
    args = {"connect_timeout": _CONNECT_TIMEOUT_S} if url.startswith("postgresql") else {}
    return sa.create_engine(url, pool_pre_ping=True, connect_args=args)


def describe(engine: Engine) -> str:
    """The engine's URL with the password hidden, for messages."""
    return engine.url.render_as_string(hide_password=True)


@contextmanager
def connection(engine: Engine) -> Iterator[sa.Connection]:
    """A connection; DatabaseUnavailableError (URL shown, password hidden) when none opens."""
    try:
        conn = engine.connect()
    except SQLAlchemyError as e:
        reason = str(getattr(e, "orig", e)).strip().splitlines()[0]
        raise DatabaseUnavailableError(
            f"cannot connect to the customer database {describe(engine)}: {reason}"
        ) from e
    try:
        yield conn
    finally:
        conn.close()


def check_source_schema(engine: Engine, tables: SourceTables) -> None:
    """SchemaDriftError naming every missing table and column (with what appeared instead)."""
    problems: list[str] = []
    with connection(engine) as conn:
        inspector = sa.inspect(conn)
        expected = source_metadata(tables)
        for table in expected.tables.values():
            if not (
                inspector.has_table(table.name, schema=tables.db_schema)
                or table.name in inspector.get_view_names(schema=tables.db_schema)
            ):
                problems.append(f"table or view {table.name!r} is missing")
                continue
            found = {c["name"] for c in inspector.get_columns(table.name, schema=tables.db_schema)}
            missing = [c.name for c in table.columns if c.name not in found]
            if missing:
                new = sorted(found - {c.name for c in table.columns})
                problems.append(
                    f"table {table.name!r} lacks column(s) {missing}"
                    + (f" (new column(s) {new}: renamed?)" if new else "")
                )
    if problems:
        raise SchemaDriftError(
            "the customer database does not match churn.data.database.MAPPING: "
            + "; ".join(problems)
        )


def active_query(tables: SourceTables, day: date) -> sa.Select[Any]:
    """Customers active on `day` with every mapped column: signed up on or before it and
    not churned on or before it. Outer joins: a customer lacking a subscription or
    billing row comes back with nulls, which the quarantine reports (never dropped
    silently)."""
    meta = source_metadata(tables)
    customers, subscriptions, billing = (meta.tables[_key(tables, role)] for role in Role)
    by_role = {Role.CUSTOMERS: customers, Role.SUBSCRIPTIONS: subscriptions, Role.BILLING: billing}
    columns: list[Any] = [customers.c[ENTITY_KEY]]
    columns += [by_role[c.role].c[c.column].label(c.feature) for c in MAPPING]
    joined = customers.outerjoin(
        subscriptions, subscriptions.c[ENTITY_KEY] == customers.c[ENTITY_KEY]
    ).outerjoin(billing, billing.c[ENTITY_KEY] == customers.c[ENTITY_KEY])
    return (
        sa.select(*columns)
        .select_from(joined)
        .where(customers.c[SIGNUP_DATE] <= day)
        .where(sa.or_(customers.c[CHURN_DATE].is_(None), customers.c[CHURN_DATE] > day))
    )


def churn_dates_query(tables: SourceTables, start: date, end: date) -> sa.Select[Any]:
    """customer_id, signup_date, churn_date of customers active at some point in [start, end]."""
    customers = source_metadata(tables).tables[_key(tables, Role.CUSTOMERS)]
    return sa.select(
        customers.c[ENTITY_KEY], customers.c[SIGNUP_DATE], customers.c[CHURN_DATE]
    ).where(
        customers.c[SIGNUP_DATE] <= end,
        sa.or_(customers.c[CHURN_DATE].is_(None), customers.c[CHURN_DATE] > start),
    )


def _key(tables: SourceTables, role: Role) -> str:
    name = tables.name(role)
    return f"{tables.db_schema}.{name}" if tables.db_schema else name


def read_frame(engine: Engine, query: sa.Select[Any]) -> pd.DataFrame:
    """The query's rows as a frame of strings (None for NULL), one column per label.

    PostgreSQL: `COPY (query) TO STDOUT` in CSV with an explicit NULL marker, so an
    empty string and a NULL stay distinct. Other dialects: a plain fetch.
    """
    names = [c.name for c in query.selected_columns]
    with connection(engine) as conn:
        if conn.dialect.name != "postgresql":
            rows = conn.execute(query).all()
            return pd.DataFrame(
                [[None if v is None else str(v) for v in row] for row in rows], columns=names
            )
        sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        buffer = io.StringIO()
        raw: Any = conn.connection.dbapi_connection  # psycopg2's, for COPY
        cursor = raw.cursor()
        try:
            cursor.copy_expert(
                f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true, NULL '\\N')", buffer
            )
        finally:
            cursor.close()
    buffer.seek(0)
    frame = pd.read_csv(buffer, dtype=str, keep_default_na=False, na_values=["\\N"])
    return pd.DataFrame({c: none_where(frame[c], frame[c].isna()) for c in frame.columns})


def none_where(values: pd.Series, missing: pd.Series) -> pd.Series:
    """`values` as objects with None where `missing` (pandas' NaN is not a SQL NULL)."""
    out = values.astype(object).copy()
    out[missing.to_numpy()] = None
    return out


def read_active(engine: Engine, tables: SourceTables, day: date) -> pd.DataFrame:
    """Raw rows (database values as text) of the customers active on `day`."""
    return read_frame(engine, active_query(tables, day))


def read_snapshot(engine: Engine, tables: SourceTables, day: date) -> pd.DataFrame:
    """The customers active on `day`, decoded onto the schema (not yet validated);
    SchemaDriftError when the source's tables, columns or categories drifted."""
    check_source_schema(engine, tables)
    customers = decode(read_active(engine, tables, day), day)
    check_categories(customers)
    return customers


def read_lifecycle(engine: Engine, tables: SourceTables, start: date, end: date) -> pd.DataFrame:
    """customer_id, signup_date, churn_date (datetime64, NaT when open) of customers
    active at some point in [start, end]: what the labels of those days need."""
    frame = read_frame(engine, churn_dates_query(tables, start, end))
    for column in (SIGNUP_DATE, CHURN_DATE):
        frame[column] = pd.to_datetime(frame[column], format="%Y-%m-%d")
    return frame


# ------------------------------------------------------------------------- decoding

_TRUE: Final = frozenset({"t", "true", "True", "1"})
_FALSE: Final = frozenset({"f", "false", "False", "0"})


def decode(raw: pd.DataFrame, day: date) -> pd.DataFrame:
    """Database text values -> schema values, plus event_timestamp = `day` (00:00 UTC).

    Values a codec cannot decode become nulls (the quarantine reports them with the
    column), so one bad cell never stops the decoding of the others. Numbers come
    out float64 (NaN for null), integer features int64 when the column has no null,
    categories as objects (None for null): the contract's dtypes whenever it can
    pass.
    """
    out = pd.DataFrame({ENTITY_KEY: raw[ENTITY_KEY].to_numpy()}, index=raw.index)
    for column in MAPPING:
        values = _decode_column(raw[column.feature], column.codec, day)
        kind = feature(column.feature).kind
        if kind is not Kind.CATEGORY:
            values = pd.to_numeric(values, errors="coerce").astype("float64")
            if kind is Kind.INT and values.notna().all():
                values = values.astype("int64")
        out[column.feature] = values
    out[EVENT_TIMESTAMP] = pd.Series(snapshot_time(day), index=out.index, dtype=UTC_DTYPE)
    return out


def snapshot_time(day: date) -> pd.Timestamp:
    """Event time of the snapshot of `day`: 00:00 UTC of that day."""
    return pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=UTC))


def _decode_column(values: pd.Series, codec: Codec, day: date) -> pd.Series:
    if codec is Codec.TEXT:
        return none_where(values, values.isna() | (values == ""))
    if codec in (Codec.YES_NO, Codec.FLAG):
        on, off = ("Yes", "No") if codec is Codec.YES_NO else (1, 0)
        out = pd.Series(None, index=values.index, dtype=object)
        out[values.isin(_TRUE).to_numpy()] = on
        out[values.isin(_FALSE).to_numpy()] = off
        return out
    if codec is Codec.NUMBER:
        numbers = pd.to_numeric(values, errors="coerce")
        return none_where(numbers, numbers.isna())
    return months_since(values, day)


def months_since(values: pd.Series, day: date) -> pd.Series:
    """Whole calendar months from each date (text YYYY-MM-DD) to `day`; None when unreadable.

    A month counts once its day of month is reached (signed Jan 31: one month on
    Feb 28/29 is not reached until Mar 1 - the billing-cycle convention is that
    months are counted on the signup's day of month, clamped, as add_months does).
    """
    dates = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
    months = (day.year - dates.dt.year) * 12 + (day.month - dates.dt.month)
    last_day = pd.Timestamp(day).days_in_month
    anniversary = np.minimum(dates.dt.day, last_day)
    months = months - (day.day < anniversary).astype("float64")
    return none_where(months, months.isna())


def check_categories(customers: pd.DataFrame) -> None:
    """SchemaDriftError naming every category column with values the schema does not know."""
    problems = []
    for column in MAPPING:
        feat = feature(column.feature)
        if feat.kind is not Kind.CATEGORY:
            continue
        values = customers[column.feature]
        unknown = values[values.notna() & ~values.isin(list(feat.categories))]
        if len(unknown):
            counts = unknown.value_counts().head(_MAX_LISTED).to_dict()
            problems.append(
                f"column {column.feature!r} (source {column.role.value}.{column.column}) has "
                f"new categories {counts} (known: {list(feat.categories)})"
            )
    if problems:
        raise SchemaDriftError(
            "schema drift in the customer database: "
            + "; ".join(problems)
            + ". Add them to churn/schema.py (and retrain) before ingesting."
        )


def encode(customers: pd.DataFrame, day: date) -> dict[Role, pd.DataFrame]:
    """The inverse of decode, for seeding a database from schema rows (Telco, synthetic).

    signup_date is chosen so that the row's tenure is reached on `day`
    (day - tenure months); churn_date is left open.
    """
    out: dict[Role, pd.DataFrame] = {
        role: pd.DataFrame({ENTITY_KEY: customers[ENTITY_KEY].to_numpy()}) for role in Role
    }
    for column in MAPPING:
        values = customers[column.feature].to_numpy()
        if column.codec is Codec.YES_NO:
            encoded: Any = values == "Yes"
        elif column.codec is Codec.FLAG:
            encoded = values.astype(int) == 1
        elif column.codec is Codec.MONTHS_SINCE:
            encoded = months_before(day, values.astype(int))
        else:
            encoded = values
        out[column.role][column.column] = encoded
    out[Role.CUSTOMERS][CHURN_DATE] = None
    return out


def months_before(day: date, months: np.ndarray[Any, Any]) -> list[date]:
    """`day` moved back by each number of whole months (day of month clamped)."""
    result = []
    for n in months.tolist():
        index = day.month - 1 - int(n)
        year, month = day.year + index // 12, index % 12 + 1
        last = pd.Timestamp(year=year, month=month, day=1).days_in_month
        result.append(date(year, month, min(day.day, last)))
    return result


# All features are mapped exactly once (checked at import by the tests, not here).
def unmapped_features() -> list[str]:
    """Schema features the mapping does not cover (empty when it is complete)."""
    mapped = {c.feature for c in MAPPING}
    return [f.name for f in FEATURES if f.name not in mapped]
