"""Seldon manifests (deployment.seldon): schema-valid, safe, wired together, and applied.

- Every rendered object validates against the openAPIV3Schema of its Seldon CRD
  (the served version; tests/inputs.py finds the files), read the way the API server reads it:
  unknown fields are errors (strict field validation), and the x-kubernetes-*
  extensions that constrain values (int-or-string, list-type set/map with map keys)
  are enforced. Broken objects are shown to FAIL, so the validation bites.
- The properties that matter hold for every container of every object: pinned image
  tags, non-root, resource limits, no plaintext secret, probes on MLServer's health
  endpoints.
- `apply_manifests` runs against a real HTTP server on 127.0.0.1 speaking just enough of
  the Kubernetes API (create, 409 on a second create, get, replace at a
  resourceVersion, 403): the exact paths and bodies it receives are checked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from crd_validation import Crd
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException
from mlserver.settings import ModelParameters, ModelSettings, Settings
from ports import free_port
from serving_support import ServingEnv, make_bundle
from sklearn.pipeline import Pipeline

from churn.data.telco import load_telco
from churn.inference import OUTPUTS
from churn.schema import ENTITY_KEY, model_input_names
from deployment.drift_model import build_drift_model, drift_model_name
from deployment.seldon.apply import DeploymentError, apply_manifests
from deployment.seldon.render import (
    rclone_remote,
    render_drift_model,
    render_model,
    render_pipeline,
    render_rclone_env_secret,
    render_rclone_secret,
    render_server,
    seldon_v1_objects,
    seldon_v2_objects,
    to_yaml,
)
from deployment.seldon.spec import (
    CAPABILITY,
    HEALTH_LIVE,
    HEALTH_READY,
    MLSERVER_CONTAINER,
    PLURALS,
    RCLONE_ENV_SECRET,
    RCLONE_REMOTE,
    RCLONE_SECRET,
    SERVER_HTTP_PORT_NAME,
    SIDECAR_CONTAINERS,
    V1_MODEL_DIR,
    V1_SERVER_ROOT,
    WRITABLE,
    Resources,
    SecretKeyRef,
    SeldonDeploymentSpec,
    SpecError,
)
from serving.bundle import BundleManifest
from serving.settings import ServingSettings

NAMESPACE = "churn-prod"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/churn-mlops-serving:0.3.1"
BUCKET = "s3://churn-artifacts/serving/churn-classifier-v3"
# A value that must never appear in a rendered object (it is only in the environment).
LEAKED_PASSWORD = "do-not-render-this-3f9a"
SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|ACCESS_KEY|PRIVATE_KEY|AUTH")


def make_spec(**overrides: Any) -> SeldonDeploymentSpec:
    """A realistic EKS spec: bundle and drift model on S3, image on ECR."""
    values: dict[str, Any] = {
        "namespace": NAMESPACE,
        "image": IMAGE,
        "bundle_uri": f"{BUCKET}/bundle",
        "drift_uri": f"{BUCKET}/drift-model",
        "model_version": "churn-classifier-v3",
        "feature_service": "churn_service_v1",
    }
    values.update(overrides)
    return SeldonDeploymentSpec(**values)


SPECS: dict[str, Callable[[], SeldonDeploymentSpec]] = {
    "v2 with drift": make_spec,
    "v2 without drift": lambda: make_spec(drift_uri=None),
    "v2 everything set": lambda: make_spec(
        storage_secret="churn-s3-rclone",
        drift_batch_size=20,
        drift_window=300,
        secret_env={"CHURN_MLFLOW_TOKEN": SecretKeyRef("churn-mlflow", "token")},
        env={"CHURN_LOG_LEVEL": "INFO"},
        config_map=None,
        replicas=3,
        max_replicas=6,
    ),
}


def all_objects() -> list[tuple[str, dict[str, Any]]]:
    """(id, object) for every object every spec renders, v2 and v1."""
    out = []
    for label, factory in SPECS.items():
        spec = factory()
        for obj in [*seldon_v2_objects(spec), *seldon_v1_objects(spec)]:
            out.append((f"{label}: {obj['kind']}/{obj['metadata']['name']}", obj))
    return out


OBJECTS = all_objects()


# ------------------------------------------------------------------ CRD schemas


def crd_for(seldon_crds: dict[tuple[str, str], Crd], obj: dict[str, Any]) -> Crd:
    return seldon_crds[(obj["apiVersion"], obj["kind"])]


def test_the_plural_table_is_the_crds(seldon_crds: dict[tuple[str, str], Crd]) -> None:
    for (_api, kind), crd in seldon_crds.items():
        if kind in PLURALS:
            assert PLURALS[kind] == crd.plural


@pytest.mark.parametrize(("label", "obj"), OBJECTS, ids=[label for label, _ in OBJECTS])
def test_every_rendered_object_validates_against_its_crd(
    label: str, obj: dict[str, Any], seldon_crds: dict[tuple[str, str], Crd]
) -> None:
    assert crd_for(seldon_crds, obj).errors(obj) == []


def _server() -> dict[str, Any]:
    return render_server(make_spec())


def _v1() -> dict[str, Any]:
    return seldon_v1_objects(make_spec())[0]


def _v1_container(obj: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = obj["spec"]["predictors"][0]["componentSpecs"][0]["spec"][
        "containers"
    ][0]
    return container


def _set(obj: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def _drop(obj: dict[str, Any], path: str) -> None:
    *parents, last = path.split(".")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    del node[last]


# (what is broken, a rendered object, how to break it, what the error must name)
BROKEN: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[dict[str, Any]], None], str]] = {
    "Model without storageUri": (
        lambda: render_model(make_spec()),
        lambda o: _drop(o, "spec.storageUri"),
        "'storageUri' is a required property",
    ),
    "Model replicas as text": (
        lambda: render_model(make_spec()),
        lambda o: _set(o, "spec.replicas", "two"),
        "spec/replicas: 'two' is not of type 'integer'",
    ),
    "Model field misspelt": (
        lambda: render_model(make_spec()),
        lambda o: o["spec"].update(storageURI=o["spec"].pop("storageUri")),
        "'storageURI' was unexpected",
    ),
    "Model replicas beyond int32": (
        lambda: render_model(make_spec()),
        lambda o: _set(o, "spec.replicas", 2**31),
        "is not a 'int32'",
    ),
    "Server without serverConfig": (
        _server,
        lambda o: _drop(o, "spec.serverConfig"),
        "'serverConfig' is a required property",
    ),
    "Server CPU limit not a quantity": (
        _server,
        lambda o: _set(o, "spec.podSpec.containers.0.resources.limits.cpu", "two cores"),
        "spec/podSpec/containers/0/resources/limits/cpu",
    ),
    "Server env name twice (list-map)": (
        _server,
        lambda o: o["spec"]["podSpec"]["containers"][0]["env"].append(
            {"name": "CHURN_SERVING_EMIT_FEATURES", "value": "false"}
        ),
        "duplicate entries for list-map keys ['name']",
    ),
    "Server container without name": (
        _server,
        lambda o: _drop(o, "spec.podSpec.containers.1.name"),
        "'name' is a required property",
    ),
    "Pipeline step without name": (
        lambda: render_pipeline(make_spec()),
        lambda o: _drop(o, "spec.steps.1.name"),
        "spec/steps/1: 'name' is a required property",
    ),
    "Pipeline join type not in enum": (
        lambda: render_pipeline(make_spec()),
        lambda o: _set(o, "spec.steps.1.inputsJoinType", "sometimes"),
        "spec/steps/1/inputsJoinType",
    ),
    "object name not DNS-1123": (
        lambda: render_drift_model(make_spec()),
        lambda o: _set(o, "metadata.name", "Churn_Drift"),
        "metadata/name",
    ),
    "label value too long": (
        lambda: render_model(make_spec()),
        lambda o: o["metadata"]["labels"].update({"app.kubernetes.io/version": "v" * 64}),
        "metadata/labels",
    ),
    "SeldonDeployment graph without name": (
        _v1,
        lambda o: _drop(o, "spec.predictors.0.graph.name"),
        "'name' is a required property",
    ),
    "SeldonDeployment PDB not int-or-string": (
        _v1,
        lambda o: _set(o, "spec.predictors.0.componentSpecs.0.pdbSpec.maxUnavailable", 1.5),
        "1.5 is neither an integer nor a string",
    ),
    "SeldonDeployment port twice (list-map)": (
        _v1,
        lambda o: _v1_container(o)["ports"].append({"name": "http2", "containerPort": 9000}),
        "duplicate entries for list-map keys ['containerPort', 'protocol']",
    ),
    "no kind": (
        lambda: render_pipeline(make_spec()),
        lambda o: _drop(o, "kind"),
        "'kind' is a required property",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_validation_bites_on_broken_objects(
    case: str, seldon_crds: dict[tuple[str, str], Crd]
) -> None:
    render, breaker, expected = BROKEN[case]
    obj = render()
    crd = crd_for(seldon_crds, obj)
    assert crd.errors(obj) == []  # valid before
    breaker(obj)
    errors = crd.errors(obj)
    assert errors, f"{case}: the broken object validated"
    assert any(expected in e for e in errors), errors


# ------------------------------------------------------------------ properties


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container an object defines (Server podSpec overrides included)."""
    if obj["kind"] == "Server":
        return list(obj["spec"]["podSpec"]["containers"])
    if obj["kind"] == "SeldonDeployment":
        return [
            c
            for p in obj["spec"]["predictors"]
            for cs in p["componentSpecs"]
            for c in cs["spec"]["containers"]
        ]
    return []


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] == "Server":
        return [obj["spec"]["podSpec"]]
    if obj["kind"] == "SeldonDeployment":
        return [cs["spec"] for p in obj["spec"]["predictors"] for cs in p["componentSpecs"]]
    return []


