"""Seldon Core objects for the churn model, rendered from a SeldonDeploymentSpec.

Every function here is a pure function of the spec (see deployment.seldon for what
runs on the cluster and the Seldon facts the objects rely on).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from churn.inference import OUTPUTS
from deployment.seldon.spec import (
    ANNOTATION_PREFIX,
    CAPABILITY,
    FIELD_MANAGER,
    HEALTH_LIVE,
    HEALTH_READY,
    MLSERVER_CONTAINER,
    PART_OF,
    RCLONE_CONTAINER,
    RCLONE_REGION_ENV,
    RCLONE_REMOTE,
    REGION_KEY,
    SELDON_V1_API,
    SELDON_V2_API,
    SERVER_COMMAND,
    SERVER_CONFIG,
    SERVER_HTTP_PORT_NAME,
    SIDECAR_CONTAINERS,
    V1_GRPC_PORT,
    V1_HTTP_PORT,
    V1_METRICS_PORT,
    V1_SERVER_ROOT,
    WRITABLE,
    SeldonDeploymentSpec,
    SpecError,
    churn_env,
    v1_env,
)

# ------------------------------------------------------------------ pieces


def _labels(spec: SeldonDeploymentSpec, component: str) -> dict[str, str]:
    # No app.kubernetes.io/version: Seldon copies a Server's labels into its pod
    # template (operator statefulset_reconciler.go), so a version label would restart
    # every Server pod on each model deploy. The version is the Models' annotation.
    return {
        "app.kubernetes.io/name": spec.model_name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
    }


def _annotations(spec: SeldonDeploymentSpec, uri: str) -> dict[str, str]:
    return {
        f"{ANNOTATION_PREFIX}/model-version": spec.model_version,
        f"{ANNOTATION_PREFIX}/feature-service": spec.feature_service,
        f"{ANNOTATION_PREFIX}/artifact-uri": uri,
    }


def _metadata(
    spec: SeldonDeploymentSpec, name: str, component: str, uri: str | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": spec.namespace,
        "labels": _labels(spec, component),
    }
    if uri is not None:
        meta["annotations"] = _annotations(spec, uri)
    return meta


def _env_list(spec: SeldonDeploymentSpec, plain: Mapping[str, str]) -> list[dict[str, Any]]:
    """Plain values (rendered + spec.env), then every secret as a Secret key reference."""
    out: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in plain.items()]
    out += [{"name": k, "value": spec.env[k]} for k in sorted(spec.env)]
    out.append({"name": "CHURN_REDIS_PASSWORD", "valueFrom": spec.redis_password.to_k8s()})
    out += [{"name": k, "valueFrom": spec.secret_env[k].to_k8s()} for k in sorted(spec.secret_env)]
    return out


def _env_from(spec: SeldonDeploymentSpec) -> list[dict[str, Any]]:
    if spec.config_map is None:
        return []
    return [{"configMapRef": {"name": spec.config_map}}]


def _container_security(spec: SeldonDeploymentSpec) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": spec.run_as_user,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
        "readOnlyRootFilesystem": True,  # what it writes: WRITABLE's emptyDirs
    }


def _mounts(container: str) -> list[dict[str, str]]:
    return [{"name": name, "mountPath": path} for name, (path, _) in WRITABLE[container].items()]


def _volumes(*containers: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "emptyDir": {"sizeLimit": size}}
        for container in containers
        for name, (_, size) in WRITABLE[container].items()
    ]


def _pod_security(spec: SeldonDeploymentSpec) -> dict[str, Any]:
    # fsGroup 2000: the mlserver ServerConfig's, so the model volume stays writable.
    return {
        "runAsNonRoot": True,
        "runAsUser": spec.run_as_user,
        "runAsGroup": spec.run_as_user,
        "fsGroup": 2000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _probes(port: int | str) -> dict[str, Any]:
    """MLServer's own health endpoints: ready = every loaded model is ready."""

    def get(path: str, **timing: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": port}, "timeoutSeconds": 2, **timing}

    return {
        # cold start 8-10 s, Feast and the detector a few more (docs/decisions.md, 2): up to 3 min
        "startupProbe": get(HEALTH_LIVE, periodSeconds=5, failureThreshold=36),
        "readinessProbe": get(HEALTH_READY, periodSeconds=5, failureThreshold=3),
        "livenessProbe": get(HEALTH_LIVE, periodSeconds=10, failureThreshold=3),
    }


# ------------------------------------------------------------------ model storage (rclone)


def rclone_remote(
    *,
    endpoint: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """The rclone remote `s3` every storageUri is read through, as Seldon's agent takes it.

    Without keys: AWS S3 with env_auth, i.e. the AWS SDK's default chain, which on EKS
    picks up the pod's IRSA web identity (no key anywhere). With an endpoint and keys:
    an S3-compatible store (MinIO on kind). Parameter values are strings, as the agent's
    struct (map[string]string) and rclone's config/create take them.
    """
    keys = (access_key_id, secret_access_key)
    if any(keys) and not (all(keys) and endpoint):
        raise ValueError(
            "an S3-compatible remote needs endpoint, access_key_id and secret_access_key"
        )
    parameters: dict[str, str]
    if endpoint is None:
        parameters = {"provider": "AWS", "env_auth": "true"}
    else:
        parameters = {"provider": "Minio", "env_auth": "false", "endpoint": endpoint}
        if access_key_id and secret_access_key:
            parameters |= {"access_key_id": access_key_id, "secret_access_key": secret_access_key}
    if region is not None:
        parameters["region"] = region
    return {"name": RCLONE_REMOTE, "type": "s3", "parameters": parameters}


def rclone_env(remote: Mapping[str, Any]) -> dict[str, str]:
    """The same remote as rclone's environment variables (RCLONE_CONFIG_<NAME>_<KEY>)."""
    prefix = f"RCLONE_CONFIG_{remote['name'].upper()}_"
    env = {f"{prefix}TYPE": remote["type"]}
    env |= {f"{prefix}{k.upper()}": v for k, v in remote["parameters"].items()}
    return env


def _storage_secret(
    namespace: str, name: str | None, field_name: str, data: dict[str, str]
) -> dict[str, Any]:
    if name is None:
        raise SpecError(field_name, "is None: there is no storage Secret to render")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            # no managed-by: the platform applies it, not the deployment pipeline
            "labels": {
                "app.kubernetes.io/component": "model-storage",
                "app.kubernetes.io/part-of": PART_OF,
            },
        },
        "type": "Opaque",
        "stringData": data,
    }


