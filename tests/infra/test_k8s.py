"""k8s/: every overlay renders, validates, and has the properties that matter.

- `kubectl kustomize` renders each overlay (kind, eks, seldon-v1), offline.
- Core kinds validate against the Kubernetes 1.32 schemas of `kubernetes-validate`
  in strict mode (unknown fields are errors); Seldon objects against the CRDs in
  the Seldon CRDs (tests/inputs.py); ServiceMonitors (no CRD at hand) by their wiring. Each
  validator is shown to REJECT a broken object, so a pass means something.
- Properties, on every pod template (Deployments, StatefulSets, CronJobs, Seldon v2
  Servers, Seldon v1 predictors): non-root, no privilege escalation, limits and
  requests on every container, pinned image tags, probes on MLServer's real health
  endpoints, secrets only by reference, selectors that select what they claim to.
- The Seldon YAML committed under k8s/ is exactly what deployment.seldon renders.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest
import yaml
from infra_support import (
    K8S_DIR,
    KUBERNETES_VERSION,
    OVERLAYS,
    SECRET_VALUE,
    SECRETISH,
    PodSpec,
    containers,
    crd_errors,
    effective,
    env_file,
    ident,
    image_problem,
    is_custom,
    kustomize,
    pod_specs,
)

from deployment.seldon.render import rclone_remote
from deployment.seldon.spec import (
    HEALTH_LIVE,
    HEALTH_READY,
    MLSERVER_CONTAINER,
    RCLONE_CONTAINER,
    RCLONE_ENV_SECRET,
    RCLONE_SECRET,
    SERVER_HTTP_PORT_NAME,
    SIDECAR_CONTAINERS,
)

Rendered = dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    """overlay name -> its rendered objects."""
    return {name: kustomize(K8S_DIR / "overlays" / name) for name in OVERLAYS}


def all_objects(rendered: Rendered) -> list[tuple[str, dict[str, Any]]]:
    return [(overlay, obj) for overlay, objs in rendered.items() for obj in objs]


def by_kind(objs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def all_pods(rendered: Rendered) -> list[tuple[str, PodSpec]]:
    return [(overlay, pod) for overlay, obj in all_objects(rendered) for pod in pod_specs(obj)]


# ------------------------------------------------------------------ rendering


def test_every_overlay_renders_the_whole_platform(rendered: Rendered) -> None:
    common = {
        "Namespace/churn", "ServiceAccount/churn-pipelines", "ServiceAccount/churn-serving",
        "Role/churn-pipelines", "RoleBinding/churn-pipelines", "Deployment/churn-mlflow",
        "CronJob/churn-feast", "ConfigMap/churn-serving", "NetworkPolicy/churn-default-deny",
        "ServiceMonitor/churn-mlserver", "Service/churn-mlserver-metrics",
    }  # fmt: skip
    serving = {
        "kind": {"StatefulSet/churn-redis", "Server/churn-mlserver", "Model/churn",
                 "Model/churn-drift", "Pipeline/churn-pipeline",
                 "PodDisruptionBudget/churn-mlserver"},
        "eks": {"Server/churn-mlserver", "Model/churn", "Model/churn-drift",
                "Pipeline/churn-pipeline", "HorizontalPodAutoscaler/churn-mlflow",
                "PodDisruptionBudget/churn-mlflow", "PodDisruptionBudget/churn-mlserver"},
        "seldon-v1": {"SeldonDeployment/churn", "HorizontalPodAutoscaler/churn-mlflow"},
    }  # fmt: skip
    for overlay, objs in rendered.items():
        names = {ident(o) for o in objs}
        assert common | serving[overlay] <= names, (
            overlay,
            sorted(common | serving[overlay] - names),
        )
        assert len(names) == len(objs), f"{overlay}: duplicate objects"
        namespaced = [o for o in objs if o["kind"] != "Namespace"]
        assert {o["metadata"].get("namespace") for o in namespaced} == {"churn"}, overlay
    # EKS uses ElastiCache; v1 has no v2 objects
    assert "StatefulSet/churn-redis" not in {ident(o) for o in rendered["eks"]}
    assert not {o["kind"] for o in rendered["seldon-v1"]} & {"Server", "Model", "Pipeline"}


# ------------------------------------------------------------------ schemas


def test_core_kinds_validate_against_kubernetes_schemas(rendered: Rendered) -> None:
    checked = 0
    for overlay, obj in all_objects(rendered):
        if is_custom(obj):
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            pytest.fail(f"{overlay}: {ident(obj)} at {path}: {e.message}")
        checked += 1
    assert checked >= 75  # ~25-30 core objects per overlay


def _deployment(rendered: Rendered) -> dict[str, Any]:
    return copy.deepcopy(by_kind(rendered["kind"], "Deployment")["churn-mlflow"])


@pytest.mark.parametrize(
    ("what", "breaker"),
    [
        ("replicas as text", lambda d: d["spec"].__setitem__("replicas", "two")),
        ("misspelt field", lambda d: d["spec"]["template"]["spec"].__setitem__("containerz", [])),
        ("probe port missing", lambda d: d["spec"]["template"]["spec"]["containers"][0]
            ["readinessProbe"]["httpGet"].pop("port")),
    ],
)  # fmt: skip
def test_kubernetes_validation_bites(
    rendered: Rendered, what: str, breaker: Callable[[dict[str, Any]], None]
) -> None:
    broken = _deployment(rendered)
    kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)  # valid as rendered
    breaker(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_seldon_objects_validate_against_the_crds(
    rendered: Rendered, seldon_crds: dict[tuple[str, str], Any]
) -> None:
    seen = set()
    for overlay, obj in all_objects(rendered):
        if obj["apiVersion"].split("/")[0].endswith("seldon.io"):
            assert crd_errors(seldon_crds, obj) == [], f"{overlay}: {ident(obj)}"
            seen.add(obj["kind"])
    assert seen == {"Server", "Model", "Pipeline", "SeldonDeployment"}


@pytest.mark.parametrize(
    ("kind", "breaker", "message"),
    [
        ("Model", lambda o: o["spec"].pop("storageUri"), "'storageUri' is a required property"),
        ("Model", lambda o: o["spec"].__setitem__("replicas", "two"), "is not of type 'integer'"),
        ("Server", lambda o: o["spec"].__setitem__("serverConfigg", "mlserver"),
         "Additional properties are not allowed"),
        ("Pipeline", lambda o: o["spec"].pop("steps"), "'steps' is a required property"),
    ],
)  # fmt: skip
def test_crd_validation_bites(
    rendered: Rendered,
    seldon_crds: dict[tuple[str, str], Any],
    kind: str,
    breaker: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    obj = copy.deepcopy(next(o for o in rendered["eks"] if o["kind"] == kind))
    assert crd_errors(seldon_crds, obj) == []
    breaker(obj)
    errors = crd_errors(seldon_crds, obj)
    assert any(message in e for e in errors), errors


def test_service_monitors_select_a_service_port_that_exists(rendered: Rendered) -> None:
    """No ServiceMonitor CRD is at hand: check its fields and its wiring instead."""
    known = {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings"}
    for overlay, objs in rendered.items():
        services = by_kind(objs, "Service")
        for monitor in by_kind(objs, "ServiceMonitor").values():
            assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
            assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector"}
            wanted = monitor["spec"]["selector"]["matchLabels"]
            targets = [s for s in services.values()
                       if wanted.items() <= s["metadata"].get("labels", {}).items()]  # fmt: skip
            assert len(targets) == 1, (overlay, wanted)
            ports = {p["name"]: p for p in targets[0]["spec"]["ports"]}
            for endpoint in monitor["spec"]["endpoints"]:
                assert set(endpoint) <= known, endpoint
                assert endpoint["port"] in ports, (overlay, endpoint)
                assert endpoint["path"] == "/metrics"
                assert re.fullmatch(r"\d+s", endpoint["interval"])


# ------------------------------------------------------------------ properties


def test_no_container_runs_as_root_or_escalates(rendered: Rendered) -> None:
    for overlay, pod in all_pods(rendered):
        for c in containers(pod):
            where = f"{overlay}: {pod.owner} container {c['name']}"
            assert effective(pod, c, "runAsNonRoot") is True, where
            user = effective(pod, c, "runAsUser")
            assert isinstance(user, int) and user > 0, where
            security = c.get("securityContext") or {}
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("privileged") is not True, where
            assert "ALL" in security.get("capabilities", {}).get("drop", []), where


def test_every_container_has_requests_and_limits(rendered: Rendered) -> None:
    for overlay, pod in all_pods(rendered):
        for c in containers(pod):
            resources = c.get("resources") or {}
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), (
                    f"{overlay}: {pod.owner} container {c['name']} lacks {part}"
                )


def test_images_are_pinned_and_only_seldon_sidecars_have_none(rendered: Rendered) -> None:
    for overlay, pod in all_pods(rendered):
        for c in containers(pod):
            where = f"{overlay}: {pod.owner} container {c['name']}"
            if "image" not in c:
                # merged by name into Seldon's mlserver ServerConfig, which sets the image
                assert pod.kind == "Server" and c["name"] in SIDECAR_CONTAINERS, where
                continue
            assert image_problem(c["image"]) is None, f"{where}: {image_problem(c['image'])}"


def test_eks_images_come_from_ecr_at_the_release_tag(rendered: Rendered) -> None:
    cluster = env_file(K8S_DIR / "components" / "eks" / "cluster.env")
    assert cluster["IMAGE_TAG"].lower() != "latest"
    for overlay in ("eks", "seldon-v1"):
        images = {c["image"] for _, pod in all_pods({overlay: rendered[overlay]})
                  for c in containers(pod) if "image" in c}  # fmt: skip
        assert images == {
            f"{cluster['ECR_REGISTRY']}/churn-mlops-steps:{cluster['IMAGE_TAG']}",
            f"{cluster['ECR_REGISTRY']}/churn-mlops-mlserver:{cluster['IMAGE_TAG']}",
        }, overlay


def _port_number(container: dict[str, Any], port: int | str) -> int | None:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    return named.get(port)


def test_mlserver_probes_point_at_mlservers_health_endpoints(rendered: Rendered) -> None:
    """Readiness on /v2/health/ready (fails until every model is loaded), liveness and
    startup on /v2/health/live, on MLServer's HTTP port."""
    seen = 0
    for overlay, pod in all_pods(rendered):
        if pod.kind not in ("Server", "SeldonDeployment"):
            continue
        for c in pod.spec["containers"]:
            if pod.kind == "Server" and c["name"] != MLSERVER_CONTAINER:
                continue  # agent and rclone: probes come from Seldon's ServerConfig
            where = f"{overlay}: {pod.owner} {c['name']}"
            assert c["readinessProbe"]["httpGet"]["path"] == HEALTH_READY, where
            assert c["livenessProbe"]["httpGet"]["path"] == HEALTH_LIVE, where
            assert c["startupProbe"]["httpGet"]["path"] == HEALTH_LIVE, where
            ports = {
                c[p]["httpGet"]["port"] for p in ("readinessProbe", "livenessProbe", "startupProbe")
            }
            assert len(ports) == 1, where
            port = ports.pop()
            if pod.kind == "Server":
                # the port name of MLServer's HTTP port in Seldon's mlserver ServerConfig
                assert port == SERVER_HTTP_PORT_NAME, where
            else:
                env = {e["name"]: e.get("value") for e in c["env"]}
                assert _port_number(c, port) == int(env["MLSERVER_HTTP_PORT"]), where
            seen += 1
    assert seen == 3  # kind, eks, seldon-v1


