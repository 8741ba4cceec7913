"""The typed input of the churn deployment on Seldon Core, validated on construction.

`SeldonDeploymentSpec` refuses values that would deploy something wrong or unsafe
(an image without a pinned tag or "latest", a secret as a plain environment variable,
limits below requests, models that do not fit the server's memory), naming the
field. deployment.seldon.render turns a spec into objects; deployment.seldon.apply
sends them. Pure Python: no kubernetes client, no MLServer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from churn.inference import DEFAULT_MODEL_NAME
from deployment.bundle import CHURN_IMPLEMENTATION
from deployment.drift_model import drift_model_name

if TYPE_CHECKING:
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
# MLServer with the churn front (serving.server: streaming routes answer 400, not 500).
SERVER_COMMAND: Final = ("python", "-m", "serving.server", "start")
MLSERVER_CONTAINER: Final = "mlserver"  # container names of Seldon's mlserver ServerConfig
AGENT_CONTAINER: Final = "agent"
RCLONE_CONTAINER: Final = "rclone"
SIDECAR_CONTAINERS: Final = (AGENT_CONTAINER, RCLONE_CONTAINER)
SERVER_HTTP_PORT_NAME: Final = "server-http"  # the ServerConfig's MLServer port (9000)
CAPABILITY: Final = "churn-mlops"  # advertised by our Server, required by our Models
FIELD_MANAGER: Final = "churn-mlops"
PART_OF: Final = "churn-mlops"
ANNOTATION_PREFIX: Final = "churn-mlops"
# Seldon Core v1 container: MLServer ports (v1's executor finds them by name) and paths.
V1_HTTP_PORT: Final = 9000
V1_GRPC_PORT: Final = 9500
V1_METRICS_PORT: Final = 8082
V1_MODEL_DIR: Final = "/mnt/models"  # where Seldon v1's storage initializer puts modelUri
V1_SERVER_ROOT: Final = "/srv/mlserver"  # an empty dir: MLServer configured by env only
# MLSERVER_METRICS_DIR: Prometheus' multiprocess files (written with parallel workers only)
METRICS_DIR: Final = f"{V1_SERVER_ROOT}/.metrics"
# readOnlyRootFilesystem on every container of the pod; each path a container writes
# is an emptyDir (volume name -> (mount path, sizeLimit)):
#   mlserver  /tmp (tempfiles, MPLCONFIGDIR=/tmp/matplotlib), the image's HOME
#             /home/churn (caches: numba, ...), /srv/mlserver (MLSERVER_METRICS_DIR);
#             the models dir is Seldon's volume (v2) or the storage initializer's (v1)
#   agent     /tmp (its downloads go to the models volume, /mnt/agent)
#   rclone    /rclone (Seldon's rclone image: `rcd --config=/rclone/rclone.conf`,
#             written by config/create), /tmp
IMAGE_HOME: Final = "/home/churn"  # docker/mlserver.Dockerfile: HOME
WRITABLE: Final[dict[str, dict[str, tuple[str, str]]]] = {
    MLSERVER_CONTAINER: {
        "churn-tmp": ("/tmp", "1Gi"),
        "churn-home": (IMAGE_HOME, "256Mi"),
        "churn-mlserver-root": (V1_SERVER_ROOT, "256Mi"),
    },
    AGENT_CONTAINER: {"churn-agent-tmp": ("/tmp", "256Mi")},
    RCLONE_CONTAINER: {
        "churn-rclone-config": ("/rclone", "16Mi"),
        "churn-rclone-tmp": ("/tmp", "256Mi"),
    },
}
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
# Model storage: Seldon's agent (v2) and v1's storage initializer download a storageUri
# with rclone, which needs a remote named like the URI's scheme. deployment.seldon.render
# .rclone_remote is the one definition of that remote; it reaches rclone as
#   v2: the Secret a Model names in spec.secretName, exactly one key whose value is the
#       remote as JSON {name, type, parameters} (agent: k8s/secrets.go GetSecretConfig,
#       rclone/rclone.go parseRcloneConfig; the name must equal the URI's scheme);
#   v1: the Secret graph.envSecretRefName names, RCLONE_CONFIG_<REMOTE>_<PARAMETER>
#       keys that become the storage initializer's environment.
RCLONE_REMOTE: Final = "s3"
RCLONE_SECRET: Final = "churn-rclone"  # v2: Model spec.secretName
RCLONE_ENV_SECRET: Final = "churn-rclone-env"  # v1: graph envSecretRefName
# rclone's backend option from the environment (fs/configmap.go: above the remote's own
# parameters): the region of the bucket, from the churn-serving ConfigMap's AWS_REGION.
RCLONE_REGION_ENV: Final = "RCLONE_S3_REGION"
REGION_KEY: Final = "AWS_REGION"  # key of the ConfigMap (components/eks sets it)


class SpecError(ValueError):
    """A deployment input that would render a wrong or unsafe object; names the field."""

    def __init__(self, field_name: str, problem: str) -> None:
        self.field = field_name
        super().__init__(f"SeldonDeploymentSpec.{field_name}: {problem}")


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
    # v2: the Secret with the rclone remote `s3` (RCLONE_SECRET; env_auth for IRSA on
    # EKS, keys for MinIO on kind); None: only the agent's preloaded remotes
    storage_secret: str | None = RCLONE_SECRET
    # v1: the Secret of RCLONE_CONFIG_S3_* variables for the storage initializer
    storage_env_secret: str | None = RCLONE_ENV_SECRET
    drift_window: int | None = None  # CHURN_SERVING_DRIFT_WINDOW; None: the runtime's
    # The drift step's Pipeline batch: Seldon's dataflow engine merges messages until
    # batch.size rows (shape[0]) are pending, then calls the drift model once (Seldon's
    # own drift samples batch too: fewer calls, same windows). batch.windowMs is kept by
    # Seldon's scheduler; 2.9.1's dataflow engine batches on size alone (BatchProcessor.kt).
    drift_batch_size: int = 20
    drift_batch_window_ms: int = 60_000
    run_as_user: int = 1000  # the image's non-root user

    def __post_init__(self) -> None:
        for name in ("namespace", "model_name", "server_name", "service_account"):
            _check_dns_label(name, getattr(self, name))
        # derived names must fit too: blame the field they derive from
        _check_dns_label("model_name", self.drift_model_name)
        _check_dns_label("pipeline_name" if self.pipeline_name else "model_name", self.pipeline)
        for name in ("config_map", "storage_secret", "storage_env_secret"):
            if getattr(self, name) is not None:
                _check_dns_label(name, getattr(self, name))
        _check_image(self.image)
        _check_uri("bundle_uri", self.bundle_uri)
        if self.drift_uri is not None:
            _check_uri("drift_uri", self.drift_uri)
            if self.drift_uri.rstrip("/") == self.bundle_uri.rstrip("/"):
                raise SpecError("drift_uri", "must be the drift model's own folder, not the bundle")
        if self.storage_secret is not None or self.storage_env_secret is not None:
            for name in ("bundle_uri", "drift_uri"):
                uri = getattr(self, name)
                if uri is not None and urlsplit(uri).scheme != RCLONE_REMOTE:
                    raise SpecError(
                        name,
                        f"{uri!r}: the storage secrets hold the rclone remote "
                        f"{RCLONE_REMOTE!r}, so it must be {RCLONE_REMOTE}://... "
                        "(or set both storage secrets to None)",
                    )
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
        for name, positive in (
            ("drift_window", 10),
            ("drift_batch_size", 1),
            ("drift_batch_window_ms", 1),
        ):
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
        """The drift Model's name (deployment.drift_model.drift_model_name)."""
        return drift_model_name(self.model_name)

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


