"""Seldon Core manifests for the churn model, rendered from typed inputs and applied.

What runs on the cluster (Seldon Core v2, the default):

    Server   <server>        Seldon's "mlserver" ServerConfig with the project's image
                             (the churn runtimes and their dependencies) on the mlserver
                             container; CHURN_* from a ConfigMap and Secret references;
                             resource limits and a non-root security context on every
                             container of the pod (agent and rclone included).
    Model    <model>         the serving bundle (storageUri), scheduled on that Server only
                             (requirement + server name): serving.runtime.ChurnRuntime.
    Model    <model>-drift   the drift model folder (serving.drift_runtime.build_drift_model),
                             on the same Server: serving.drift_runtime.DriftRuntime.
    Pipeline <model>-pipeline  steps <model> -> <model>-drift (inputs "<model>.outputs");
                             the output is the churn step's, so the drift step runs off
                             the client's path (asynchronously, over Seldon's Kafka).

The Server sets CHURN_SERVING_EMIT_FEATURES=true (the churn step answers with the
feature rows it scored, which the drift step reads) and CHURN_SERVING_DRIFT_ENABLED=false
(drift is the Pipeline's job there, not the churn runtime's background monitor).
Without a drift model, the Pipeline has the churn step only and the runtime's own
monitor checks drift.

Seldon Core v1 alternative (`seldon_v1_objects`): one SeldonDeployment, protocol v2,
whose single container is the same image running MLServer with the churn runtime
configured from the environment (MLSERVER_MODEL_*), the bundle downloaded by Seldon's
storage initializer to /mnt/models (graph.modelUri), and drift checked in-process.

Facts these objects rely on (read from Seldon Core v2's sources, not guessed):

- the "mlserver" ServerConfig names its containers "mlserver", "agent" and "rclone",
  gives mlserver the port "server-http" (9000) and MLSERVER_MODELS_DIR, and sets no
  command (the image's would run): a Server's podSpec is merged into it container by
  container, by name (fields overridden, lists appended), so the Server here sets the
  mlserver command explicitly and only resources/securityContext on agent and rclone;
- Seldon's agent rewrites each model's model-settings.json keeping only name,
  implementation and a few parameters (uri, version, ...): custom parameters do not
  survive, so runtime options travel as environment variables;
- the agent serves the model-settings.json at the top of the downloaded storageUri.

Everything here is a pure function of a `SeldonDeploymentSpec`, which refuses values
that would deploy something wrong or unsafe (an image without a pinned tag or
"latest", a secret as a plain environment variable, limits below requests, models
that do not fit the server's memory). `apply_manifests` sends the objects with the
kubernetes client (create; on 409 Conflict, replace at the live resourceVersion) and
re-raises API failures as DeploymentError naming the object. This module imports
neither MLServer nor the kubernetes client at import time.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

from serving.settings import DEFAULT_MODEL_NAME

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from serving.bundle import BundleManifest

# ------------------------------------------------------------------ constants

SELDON_V2_API: Final = "mlops.seldon.io/v1alpha1"
SELDON_V1_API: Final = "machinelearning.seldon.io/v1"
# kind -> resource plural, for the REST paths (the CRDs' spec.names.plural).
PLURALS: Final[dict[str, str]] = {
    "Server": "servers",
    "Model": "models",
    "Pipeline": "pipelines",
    "SeldonDeployment": "seldondeployments",
}
SERVER_CONFIG: Final = "mlserver"
MLSERVER_CONTAINER: Final = "mlserver"  # container names of Seldon's mlserver ServerConfig
SIDECAR_CONTAINERS: Final = ("agent", "rclone")
SERVER_HTTP_PORT_NAME: Final = "server-http"  # the ServerConfig's MLServer port (9000)
CAPABILITY: Final = "churn-mlops"  # advertised by our Server, required by our Models
FIELD_MANAGER: Final = "churn-mlops"
PART_OF: Final = "churn-mlops"
ANNOTATION_PREFIX: Final = "churn-mlops"
CHURN_IMPLEMENTATION: Final = "serving.runtime.ChurnRuntime"
# Seldon Core v1 container: MLServer ports (v1's executor finds them by name) and paths.
V1_HTTP_PORT: Final = 9000
V1_GRPC_PORT: Final = 9500
V1_METRICS_PORT: Final = 8082
V1_MODEL_DIR: Final = "/mnt/models"  # where Seldon v1's storage initializer puts modelUri
V1_SERVER_ROOT: Final = "/srv/mlserver"  # an empty dir: MLServer configured by env only
HEALTH_READY: Final = "/v2/health/ready"
HEALTH_LIVE: Final = "/v2/health/live"
REPLACE_ATTEMPTS: Final = 3

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"^(?P<name>{_COMPONENT}(?::[0-9]+(?=/))?(?:/{_COMPONENT})*)"  # host[:port]/path
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_SUFFIX: Final[dict[str, float]] = {
    "": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40,
}  # fmt: skip
# Environment variable names that hold secrets: only ever from a Secret reference.
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|ACCESS_KEY|PRIVATE_KEY|AUTH")
_SECRET_VALUE = re.compile(r"password=|://[^/\s]*:[^/\s]*@", re.IGNORECASE)
STORAGE_SCHEMES: Final = frozenset({"s3", "gs", "az", "azureblob"})


class SpecError(ValueError):
    """A deployment input that would render a wrong or unsafe object; names the field."""

    def __init__(self, field_name: str, problem: str) -> None:
        self.field = field_name
        super().__init__(f"SeldonDeploymentSpec.{field_name}: {problem}")


class DeploymentError(RuntimeError):
    """The Kubernetes API refused or failed an object; names the object and the status."""

    def __init__(
        self,
        *,
        kind: str,
        name: str,
        namespace: str,
        action: str,
        status: int | None,
        detail: str,
    ) -> None:
        self.kind = kind
        self.name = name
        self.namespace = namespace
        self.action = action
        self.status = status
        http = f"HTTP {status}" if status is not None else "no HTTP answer"
        super().__init__(
            f"{action} {kind}/{name} in namespace {namespace!r} failed ({http}): {detail}"
        )


# ------------------------------------------------------------------ typed inputs


def _quantity(value: str, field_name: str) -> float:
    """A Kubernetes quantity (e.g. "500m", "2Gi") as a number, for comparisons."""
    match = _QUANTITY.match(value)
    if match is None:
        raise SpecError(field_name, f"{value!r} is not a Kubernetes quantity like 500m or 2Gi")
    return float(match["number"]) * _SUFFIX[match["suffix"] or ""]


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container; both are always set (limits never missing)."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    def check(self, field_name: str) -> None:
        """Raise SpecError unless every value parses and no request exceeds its limit."""
        for kind in ("cpu", "memory"):
            request = _quantity(getattr(self, f"{kind}_request"), f"{field_name}.{kind}_request")
            limit = _quantity(getattr(self, f"{kind}_limit"), f"{field_name}.{kind}_limit")
            if request > limit:
                raise SpecError(
                    f"{field_name}.{kind}_request",
                    f"{getattr(self, f'{kind}_request')} exceeds the limit "
                    f"{getattr(self, f'{kind}_limit')}",
                )

    def to_k8s(self) -> dict[str, dict[str, str]]:
        """The container `resources` field."""
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


@dataclass(frozen=True)
class SecretKeyRef:
    """One key of a Kubernetes Secret: how every secret reaches a container."""

    name: str
    key: str

    def to_k8s(self) -> dict[str, Any]:
        """An env `valueFrom`."""
        return {"secretKeyRef": {"name": self.name, "key": self.key}}


# Sized from measurements on 2 cores (docs/decisions.md, 2): MLServer + Feast +
# xgboost + alibi-detect resident ~0.6-0.9 GB; one core serves ~600 req/s.
DEFAULT_RESOURCES: Final = Resources("1", "1536Mi", "2", "2Gi")
# Seldon's agent proxies every request (CPU); rclone only downloads artifacts.
DEFAULT_SIDECAR_RESOURCES: Final = Resources("100m", "128Mi", "1", "512Mi")


@dataclass(frozen=True)
class SeldonDeploymentSpec:
    """Everything the churn deployment needs to know; validated on construction.

    Secrets are references only (`redis_password`, `secret_env`): the password of the
    online store never appears in a rendered object. Non-secret CHURN_* settings come
    from `config_map` (envFrom) or `env`.
    """

    namespace: str
    image: str  # <repository>:<tag> (or @sha256:...); never "latest", never untagged
    bundle_uri: str  # the serving bundle's folder, e.g. s3://bucket/churn/churn-v3/bundle
    model_version: str  # the bundle manifest's model_version
    feature_service: str  # the bundle manifest's FeatureService (annotation, checked)
    drift_uri: str | None = None  # the drift model folder; None: no drift Model/step
    model_name: str = DEFAULT_MODEL_NAME
    server_name: str = "churn-mlserver"
    pipeline_name: str | None = None  # default "<model_name>-pipeline"
    replicas: int = 2
    min_replicas: int = 1
    max_replicas: int = 4
    resources: Resources = DEFAULT_RESOURCES
    sidecar_resources: Resources = DEFAULT_SIDECAR_RESOURCES
    model_memory: str = "768Mi"  # what Seldon's scheduler reserves for the churn model
    drift_memory: str = "256Mi"  # ... and for the drift model (same server)
    service_account: str = "churn-serving"  # IRSA: S3 read of bundles and Feast registry
    config_map: str | None = "churn-serving"  # CHURN_REDIS_HOST/PORT/DB, CHURN_S3_BUCKET...
    redis_password: SecretKeyRef = SecretKeyRef("churn-redis", "password")
    secret_env: Mapping[str, SecretKeyRef] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    feature_store_yaml: str = "feature_store.eks.yaml"
    storage_secret: str | None = None  # rclone config Secret for storageUri; None: IRSA
    drift_window: int | None = None  # CHURN_SERVING_DRIFT_WINDOW; None: the runtime's
    drift_batch_size: int | None = None  # Pipeline step batch.size (requests per call)
    run_as_user: int = 1000  # the image's non-root user

    def __post_init__(self) -> None:
        for name in ("namespace", "model_name", "server_name", "service_account"):
            _check_dns_label(name, getattr(self, name))
        # derived names must fit too: blame the field they derive from
        _check_dns_label("model_name", self.drift_model_name)
        _check_dns_label("pipeline_name" if self.pipeline_name else "model_name", self.pipeline)
        for name in ("config_map", "storage_secret"):
            if getattr(self, name) is not None:
                _check_dns_label(name, getattr(self, name))
        _check_image(self.image)
        _check_uri("bundle_uri", self.bundle_uri)
        if self.drift_uri is not None:
            _check_uri("drift_uri", self.drift_uri)
            if self.drift_uri.rstrip("/") == self.bundle_uri.rstrip("/"):
                raise SpecError("drift_uri", "must be the drift model's own folder, not the bundle")
        for name in ("model_version", "feature_service"):
            value = getattr(self, name)
            if not value or len(value) > 63 or not _LABEL_VALUE.match(value):
                raise SpecError(name, f"{value!r} must be a label value (<= 63 of [A-Za-z0-9._-])")
        if not 1 <= self.min_replicas <= self.replicas <= self.max_replicas:
            raise SpecError(
                "replicas",
                f"need 1 <= min_replicas ({self.min_replicas}) <= replicas ({self.replicas}) "
                f"<= max_replicas ({self.max_replicas})",
            )
        self.resources.check("resources")
        self.sidecar_resources.check("sidecar_resources")
        reserved = _quantity(self.model_memory, "model_memory")
        if self.drift_uri is not None:
            reserved += _quantity(self.drift_memory, "drift_memory")
        if reserved > _quantity(self.resources.memory_request, "resources.memory_request"):
            raise SpecError(
                "model_memory",
                f"the models reserve more memory than the server requests "
                f"({self.resources.memory_request}): Seldon would never schedule them",
            )
        for name, positive in (("drift_window", 10), ("drift_batch_size", 1)):
            value = getattr(self, name)
            if value is not None and value < positive:
                raise SpecError(name, f"must be at least {positive}, got {value}")
        if self.run_as_user < 1:
            raise SpecError("run_as_user", "containers never run as root (uid 0)")
        _check_env(self)

    @property
    def pipeline(self) -> str:
        """The Pipeline's name."""
        return self.pipeline_name or f"{self.model_name}-pipeline"

    @property
    def drift_model_name(self) -> str:
        """The drift Model's name (serving.drift_runtime.drift_model_name)."""
        return f"{self.model_name}-drift"

    @property
    def has_drift(self) -> bool:
        """True when a drift Model and Pipeline step are deployed."""
        return self.drift_uri is not None

    @classmethod
    def for_bundle(
        cls,
        manifest: BundleManifest,
        *,
        namespace: str,
        image: str,
        bundle_uri: str,
        drift_uri: str | None,
        **overrides: Any,
    ) -> SeldonDeploymentSpec:
        """The spec of a built bundle: model name, version and FeatureService from its manifest.

        Refuses a `drift_uri` for a bundle without a detector.
        """
        if drift_uri is not None and not manifest.has_drift_detector:
            raise SpecError("drift_uri", "the bundle has no drift detector to deploy")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise SpecError(unknown[0], "not a field of SeldonDeploymentSpec")
        values: dict[str, Any] = {
            "model_name": manifest.model_name,
            "model_version": manifest.model_version,
            "feature_service": manifest.feature_service,
            **overrides,
        }
        return cls(
            namespace=namespace,
            image=image,
            bundle_uri=bundle_uri,
            drift_uri=drift_uri,
            **values,
        )


