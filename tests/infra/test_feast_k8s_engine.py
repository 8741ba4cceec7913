"""Feast's Kubernetes materialization engine as feature_store.eks.yaml configures it.

No cluster here, so the engine runs against a recorder of the Kubernetes API calls it
makes (nothing else is faked): feature_store.eks.yaml is parsed by Feast with the
values the rendered EKS overlay's ConfigMap gives, the rows are pulled by the DuckDB
offline store from a real parquet offline store and staged as parquet parts on an S3
twin (moto's server), and the engine's ConfigMap and Indexed Job are captured as it
submits them. They must validate against the Kubernetes schemas, run the ECR steps
image under the worker account the overlay defines, and every API call the engine
makes (and the ones of its failure path) must be granted by the Roles the overlay
binds to the accounts that materialize (churn-feast, churn-pipelines).
The S3 side of the DuckDB store is checked on the same twin: tables read from s3://
equal the local ones, and staged parts hold exactly the pulled rows.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import fsspec
import kubernetes.config
import kubernetes_validate
import pandas as pd
import pyarrow.parquet as pq
import pytest
import s3fs
import yaml
from feast import FeatureStore, FileSource
from feast.infra.common.materialization_job import MaterializationJobStatus, MaterializationTask
from feast.infra.materialization.kubernetes import k8s_materialization_engine as k8s_engine
from infra_support import K8S_DIR, KUBERNETES_VERSION, kustomize
from kubernetes import client
from moto.server import ThreadedMotoServer

from churn.data.offline import LABELS_TABLE, read_offline_table, write_offline_store
from churn.data.synthetic import generate
from churn.features.offline_duckdb import ChurnDuckDBOfflineStore, read_parquet_source
from churn.features.store import apply_repo, get_store, repo_config
from churn.schema import EVENT_TIMESTAMP, Group
from churn.settings import Settings, get_settings

N_CUSTOMERS = 1500
STAGING_ROWS = 400  # -> 4 parts, 4 pods per view


@dataclass(frozen=True)
class Twin:
    """moto's S3 server and the bucket the EKS overlay names."""

    endpoint: str
    bucket: str


def _eks() -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in kustomize(K8S_DIR / "overlays" / "eks")}


def _cluster_env() -> dict[str, str]:
    """k8s/components/eks/cluster.env, the account- and release-specific values."""
    lines = (K8S_DIR / "components" / "eks" / "cluster.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@pytest.fixture(scope="module")
def eks() -> dict[tuple[str, str], dict[str, Any]]:
    return _eks()


@pytest.fixture(scope="module")
def s3(eks: dict[tuple[str, str], dict[str, Any]]) -> Iterator[Twin]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    bucket = eks[("ConfigMap", "churn-serving")]["data"]["CHURN_S3_BUCKET"]
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "twin",
            "AWS_SECRET_ACCESS_KEY": "twin-secret",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL_S3": endpoint,
        }.items():
            mp.setenv(name, value)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        # s3fs caches filesystem instances with the endpoint they were made with: none
        # made before may serve here, and none made here may outlive this server.
        s3fs.S3FileSystem.clear_instance_cache()
        yield Twin(endpoint, bucket)
        s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


@dataclass(frozen=True)
class Local:
    settings: Settings
    store: FeatureStore


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    """A real offline store of synthetic customers, applied to a local registry."""
    home = tmp_path_factory.mktemp("k8s_engine_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHURN_HOME", str(home))
        get_settings.cache_clear()
        settings = get_settings()
        write_offline_store(generate(N_CUSTOMERS, seed=5, n_snapshots=2))
        store = get_store(settings=settings)
        apply_repo(store, settings=settings)
        yield Local(settings, store)
    get_settings.cache_clear()


def _eks_config(eks: dict[tuple[str, str], dict[str, Any]], local: Local) -> Any:
    """feature_store.eks.yaml parsed by Feast with the EKS ConfigMap's values."""
    data = eks[("ConfigMap", "churn-serving")]["data"]
    assert data["CHURN_MATERIALIZATION_ENGINE"] == "k8s"
    settings = local.settings.model_copy(
        update={
            "materialization_engine": data["CHURN_MATERIALIZATION_ENGINE"],
            "redis_host": data["CHURN_REDIS_HOST"],
            "redis_port": int(data["CHURN_REDIS_PORT"]),
            "steps_image": data["CHURN_STEPS_IMAGE"],
        }
    )
    environ = {"CHURN_S3_BUCKET": data["CHURN_S3_BUCKET"]}
    return repo_config(yaml_file="feature_store.eks.yaml", settings=settings, environ=environ)


# ------------------------------------------------------------------ the configuration


