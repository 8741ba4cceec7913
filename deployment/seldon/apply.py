"""Apply rendered Seldon objects with the kubernetes client; failures name the object.

Create first; on 409 Conflict, replace at the live resourceVersion. The kubernetes
client is imported inside the functions, so rendering never needs it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from deployment.seldon.spec import FIELD_MANAGER, PLURALS, REPLACE_ATTEMPTS

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


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