def _check_dns_label(field_name: str, value: str) -> None:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise SpecError(
            field_name, f"{value!r} is not a DNS-1123 label (<= 63 of [a-z0-9-], alphanumeric ends)"
        )


def _check_image(image: str) -> None:
    match = _IMAGE.match(image)
    if match is None:
        raise SpecError("image", f"{image!r} is not an image reference <repository>:<tag>")
    tag, digest = match["tag"], match["digest"]
    if tag is None and digest is None:
        raise SpecError("image", f"{image!r} has no tag: it would pull 'latest'; pin a version")
    if tag is not None and tag.lower() == "latest":
        raise SpecError("image", f"{image!r}: the tag 'latest' is not a version; pin one")


def _check_uri(field_name: str, uri: str) -> None:
    parts = urlsplit(uri)
    if parts.scheme not in STORAGE_SCHEMES or not parts.netloc:
        schemes = sorted(STORAGE_SCHEMES)
        raise SpecError(
            field_name, f"{uri!r} must be <scheme>://<bucket>/<path>, scheme in {schemes}"
        )
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise SpecError(field_name, "must not carry credentials, a query or a fragment")


def _check_env(spec: SeldonDeploymentSpec) -> None:
    rendered = set(_churn_env(spec)) | set(_v1_env(spec)) | {"CHURN_REDIS_PASSWORD"}
    for name, value in spec.env.items():
        where = f"env[{name!r}]"
        if not _ENV_NAME.match(name):
            raise SpecError(where, "not a valid environment variable name")
        if _SECRET_NAME.search(name.upper()) or _SECRET_VALUE.search(value):
            raise SpecError(where, "looks like a secret: pass it as secret_env (a Secret key)")
        if name in rendered:
            raise SpecError(where, "is set by the renderer; change the spec field instead")
    for name in spec.secret_env:
        if not _ENV_NAME.match(name):
            raise SpecError(f"secret_env[{name!r}]", "not a valid environment variable name")
        if name in rendered or name in spec.env:
            raise SpecError(f"secret_env[{name!r}]", "is also set elsewhere")


