"""Each twin service speaks its managed service's protocol, as the EKS config uses it."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import psycopg2
import pytest
import redis
from mlflow.tracking import MlflowClient

from churn import twin
from churn.settings import PROJECT_ROOT

EKS_FEATURE_STORE = PROJECT_ROOT / "feature_repo" / "feature_store.eks.yaml"


def test_redis_answers_only_tls_with_the_password(
    twin_config: twin.TwinConfig, twin_up: twin.Credentials
) -> None:
    assert twin.redis_client(twin_config, twin_up).ping()
    anonymous = redis.Redis(
        host=twin_config.host,
        port=twin_config.redis_port,
        ssl=True,
        ssl_ca_certs=str(twin_config.ca_file),
        socket_timeout=1,
    )
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    plaintext = redis.Redis(
        host=twin_config.host,
        port=twin_config.redis_port,
        password=twin_up.redis_password,
        socket_timeout=1,
    )
    with pytest.raises(redis.ConnectionError):
        plaintext.ping()


def test_feast_reaches_tls_redis_with_the_eks_connection_string(
    twin_environ: dict[str, str],
) -> None:
    """feature_store.eks.yaml's connection string, expanded, through Feast's own parser."""
    import yaml
    from feast.infra.online_stores.redis import RedisOnlineStore

    template = yaml.safe_load(EKS_FEATURE_STORE.read_text())["online_store"]["connection_string"]
    nodes, kwargs = RedisOnlineStore._parse_connection_string(os.path.expandvars(template))
    assert kwargs["ssl"] is True
    client = redis.Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **kwargs)
    assert client.ping()


def test_feast_refuses_the_twin_without_its_ca(
    twin_config: twin.TwinConfig, twin_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Certificates are verified: with the public trust store the twin is rejected."""
    monkeypatch.delenv("SSL_CERT_FILE")
    client = redis.Redis(
        host=twin_config.host,
        port=twin_config.redis_port,
        password=twin_environ["CHURN_REDIS_PASSWORD"],
        ssl=True,
        socket_timeout=1,
    )
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        client.ping()


def test_postgres_takes_the_mlflow_uri_and_refuses_a_wrong_password(
    twin_config: twin.TwinConfig, twin_up: twin.Credentials
) -> None:
    with psycopg2.connect(twin.postgres_uri(twin_config, twin_up)) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_database(), current_user")
        assert cur.fetchone() == (twin.POSTGRES_DB, twin.POSTGRES_USER)
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'")
        row = cur.fetchone()
        assert row is not None and row[0] == 1  # the MLflow server migrated its schema
    wrong = twin.postgres_uri(twin_config, twin_up).replace(twin_up.postgres_password, "nope")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(wrong, connect_timeout=2)


def test_s3_round_trip(twin_config: twin.TwinConfig, twin_up: twin.Credentials) -> None:
    s3 = twin.s3_client(twin_config, twin_up)
    s3.put_object(Bucket=twin.BUCKET, Key="probe/hello.txt", Body=b"twin")
    assert s3.get_object(Bucket=twin.BUCKET, Key="probe/hello.txt")["Body"].read() == b"twin"


def test_mlflow_keeps_runs_artifacts_and_alias_across_a_restart(
    twin_config: twin.TwinConfig, twin_environ: dict[str, str], tmp_path: Path
) -> None:
    """Runs in PostgreSQL, artifacts in S3 (through the server), alias in the registry."""
    client = MlflowClient(tracking_uri=twin_config.mlflow_uri, registry_uri=twin_config.mlflow_uri)
    experiment = client.create_experiment("twin-restart")
    run = client.create_run(experiment)
    client.log_param(run.info.run_id, "C", "0.5")
    client.log_metric(run.info.run_id, "roc_auc", 0.84)
    note = tmp_path / "note.txt"
    note.write_text("kept")
    client.log_artifact(run.info.run_id, str(note))
    client.set_terminated(run.info.run_id)
    client.create_registered_model("twin-churn")
    version = client.create_model_version("twin-churn", f"runs:/{run.info.run_id}", run.info.run_id)
    client.set_registered_model_alias("twin-churn", "champion", version.version)

    keys = [
        o["Key"]
        for o in twin.s3_client(twin_config, twin.credentials(twin_config))
        .list_objects_v2(Bucket=twin.BUCKET, Prefix="mlflow/")
        .get("Contents", [])
    ]
    assert any(k.endswith(f"{run.info.run_id}/artifacts/note.txt") for k in keys), keys

    twin.stop_mlflow(twin_config)
    assert not twin.status(twin_config)["mlflow"]
    twin.start_mlflow(twin_config, twin.credentials(twin_config))

    kept = client.get_run(run.info.run_id)
    assert kept.data.params == {"C": "0.5"}
    assert kept.data.metrics == {"roc_auc": 0.84}
    assert client.get_model_version_by_alias("twin-churn", "champion").version == version.version
    downloaded = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id,
        artifact_path="note.txt",
        dst_path=str(tmp_path / "back"),
        tracking_uri=twin_config.mlflow_uri,
    )
    assert Path(downloaded).read_text() == "kept"


def test_an_emptied_s3_twin_empties_mlflow_on_the_next_up(
    twin_config: twin.TwinConfig, twin_up: twin.Credentials
) -> None:
    """moto keeps nothing across a restart; runs kept in PostgreSQL would then name
    artifacts that are gone (a champion nobody can download), so `up` starts MLflow on
    an empty database with it. Runs last in this module: it empties the twin's MLflow."""
    client = MlflowClient(tracking_uri=twin_config.mlflow_uri)
    client.create_experiment("before-the-s3-restart")
    twin.stop_mlflow(twin_config)
    twin.stop_s3(twin_config)
    twin.up(twin_config)
    assert twin.status(twin_config) == dict.fromkeys(twin.SERVICES, True)
    assert client.get_experiment_by_name("before-the-s3-restart") is None


def test_reset_deletes_the_data_and_keeps_credentials_and_certificates(tmp_path: Path) -> None:
    """`python -m churn.twin reset`: the next up is an empty production whose clients
    still hold valid secrets and CA."""
    cfg = twin.TwinConfig(home=tmp_path, redis_port=1, postgres_port=2, s3_port=3, mlflow_port=4)
    creds = twin.credentials(cfg)
    for name in (*twin.STATE_DIRS, "tls"):
        (cfg.home / name).mkdir(exist_ok=True)
        (cfg.home / name / "data").write_text(name)
    twin.reset(cfg)
    assert sorted(p.name for p in cfg.home.iterdir()) == ["credentials.json", "tls"]
    assert twin.credentials(cfg) == creds
