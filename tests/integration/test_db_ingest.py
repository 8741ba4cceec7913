"""Daily snapshots from a real PostgreSQL into real parquet and a real Redis.

The module starts its own PostgreSQL (Debian's server through the twin's helper, own
data directory and free port) and an isolated stack (own CHURN_HOME and redis-server).
The two-day story: 300 synthetic customers seeded as of day 1; on day 2 ten leave, one
changes plan, one gets a new price, five join. Tests run in file order and build on
each other's state where they say so.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from isolation import isolated_stack, redis_env
from ports import free_port
from sqlalchemy.engine import Engine

from churn import twin
from churn.data import customer_db
from churn.data.database import (
    DatabaseUnavailableError,
    Role,
    SchemaDriftError,
    SourceTables,
    create_engine,
    snapshot_time,
)
from churn.data.offline import read_offline_table
from churn.data.quarantine import ErrorBudgetExceededError, quarantine_path, read_quarantine
from churn.data.synthetic import generate
from churn.features.daily import QUARANTINE_SOURCE, DatabaseSnapshotSource, backfill, run_day
from churn.features.pipeline import DataSource, run_feature_pipeline
from churn.features.store import apply_repo, get_store, online_features
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP, LABEL, LABEL_OBSERVED_AT, Group
from churn.settings import PROJECT_ROOT, Settings
from configs import pipeline_parameters

pytestmark = pytest.mark.integration

DAY1, DAY2 = date(2025, 3, 10), date(2025, 3, 11)  # no tenure ticks over between them
N = 300
CHURNERS = [f"SYN-{i:07d}" for i in range(1, 11)]
PLAN_CHANGE, PRICE_CHANGE = "SYN-0000020", "SYN-0000021"
JOINERS = [f"NEW-{i:03d}" for i in range(5)]


@dataclass(frozen=True)
class Postgres:
    """The module's server: its admin URL and a helper for fresh databases."""

    cfg: twin.TwinConfig
    creds: twin.Credentials

    def database(self, name: str) -> str:
        customer_db.create_database(customer_db.server_url(self.cfg, self.creds, "postgres"), name)
        return customer_db.server_url(self.cfg, self.creds, name)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL server for the module (fails, never skips, when it cannot start)."""
    # Outside pytest's mode-0700 tmp: as root the server runs as the postgres user.
    home = Path(tempfile.mkdtemp(prefix="churn-db-test-"))
    home.chmod(0o711)
    ports = [free_port() for _ in range(4)]
    cfg = twin.TwinConfig(
        home=home,
        redis_port=ports[0],
        postgres_port=ports[1],
        s3_port=ports[2],
        mlflow_port=ports[3],
    )
    creds = twin.credentials(cfg)
    try:
        twin.start_postgres(cfg, creds)
    except twin.TwinError as e:
        pytest.fail(f"PostgreSQL could not start (make setup installs it): {e}", pytrace=False)
    try:
        yield Postgres(cfg, creds)
    finally:
        twin.stop_postgres(cfg)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def source() -> DatabaseSnapshotSource:
    """The shipped config's source, with a one-day label horizon (day 2 labels day 1)."""
    shipped = pipeline_parameters("daily_snapshot_pipeline")["source"]
    return DatabaseSnapshotSource(**{**shipped, "label_horizon_days": 1})


@pytest.fixture(scope="module")
def tables(source: DatabaseSnapshotSource) -> SourceTables:
    return source.tables


def _seeded(postgres: Postgres, tables: SourceTables, n: int = N) -> tuple[Engine, pd.DataFrame]:
    """A fresh database of `n` synthetic customers as of DAY1."""
    engine = create_engine(postgres.database(f"db_{secrets.token_hex(4)}"))
    customers = generate(n, seed=5)
    customer_db.seed(engine, tables, customers, DAY1)
    return engine, customers


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def _day2_changes(engine: Engine, tables: SourceTables, customers: pd.DataFrame) -> None:
    customer_db.mark_churned(engine, tables, CHURNERS, DAY2)
    old = customers.set_index(ENTITY_KEY).loc[PLAN_CHANGE, "contract"]
    new = "Two year" if old != "Two year" else "One year"
    customer_db.update_columns(
        engine, tables, Role.SUBSCRIPTIONS, PLAN_CHANGE, {"contract_type": new}
    )
    price = float(customers.set_index(ENTITY_KEY).loc[PRICE_CHANGE, "monthly_charges"]) + 1.0
    customer_db.update_columns(
        engine, tables, Role.BILLING, PRICE_CHANGE, {"monthly_charges": price}
    )
    joiners = generate(len(JOINERS), seed=9)
    joiners[ENTITY_KEY] = JOINERS
    joiners["tenure"], joiners["total_charges"] = 0, 0.0
    customer_db.add_customers(engine, tables, joiners, DAY2)


