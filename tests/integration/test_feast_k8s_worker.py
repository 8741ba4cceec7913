"""Feast's Kubernetes materialization pods, run for real in the steps image.

What a pod of Feast's Indexed Job does on EKS (feature_store.eks.yaml, batch_engine
k8s), without the cluster: the calling side pulls each view's rows with the DuckDB
offline store and stages them as parquet parts (StagedParquetJob); each part is then
loaded by one container of the churn-steps image running the Job's command,
`python main.py` in the image's working directory, with the Job's environment
(JOB_COMPLETION_INDEX, MINI_BATCH_SIZE), the ConfigMap's two files at /var/feast/
(the resolved feature store config, as Feast's engine dumps it, and the part list),
uid 1000, every capability but NET_BIND_SERVICE dropped. Paths are the same inside
and outside (the home is mounted at its own path), Redis is this test's own.

Afterwards Redis must hold, byte for byte, what the bulk engine writes for the same
window into another database: the pods wrote exactly what Feast writes.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
import yaml
from containers_support import engine_or_skip, image
from isolation import isolated_stack, redis_env
from test_feature_store import _redis_snapshot

from churn.data.offline import LABELS_TABLE, read_offline_table, write_offline_store
from churn.data.synthetic import generate
from churn.features.offline_duckdb import ChurnDuckDBOfflineStore, StagedParquetJob
from churn.features.store import apply_repo, get_store, materialize
from churn.schema import ENTITY_KEY, EVENT_TIMESTAMP
from churn.settings import Settings

pytestmark = pytest.mark.integration

IMAGE = "churn-steps"
N_CUSTOMERS = 1200
STAGING_ROWS = 700  # 2 parts (2 pods) per view
DB_PODS, DB_BULK = 3, 4


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    path = tmp_path_factory.mktemp("k8s_worker_home")
    path.chmod(0o777)
    with isolated_stack(redis_env(path, "k8s-worker")) as (settings, _):
        write_offline_store(generate(N_CUSTOMERS, seed=9, n_snapshots=2))
        for tree in (path, *path.rglob("*")):  # uid 1000 reads the tables and registry
            tree.chmod(0o777 if tree.is_dir() else 0o666)
        yield settings


def _client(settings: Settings, db: int) -> redis.Redis:
    return redis.Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        password=settings.redis_password.get_secret_value(),
        db=db,
    )


def test_job_pods_in_the_steps_image_write_what_feast_writes(home: Settings) -> None:
    engine = engine_or_skip()
    ref = image(engine, IMAGE)
    pods_settings = home.model_copy(update={"redis_db": DB_PODS})
    store = get_store(settings=pods_settings)
    apply_repo(store, settings=pods_settings)
    config = store.config
    config.offline_store.staging_location = str(home.home / "staging")
    labels = read_offline_table(LABELS_TABLE)
    latest = labels[EVENT_TIMESTAMP].max().to_pydatetime()
    start, end = latest - timedelta(days=1), latest + timedelta(days=1)
    _client(home, DB_PODS).flushdb()

    pods = 0
    for view in store.list_feature_views():
        job = ChurnDuckDBOfflineStore.pull_latest_from_table_or_query(
            config=config,
            data_source=view.batch_source,
            join_key_columns=[ENTITY_KEY],
            feature_name_columns=[f.name for f in view.features],
            timestamp_field=EVENT_TIMESTAMP,
            created_timestamp_column=view.batch_source.created_timestamp_column,
            start_date=start,
            end_date=end,
        )
        assert isinstance(job, StagedParquetJob)
        job.staging_rows = STAGING_ROWS
        paths = job.to_remote_storage()
        assert len(paths) == 2
        feast_dir = home.home / "var-feast" / view.name
        feast_dir.mkdir(parents=True)
        # What Feast's engine puts in the Job's ConfigMap (k8s_materialization_engine.py).
        (feast_dir / "feature_store.yaml").write_text(yaml.dump(config.model_dump(by_alias=True)))
        (feast_dir / "materialization_config.yaml").write_text(
            yaml.dump({"paths": paths, "feature_view": view.name})
        )
        for tree in (home.home / "staging", *(home.home / "staging").rglob("*"), feast_dir):
            tree.chmod(0o777 if tree.is_dir() else 0o666)
        for index in range(len(paths)):
            argv = engine.command(
                "run", "--rm", "--network", "host", "--cap-drop", "ALL",
                "--cap-add", "NET_BIND_SERVICE", "--security-opt", "no-new-privileges",
                "-v", f"{home.home}:{home.home}", "-v", f"{feast_dir}:/var/feast:ro",
                "-e", f"JOB_COMPLETION_INDEX={index}", "-e", "MINI_BATCH_SIZE=250",
                "-e", "HOME=/tmp", ref, "python", "main.py",
            )  # fmt: skip
            proc = subprocess.run(
                argv, env={**os.environ, **engine.env}, capture_output=True, text=True, timeout=300
            )
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
            pods += 1
    assert pods == 6

    bulk_settings = home.model_copy(update={"redis_db": DB_BULK})
    _client(home, DB_BULK).flushdb()
    materialize(get_store(settings=bulk_settings), start, end)
    by_pods, by_bulk = (
        _redis_snapshot(_client(home, DB_PODS)),
        _redis_snapshot(_client(home, DB_BULK)),
    )
    assert (
        len(by_pods)
        == labels[labels[EVENT_TIMESTAMP] == labels[EVENT_TIMESTAMP].max()][ENTITY_KEY].nunique()
    )
    assert by_pods == by_bulk