def test_long_running_containers_have_probes(rendered: Rendered) -> None:
    for overlay, pod in all_pods(rendered):
        if pod.kind in ("CronJob", "Job"):
            continue
        for c in pod.spec["containers"]:
            if pod.kind == "Server" and c["name"] in SIDECAR_CONTAINERS:
                continue
            for probe in ("readinessProbe", "livenessProbe"):
                assert probe in c, f"{overlay}: {pod.owner} {c['name']} has no {probe}"


def test_no_plaintext_secrets(rendered: Rendered) -> None:
    for overlay, obj in all_objects(rendered):
        where = f"{overlay}: {ident(obj)}"
        if obj["kind"] == "Secret":
            # Seldon reads storage config from Secrets only; these hold no credential
            assert obj["metadata"]["name"] in (RCLONE_SECRET, RCLONE_ENV_SECRET), (
                f"{where}: Secrets are created with kubectl, never rendered"
            )
            values = " ".join([*obj.get("stringData", {}), *obj.get("stringData", {}).values()])
            assert "env_auth" in values.lower() and not re.search(
                r"access_key|secret_access|session_token|password", values, re.I
            ), f"{where} holds a credential"
        if obj["kind"] == "ConfigMap":
            for key, value in obj.get("data", {}).items():
                assert not SECRETISH.search(key), f"{where}: {key}"
                assert not SECRET_VALUE.search(value), f"{where}: {key}"
        for pod in pod_specs(obj):
            for c in containers(pod):
                for env in c.get("env", []):
                    if SECRETISH.search(env["name"]):
                        assert "value" not in env, f"{where}: {c['name']} {env['name']}"
                        assert "secretKeyRef" in env["valueFrom"], f"{where}: {env['name']}"
                    assert not SECRET_VALUE.search(str(env.get("value", ""))), where
                for arg in [*c.get("command", []), *c.get("args", [])]:
                    assert not SECRET_VALUE.search(arg), f"{where}: {c['name']} command line"