# ------------------------------------------------------------------ pieces


def _labels(spec: SeldonDeploymentSpec, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": spec.model_name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
        "app.kubernetes.io/version": spec.model_version,
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


def _churn_env(spec: SeldonDeploymentSpec) -> dict[str, str]:
    """CHURN_SERVING_* the runtimes read (serving.settings), as rendered plain values."""
    env = {
        "CHURN_SERVING_FEATURE_STORE_YAML": spec.feature_store_yaml,
        # With a drift model the Pipeline checks drift; the churn step only emits rows.
        "CHURN_SERVING_EMIT_FEATURES": "true" if spec.has_drift else "false",
        "CHURN_SERVING_DRIFT_ENABLED": "false" if spec.has_drift else "true",
        # One MLServer process: the runtime's Redis connection, drift thread and metrics
        # live in it, and parallel workers crash under uvloop 0.23 (docs/decisions.md, 2).
        "MLSERVER_PARALLEL_WORKERS": "0",
        "MLSERVER_MODEL_PARALLEL_WORKERS": "0",
    }
    if spec.drift_window is not None:
        env["CHURN_SERVING_DRIFT_WINDOW"] = str(spec.drift_window)
    return env


def _v1_env(spec: SeldonDeploymentSpec) -> dict[str, str]:
    """MLServer configured from the environment alone (Seldon Core v1 container)."""
    return {
        "MLSERVER_HOST": "0.0.0.0",
        "MLSERVER_HTTP_PORT": str(V1_HTTP_PORT),
        "MLSERVER_GRPC_PORT": str(V1_GRPC_PORT),
        "MLSERVER_METRICS_PORT": str(V1_METRICS_PORT),
        "MLSERVER_METRICS_DIR": f"{V1_SERVER_ROOT}/.metrics",
        "MLSERVER_LOAD_MODELS_AT_STARTUP": "true",
        "MLSERVER_MODEL_NAME": spec.model_name,
        "MLSERVER_MODEL_IMPLEMENTATION": CHURN_IMPLEMENTATION,
        "MLSERVER_MODEL_URI": V1_MODEL_DIR,
    }


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
    }


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