# ---------------------------------------------------------------- the two-day story


@dataclass
class Story:
    engine: Engine
    customers: pd.DataFrame
    settings: Settings


@pytest.fixture(scope="module")
def story(
    postgres: Postgres, tables: SourceTables, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Story]:
    """Seeded database + an isolated stack (CHURN_HOME, redis-server, Feast applied)."""
    home = tmp_path_factory.mktemp("db_story")
    with isolated_stack(redis_env(home, "db")) as (settings, _):
        engine, customers = _seeded(postgres, tables)
        apply_repo(get_store(settings=settings), settings=settings)
        yield Story(engine, customers, settings)
        engine.dispose()


def _tables(settings: Settings) -> dict[str, pd.DataFrame]:
    names = [g.value for g in Group] + ["labels"]
    out = {}
    for name in names:
        try:
            out[name] = read_offline_table(name, settings.offline_dir)
        except FileNotFoundError:
            continue
    return out


def test_day1_snapshots_every_active_customer_and_materializes_them(
    story: Story, source: DatabaseSnapshotSource
) -> None:
    store = get_store(settings=story.settings)
    report = run_day(story.engine, source, DAY1, story.settings, store)
    assert (report.rows_read, report.changed_rows, report.quarantined_rows) == (N, N, 0)
    assert report.labels == 0  # day 0 was never snapshotted: nothing to label
    account = read_offline_table("account", story.settings.offline_dir)
    assert len(account) == N and set(account[EVENT_TIMESTAMP]) == {snapshot_time(DAY1)}
    online = online_features(store, list(story.customers[ENTITY_KEY].head(20))).to_frame()
    expected = story.customers.set_index(ENTITY_KEY).loc[online[ENTITY_KEY]]
    for column in ("contract", "tenure", "monthly_charges", "internet_service"):
        assert list(online[column]) == list(expected[column]), column


def test_day2_writes_exactly_the_changes_and_the_churn_events(
    story: Story, source: DatabaseSnapshotSource
) -> None:
    _day2_changes(story.engine, source.tables, story.customers)
    store = get_store(settings=story.settings)
    report = run_day(story.engine, source, DAY2, story.settings, store)
    assert report.rows_read == N - len(CHURNERS) + len(JOINERS)
    account = read_offline_table("account", story.settings.offline_dir)
    day2 = account[account[EVENT_TIMESTAMP] == snapshot_time(DAY2)]
    assert sorted(day2[ENTITY_KEY]) == sorted([PLAN_CHANGE, PRICE_CHANGE, *JOINERS])
    # churned customers are not snapshotted after their churn date
    assert not set(CHURNERS) & set(day2[ENTITY_KEY])
    labels = read_offline_table("labels", story.settings.offline_dir)
    assert len(labels) == N  # every customer of day 1, none of the joiners
    assert set(labels[EVENT_TIMESTAMP]) == {snapshot_time(DAY1)}
    assert set(labels[LABEL_OBSERVED_AT]) == {snapshot_time(DAY2)}
    assert sorted(labels.loc[labels[LABEL] == 1, ENTITY_KEY]) == CHURNERS
    online = online_features(store, [PLAN_CHANGE, PRICE_CHANGE, *JOINERS]).to_frame()
    online = online.set_index(ENTITY_KEY)
    db = pd.read_sql(
        sa.text("SELECT customer_id, contract_type FROM subscriptions"), story.engine
    ).set_index(ENTITY_KEY)
    assert online.loc[PLAN_CHANGE, "contract"] == db.loc[PLAN_CHANGE, "contract_type"]
    price = float(story.customers.set_index(ENTITY_KEY).loc[PRICE_CHANGE, "monthly_charges"]) + 1
    assert online.loc[PRICE_CHANGE, "monthly_charges"] == pytest.approx(price)
    assert list(online.loc[JOINERS, "tenure"]) == [0] * len(JOINERS)


def test_rerunning_a_day_changes_nothing(story: Story, source: DatabaseSnapshotSource) -> None:
    before = _tables(story.settings)
    files = {p: p.stat().st_mtime_ns for p in story.settings.offline_dir.glob("*.parquet")}
    report = run_day(story.engine, source, DAY2, story.settings, get_store(settings=story.settings))
    assert all(v == 0 for v in report.offline_changed.values()), report.offline_changed
    assert report.materialized is None  # nothing new to load
    after = _tables(story.settings)
    assert before.keys() == after.keys()
    for name, frame in before.items():
        pd.testing.assert_frame_equal(frame, after[name], check_like=False)
    assert {p: p.stat().st_mtime_ns for p in files} == files