def test_every_referenced_secret_is_documented(rendered: Rendered) -> None:
    """The runbook (k8s/README.md) must tell how to create each Secret a pod needs."""
    readme = (K8S_DIR / "README.md").read_text(encoding="utf-8")
    referenced: set[str] = set()
    for _, obj in all_objects(rendered):
        for pod in pod_specs(obj):
            for c in containers(pod):
                for env in c.get("env", []):
                    ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        referenced.add(f"{ref['name']}/{ref['key']}")
        if obj["kind"] == "Model" and "secretName" in obj["spec"]:
            referenced.add(f"{obj['spec']['secretName']}/")
    assert referenced >= {"churn-redis/password", "churn-mlflow-db/uri", "churn-rclone/"}
    rendered_secrets = {o["metadata"]["name"] for _, o in all_objects(rendered)
                        if o["kind"] == "Secret"}  # fmt: skip
    for ref in referenced:
        name, key = ref.split("/")
        if name == RCLONE_SECRET:  # rendered for EKS, printed by the renderer for kind
            assert name in rendered_secrets
            assert "k8s/render_seldon.py --rclone-secret" in readme
            continue
        assert f"kubectl -n churn create secret generic {name}" in readme, ref
        if key:
            assert f"--from-literal={key}=" in readme or f"--from-file={key}=" in readme, ref