def render_rclone_secret(spec: SeldonDeploymentSpec, remote: Mapping[str, Any]) -> dict[str, Any]:
    """v2: the Secret a Model's spec.secretName names; one key, the remote as JSON."""
    return _storage_secret(
        spec.namespace, spec.storage_secret, "storage_secret", {remote["name"]: json.dumps(remote)}
    )


def model_rclone_secret(model: Mapping[str, Any], remote: Mapping[str, Any]) -> dict[str, Any]:
    """The same Secret for a rendered Model: the one its spec.secretName names, in its
    namespace (what the platform applies beside it, e.g. on the production twin)."""
    return _storage_secret(
        model["metadata"]["namespace"],
        model["spec"].get("secretName"),
        "spec.secretName",
        {remote["name"]: json.dumps(dict(remote))},
    )


def render_rclone_env_secret(
    spec: SeldonDeploymentSpec, remote: Mapping[str, Any]
) -> dict[str, Any]:
    """v1: the Secret graph.envSecretRefName names (the storage initializer's env)."""
    return _storage_secret(
        spec.namespace, spec.storage_env_secret, "storage_env_secret", rclone_env(remote)
    )


# ------------------------------------------------------------------ Seldon Core v2


def render_server(spec: SeldonDeploymentSpec) -> dict[str, Any]:
    """The Server: Seldon's mlserver ServerConfig running the project's image."""
    mlserver: dict[str, Any] = {
        "name": MLSERVER_CONTAINER,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        # The ServerConfig sets no command; this is the stock MLServer image's, so the
        # Server does not depend on our image's CMD. $(VAR) is expanded by Kubernetes.
        "command": [*SERVER_COMMAND, "$(MLSERVER_MODELS_DIR)"],
        "env": _env_list(spec, churn_env(spec)),
        "resources": spec.resources.to_k8s(),
        "securityContext": _container_security(spec),
        "volumeMounts": _mounts(MLSERVER_CONTAINER),
        **_probes(SERVER_HTTP_PORT_NAME),
    }
    env_from = _env_from(spec)
    if env_from:
        mlserver["envFrom"] = env_from
    sidecars: list[dict[str, Any]] = [
        {
            "name": name,
            "resources": spec.sidecar_resources.to_k8s(),
            "securityContext": _container_security(spec),
            "volumeMounts": _mounts(name),
        }
        for name in SIDECAR_CONTAINERS
    ]
    if spec.config_map is not None:
        # rclone signs S3 requests for the bucket's region (else us-east-1, then a
        # redirect): the cluster's region, when the ConfigMap has one (EKS; not kind)
        region = {"name": spec.config_map, "key": REGION_KEY, "optional": True}
        rclone = next(c for c in sidecars if c["name"] == RCLONE_CONTAINER)
        rclone["env"] = [{"name": RCLONE_REGION_ENV, "valueFrom": {"configMapKeyRef": region}}]
    return {
        "apiVersion": SELDON_V2_API,
        "kind": "Server",
        "metadata": _metadata(spec, spec.server_name, "server"),
        "spec": {
            "serverConfig": SERVER_CONFIG,
            "extraCapabilities": [CAPABILITY],
            "replicas": spec.replicas,
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
            "podSpec": {
                "serviceAccountName": spec.service_account,
                "securityContext": _pod_security(spec),
                "containers": [mlserver, *sidecars],
                # appended to the ServerConfig's volumes (config, tracing, certs)
                "volumes": _volumes(MLSERVER_CONTAINER, *SIDECAR_CONTAINERS),
            },
        },
    }