def test_backfill_writes_each_day_once(
    story: Story, source: DatabaseSnapshotSource, tmp_path: Path
) -> None:
    """From the database's current state (day 2's changes made): day 1 reconstructed
    from the signup and churn dates, day 2 adds only the joiners."""
    settings = _settings(tmp_path)
    reports = backfill(story.engine, source, DAY1, DAY2, settings)
    assert [r.day for r in reports] == [DAY1, DAY2]
    account = read_offline_table("account", settings.offline_dir)
    counts = account[EVENT_TIMESTAMP].value_counts().to_dict()
    assert counts == {snapshot_time(DAY1): N, snapshot_time(DAY2): len(JOINERS)}
    labels = read_offline_table("labels", settings.offline_dir)
    assert sorted(labels.loc[labels[LABEL] == 1, ENTITY_KEY]) == CHURNERS
    again = backfill(story.engine, source, DAY1, DAY2, settings)
    assert all(v == 0 for r in again for v in r.offline_changed.values())


# ------------------------------------------------------------ quarantine and budget


def _break(engine: Engine, tables: SourceTables, ids: list[str]) -> None:
    for cid in ids:  # a charge typed in cents: outside the schema's range
        customer_db.update_columns(engine, tables, Role.BILLING, cid, {"monthly_charges": 4999.0})


def test_bad_rows_under_the_budget_are_quarantined_and_the_rest_ingested(
    postgres: Postgres, source: DatabaseSnapshotSource, tmp_path: Path
) -> None:
    engine, _ = _seeded(postgres, source.tables, n=400)
    _break(engine, source.tables, ["SYN-0000003"])  # 1 of 400 = 0.25% < 1%
    with engine.begin() as conn:  # a customer without a billing row: nulls, reported
        conn.execute(sa.text("DELETE FROM billing WHERE customer_id = 'SYN-0000004'"))
    settings = _settings(tmp_path)
    report = run_day(engine, source, DAY1, settings)
    assert (report.quarantined_rows, report.changed_rows) == (2, 398)
    quarantined = read_quarantine(quarantine_path(settings, QUARANTINE_SOURCE))
    by_customer = quarantined.groupby(ENTITY_KEY)["column"].apply(set).to_dict()
    assert "monthly_charges" in by_customer["SYN-0000003"]
    assert {"monthly_charges", "total_charges", "paperless_billing"} <= by_customer["SYN-0000004"]
    assert set(quarantined.loc[quarantined[ENTITY_KEY] == "SYN-0000004", "check"]) == {"not_null"}
    account = read_offline_table("account", settings.offline_dir)
    assert not {"SYN-0000003", "SYN-0000004"} & set(account[ENTITY_KEY])
    again = run_day(engine, source, DAY1, settings)
    assert again.quarantine_new_records == 0
    assert len(read_quarantine(quarantine_path(settings, QUARANTINE_SOURCE))) == len(quarantined)


def test_bad_rows_over_the_budget_fail_the_run_and_write_no_snapshot(
    postgres: Postgres, source: DatabaseSnapshotSource, tmp_path: Path
) -> None:
    engine, _ = _seeded(postgres, source.tables, n=200)
    _break(engine, source.tables, ["SYN-0000001", "SYN-0000002", "SYN-0000003"])  # 1.5%
    settings = _settings(tmp_path)
    with pytest.raises(ErrorBudgetExceededError, match=r"3 of 200 rows \(1.50%\).*1.00%"):
        run_day(engine, source, DAY1, settings)
    assert not list(settings.offline_dir.glob("*.parquet"))
    quarantined = read_quarantine(quarantine_path(settings, QUARANTINE_SOURCE))
    assert sorted(set(quarantined[ENTITY_KEY])) == ["SYN-0000001", "SYN-0000002", "SYN-0000003"]


# -------------------------------------------------------------------- schema drift


def test_a_renamed_column_fails_the_run_naming_it(
    postgres: Postgres, source: DatabaseSnapshotSource, tmp_path: Path
) -> None:
    engine, _ = _seeded(postgres, source.tables, n=20)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE subscriptions RENAME COLUMN contract_type TO plan"))
    settings = _settings(tmp_path)
    with pytest.raises(
        SchemaDriftError, match=r"'subscriptions' lacks column\(s\) \['contract_type'\].*'plan'"
    ):
        run_day(engine, source, DAY1, settings)
    assert not settings.home.exists()


def test_a_new_category_fails_the_run_naming_column_and_value(
    postgres: Postgres, source: DatabaseSnapshotSource, tmp_path: Path
) -> None:
    engine, _ = _seeded(postgres, source.tables, n=20)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE subscriptions SET internet_service = '5G' WHERE customer_id = 'SYN-0000002'"
            )
        )
    settings = _settings(tmp_path)
    with pytest.raises(SchemaDriftError, match=r"'internet_service'.*\{'5G': 1\}"):
        run_day(engine, source, DAY1, settings)
    assert not settings.home.exists()