def test_references_resolve(rendered: Rendered) -> None:
    """ServiceAccounts, ConfigMaps, PVCs and Servers named by objects exist in the render."""
    for overlay, objs in rendered.items():
        accounts, maps = by_kind(objs, "ServiceAccount"), by_kind(objs, "ConfigMap")
        claims = by_kind(objs, "PersistentVolumeClaim")
        claims |= {t["metadata"]["name"]: t for o in by_kind(objs, "StatefulSet").values()
                   for t in o["spec"].get("volumeClaimTemplates", [])}  # fmt: skip
        for pod in (p for o in objs for p in pod_specs(o)):
            assert pod.spec["serviceAccountName"] in accounts, (overlay, pod.owner)
            for c in containers(pod):
                for source in c.get("envFrom", []):
                    assert source["configMapRef"]["name"] in maps, (overlay, pod.owner)
            for volume in pod.spec.get("volumes", []):
                if "persistentVolumeClaim" in volume:
                    assert volume["persistentVolumeClaim"]["claimName"] in claims, overlay
        for binding in by_kind(objs, "RoleBinding").values():
            assert binding["roleRef"]["name"] in by_kind(objs, "Role")
            for subject in binding["subjects"]:
                assert subject["name"] in accounts and subject["namespace"] == "churn"
        servers = by_kind(objs, "Server")
        for model in by_kind(objs, "Model").values():
            assert model["spec"]["server"] in servers, overlay


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector:
        return True
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "Exists" and key not in labels:
            return False
        if op == "In" and labels.get(key) not in values:
            return False
    return True