def _model(
    spec: SeldonDeploymentSpec,
    *,
    name: str,
    component: str,
    uri: str,
    memory: str,
    replicas: dict[str, int],
) -> dict[str, Any]:
    model_spec: dict[str, Any] = {
        "storageUri": uri,
        "requirements": [CAPABILITY],
        "server": spec.server_name,
        "memory": memory,
        **replicas,
    }
    if spec.storage_secret is not None:
        model_spec["secretName"] = spec.storage_secret
    return {
        "apiVersion": SELDON_V2_API,
        "kind": "Model",
        "metadata": _metadata(spec, name, component, uri),
        "spec": model_spec,
    }


def render_model(spec: SeldonDeploymentSpec) -> dict[str, Any]:
    """The churn Model: the serving bundle, on our Server only."""
    return _model(
        spec,
        name=spec.model_name,
        component="model",
        uri=spec.bundle_uri,
        memory=spec.model_memory,
        replicas={
            "replicas": spec.replicas,
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
        },
    )


def render_drift_model(spec: SeldonDeploymentSpec) -> dict[str, Any]:
    """The drift Model. One replica: the windows of rows are per replica, and one
    replica checks a 500-row window in 13-18 ms (docs/decisions.md, 4)."""
    if spec.drift_uri is None:
        raise SpecError("drift_uri", "is None: there is no drift model to render")
    return _model(
        spec,
        name=spec.drift_model_name,
        component="drift-detector",
        uri=spec.drift_uri,
        memory=spec.drift_memory,
        replicas={"replicas": 1},
    )


def render_pipeline(spec: SeldonDeploymentSpec) -> dict[str, Any]:
    """churn -> churn-drift (all of the churn step's tensors, batched); the client gets
    the churn step's prediction outputs only (churn.inference.OUTPUTS), not the feature
    tensors it emits for the drift step."""
    steps: list[dict[str, Any]] = [{"name": spec.model_name}]
    if spec.has_drift:
        steps.append(
            {
                "name": spec.drift_model_name,
                "inputs": [f"{spec.model_name}.outputs"],
                "batch": {"size": spec.drift_batch_size, "windowMs": spec.drift_batch_window_ms},
            }
        )
    output = [f"{spec.model_name}.outputs.{name}" for name, _ in OUTPUTS]
    return {
        "apiVersion": SELDON_V2_API,
        "kind": "Pipeline",
        "metadata": _metadata(spec, spec.pipeline, "pipeline"),
        "spec": {"steps": steps, "output": {"steps": output}},
    }