# ------------------------------------------------------------------- database down


def test_a_database_that_is_down_gives_a_clear_error_and_writes_nothing(
    postgres: Postgres, source: DatabaseSnapshotSource, tmp_path: Path
) -> None:
    url = customer_db.server_url(postgres.cfg, postgres.creds, "customers")
    down = url.replace(f":{postgres.cfg.postgres_port}/", f":{free_port()}/")
    settings = _settings(tmp_path)
    with pytest.raises(
        DatabaseUnavailableError,
        match=r"cannot connect to the customer database "
        r"postgresql://churn:\*\*\*@127\.0\.0\.1:\d+/customers: .*refused",
    ) as caught:
        run_day(create_engine(down), source, DAY1, settings)
    assert postgres.creds.postgres_password not in str(caught.value)
    assert not settings.home.exists()


# ------------------------------------------------- the feature pipeline's source kind


def test_the_feature_pipeline_reads_the_database_as_a_source(
    postgres: Postgres, source: DatabaseSnapshotSource, tmp_path: Path
) -> None:
    """kind "database": the day's active customers through the same contract, offline
    store, feast apply and materialize as the CSV and the generator."""
    engine, customers = _seeded(postgres, source.tables, n=50)
    customer_db.mark_churned(engine, source.tables, ["SYN-0000001"], DAY1)
    url = engine.url.render_as_string(hide_password=False)
    env = {**redis_env(tmp_path / "home", "dbfp"), "CHURN_CUSTOMER_DB_URL": url}
    with isolated_stack(env) as (settings, _):
        result = run_feature_pipeline(
            DataSource(kind="database", tables=source.tables, snapshot_time=snapshot_time(DAY1))
        )
        assert (result.rows, result.offline.changed["account"]) == (49, 49)
        online = online_features(get_store(settings=settings), ["SYN-0000002"]).to_frame()
    expected = customers.set_index(ENTITY_KEY).loc["SYN-0000002"]
    for column in ("contract", "tenure", "total_charges", "senior_citizen", "partner"):
        assert online.loc[0, column] == expected[column], column
    engine.dispose()


# -------------------------------------------------------- through zenml pipeline run


def test_the_pipeline_reads_the_url_from_a_zenml_secret_and_reports_the_quarantine(
    postgres: Postgres, source: DatabaseSnapshotSource, tmp_path: Path
) -> None:
    """`zenml pipeline run` in a fresh ZenML store: the URL only in the secret, one bad
    row of 100 (at the 1% budget: ingested without it), the counts as step metadata."""
    engine, _ = _seeded(postgres, source.tables, n=100)
    _break(engine, source.tables, ["SYN-0000007"])
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    config = yaml.safe_load((PROJECT_ROOT / "configs/daily_snapshot_pipeline.yaml").read_text())
    config["parameters"]["source"]["url_secret"] = "customer_db_test"
    config["parameters"]["day"] = DAY1.isoformat()
    config_file = tmp_path / "daily.yaml"
    config_file.write_text(yaml.safe_dump(config))
    zenml = str(Path(sys.executable).with_name("zenml"))
    with isolated_stack(redis_env(tmp_path / "home", "dbzen")) as (settings, _):
        env = {
            **os.environ,  # the stack's CHURN_HOME and Redis
            "ZENML_CONFIG_PATH": str(tmp_path / "zenml"),
            "ZENML_ANALYTICS_OPT_IN": "false",
            "AUTO_OPEN_DASHBOARD": "false",
        }
        env.pop("CHURN_CUSTOMER_DB_URL", None)

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False,
                timeout=600,
            )  # fmt: skip

        assert run(zenml, "secret", "create", "customer_db_test", f"--url={url}").returncode == 0
        done = run(
            zenml, "pipeline", "run", "pipelines.daily_snapshot_pipeline.daily_snapshot_pipeline",
            "-c", str(config_file),
        )  # fmt: skip
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        account = read_offline_table("account", settings.offline_dir)
        assert len(account) == 99 and "SYN-0000007" not in set(account[ENTITY_KEY])
        online = online_features(get_store(settings=settings), ["SYN-0000008"]).to_frame()
        assert online.loc[0, "tenure"] is not None
        metadata = run(
            sys.executable, "-c",
            "import json; from zenml.client import Client; "
            "run = Client().get_pipeline('daily_snapshot_pipeline').last_run; "
            "print(json.dumps(run.steps['snapshot_customer_db'].run_metadata, default=str))",
        )  # fmt: skip
    figures = json.loads(metadata.stdout.strip().splitlines()[-1])
    assert (figures["rows_read"], figures["quarantined_rows"], figures["changed_rows"]) == (
        100,
        1,
        99,
    )