# ------------------------------------------------------------------ Seldon Core v2


def render_server(spec: SeldonDeploymentSpec) -> dict[str, Any]:
    """The Server: Seldon's mlserver ServerConfig running the project's image."""
    mlserver: dict[str, Any] = {
        "name": MLSERVER_CONTAINER,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        # The ServerConfig sets no command; this is the stock MLServer image's, so the
        # Server does not depend on our image's CMD. $(VAR) is expanded by Kubernetes.
        "command": ["mlserver", "start", "$(MLSERVER_MODELS_DIR)"],
        "env": _env_list(spec, _churn_env(spec)),
        "resources": spec.resources.to_k8s(),
        "securityContext": _container_security(spec),
        **_probes(SERVER_HTTP_PORT_NAME),
    }
    env_from = _env_from(spec)
    if env_from:
        mlserver["envFrom"] = env_from
    sidecars = [
        {
            "name": name,
            "resources": spec.sidecar_resources.to_k8s(),
            "securityContext": _container_security(spec),
        }
        for name in SIDECAR_CONTAINERS
    ]
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
    """churn -> churn-drift; the client gets the churn step's output only."""
    steps: list[dict[str, Any]] = [{"name": spec.model_name}]
    if spec.has_drift:
        drift_step: dict[str, Any] = {
            "name": spec.drift_model_name,
            "inputs": [f"{spec.model_name}.outputs"],
        }
        if spec.drift_batch_size is not None:
            drift_step["batch"] = {"size": spec.drift_batch_size}
        steps.append(drift_step)
    return {
        "apiVersion": SELDON_V2_API,
        "kind": "Pipeline",
        "metadata": _metadata(spec, spec.pipeline, "pipeline"),
        "spec": {"steps": steps, "output": {"steps": [spec.model_name]}},
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
        **_v1_env(spec),
        **_churn_env(spec),
        # no Pipeline in v1: the runtime's background monitor checks drift
        "CHURN_SERVING_EMIT_FEATURES": "false",
        "CHURN_SERVING_DRIFT_ENABLED": "true",
    }
    ports = {"http": V1_HTTP_PORT, "grpc": V1_GRPC_PORT, "metrics": V1_METRICS_PORT}
    container: dict[str, Any] = {
        "name": spec.model_name,  # the graph unit's name: the storage initializer mounts here
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["mlserver", "start", V1_SERVER_ROOT],
        "env": _env_list(spec, plain),
        "ports": [
            {"name": name, "containerPort": port, "protocol": "TCP"} for name, port in ports.items()
        ],
        "resources": spec.resources.to_k8s(),
        "securityContext": _container_security(spec),
        "volumeMounts": [{"name": "mlserver-root", "mountPath": V1_SERVER_ROOT}],
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
            "volumes": [{"name": "mlserver-root", "emptyDir": {}}],
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
    if spec.storage_secret is not None:
        graph["envSecretRefName"] = spec.storage_secret
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


# ------------------------------------------------------------------ applying


@dataclass(frozen=True)
class ApplyResult:
    """What was sent for one object and what the API server answered."""

    kind: str
    name: str
    namespace: str
    action: Literal["created", "replaced"]
    path: str  # the REST collection path, e.g. /apis/mlops.seldon.io/v1alpha1/namespaces/x/models
    body: dict[str, Any]  # the last body sent
    resource_version: str | None  # of the stored object, from the answer
    dry_run: bool


@dataclass(frozen=True)
class _Ref:
    group: str
    version: str
    plural: str
    kind: str
    name: str
    namespace: str

    @property
    def path(self) -> str:
        return f"/apis/{self.group}/{self.version}/namespaces/{self.namespace}/{self.plural}"


def _ref(obj: Mapping[str, Any], namespace: str) -> _Ref:
    """Group, version, plural and name of a rendered object; ValueError naming what's wrong."""
    kind = str(obj.get("kind", ""))
    api_version = str(obj.get("apiVersion", ""))
    metadata = obj.get("metadata") or {}
    name = str(metadata.get("name", ""))
    if kind not in PLURALS:
        raise ValueError(f"object {kind or '?'}/{name or '?'}: kind not one of {sorted(PLURALS)}")
    if "/" not in api_version:
        raise ValueError(f"{kind}/{name}: apiVersion {api_version!r} is not <group>/<version>")
    if not name:
        raise ValueError(f"{kind} object without metadata.name")
    own = metadata.get("namespace")
    if own is not None and own != namespace:
        raise ValueError(f"{kind}/{name} is for namespace {own!r}, applying to {namespace!r}")
    group, version = api_version.split("/", 1)
    return _Ref(group, version, PLURALS[kind], kind, name, namespace)


def _api_detail(error: Exception) -> tuple[int | None, str]:
    """HTTP status and the API server's message (its Status body) of a client error."""
    status = getattr(error, "status", None)
    body = getattr(error, "body", None)
    detail = str(getattr(error, "reason", None) or error)
    if body:
        try:
            parsed = json.loads(body)
        except (TypeError, ValueError):
            detail = f"{detail}: {str(body)[:300]}"
        else:
            if isinstance(parsed, dict) and parsed.get("message"):
                detail = f"{detail}: {parsed['message']}"
    return (int(status) if status else None), detail


def default_api_client() -> ApiClient:
    """An ApiClient for the cluster this process runs in, else the current kubeconfig."""
    import os

    from kubernetes import client, config

    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
        else:
            config.load_kube_config()
    except config.ConfigException as e:
        raise DeploymentError(
            kind="cluster",
            name="config",
            namespace="-",
            action="configure",
            status=None,
            detail=f"no in-cluster service account and no usable kubeconfig: {e}",
        ) from e
    return client.ApiClient()


def apply_manifests(
    objects: Sequence[Mapping[str, Any]],
    api_client: ApiClient | None = None,
    *,
    namespace: str,
    dry_run: bool = False,
    field_manager: str = FIELD_MANAGER,
) -> list[ApplyResult]:
    """Create or replace each object, in order, in `namespace`; what was sent, per object.

    Create first; on 409 Conflict read the live object and replace it at its
    resourceVersion (optimistic concurrency: if it changed in between, read and try
    again, up to REPLACE_ATTEMPTS times). `dry_run` asks the API server to validate
    and admit without persisting (dryRun=All). Any other API failure stops the run
    with DeploymentError naming the object, the action and the HTTP status, raised
    from the client's exception; objects before it stay applied.
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    api = client.CustomObjectsApi(api_client or default_api_client())
    options: dict[str, Any] = {"field_manager": field_manager}
    if dry_run:
        options["dry_run"] = "All"
    refs = [_ref(obj, namespace) for obj in objects]  # refuse a bad list before sending any
    results: list[ApplyResult] = []
    for obj, ref in zip(objects, refs, strict=True):
        body = copy.deepcopy(dict(obj))
        body["metadata"] = {**body["metadata"], "namespace": namespace}
        body["metadata"].pop("resourceVersion", None)
        where = (ref.group, ref.version, namespace, ref.plural)

        def fail(action: str, error: Exception, ref: _Ref = ref) -> DeploymentError:
            status, detail = _api_detail(error)
            return DeploymentError(
                kind=ref.kind,
                name=ref.name,
                namespace=ref.namespace,
                action=action,
                status=status,
                detail=detail,
            )

        try:
            answer = api.create_namespaced_custom_object(*where, body, **options)
            results.append(_result(ref, "created", body, answer, dry_run))
            continue
        except ApiException as e:
            if e.status != 409:
                raise fail("create", e) from e
        except HTTPError as e:
            raise fail("create", e) from e
        for attempt in range(1, REPLACE_ATTEMPTS + 1):
            try:
                live = api.get_namespaced_custom_object(*where, ref.name)
                body["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
                answer = api.replace_namespaced_custom_object(*where, ref.name, body, **options)
            except ApiException as e:
                if e.status == 409 and attempt < REPLACE_ATTEMPTS:
                    continue  # changed between our read and our write: read again
                raise fail("replace", e) from e
            except HTTPError as e:
                raise fail("replace", e) from e
            results.append(_result(ref, "replaced", body, answer, dry_run))
            break
    return results


def _result(
    ref: _Ref,
    action: Literal["created", "replaced"],
    body: dict[str, Any],
    answer: Any,
    dry_run: bool,
) -> ApplyResult:
    version = None
    if isinstance(answer, Mapping):
        version = (answer.get("metadata") or {}).get("resourceVersion")
    return ApplyResult(
        kind=ref.kind,
        name=ref.name,
        namespace=ref.namespace,
        action=action,
        path=ref.path,
        body=copy.deepcopy(body),
        resource_version=str(version) if version is not None else None,
        dry_run=dry_run,
    )