def test_network_policies_isolate_every_project_pod(rendered: Rendered) -> None:
    """Each pod of the project is selected by a policy with both directions denied by
    default, and the policies that allow traffic select pods that exist."""
    for overlay, objs in rendered.items():
        policies = list(by_kind(objs, "NetworkPolicy").values())
        pods = [p for o in objs for p in pod_specs(o)]
        for pod in pods:
            isolating = [
                p for p in policies
                if _selects(p["spec"]["podSelector"], pod.labels)
                and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            ]  # fmt: skip
            assert isolating, f"{overlay}: {pod.owner} is not isolated"
        for policy in policies:
            if policy["metadata"]["name"] == "churn-pipelines-default-deny" or "pipeline" in str(
                policy["spec"]["podSelector"]
            ):
                continue  # ZenML's step pods are created at run time
            assert any(_selects(policy["spec"]["podSelector"], p.labels) for p in pods), (
                f"{overlay}: NetworkPolicy {policy['metadata']['name']} selects no pod"
            )


def test_serving_selectors_match_the_server_pods(rendered: Rendered) -> None:
    for overlay in ("kind", "eks"):
        objs = rendered[overlay]
        (server,) = [p for o in by_kind(objs, "Server").values() for p in pod_specs(o)]
        for kind, name in (("PodDisruptionBudget", "churn-mlserver"),
                           ("Service", "churn-mlserver-metrics")):  # fmt: skip
            obj = by_kind(objs, kind)[name]
            selector = obj["spec"]["selector"]
            assert _selects(selector if kind != "Service" else {"matchLabels": selector},
                            server.labels), (overlay, kind)  # fmt: skip
        redis_policy = by_kind(objs, "NetworkPolicy").get("churn-redis")
        if redis_policy is not None:
            sources = [f["podSelector"] for f in redis_policy["spec"]["ingress"][0]["from"]]
            assert any(_selects(s, server.labels) for s in sources), overlay


def test_pipeline_role_is_least_privilege(rendered: Rendered) -> None:
    for overlay, objs in rendered.items():
        role = by_kind(objs, "Role")["churn-pipelines"]
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], overlay
            if "secrets" in rule["resources"]:
                assert not {"get", "list", "watch"} & set(rule["verbs"]), overlay
        assert not by_kind(objs, "ClusterRole") and not by_kind(objs, "ClusterRoleBinding")
        sdep_rules = [r for r in role["rules"] if "seldondeployments" in r["resources"]]
        assert bool(sdep_rules) == (overlay == "seldon-v1"), overlay
        tokens = {n: a.get("automountServiceAccountToken") for n, a in
                  by_kind(objs, "ServiceAccount").items()}  # fmt: skip
        assert tokens["churn-mlflow"] is False, overlay
        # On EKS the feast job starts Feast's materialization Jobs through the API
        # (Role churn-feast); its Job pods get no token. Elsewhere it calls no API.
        eks = "churn-feast-worker" in tokens
        assert tokens["churn-feast"] is eks, overlay
        if eks:
            assert tokens["churn-feast-worker"] is False, overlay
            for rule in by_kind(objs, "Role")["churn-feast"]["rules"]:
                assert "*" not in rule["verbs"] and "*" not in rule["resources"], overlay
                assert not {"secrets", "pods/exec"} & set(rule["resources"]), overlay


# What Seldon Core v2.9.1's agent sidecar does with the API (operator
# rbac_reconciler.go "agent-role", bound there to Seldon's own seldon-server account):
# it watches ConfigMap seldon-agent before loading any model and reads storage Secrets.
SELDON_AGENT_RULES = {
    ("", "configmaps"): {"get", "list", "watch"},
    ("", "secrets"): {"get", "list", "watch"},
}