WITH_PODS = [
    (label, obj) for label, obj in OBJECTS if obj["kind"] in ("Server", "SeldonDeployment")
]


@pytest.mark.parametrize(("label", "obj"), WITH_PODS, ids=[label for label, _ in WITH_PODS])
def test_containers_are_pinned_non_root_limited_and_probed_on_mlserver_health(
    label: str, obj: dict[str, Any]
) -> None:
    found = containers(obj)
    assert found
    for pod in pod_specs(obj):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["serviceAccountName"] == "churn-serving"
    images = [c["image"] for c in found if "image" in c]
    assert images == [IMAGE]  # one image: ours, pinned (not latest)
    for c in found:
        security = c["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] != 0, c["name"]
        assert security["allowPrivilegeEscalation"] is False, c["name"]
        assert security["capabilities"]["drop"] == ["ALL"], c["name"]
        limits = c["resources"]["limits"]
        assert limits.get("cpu") and limits.get("memory"), c["name"]
    served = [c for c in found if "image" in c]
    for c in served:
        ports = {p["name"] for p in c.get("ports", [])}
        probes = [c[k] for k in ("startupProbe", "readinessProbe", "livenessProbe")]
        assert c["readinessProbe"]["httpGet"]["path"] == HEALTH_READY
        assert c["livenessProbe"]["httpGet"]["path"] == HEALTH_LIVE
        for probe in probes:
            assert probe["httpGet"]["path"] in (HEALTH_READY, HEALTH_LIVE)
            port = probe["httpGet"]["port"]
            # v1: a port the container declares; v2: the ServerConfig's MLServer port
            assert port in ports or (obj["kind"] == "Server" and port == SERVER_HTTP_PORT_NAME)


@pytest.mark.parametrize(("label", "obj"), WITH_PODS, ids=[label for label, _ in WITH_PODS])
def test_no_secret_is_ever_a_plain_value(
    label: str, obj: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for c in containers(obj):
        for env in c.get("env", []):
            if SECRETISH.search(env["name"]):
                assert "value" not in env, env
                assert set(env["valueFrom"]) == {"secretKeyRef"}, env
    # rendering reads no secret from the environment: set one, render, search for it
    monkeypatch.setenv("CHURN_REDIS_PASSWORD", LEAKED_PASSWORD)
    for factory in SPECS.values():
        spec = factory()
        text = to_yaml([*seldon_v2_objects(spec), *seldon_v1_objects(spec)])
        assert LEAKED_PASSWORD not in text


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_rendered_environment_names_are_real_settings() -> None:
    """A misspelt variable would silently do nothing: every name must be read by someone."""
    churn_fields = set(ServingSettings.model_fields)
    mlserver_fields = set(Settings.model_fields)
    model_fields = set(ModelSettings.model_fields) | set(ModelParameters.model_fields)
    aliases = {"implementation"}  # ModelSettings.implementation_ is read as "implementation"
    spec = make_spec()
    server_env = _env(render_server(spec)["spec"]["podSpec"]["containers"][0])
    v1_env = _env(_v1_container(seldon_v1_objects(spec)[0]))
    for name in {*server_env, *v1_env}:
        if name.startswith("CHURN_SERVING_"):
            assert name.removeprefix("CHURN_SERVING_").lower() in churn_fields, name
        elif name.startswith("MLSERVER_MODEL_"):
            assert name.removeprefix("MLSERVER_MODEL_").lower() in model_fields | aliases, name
        elif name.startswith("MLSERVER_"):
            assert name.removeprefix("MLSERVER_").lower() in mlserver_fields, name
        else:
            assert name == "CHURN_REDIS_PASSWORD", name


def test_the_pipeline_wires_the_models_the_server_hosts() -> None:
    spec = make_spec(drift_batch_size=50, drift_batch_window_ms=30_000)
    server, model, drift, pipeline = seldon_v2_objects(spec)
    assert [o["kind"] for o in (server, model, drift, pipeline)] == [
        "Server", "Model", "Model", "Pipeline"
    ]  # fmt: skip
    capabilities = set(server["spec"]["extraCapabilities"])
    for m in (model, drift):
        assert m["spec"]["server"] == server["metadata"]["name"]
        assert set(m["spec"]["requirements"]) <= capabilities == {CAPABILITY}
    assert model["spec"]["storageUri"] == spec.bundle_uri
    assert drift["spec"]["storageUri"] == spec.drift_uri
    assert drift["spec"]["replicas"] == 1
    assert drift["metadata"]["name"] == drift_model_name(spec.model_name)  # the runtime's name
    steps = pipeline["spec"]["steps"]
    assert [s["name"] for s in steps] == [model["metadata"]["name"], drift["metadata"]["name"]]
    assert steps[1]["inputs"] == ["churn.outputs"]
    assert steps[1]["batch"] == {"size": 50, "windowMs": 30_000}
    # drift is off the client's path, and the client gets predictions, not feature tensors
    assert pipeline["spec"]["output"] == {"steps": [f"churn.outputs.{name}" for name, _ in OUTPUTS]}
    mlserver = server["spec"]["podSpec"]["containers"][0]
    assert mlserver["name"] == MLSERVER_CONTAINER
    assert [c["name"] for c in server["spec"]["podSpec"]["containers"][1:]] == list(
        SIDECAR_CONTAINERS
    )
    env = _env(mlserver)
    assert env["CHURN_SERVING_EMIT_FEATURES"] == "true"
    assert env["CHURN_SERVING_DRIFT_ENABLED"] == "false"
    assert env["CHURN_REDIS_PASSWORD"] == {
        "secretKeyRef": {"name": "churn-redis", "key": "password"}
    }
    assert mlserver["envFrom"] == [{"configMapRef": {"name": "churn-serving"}}]
    assert model["metadata"]["annotations"]["churn-mlops/feature-service"] == "churn_service_v1"


def test_a_new_model_version_leaves_the_server_untouched() -> None:
    """Seldon copies the Server's labels into its pod template: anything version-bound
    there restarts every Server pod on each deploy. The version is the Models' annotation."""
    old, new = (
        make_spec(model_version="churn-classifier-v3"),
        make_spec(model_version="churn-classifier-v4"),
    )
    assert render_server(old) == render_server(new)
    for obj in seldon_v2_objects(new) + seldon_v1_objects(new):
        labels = obj["metadata"]["labels"]
        assert "app.kubernetes.io/version" not in labels, obj["kind"]
        assert "churn-classifier-v4" not in labels.values(), obj["kind"]
    for model in (render_model(new), render_drift_model(new)):
        assert model["metadata"]["annotations"]["churn-mlops/model-version"] == (
            "churn-classifier-v4"
        )


def test_the_drift_step_is_batched_and_the_client_gets_only_the_predictions() -> None:
    """Seldon's drift samples batch the detector step; without narrowing, the Pipeline
    would answer with every tensor of the churn step, the emitted feature rows too."""
    (drift_step,) = [s for s in render_pipeline(make_spec())["spec"]["steps"] if "inputs" in s]
    assert drift_step["batch"] == {"size": 20, "windowMs": 60_000}  # the spec's defaults
    for spec in (make_spec(), make_spec(drift_uri=None)):
        refs = render_pipeline(spec)["spec"]["output"]["steps"]
        assert [r.split(".outputs.") for r in refs] == [["churn", n] for n, _ in OUTPUTS]
        assert not {r.rsplit(".", 1)[1] for r in refs} & set(model_input_names())
    with pytest.raises(SpecError, match="drift_batch_size"):
        make_spec(drift_batch_size=0)


def test_without_a_drift_model_the_churn_runtime_checks_drift_itself() -> None:
    spec = make_spec(drift_uri=None)
    objects = seldon_v2_objects(spec)
    assert [o["kind"] for o in objects] == ["Server", "Model", "Pipeline"]
    assert objects[2]["spec"]["steps"] == [{"name": "churn"}]
    env = _env(objects[0]["spec"]["podSpec"]["containers"][0])
    assert env["CHURN_SERVING_EMIT_FEATURES"] == "false"
    assert env["CHURN_SERVING_DRIFT_ENABLED"] == "true"
    with pytest.raises(SpecError, match="drift_uri"):
        render_drift_model(spec)


@pytest.mark.parametrize(("label", "obj"), WITH_PODS, ids=[label for label, _ in WITH_PODS])
def test_containers_have_a_read_only_root_and_an_empty_dir_for_what_they_write(
    label: str, obj: dict[str, Any]
) -> None:
    for pod in pod_specs(obj):
        empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, c["name"]
            kind = MLSERVER_CONTAINER if "image" in c else c["name"]  # v1: named after model
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            for volume, (path, _) in WRITABLE[kind].items():
                assert mounts.get(path) == volume and volume in empty_dirs, (c["name"], path)
            written = [e["value"] for e in c.get("env", []) if e["name"] == "MLSERVER_METRICS_DIR"]
            for path in written:
                assert any(path.startswith(m + "/") for m in mounts), (c["name"], path)


def test_the_v1_alternative_serves_the_bundle_from_the_storage_initializer() -> None:
    (sdep,) = seldon_v1_objects(make_spec())
    assert sdep["spec"]["protocol"] == "v2"
    predictor = sdep["spec"]["predictors"][0]
    assert predictor["graph"]["modelUri"] == f"{BUCKET}/bundle"
    container = _v1_container(sdep)
    assert container["name"] == predictor["graph"]["name"] == "churn"
    env = _env(container)
    assert env["MLSERVER_MODEL_URI"] == "/mnt/models"
    assert env["MLSERVER_MODEL_IMPLEMENTATION"] == "serving.runtime.ChurnRuntime"
    assert env["CHURN_SERVING_DRIFT_ENABLED"] == "true"  # no Pipeline in v1
    assert env["CHURN_SERVING_EMIT_FEATURES"] == "false"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": int(env["MLSERVER_HTTP_PORT"]),
        "grpc": int(env["MLSERVER_GRPC_PORT"]),
        "metrics": int(env["MLSERVER_METRICS_PORT"]),
    }
    hpa = predictor["componentSpecs"][0]["hpaSpec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 4)


def test_models_name_the_storage_secrets_seldon_reads_rclone_from() -> None:
    """Without a remote named like the storageUri's scheme nothing downloads: every v2
    Model names the Secret holding rclone_remote(), v1's graph the env Secret."""
    spec = make_spec()
    server, model, drift, _ = seldon_v2_objects(spec)
    for m in (model, drift):
        assert m["spec"]["storageUri"].startswith(f"{RCLONE_REMOTE}://")
        assert m["spec"]["secretName"] == RCLONE_SECRET
    secret = render_rclone_secret(spec, rclone_remote())
    assert secret["metadata"] == {
        "name": RCLONE_SECRET, "namespace": NAMESPACE,
        "labels": {"app.kubernetes.io/component": "model-storage",
                   "app.kubernetes.io/part-of": "churn-mlops"},
    }  # fmt: skip
    (value,) = secret["stringData"].values()  # the agent wants exactly one key
    assert json.loads(value) == {
        "name": "s3", "type": "s3", "parameters": {"provider": "AWS", "env_auth": "true"}
    }  # fmt: skip
    minio = rclone_remote(endpoint="http://minio:9000", access_key_id="k", secret_access_key="s")
    assert minio["parameters"] == {"provider": "Minio", "env_auth": "false",
                                   "endpoint": "http://minio:9000",
                                   "access_key_id": "k", "secret_access_key": "s"}  # fmt: skip
    with pytest.raises(ValueError, match="endpoint"):
        rclone_remote(access_key_id="k", secret_access_key="s")
    (sdep,) = seldon_v1_objects(spec)
    assert sdep["spec"]["predictors"][0]["graph"]["envSecretRefName"] == RCLONE_ENV_SECRET
    env = render_rclone_env_secret(spec, rclone_remote(region="eu-west-1"))["stringData"]
    assert env == {"RCLONE_CONFIG_S3_TYPE": "s3", "RCLONE_CONFIG_S3_PROVIDER": "AWS",
                   "RCLONE_CONFIG_S3_ENV_AUTH": "true",
                   "RCLONE_CONFIG_S3_REGION": "eu-west-1"}  # fmt: skip
    rclone = server["spec"]["podSpec"]["containers"][2]
    assert rclone["name"] == "rclone"
    assert rclone["env"] == [{"name": "RCLONE_S3_REGION", "valueFrom": {"configMapKeyRef": {
        "name": "churn-serving", "key": "AWS_REGION", "optional": True}}}]  # fmt: skip
    with pytest.raises(SpecError, match="storage_secret"):
        render_rclone_secret(make_spec(storage_secret=None), rclone_remote())


# ------------------------------------------------------------------ the spec refuses


REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "latest tag": ({"image": "ecr.example.com/churn:latest"}, "image"),
    "Latest tag": ({"image": "ecr.example.com/churn:Latest"}, "image"),
    "untagged image": ({"image": "ecr.example.com/churn"}, "image"),
    "registry port, no tag": ({"image": "registry.local:5000/churn"}, "image"),
    "not an image": ({"image": "Churn Image:1"}, "image"),
    "http bundle": ({"bundle_uri": "http://bucket/x"}, "bundle_uri"),
    "credentials in uri": ({"bundle_uri": "s3://key:secret@bucket/x"}, "bundle_uri"),
    "signed url": ({"drift_uri": "s3://bucket/x?X-Amz-Signature=abc"}, "drift_uri"),
    "drift = bundle": ({"drift_uri": f"{BUCKET}/bundle/"}, "drift_uri"),
    "plain password env": ({"env": {"CHURN_REDIS_PASSWORD": "x"}}, "env['CHURN_REDIS_PASSWORD']"),
    "token env": ({"env": {"API_TOKEN": "x"}}, "env['API_TOKEN']"),
    "password in a value": ({"env": {"CHURN_X": "host:1,password=x"}}, "env['CHURN_X']"),
    "url with userinfo": ({"env": {"CHURN_X": "redis://u:p@host:6379"}}, "env['CHURN_X']"),
    "rendered name": ({"env": {"CHURN_SERVING_EMIT_FEATURES": "false"}}, "env"),
    "bad env name": ({"env": {"1X": "y"}}, "env['1X']"),
    "limit below request": (
        {"resources": Resources("2", "1Gi", "1", "2Gi")},
        "resources.cpu_request",
    ),
    "bad quantity": ({"resources": Resources("1", "1 GB", "2", "2Gi")}, "resources.memory_request"),
    "models do not fit": ({"model_memory": "2Gi"}, "model_memory"),
    "replicas out of order": ({"min_replicas": 3, "replicas": 2}, "replicas"),
    "namespace not DNS": ({"namespace": "Churn"}, "namespace"),
    "name too long for drift": ({"model_name": "c" * 60}, "model_name"),
    "root": ({"run_as_user": 0}, "run_as_user"),
    "tiny window": ({"drift_window": 5}, "drift_window"),
    "version not a label": ({"model_version": "v3 final"}, "model_version"),
    # the storage Secrets hold the rclone remote "s3": a gs:// bundle would not download
    "gs bundle with the s3 remote": ({"bundle_uri": "gs://bucket/x"}, "bundle_uri"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_the_spec_refuses_unsafe_or_wrong_values_naming_the_field(case: str) -> None:
    overrides, field_name = REFUSED[case]
    with pytest.raises(SpecError) as info:
        make_spec(**overrides)
    assert info.value.field.startswith(field_name), info.value
    assert f"SeldonDeploymentSpec.{info.value.field}" in str(info.value)


@pytest.mark.parametrize(
    "image",
    [
        f"ghcr.io/acme/churn@sha256:{'a' * 64}",
        "churn-serving:5000",  # a numeric tag, not a port
        "registry.local:5000/team/churn-serving:1.2.0-rc1",
    ],
)
def test_pinned_images_are_accepted(image: str) -> None:
    spec = make_spec(image=image)
    assert render_server(spec)["spec"]["podSpec"]["containers"][0]["image"] == image


def test_spec_for_a_bundle_takes_name_version_and_service_from_its_manifest() -> None:
    manifest = BundleManifest(
        model_name="churn",
        model_version="churn-classifier-v7",
        model_kind="xgboost",
        threshold=0.3,
        feature_service="churn_service_v2",
        schema_fingerprint="x",
        feature_order=(),
        files={},
        has_drift_detector=False,
        created_at="",
        metadata={},
    )
    spec = SeldonDeploymentSpec.for_bundle(
        manifest, namespace=NAMESPACE, image=IMAGE, bundle_uri=f"{BUCKET}/bundle", drift_uri=None,
        replicas=3, max_replicas=5,
    )  # fmt: skip
    assert (spec.model_version, spec.feature_service, spec.replicas) == (
        "churn-classifier-v7", "churn_service_v2", 3
    )  # fmt: skip
    with pytest.raises(SpecError, match="no drift detector"):
        SeldonDeploymentSpec.for_bundle(
            manifest, namespace=NAMESPACE, image=IMAGE, bundle_uri=f"{BUCKET}/bundle",
            drift_uri=f"{BUCKET}/drift-model",
        )  # fmt: skip
    with pytest.raises(SpecError, match="not a field"):
        SeldonDeploymentSpec.for_bundle(
            manifest, namespace=NAMESPACE, image=IMAGE, bundle_uri=f"{BUCKET}/b", drift_uri=None,
            replica=2,
        )  # fmt: skip


# ------------------------------------------------------------------ applying


@dataclass
class Received:
    """One request the fake API server got."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: dict[str, Any] | None
    content_type: str | None


@dataclass
class KubeState:
    """What the fake API server stores and how it misbehaves on purpose."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # item path -> object
    received: list[Received] = field(default_factory=list)
    forbidden: set[str] = field(default_factory=set)  # object names answered 403
    races: set[str] = field(default_factory=set)  # names whose next replace meets a change
    lock: threading.Lock = field(default_factory=threading.Lock)


COLLECTION = re.compile(r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/[^/]+/[^/]+$")


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
            "message": message, "code": code}  # fmt: skip


def make_handler(state: KubeState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """POST a collection, GET/PUT an item; 201/409/404/403/200 like the API server."""

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _answer(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> tuple[str, dict[str, Any] | None]:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            state.received.append(
                Received(self.command, url.path, parse_qs(url.query), body,
                         self.headers.get("Content-Type"))
            )  # fmt: skip
            return url.path, body

        def do_POST(self) -> None:
            path, body = self._record()
            assert body is not None
            name = body["metadata"]["name"]
            with state.lock:
                if name in state.forbidden:
                    return self._answer(403, status_body(403, "Forbidden", f"cannot create {name}"))
                item = f"{path}/{name}"
                if item in state.objects:
                    return self._answer(
                        409, status_body(409, "AlreadyExists", f'"{name}" already exists')
                    )
                stored = {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}}
                if "dryRun" not in parse_qs(urlsplit(self.path).query):
                    state.objects[item] = stored
            self._answer(201, stored)

        def do_GET(self) -> None:
            path, _ = self._record()
            with state.lock:
                stored = state.objects.get(path)
            if stored is None:
                return self._answer(404, status_body(404, "NotFound", f"{path} not found"))
            self._answer(200, stored)

        def do_PUT(self) -> None:
            path, body = self._record()
            assert body is not None
            with state.lock:
                stored = state.objects[path]
                name = body["metadata"]["name"]
                if name in state.races:  # someone else wrote it after our GET
                    state.races.discard(name)
                    stored["metadata"]["resourceVersion"] = str(
                        int(stored["metadata"]["resourceVersion"]) + 1
                    )
                if body["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
                    return self._answer(409, status_body(409, "Conflict", "object was modified"))
                version = str(int(stored["metadata"]["resourceVersion"]) + 1)
                new = {**body, "metadata": {**body["metadata"], "resourceVersion": version}}
                state.objects[path] = new
            self._answer(200, new)

    return Handler


@dataclass
class FakeKube:
    state: KubeState
    api_client: ApiClient
    url: str


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    """A real HTTP server on 127.0.0.1 with the API paths apply_manifests uses."""
    state = KubeState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    configuration = Configuration(host=url)
    api_client = ApiClient(configuration)
    try:
        yield FakeKube(state, api_client, url)
    finally:
        api_client.close()
        server.shutdown()
        server.server_close()
        thread.join(5)


V2_BASE = f"/apis/mlops.seldon.io/v1alpha1/namespaces/{NAMESPACE}"


def test_first_apply_creates_each_object_in_order_with_the_exact_body(kube: FakeKube) -> None:
    objects = seldon_v2_objects(make_spec())
    results = apply_manifests(objects, kube.api_client, namespace=NAMESPACE)
    received = kube.state.received
    assert [(r.method, r.path) for r in received] == [
        ("POST", f"{V2_BASE}/servers"),
        ("POST", f"{V2_BASE}/models"),
        ("POST", f"{V2_BASE}/models"),
        ("POST", f"{V2_BASE}/pipelines"),
    ]
    for r, obj in zip(received, objects, strict=True):
        assert r.body == obj  # exactly the rendered object (namespace already in it)
        assert r.body is not None and r.body["apiVersion"] == "mlops.seldon.io/v1alpha1"
        assert r.query == {"fieldManager": ["churn-mlops"]}
        assert r.content_type == "application/json"
    assert [(x.kind, x.name, x.action, x.resource_version) for x in results] == [
        ("Server", "churn-mlserver", "created", "1"),
        ("Model", "churn", "created", "1"),
        ("Model", "churn-drift", "created", "1"),
        ("Pipeline", "churn-pipeline", "created", "1"),
    ]
    assert results[1].path == f"{V2_BASE}/models"
    assert results[1].body == objects[1]
    assert f"{V2_BASE}/models/churn" in kube.state.objects


def test_a_second_apply_replaces_at_the_live_resource_version(kube: FakeKube) -> None:
    apply_manifests(seldon_v2_objects(make_spec()), kube.api_client, namespace=NAMESPACE)
    kube.state.received.clear()
    newer = seldon_v2_objects(make_spec(model_version="churn-classifier-v4"))
    results = apply_manifests(newer, kube.api_client, namespace=NAMESPACE)
    model_path = f"{V2_BASE}/models/churn"
    calls = [(r.method, r.path) for r in kube.state.received]
    assert calls[3:6] == [
        ("POST", f"{V2_BASE}/models"),  # 409 AlreadyExists
        ("GET", model_path),
        ("PUT", model_path),
    ]
    assert len(calls) == 12  # POST, GET, PUT for each of the four objects
    put = kube.state.received[5]
    assert put.body is not None
    assert put.body["metadata"]["resourceVersion"] == "1"
    assert put.body["metadata"]["annotations"]["churn-mlops/model-version"] == "churn-classifier-v4"
    assert put.query == {"fieldManager": ["churn-mlops"]}
    assert {x.action for x in results} == {"replaced"}
    assert results[1].resource_version == "2"
    assert results[1].body == put.body
    stored = kube.state.objects[model_path]
    assert stored["metadata"]["annotations"]["churn-mlops/model-version"] == "churn-classifier-v4"


def test_a_replace_that_loses_a_race_reads_again_and_retries(kube: FakeKube) -> None:
    spec = make_spec()
    apply_manifests([render_model(spec)], kube.api_client, namespace=NAMESPACE)
    kube.state.received.clear()
    kube.state.races.add("churn")
    (result,) = apply_manifests([render_model(spec)], kube.api_client, namespace=NAMESPACE)
    assert [r.method for r in kube.state.received] == ["POST", "GET", "PUT", "GET", "PUT"]
    first_put, second_put = kube.state.received[2], kube.state.received[4]
    assert first_put.body is not None and second_put.body is not None
    assert first_put.body["metadata"]["resourceVersion"] == "1"
    assert second_put.body["metadata"]["resourceVersion"] == "2"
    assert (result.action, result.resource_version) == ("replaced", "3")


def test_a_forbidden_object_stops_the_run_with_an_error_naming_it(kube: FakeKube) -> None:
    kube.state.forbidden.add("churn-drift")
    objects = seldon_v2_objects(make_spec())
    with pytest.raises(DeploymentError) as info:
        apply_manifests(objects, kube.api_client, namespace=NAMESPACE)
    error = info.value
    assert (error.kind, error.name, error.namespace, error.status) == (
        "Model", "churn-drift", NAMESPACE, 403
    )  # fmt: skip
    assert "create Model/churn-drift" in str(error) and "HTTP 403" in str(error)
    assert "cannot create churn-drift" in str(error)  # the API server's own message
    assert isinstance(error.__cause__, ApiException)
    # applied in order: what came before is there, the Pipeline was never sent
    assert [r.path for r in kube.state.received][-1] == f"{V2_BASE}/models"
    assert not any(r.path.endswith("/pipelines") for r in kube.state.received)


def test_dry_run_is_sent_to_the_server_and_persists_nothing(kube: FakeKube) -> None:
    (sdep,) = seldon_v1_objects(make_spec())
    results = apply_manifests([sdep], kube.api_client, namespace=NAMESPACE, dry_run=True)
    (received,) = kube.state.received
    assert received.path == (
        f"/apis/machinelearning.seldon.io/v1/namespaces/{NAMESPACE}/seldondeployments"
    )
    assert received.query == {"dryRun": ["All"], "fieldManager": ["churn-mlops"]}
    assert received.body is not None and received.body["kind"] == "SeldonDeployment"
    assert results[0].dry_run and results[0].action == "created"
    assert kube.state.objects == {}


def test_objects_for_another_namespace_are_refused_before_anything_is_sent(
    kube: FakeKube,
) -> None:
    objects = seldon_v2_objects(make_spec())
    with pytest.raises(ValueError, match="is for namespace 'churn-prod', applying to 'other'"):
        apply_manifests(objects, kube.api_client, namespace="other")
    assert kube.state.received == []
    unknown = {**objects[0], "kind": "Deployment"}
    with pytest.raises(ValueError, match="kind not one of"):
        apply_manifests([unknown], kube.api_client, namespace=NAMESPACE)
    assert kube.state.received == []


def test_an_unreachable_api_server_is_a_deployment_error(kube: FakeKube) -> None:
    configuration = Configuration(host="http://127.0.0.1:9")  # discard port: refused
    configuration.retries = 0
    client = ApiClient(configuration)
    try:
        with pytest.raises(DeploymentError) as info:
            apply_manifests(seldon_v2_objects(make_spec())[:1], client, namespace=NAMESPACE)
    finally:
        client.close()
    assert info.value.status is None
    assert "create Server/churn-mlserver" in str(info.value)


def test_rendered_yaml_round_trips(tmp_path: Path) -> None:
    objects = seldon_v2_objects(make_spec())
    path = tmp_path / "seldon.yaml"
    text = to_yaml(objects)
    path.write_text(text)
    assert list(yaml.safe_load_all(path.read_text())) == objects
    assert "&id" not in text and "*id" not in text  # plain YAML, no anchors
    # containers share no dicts: editing one never edits another
    mlserver, agent, _ = objects[0]["spec"]["podSpec"]["containers"]
    mlserver["securityContext"]["runAsUser"] = 4242
    assert agent["securityContext"]["runAsUser"] == 1000


def test_replace_keeps_the_spec_unchanged_apart_from_the_version(kube: FakeKube) -> None:
    """What the replace sends is the rendered object plus the live resourceVersion only."""
    spec = make_spec()
    apply_manifests([render_server(spec)], kube.api_client, namespace=NAMESPACE)
    changed = replace(spec, replicas=3, max_replicas=6)
    (result,) = apply_manifests([render_server(changed)], kube.api_client, namespace=NAMESPACE)
    sent = dict(result.body)
    assert sent["metadata"].pop("resourceVersion") == "1"
    assert sent == render_server(changed)


# ------------------------------------------------------------------ the containers, run

# The env of the mlserver container in Seldon Core v2's "mlserver" ServerConfig
# (SeldonIO/seldon-core operator/config/serverconfigs/mlserver.yaml): the Server's
# podSpec env is appended to it, so a name set by both takes the Server's value.
SERVER_CONFIG_ENV = {
    "MLSERVER_HTTP_PORT": "9000",
    "MLSERVER_GRPC_PORT": "9500",
    "MLSERVER_MODELS_DIR": "/mnt/agent/models",
    "MLSERVER_MODEL_PARALLEL_WORKERS": "1",
    "MLSERVER_LOAD_MODELS_AT_STARTUP": "false",
}


@dataclass
class Running:
    """A container's command running here as a process."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


def resolve_env(
    container: dict[str, Any], config_map: dict[str, str], secrets: dict[tuple[str, str], str]
) -> dict[str, str]:
    """What the kubelet would give the container: envFrom ConfigMap, then env, in order."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == "churn-serving"
        env.update(config_map)
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[(ref["name"], ref["key"])]
    return env


def run_container(
    command: list[str], env: dict[str, str], http_port: int, probe: str, log: Path
) -> Running:
    """Start `command` (its "python" is this venv's, as on the image's PATH; $(VAR)
    expanded like Kubernetes)."""
    argv = [sys.executable if a == "python" else a for a in command]
    argv = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in argv]
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env={**base, **env}, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    running = Running(process, f"http://127.0.0.1:{http_port}", log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{argv} exited {process.returncode}:\n{running.tail()}")
        try:
            if requests.get(running.url + probe, timeout=1).status_code == 200:
                return running
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    stop_container(running)
    raise AssertionError(f"{probe} not 200 after 90 s:\n{running.tail()}")


def stop_container(running: Running) -> None:
    """SIGTERM our own process (MLServer shuts down cleanly), SIGKILL if it lingers."""
    running.process.terminate()
    try:
        running.process.wait(15)
    except subprocess.TimeoutExpired:
        running.process.kill()
        running.process.wait(5)


def seldon_agent_install(folder: Path, models_dir: Path, name: str, version: int) -> str:
    """Put an artifact where Seldon's agent would, rewriting model-settings.json as it does.

    The agent (scheduler/pkg/agent/repository/mlserver) re-marshals the file through a
    struct with only name, platform, versions, parallel_workers, implementation and
    parameters {uri, version, format, content_type, extra{infer_uri, explainer_type,
    init_parameters}}: everything else is dropped. Served name: <model>_<version>.
    """
    served = f"{name}_{version}"
    target = models_dir / served
    shutil.copytree(folder, target)
    original = json.loads((target / "model-settings.json").read_text())
    parameters = {
        k: original["parameters"][k]
        for k in ("uri", "format", "content_type")
        if k in original.get("parameters", {})
    }
    rewritten = {
        "name": served,
        "parallel_workers": original.get("parallel_workers", 0),
        "implementation": original["implementation"],
        "parameters": {**parameters, "version": str(version), "extra": {}},
    }
    (target / "model-settings.json").write_text(json.dumps(rewritten))
    return served


@pytest.fixture(scope="module")
def artifacts(serving_env: ServingEnv, churn_model: Pipeline, drift_detector_dir: Path) -> Path:
    """The bundle and its drift model folder, as the deployment step uploads them."""
    root = serving_env.settings.home / "seldon-artifacts"
    make_bundle(root / "bundle", churn_model, "3", drift_detector_dir)
    build_drift_model(root / "bundle", root / "drift-model")
    return root


def cluster_config(env: ServingEnv) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """The ConfigMap and Secret the k8s/ overlays provide, pointing at this test's Redis."""
    s = env.settings
    config_map = {
        "CHURN_HOME": str(s.home),
        "CHURN_REDIS_HOST": s.redis_host,
        "CHURN_REDIS_PORT": str(s.redis_port),
        "CHURN_REDIS_DB": str(s.redis_db),
    }
    secrets = {("churn-redis", "password"): s.redis_password.get_secret_value()}
    return config_map, secrets


@pytest.mark.integration
def test_the_v2_server_container_serves_the_pipeline_chain(
    serving_env: ServingEnv, artifacts: Path, tmp_path: Path
) -> None:
    """The rendered Server's mlserver container, merged with the ServerConfig, run here:
    models installed as Seldon's agent installs them, churn -> drift as the Pipeline."""
    spec = make_spec(feature_store_yaml="feature_store.yaml", drift_window=100)
    server, model, drift, pipeline = seldon_v2_objects(spec)
    container = server["spec"]["podSpec"]["containers"][0]
    config_map, secrets = cluster_config(serving_env)
    env = {**SERVER_CONFIG_ENV, **resolve_env(container, config_map, secrets)}
    assert env["MLSERVER_MODEL_PARALLEL_WORKERS"] == "0"  # ours wins over the ServerConfig's
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    env.update(  # what differs on this machine: free ports, a local models dir
        MLSERVER_HTTP_PORT=str(http := free_port()), MLSERVER_GRPC_PORT=str(free_port()),
        MLSERVER_METRICS_PORT=str(free_port()), MLSERVER_MODELS_DIR=str(models_dir),
    )  # fmt: skip
    root = tmp_path / "srv-mlserver"  # the emptyDir at V1_SERVER_ROOT
    env = {k: v.replace(V1_SERVER_ROOT, str(root)) for k, v in env.items()}
    served = {
        m["metadata"]["name"]: seldon_agent_install(
            artifacts / Path(m["spec"]["storageUri"]).name, models_dir, m["metadata"]["name"], 1
        )
        for m in (model, drift)
    }
    assert container["readinessProbe"]["httpGet"]["port"] == SERVER_HTTP_PORT_NAME
    running = run_container(
        container["command"], env, http, container["readinessProbe"]["httpGet"]["path"],
        tmp_path / "mlserver.log",
    )  # fmt: skip
    try:
        url = running.url
        assert requests.get(url + container["livenessProbe"]["httpGet"]["path"]).status_code == 200
        for name in served.values():  # the agent loads each model through the repository API
            response = requests.post(f"{url}/v2/repository/models/{name}/load", timeout=60)
            assert response.status_code == 200, f"{name}: {response.text}\n{running.tail()}"
        ids = load_telco(serving_env.telco_csv)[ENTITY_KEY].tolist()[:250]
        churn_step, drift_step = (s["name"] for s in pipeline["spec"]["steps"])
        request = {
            "inputs": [{"name": ENTITY_KEY, "shape": [250], "datatype": "BYTES", "data": ids}]
        }
        first = requests.post(f"{url}/v2/models/{served[churn_step]}/infer", json=request)
        assert first.status_code == 200, first.text
        churn_out = first.json()["outputs"]
        names = [o["name"] for o in churn_out]
        assert names[:4] == ["churn_probability", "churn_label", "model_version",
                             "feature_event_time"]  # fmt: skip
        assert names[4:] == model_input_names()  # emitted because of the Server's env
        # what the Pipeline answers the client: Seldon's dataflow keeps the churn step's
        # tensors named in output.steps (StreamTransforms.kt filterResponse), so the
        # predictions and none of the emitted feature rows
        wanted = [ref.split(".outputs.", 1) for ref in pipeline["spec"]["output"]["steps"]]
        assert {step for step, _ in wanted} == {churn_step}
        kept = [n for n in names if n in {tensor for _, tensor in wanted}]
        assert kept == names[:4]
        # "<churn>.outputs" become the drift step's inputs
        second = requests.post(
            f"{url}/v2/models/{served[drift_step]}/infer",
            json={"inputs": [{k: o[k] for k in ("name", "shape", "datatype", "data")}
                             for o in churn_out]},
        )  # fmt: skip
        assert second.status_code == 200, second.text
        verdicts = {o["name"]: o["data"] for o in second.json()["outputs"]}
        assert verdicts["n_rows"] == [100, 100]  # CHURN_SERVING_DRIFT_WINDOW from the spec
        assert second.json()["model_version"] == "3"
        # drift is the drift model's job here, not the churn runtime's background monitor
        own = requests.get(f"{url}/v2/models/{served[churn_step]}/drift").json()
        assert own["enabled"] is False and "CHURN_SERVING_DRIFT_ENABLED" in own["reason"]
        status = requests.get(f"{url}/v2/models/{served[drift_step]}/drift").json()
        assert status["windows_checked"] == 2 and status["rows_pending"] == 50
    finally:
        stop_container(running)


@pytest.mark.integration
def test_the_v1_container_serves_the_bundle_configured_by_env_alone(
    serving_env: ServingEnv, artifacts: Path, tmp_path: Path
) -> None:
    """The SeldonDeployment's container run here: MLServer on an empty folder, the model
    from MLSERVER_MODEL_* with the bundle where the storage initializer puts it."""
    (sdep,) = seldon_v1_objects(make_spec(feature_store_yaml="feature_store.yaml"))
    container = _v1_container(sdep)
    config_map, secrets = cluster_config(serving_env)
    env = resolve_env(container, config_map, secrets)
    root = tmp_path / "srv-mlserver"  # the emptyDir
    root.mkdir()
    paths = {V1_SERVER_ROOT: str(root), V1_MODEL_DIR: str(artifacts / "bundle")}
    for name, value in env.items():
        for container_path, local in paths.items():
            value = value.replace(container_path, local)
        env[name] = value
    ports = {p["name"]: free_port() for p in container["ports"]}
    env.update(
        MLSERVER_HTTP_PORT=str(ports["http"]), MLSERVER_GRPC_PORT=str(ports["grpc"]),
        MLSERVER_METRICS_PORT=str(ports["metrics"]),
    )  # fmt: skip
    command = [paths.get(a, a) for a in container["command"]]
    probe = container["readinessProbe"]["httpGet"]
    running = run_container(
        command, env, ports[probe["port"]], probe["path"], tmp_path / "mlserver.log"
    )
    try:
        url = running.url
        live = container["livenessProbe"]["httpGet"]
        assert requests.get(f"http://127.0.0.1:{ports[live['port']]}{live['path']}").ok
        customer = load_telco(serving_env.telco_csv)[ENTITY_KEY].iloc[0]
        request = {"inputs": [{"name": ENTITY_KEY, "shape": [1], "datatype": "BYTES",
                               "data": [customer]}]}  # fmt: skip
        response = requests.post(f"{url}/v2/models/churn/infer", json=request)
        assert response.status_code == 200, f"{response.text}\n{running.tail()}"
        names = [o["name"] for o in response.json()["outputs"]]
        assert "churn_probability" in names and "contract" not in names  # no emission in v1
        assert requests.get(f"{url}/v2/models/churn/drift").json()["enabled"] is True
        assert not any(root.glob("*.json"))  # nothing but the metrics dir in the root
    finally:
        stop_container(running)