def test_feast_parses_the_eks_engine_and_store(
    eks: dict[tuple[str, str], dict[str, Any]], local: Local
) -> None:
    config = _eks_config(eks, local)
    cluster = _cluster_env()
    engine = config.batch_engine
    assert engine.type == "k8s"
    assert engine.namespace == eks[("Role", "churn-feast")]["metadata"]["namespace"]
    assert engine.image == f"{cluster['ECR_REGISTRY']}/churn-mlops-steps:{cluster['IMAGE_TAG']}"
    worker = eks[("ServiceAccount", engine.service_account_name)]
    assert worker["automountServiceAccountToken"] is False
    assert (
        worker["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == cluster["FEAST_ROLE_ARN"]
    )
    assert engine.synchronous is True
    assert isinstance(config.offline_store.type, str)
    assert config.offline_store.staging_location == (
        f"s3://{cluster['CHURN_S3_BUCKET']}/churn/feast/staging"
    )
    # Without the setting (production twin, laptop), the same file materializes in-process.
    twin = repo_config(
        yaml_file="feature_store.eks.yaml",
        settings=local.settings,
        environ={"CHURN_S3_BUCKET": "b"},
    )
    assert twin.batch_engine.type == "churn.features.bulk_engine.RedisBulkEngine"


# ------------------------------------------------------------------ the objects it creates


class Recorder:
    """The Kubernetes API calls the engine makes, with their bodies."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, dict[str, Any] | None]] = []

    def record(self, group: str, resource: str, verb: str, body: Any = None) -> None:
        self.calls.append((group, resource, verb, body))

    def bodies(self, resource: str) -> list[dict[str, Any]]:
        return [b for _g, r, v, b in self.calls if r == resource and v == "create" and b]


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Recorder:
    rec = Recorder()
    kubeconfig = tmp_path / "kubeconfig"  # a cluster nobody listens at: no call may leak
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    # kubernetes reads $KUBECONFIG at import: point its default location at the file.
    monkeypatch.setattr(kubernetes.config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    monkeypatch.setattr(
        kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig)
    )

    def create_from_dict(_client: Any, body: dict[str, Any], **_kw: Any) -> None:
        rec.record("batch", "jobs", "create", body)

    def create_config_map(_self: Any, namespace: str, body: dict[str, Any]) -> None:
        rec.record("", "configmaps", "create", {**body, "namespace": namespace})

    def job_status(_self: Any, name: str, namespace: str) -> Any:
        rec.record("batch", "jobs/status", "get")
        done = SimpleNamespace(type="Complete", message="")
        return SimpleNamespace(
            status=SimpleNamespace(active=None, completion_time="now", conditions=[done])
        )

    monkeypatch.setattr(k8s_engine.utils, "create_from_dict", create_from_dict)
    monkeypatch.setattr(client.CoreV1Api, "create_namespaced_config_map", create_config_map)
    monkeypatch.setattr(
        client.CoreV1Api,
        "delete_namespaced_config_map",
        lambda _s, _n, _ns: rec.record("", "configmaps", "delete"),
    )
    monkeypatch.setattr(client.BatchV1Api, "read_namespaced_job_status", job_status)
    return rec


# The engine's failure path (a failed pod): read off k8s_materialization_engine.py.
FAILURE_CALLS = {("", "pods", "list"), ("", "pods/log", "get"), ("batch", "jobs", "delete")}


def _granted(role: dict[str, Any], group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule.get("apiGroups", [])
        and resource in rule.get("resources", [])
        and verb in rule.get("verbs", [])
        for rule in role["rules"]
    )


def _bound_role(eks: dict[tuple[str, str], dict[str, Any]], account: str) -> dict[str, Any]:
    for (kind, _name), binding in eks.items():
        if kind == "RoleBinding" and any(s["name"] == account for s in binding["subjects"]):
            return eks[("Role", binding["roleRef"]["name"])]
    raise AssertionError(f"no RoleBinding for {account}")


def test_the_jobs_it_creates_validate_and_are_granted(
    eks: dict[tuple[str, str], dict[str, Any]], local: Local, s3: Twin, recorder: Recorder
) -> None:
    config = _eks_config(eks, local)
    config.offline_store.staging_rows = STAGING_ROWS
    store = FeatureStore(config=config)
    provider = store._get_provider()
    assert isinstance(provider.offline_store, ChurnDuckDBOfflineStore)
    engine = provider.batch_engine
    assert isinstance(engine, k8s_engine.KubernetesMaterializationEngine)
    labels = read_offline_table(LABELS_TABLE, local.settings.offline_dir)
    latest = labels[EVENT_TIMESTAMP].max().to_pydatetime()
    views = local.store.list_feature_views()
    tasks = [
        MaterializationTask(
            project=config.project,
            feature_view=view,
            start_time=latest - timedelta(days=1),
            end_time=latest + timedelta(days=1),
            tqdm_builder=lambda n: __import__("tqdm").tqdm(total=n, disable=True),
        )
        for view in views
    ]
    jobs = engine.materialize(local.store.registry, tasks)
    assert [j.status() for j in jobs] == [MaterializationJobStatus.SUCCEEDED] * len(views)

    parts = math.ceil(
        (labels[EVENT_TIMESTAMP] == labels[EVENT_TIMESTAMP].max()).sum() / STAGING_ROWS
    )
    config_maps, job_specs = recorder.bodies("configmaps"), recorder.bodies("jobs")
    assert len(config_maps) == len(job_specs) == len(views)
    namespace = config.batch_engine.namespace
    for config_map, job in zip(config_maps, job_specs, strict=True):
        cm = {k: v for k, v in config_map.items() if k != "namespace"}
        cm["metadata"] = {**cm["metadata"], "namespace": config_map["namespace"]}
        kubernetes_validate.validate(cm, KUBERNETES_VERSION, strict=True)
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
        assert job["metadata"]["namespace"] == config_map["namespace"] == namespace
        staged = yaml.safe_load(cm["data"]["materialization_config.yaml"])["paths"]
        assert len(staged) == parts == job["spec"]["completions"]
        assert all(p.startswith(f"s3://{s3.bucket}/churn/feast/staging/") for p in staged)
        pod = job["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == config.batch_engine.image
        assert container["command"] == ["python", "main.py"]  # the steps image's /app/main.py
        assert pod["serviceAccountName"] == "churn-feast-worker"
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["limits"]["memory"] == "2Gi"
        labels_of_pod = job["spec"]["template"]["metadata"]["labels"]
        policy = eks[("NetworkPolicy", "churn-feast-s3")]["spec"]["podSelector"]["matchLabels"]
        assert policy.items() <= labels_of_pod.items()  # the feast egress policies apply

    calls = {(g, r, v) for g, r, v, _b in recorder.calls} | FAILURE_CALLS
    for account in ("churn-feast", "churn-pipelines"):
        role = _bound_role(eks, account)
        missing = sorted(c for c in calls if not _granted(role, *c))
        assert not missing, (account, missing)


def test_worker_file_is_feast_worker_in_the_image() -> None:
    """The Job runs `python main.py` in /app: the steps image copies the worker there."""
    dockerfile = (K8S_DIR.parent / "docker" / "steps.Dockerfile").read_text()
    assert "COPY docker/feast_k8s_worker.py main.py" in dockerfile
    worker = (K8S_DIR.parent / "docker" / "feast_k8s_worker.py").read_text()
    assert '"feast.infra.materialization.kubernetes.main"' in worker


# ------------------------------------------------------------------ DuckDB over S3


def test_duckdb_reads_s3_tables_and_stages_parts(local: Local, s3: Twin) -> None:
    fs = fsspec.filesystem("s3")
    for group in Group:
        fs.put(
            str(local.settings.offline_table(group.value)),
            f"{s3.bucket}/offline/{group.value}.parquet",
        )
    for group in Group:
        remote = read_parquet_source(
            FileSource(
                path=f"s3://{s3.bucket}/offline/{group.value}.parquet",
                timestamp_field=EVENT_TIMESTAMP,
            ),
            "",
        ).to_pandas()
        here = pd.read_parquet(local.settings.offline_table(group.value))
        pd.testing.assert_frame_equal(
            remote.sort_values(list(remote.columns[:2])).reset_index(drop=True),
            here.sort_values(list(here.columns[:2])).reset_index(drop=True),
            check_dtype=False,
        )

    config = local.store.config
    config.offline_store.staging_location = f"s3://{s3.bucket}/staging"
    view = local.store.list_feature_views()[0]
    job = ChurnDuckDBOfflineStore.pull_latest_from_table_or_query(
        config=config,
        data_source=view.batch_source,
        join_key_columns=["customer_id"],
        feature_name_columns=[f.name for f in view.features],
        timestamp_field=EVENT_TIMESTAMP,
        created_timestamp_column="created_timestamp",
        start_date=pd.Timestamp("2000-01-01", tz="UTC").to_pydatetime(),
        end_date=pd.Timestamp("2100-01-01", tz="UTC").to_pydatetime(),
    )
    job.staging_rows = 700
    uris = job.to_remote_storage()
    pulled = job.to_arrow().to_pandas()
    assert len(uris) == math.ceil(len(pulled) / 700) >= 2
    staged = pd.concat(
        [pq.read_table(fs.open(u.removeprefix("s3://"), "rb")).to_pandas() for u in uris],
        ignore_index=True,
    )
    # Each execution of the query may order rows differently: compare by customer.
    by_id = ["customer_id"]
    pd.testing.assert_frame_equal(
        staged.sort_values(by_id).reset_index(drop=True),
        pulled.sort_values(by_id).reset_index(drop=True),
    )
    assert pulled["customer_id"].is_unique  # latest row per customer