def _granted(objs: list[dict[str, Any]], account: str) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs the namespace's RoleBindings grant a ServiceAccount."""
    roles = by_kind(objs, "Role")
    granted: dict[tuple[str, str], set[str]] = {}
    for binding in by_kind(objs, "RoleBinding").values():
        subjects = binding.get("subjects", [])
        if not any(s["kind"] == "ServiceAccount" and s["name"] == account
                   and s.get("namespace") == "churn" for s in subjects):  # fmt: skip
            continue
        assert binding["roleRef"]["kind"] == "Role", binding["metadata"]["name"]
        for rule in roles[binding["roleRef"]["name"]]["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def test_the_server_account_has_exactly_the_seldon_agents_api_rights(rendered: Rendered) -> None:
    """Without a RoleBinding the agent's ConfigMap watch is refused and no model loads."""
    for overlay in ("kind", "eks"):
        objs = rendered[overlay]
        servers = by_kind(objs, "Server")
        assert servers, overlay
        for server in servers.values():
            account = server["spec"]["podSpec"]["serviceAccountName"]
            assert _granted(objs, account) == SELDON_AGENT_RULES, (overlay, account)
            token = by_kind(objs, "ServiceAccount")[account].get("automountServiceAccountToken")
            assert token is not False, (overlay, account)  # the agent needs the token
    # Seldon v1 has no agent: its serving account gets no API rights
    assert _granted(rendered["seldon-v1"], "churn-serving") == {}


def test_eks_service_accounts_carry_their_irsa_roles(rendered: Rendered) -> None:
    cluster = env_file(K8S_DIR / "components" / "eks" / "cluster.env")
    for overlay in ("eks", "seldon-v1"):
        accounts = by_kind(rendered[overlay], "ServiceAccount")
        for name, key in (("churn-serving", "SERVING_ROLE_ARN"), ("churn-pipelines",
                          "PIPELINES_ROLE_ARN"), ("churn-mlflow", "MLFLOW_ROLE_ARN"),
                          ("churn-feast", "FEAST_ROLE_ARN")):  # fmt: skip
            annotations = accounts[name]["metadata"].get("annotations", {})
            assert annotations["eks.amazonaws.com/role-arn"] == cluster[key], (overlay, name)
    assert (
        "annotations"
        not in by_kind(rendered["kind"], "ServiceAccount")["churn-serving"]["metadata"]
    )


def test_eks_points_at_the_cluster_env_bucket(rendered: Rendered) -> None:
    bucket = env_file(K8S_DIR / "components" / "eks" / "cluster.env")["CHURN_S3_BUCKET"]
    models = by_kind(rendered["eks"], "Model").values()
    assert {m["spec"]["storageUri"].split("/")[2] for m in models} == {bucket}
    sdep = by_kind(rendered["seldon-v1"], "SeldonDeployment")["churn"]
    assert sdep["spec"]["predictors"][0]["graph"]["modelUri"].startswith(f"s3://{bucket}/")
    mlflow_cm = next(o for o in rendered["eks"] if o["kind"] == "ConfigMap"
                     and o["metadata"]["name"].startswith("churn-mlflow"))  # fmt: skip
    assert mlflow_cm["data"]["MLFLOW_ARTIFACTS_DESTINATION"] == f"s3://{bucket}/mlflow"


# ------------------------------------------------------------------ model storage


def seldon_storage_config(secret: dict[str, Any]) -> dict[str, Any]:
    """The rclone remote Seldon Core 2.9.1's agent makes of a storage Secret.

    k8s/secrets.go GetSecretConfig: the value of the Secret's only key (data, else
    stringData), else "Secret does not have 1 key"; rclone/rclone.go parseRcloneConfig:
    JSON, else YAML, into {name, type, parameters map[string]string}, all required.
    """
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    values = list(data.values()) if data else list((secret.get("stringData") or {}).values())
    assert len(values) == 1, f"Secret {secret['metadata']['name']} does not have 1 key"
    try:
        config = json.loads(values[0])
    except ValueError:
        config = yaml.safe_load(values[0])
    assert isinstance(config, dict) and config.get("name") and config.get("type"), config
    assert isinstance(config.get("parameters"), dict) and config["parameters"], config
    assert all(isinstance(v, str) for v in config["parameters"].values()), config
    return config


def _remote_of_model(model: dict[str, Any], secrets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The remote a Model's storageUri is downloaded through. The project sets no
    preloaded secret (Seldon's default seldon-agent preloads only a public gs remote),
    so an s3:// Model needs spec.secretName; the agent then refuses a remote whose
    name is not the URI's scheme (createUriWithConfig)."""
    name = model["metadata"]["name"]
    assert model["spec"].get("secretName"), f"Model {name}: no rclone remote for s3://"
    config = seldon_storage_config(secrets[model["spec"]["secretName"]])
    assert config["name"] == model["spec"]["storageUri"].split("://")[0] == "s3", name
    assert config["type"] == "s3", name
    return config


def kind_rclone_secret(endpoint: str) -> dict[str, Any]:
    """What the runbook's command prints for kind (run for real, keys from the env)."""
    env = {**os.environ, "CHURN_S3_ACCESS_KEY_ID": "kind-key",
           "CHURN_S3_SECRET_ACCESS_KEY": "kind-secret-value"}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(K8S_DIR / "render_seldon.py"), "--rclone-secret", endpoint],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "kind-secret-value" not in " ".join(proc.args)  # never on the command line
    (secret,) = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return dict(secret)


def test_every_s3_model_has_the_rclone_remote_seldon_reads(rendered: Rendered) -> None:
    cluster = env_file(K8S_DIR / "components" / "eks" / "cluster.env")
    # EKS, Seldon v2: the rendered Secret, AWS with env_auth (IRSA), no key
    objs = rendered["eks"]
    secrets = by_kind(objs, "Secret")
    models = [m for m in by_kind(objs, "Model").values()
              if m["spec"]["storageUri"].startswith("s3://")]  # fmt: skip
    assert len(models) == 2
    for model in models:
        remote = _remote_of_model(model, secrets)
        assert remote["parameters"] == {"provider": "AWS", "env_auth": "true"}
    # ... signing for the cluster's region: rclone's env beats the remote's parameters
    (server,) = by_kind(objs, "Server").values()
    rclone = next(c for c in server["spec"]["podSpec"]["containers"]
                  if c["name"] == RCLONE_CONTAINER)  # fmt: skip
    ref = next(e for e in rclone["env"] if e["name"] == "RCLONE_S3_REGION")
    ref = ref["valueFrom"]["configMapKeyRef"]
    assert by_kind(objs, "ConfigMap")[ref["name"]]["data"][ref["key"]] == cluster["AWS_REGION"]
    # kind: the Secret the runbook's command prints, MinIO with keys and endpoint
    endpoint = "http://minio.minio.svc.cluster.local:9000"
    kind_secret = kind_rclone_secret(endpoint)
    assert kind_secret["metadata"]["namespace"] == "churn"
    kind_models = by_kind(rendered["kind"], "Model").values()
    assert kind_models
    for model in kind_models:
        remote = _remote_of_model(model, {kind_secret["metadata"]["name"]: kind_secret})
        assert remote["parameters"] == {
            "provider": "Minio", "env_auth": "false", "endpoint": endpoint,
            "access_key_id": "kind-key", "secret_access_key": "kind-secret-value",
        }  # fmt: skip
    # Seldon v1: the storage initializer's environment from graph.envSecretRefName
    sdep = by_kind(rendered["seldon-v1"], "SeldonDeployment")["churn"]
    graph = sdep["spec"]["predictors"][0]["graph"]
    assert graph["modelUri"].startswith("s3://")
    env = by_kind(rendered["seldon-v1"], "Secret")[graph["envSecretRefName"]]["stringData"]
    assert env == {
        "RCLONE_CONFIG_S3_TYPE": "s3", "RCLONE_CONFIG_S3_PROVIDER": "AWS",
        "RCLONE_CONFIG_S3_ENV_AUTH": "true", "RCLONE_CONFIG_S3_REGION": cluster["AWS_REGION"],
    }  # fmt: skip


def test_the_storage_secret_is_applied_with_the_platform(rendered: Rendered) -> None:
    """cd.yml and the runbook apply the platform with managed-by!=churn-mlops (the
    Seldon objects are the deployment pipeline's): the Secret must not be filtered out."""
    for overlay in ("eks", "seldon-v1"):
        for secret in by_kind(rendered[overlay], "Secret").values():
            labels = secret["metadata"].get("labels", {})
            assert labels.get("app.kubernetes.io/managed-by") != "churn-mlops", overlay


def test_the_runbook_shows_the_remote_the_renderer_writes() -> None:
    readme = (K8S_DIR / "README.md").read_text(encoding="utf-8")
    assert json.dumps(rclone_remote()) in readme
    assert "k8s/render_seldon.py --rclone-secret" in readme


def test_server_pods_carry_no_model_version(rendered: Rendered) -> None:
    """Seldon copies a Server's labels into its pods: a version there restarts them all
    on every model deploy. The committed Models keep it as an annotation."""
    for overlay in ("kind", "eks"):
        objs = rendered[overlay]
        for pod in (p for o in by_kind(objs, "Server").values() for p in pod_specs(o)):
            assert "app.kubernetes.io/version" not in pod.labels, (overlay, pod.owner)
            assert "churn-classifier-v1" not in pod.labels.values(), (overlay, pod.owner)
        for model in by_kind(objs, "Model").values():
            assert model["metadata"]["annotations"]["churn-mlops/model-version"]


def test_no_workload_an_hpa_scales_sets_its_own_replicas(rendered: Rendered) -> None:
    """With an HPA the replica count is the HPA's: a replicas field in the manifest
    resets it to that number on every apply (MLflow on EKS)."""
    scaled = 0
    for overlay, objs in rendered.items():
        for hpa in by_kind(objs, "HorizontalPodAutoscaler").values():
            ref = hpa["spec"]["scaleTargetRef"]
            target = by_kind(objs, ref["kind"])[ref["name"]]
            assert "replicas" not in target["spec"], f"{overlay}: {ident(target)}"
            scaled += 1
    assert scaled >= 2  # churn-mlflow on eks and seldon-v1
    mlflow = by_kind(rendered["kind"], "Deployment")["churn-mlflow"]
    assert mlflow["spec"]["replicas"] == 1  # kind: no HPA, one SQLite writer


def test_kind_server_mounts_the_feast_registry_into_mlserver(rendered: Rendered) -> None:
    (server,) = by_kind(rendered["kind"], "Server").values()
    mlserver = server["spec"]["podSpec"]["containers"][0]
    assert mlserver["name"] == MLSERVER_CONTAINER  # the JSON patch targets index 0
    assert {"name": "churn-state", "mountPath": "/var/lib/churn", "readOnly": True} in (
        mlserver["volumeMounts"]
    )


# ------------------------------------------------------------------ one home


def _render_seldon() -> ModuleType:
    """k8s/render_seldon.py, a script outside the packages, imported by path."""
    name = "churn_k8s_render_seldon"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, K8S_DIR / "render_seldon.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def test_committed_seldon_yaml_is_what_serving_seldon_renders() -> None:
    module = _render_seldon()
    assert module.stale_files() == [], "run: .venv/bin/python k8s/render_seldon.py"
    files: dict[Path, str] = module.render_all()
    assert len(files) == 11
    for path in files:
        kustomization = (path.parent / "kustomization.yaml").read_text(encoding="utf-8")
        assert f"- {path.name}" in kustomization, f"{path} is not in its kustomization"


def test_the_staleness_check_bites(tmp_path: Path) -> None:
    module = _render_seldon()
    files: dict[Path, str] = module.render_all(tmp_path)
    assert set(module.stale_files(tmp_path)) == set(files)  # nothing written yet
    module.write_all(tmp_path)
    assert module.stale_files(tmp_path) == []
    first = next(iter(files))
    first.write_text(first.read_text().replace("replicas: 2", "replicas: 3"))
    assert module.stale_files(tmp_path) == [first]