# What the renderer sets itself (spec checks refuse env entries that collide).


def churn_env(spec: SeldonDeploymentSpec) -> dict[str, str]:
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
        "MLSERVER_METRICS_DIR": METRICS_DIR,  # on an emptyDir (WRITABLE)
    }
    if spec.drift_window is not None:
        env["CHURN_SERVING_DRIFT_WINDOW"] = str(spec.drift_window)
    return env


def v1_env(spec: SeldonDeploymentSpec) -> dict[str, str]:
    """MLServer configured from the environment alone (Seldon Core v1 container)."""
    return {
        "MLSERVER_HOST": "0.0.0.0",
        "MLSERVER_HTTP_PORT": str(V1_HTTP_PORT),
        "MLSERVER_GRPC_PORT": str(V1_GRPC_PORT),
        "MLSERVER_METRICS_PORT": str(V1_METRICS_PORT),
        "MLSERVER_LOAD_MODELS_AT_STARTUP": "true",
        "MLSERVER_MODEL_NAME": spec.model_name,
        "MLSERVER_MODEL_IMPLEMENTATION": CHURN_IMPLEMENTATION,
        "MLSERVER_MODEL_URI": V1_MODEL_DIR,
    }


def _check_env(spec: SeldonDeploymentSpec) -> None:
    rendered = set(churn_env(spec)) | set(v1_env(spec)) | {"CHURN_REDIS_PASSWORD"}
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
