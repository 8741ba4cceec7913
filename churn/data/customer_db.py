"""The local customer database: the twin's PostgreSQL, seeded, and a day's changes.

Why the twin's server: the production twin (churn.twin) already runs Debian's
PostgreSQL as RDS's stand-in, with its own port, data directory, generated password
and start/stop code; the customer database is one more database on it ("customers"),
as an operational database would be a database on RDS. So `make db-start` starts
only that server (not the twin's Redis, S3 or MLflow) and `make twin-down` stops it
too. The URL goes to the pipelines through CHURN_CUSTOMER_DB_URL (`python -m
churn.data.customer_db env` prints it) or a ZenML secret, never through code.

Seeding writes schema rows (the Telco CSV, the synthetic generator) into the
source tables through the inverse of the declarative mapping
(churn.data.database.encode) with COPY: 1M generated customers in 28 s
(benchmarks/db_ingest_bench.py, under load). The change
helpers (`mark_churned`, `add_customers`, `update_columns`) are what the demo and
the tests use to make a day happen in the database.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final

import pandas as pd
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine, make_url

from churn import twin
from churn.data.database import (
    CHURN_DATE,
    Role,
    SourceTables,
    connection,
    create_engine,
    encode,
    source_metadata,
)
from churn.data.synthetic import generate
from churn.data.telco import load_telco
from churn.schema import ENTITY_KEY
from churn.settings import PROJECT_ROOT, get_settings

DATABASE: Final = "customers"
PIPELINE_CONFIG: Final = PROJECT_ROOT / "configs" / "daily_snapshot_pipeline.yaml"


def server_url(cfg: twin.TwinConfig, creds: twin.Credentials, database: str = DATABASE) -> str:
    """SQLAlchemy URL of a database on the twin's PostgreSQL."""
    return str(
        make_url(twin.postgres_uri(cfg, creds)).set(database=database).render_as_string(False)
    )


def start(cfg: twin.TwinConfig | None = None, database: str = DATABASE) -> str:
    """Start the twin's PostgreSQL (alone) if it is down, create `database`; its URL."""
    cfg = cfg or twin.config_from_env()
    creds = twin.credentials(cfg)
    twin.start_postgres(cfg, creds)
    create_database(server_url(cfg, creds, "postgres"), database)
    return server_url(cfg, creds, database)


def stop(cfg: twin.TwinConfig | None = None) -> None:
    """Stop the twin's PostgreSQL (and so every database on it)."""
    twin.stop_postgres(cfg or twin.config_from_env())


def create_database(admin_url: str, name: str) -> None:
    """CREATE DATABASE `name` unless it exists (through the server's admin database)."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with connection(engine) as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
            if exists is None:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()


def seed(engine: Engine, tables: SourceTables, customers: pd.DataFrame, day: date) -> int:
    """Replace the source tables with `customers` (schema rows) as of `day`; rows written."""
    metadata = source_metadata(tables)
    with engine.begin() as conn:
        metadata.drop_all(conn)
        metadata.create_all(conn)
    add_customers(engine, tables, customers, day)
    return len(customers)


def add_customers(engine: Engine, tables: SourceTables, customers: pd.DataFrame, day: date) -> None:
    """Insert schema rows as customers whose tenure is reached on `day` (COPY per table)."""
    metadata = source_metadata(tables)
    encoded = encode(customers, day)
    with engine.begin() as conn:
        raw: Any = conn.connection.dbapi_connection  # psycopg2's, for COPY
        cursor = raw.cursor()
        try:
            for role in Role:
                table = metadata.tables[_key(tables, role)]
                frame = encoded[role][[c.name for c in table.columns]]
                buffer = io.StringIO()
                frame.to_csv(buffer, index=False, header=False)
                buffer.seek(0)
                columns = ", ".join(f'"{c.name}"' for c in table.columns)
                target = f"{_qualified(tables, table.name)} ({columns})"
                cursor.copy_expert(
                    f"COPY {target} FROM STDIN WITH (FORMAT csv)",
                    buffer,
                )
        finally:
            cursor.close()


def mark_churned(engine: Engine, tables: SourceTables, ids: Sequence[str], day: date) -> None:
    """Record that customers left on `day` (their churn_date)."""
    customers = source_metadata(tables).tables[_key(tables, Role.CUSTOMERS)]
    with engine.begin() as conn:
        conn.execute(
            customers.update()
            .where(customers.c[ENTITY_KEY].in_(list(ids)))
            .values({CHURN_DATE: day})
        )


def update_columns(
    engine: Engine, tables: SourceTables, role: Role, customer_id: str, values: Mapping[str, Any]
) -> None:
    """Set source columns (database names and values) of one customer in one table."""
    table = source_metadata(tables).tables[_key(tables, role)]
    with engine.begin() as conn:
        conn.execute(table.update().where(table.c[ENTITY_KEY] == customer_id).values(dict(values)))


def _key(tables: SourceTables, role: Role) -> str:
    name = tables.name(role)
    return f"{tables.db_schema}.{name}" if tables.db_schema else name


def _qualified(tables: SourceTables, name: str) -> str:
    return f'"{tables.db_schema}"."{name}"' if tables.db_schema else f'"{name}"'


def seed_customers(n_synthetic: int, seed: int) -> pd.DataFrame:
    """Schema rows to seed with: the Telco customers when CHURN_TELCO_CSV or
    CHURN_TELCO_URL is set, else `n_synthetic` synthetic ones (labels included)."""
    settings = get_settings()
    if settings.telco_csv is not None or settings.telco_url is not None:
        return load_telco()
    return generate(n_synthetic, seed=seed)


def configured_tables() -> SourceTables:
    """The table names of configs/daily_snapshot_pipeline.yaml (their one home)."""
    config = yaml.safe_load(PIPELINE_CONFIG.read_text(encoding="utf-8"))
    return SourceTables(**config["parameters"]["source"]["tables"])


def main(argv: Sequence[str] | None = None) -> int:
    """`start` / `stop` the local server, `env`: print CHURN_CUSTOMER_DB_URL for a shell,
    `seed`: (re)create the tables with Telco or synthetic customers as of --day."""
    parser = argparse.ArgumentParser(prog="python -m churn.data.customer_db")
    parser.add_argument("action", choices=["start", "stop", "env", "seed"])
    parser.add_argument(
        "--day", type=date.fromisoformat, default=None, help="seed: as of (UTC today)"
    )
    parser.add_argument("--customers", type=int, default=10_000, help="seed: synthetic customers")
    parser.add_argument("--seed", type=int, default=0, help="seed: the generator's seed")
    args = parser.parse_args(argv)
    if args.action == "stop":
        stop()
        return 0
    url = start()
    if args.action == "env":
        sys.stdout.write(f"export CHURN_CUSTOMER_DB_URL='{url}'\n")
    elif args.action == "seed":
        day = args.day or datetime.now(UTC).date()
        engine = create_engine(url)
        rows = seed(engine, configured_tables(), seed_customers(args.customers, args.seed), day)
        engine.dispose()
        sys.stdout.write(f"seeded {rows} customers as of {day} into {DATABASE}\n")
    else:
        shown = create_engine(url).url.render_as_string(hide_password=True)
        sys.stdout.write(f"customer database up: {shown}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