def seldon_v2_objects(spec: SeldonDeploymentSpec) -> list[dict[str, Any]]:
    """Server, Model(s) and Pipeline, in the order to apply them."""
    objects = [render_server(spec), render_model(spec)]
    if spec.has_drift:
        objects.append(render_drift_model(spec))
    objects.append(render_pipeline(spec))
    return objects


# ------------------------------------------------------------------ Seldon Core v1


def _v1_container(spec: SeldonDeploymentSpec) -> dict[str, Any]:
    """The SeldonDeployment's one container: MLServer configured from its environment."""
    plain = {
        **v1_env(spec),
        **churn_env(spec),
        # no Pipeline in v1: the runtime's background monitor checks drift
        "CHURN_SERVING_EMIT_FEATURES": "false",
        "CHURN_SERVING_DRIFT_ENABLED": "true",
    }
    ports = {"http": V1_HTTP_PORT, "grpc": V1_GRPC_PORT, "metrics": V1_METRICS_PORT}
    container: dict[str, Any] = {
        "name": spec.model_name,  # the graph unit's name: the storage initializer mounts here
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [*SERVER_COMMAND, V1_SERVER_ROOT],
        "env": _env_list(spec, plain),
        "ports": [
            {"name": name, "containerPort": port, "protocol": "TCP"} for name, port in ports.items()
        ],
        "resources": spec.resources.to_k8s(),
        "securityContext": _container_security(spec),
        "volumeMounts": _mounts(MLSERVER_CONTAINER),
        **_probes("http"),
    }
    env_from = _env_from(spec)
    if env_from:
        container["envFrom"] = env_from
    return container


def _v1_component(spec: SeldonDeploymentSpec) -> dict[str, Any]:
    """Pod, autoscaler (CPU) and disruption budget of the v1 predictor."""
    cpu_target = {"type": "Utilization", "averageUtilization": 70}
    return {
        "spec": {
            "serviceAccountName": spec.service_account,
            "securityContext": _pod_security(spec),
            "containers": [_v1_container(spec)],
            "volumes": _volumes(MLSERVER_CONTAINER),
        },
        "hpaSpec": {
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
            "metricsv2": [{"type": "Resource", "resource": {"name": "cpu", "target": cpu_target}}],
        },
        "pdbSpec": {"maxUnavailable": 1},
    }


def render_seldon_deployment(spec: SeldonDeploymentSpec) -> dict[str, Any]:
    """A Seldon Core v1 SeldonDeployment (protocol v2) running the churn runtime.

    MLServer starts on an empty folder (an emptyDir) and takes its settings and the
    model's from MLSERVER_* variables, so nothing in the bundle (its settings.json is
    for a laptop) decides ports or interfaces; Seldon's storage initializer puts the
    bundle (graph.modelUri) at /mnt/models. Drift runs in the runtime's background
    monitor. The drift_* spec fields other than drift_window are not used.
    """
    graph: dict[str, Any] = {
        "name": spec.model_name,
        "type": "MODEL",
        "modelUri": spec.bundle_uri,
        "serviceAccountName": spec.service_account,  # the storage initializer's (IRSA)
        "children": [],
    }
    if spec.storage_env_secret is not None:
        graph["envSecretRefName"] = spec.storage_env_secret
    predictor = {
        "name": "default",
        "replicas": spec.replicas,
        "graph": graph,
        "componentSpecs": [_v1_component(spec)],
    }
    return {
        "apiVersion": SELDON_V1_API,
        "kind": "SeldonDeployment",
        "metadata": _metadata(spec, spec.model_name, "model", spec.bundle_uri),
        "spec": {"protocol": "v2", "predictors": [predictor]},
    }


def seldon_v1_objects(spec: SeldonDeploymentSpec) -> list[dict[str, Any]]:
    """The Seldon Core v1 alternative: one SeldonDeployment."""
    return [render_seldon_deployment(spec)]


def to_yaml(objects: Iterable[Mapping[str, Any]]) -> str:
    """A multi-document YAML of `objects` (for `kubectl apply -f -`, CI artefacts, review)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # plain YAML: no &anchors / *aliases
            return True

    return yaml.dump_all([dict(o) for o in objects], Dumper=Dumper, sort_keys=False)
