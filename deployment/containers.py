"""Container images: the engine, the base image, the wheelhouse and the builds.

Why one home: building and running the project's images needs four decisions that
every caller (the Makefile, the container tests, CI) must take the same way:

- **engine**: `docker` when its daemon answers, else Debian's `podman`. Podman is
  given a containers.conf of the project's (CONTAINERS_CONF) that selects the `runc`
  runtime when installed and sets `default_ulimits = []`: sandboxes and some CI
  runners forbid raising rlimits, and podman's default ulimits then fail every
  container at start ("error setting rlimit"). The user's own configuration is
  never edited.
- **base image**: the Dockerfiles take `PYTHON_IMAGE` (python:3.11.x-slim-bookworm).
  When it cannot be pulled (no registry access), an equivalent is built from
  Debian's packages with `debootstrap --variant=minbase bookworm` (Python 3.11 and pip,
  with `python3.11`/`python`/`pip` on /usr/local/bin as in the official image) and
  imported as `localhost/churn-python:3.11-bookworm-2`.
- **wheelhouse**: the images install only locked wheels, fetched on the host with
  the host's own pip configuration (index, proxy, certificates) into build/wheelhouse
  and checked against the sha256 sums of docker/requirements.*.txt
  (scripts/wheelhouse.sh). The build then
  runs with `--network none` and `--no-index`: it needs no network, works behind any
  proxy, and no index address, certificate or credential ever enters an image.
- **tags**: churn-steps and churn-mlserver, tag IMAGE_TAG (default 0.1.0).

    python -m deployment.containers engine | base-image | redis-image | wheelhouse | images
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from churn.settings import PROJECT_ROOT, get_settings

DOCKER_DIR: Final = PROJECT_ROOT / "docker"
WHEELHOUSE: Final = PROJECT_ROOT / "build" / "wheelhouse"
WHEELHOUSE_SCRIPT: Final = PROJECT_ROOT / "scripts" / "wheelhouse.sh"
OFFICIAL_BASE: Final = "python:3.11.15-slim-bookworm"
# The tag changes with BASE_PACKAGES: an existing stand-in is never rebuilt in place.
LOCAL_BASE: Final = "localhost/churn-python:3.11-bookworm-2"
# The official image with what it lacks (docker/base.Dockerfile: libgomp1), built with
# the network before the offline image builds.
OFFICIAL_WITH_LIBS: Final = "localhost/churn-python:3.11.15-slim-bookworm-libgomp1"
# docker/docker-compose.yml's Redis (CHURN_REDIS_IMAGE overrides it), and the stand-in
# from Debian's redis-server package when that cannot be pulled.
REDIS_IMAGE: Final = "redis:7.4.1-bookworm"
REDIS_STANDIN: Final = "localhost/churn-redis:bookworm"
DEFAULT_TAG: Final = "0.1.0"
IMAGES: Final = {"churn-steps": "steps.Dockerfile", "churn-mlserver": "mlserver.Dockerfile"}
# What the debootstrapped base carries: the interpreter, venv and pip, as python:slim.
# libgomp1: LightGBM's wheel links the system's libgomp.so.1 (XGBoost and scikit-learn
# carry their own copies); without it `import lightgbm` fails in the images.
BASE_PACKAGES: Final = (
    "python3.11",
    "python3.11-venv",
    "python3-pip",
    "ca-certificates",
    "libgomp1",
)
_CONTAINERS_CONF: Final = "[containers]\n# sandboxes forbid raising rlimits\ndefault_ulimits = []\n"


class ContainerError(RuntimeError):
    """No engine, a failed build, or a base image that cannot be had; says what to do."""


@dataclass(frozen=True)
class Engine:
    """A container engine CLI and the environment it runs with."""

    name: str
    executable: str
    env: Mapping[str, str] = field(default_factory=dict)

    def command(self, *args: str) -> list[str]:
        """argv of `<engine> args...`."""
        return [self.executable, *args]

    def run(
        self, *args: str, check: bool = True, timeout: float | None = 600, capture: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `<engine> args...`; ContainerError quoting stderr when `check` and it fails."""
        proc = subprocess.run(
            self.command(*args),
            env={**os.environ, **self.env},
            capture_output=capture,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise ContainerError(
                f"{self.name} {' '.join(args[:3])} ... failed ({proc.returncode}): "
                f"{(proc.stderr or '')[-2000:]}"
            )
        return proc

    def image_exists(self, ref: str) -> bool:
        """Whether `ref` is in the engine's local image store."""
        return self.run("image", "inspect", ref, check=False, timeout=60).returncode == 0


# The manifests' container securityContext (runAsUser 1000, readOnlyRootFilesystem,
# capabilities drop ALL, allowPrivilegeEscalation false) as `run` options.
MANIFEST_USER: Final = "1000:1000"


def manifest_run_args(
    user: str = MANIFEST_USER,
    tmpfs: Sequence[str] = ("/tmp",),
    mounts: Sequence[tuple[Path, str, str]] = (),
) -> list[str]:
    """`run` options that start a container as k8s/ runs its pods: the user, a read-only
    root, no capabilities, no privilege escalation, writable only on `tmpfs` (the
    emptyDirs) and on `mounts` ((host path, container path, "ro" or "rw")).

    Why here: a container that only works with a writable root or as root passes a
    plain `run` and fails in the cluster; every caller that stands in for a pod uses
    these same options."""
    args = ["--user", user, "--read-only", "--cap-drop", "ALL"]
    args += ["--security-opt", "no-new-privileges"]
    for path in tmpfs:
        args += ["--tmpfs", f"{path}:rw,size=512m,mode=1777"]
    for host, inside, mode in mounts:
        args += ["-v", f"{host}:{inside}:{mode}"]
    return args


def _state_dir() -> Path:
    return get_settings().home / "containers"


def podman_conf() -> Path:
    """The project's containers.conf for podman (runtime, no default ulimits)."""
    text = _CONTAINERS_CONF
    if shutil.which("runc"):
        text += '\n[engine]\nruntime = "runc"\n'
    path = _state_dir() / "containers.conf"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path


def find_engine(name: str | None = None) -> Engine | None:
    """Engine `name`, else CHURN_CONTAINER_ENGINE's, else docker when its daemon answers,
    else podman; None when none runs here."""
    wanted = name or os.environ.get("CHURN_CONTAINER_ENGINE", "").strip()
    order = [wanted] if wanted else ["docker", "podman"]
    for name in order:
        path = shutil.which(name)
        if path is None:
            continue
        if name == "podman":
            return Engine("podman", path, {"CONTAINERS_CONF": str(podman_conf())})
        probe = subprocess.run([path, "info"], capture_output=True, timeout=30, check=False)
        if probe.returncode == 0:  # the docker client alone is not an engine
            return Engine("docker", path)
    return None


def require_engine(name: str | None = None) -> Engine:
    """find_engine(name), or ContainerError saying how to get one."""
    engine = find_engine(name)
    if engine is None:
        raise ContainerError(
            "no container engine: install Docker (with a running daemon) or podman "
            "(`apt-get install podman runc`; make setup does it when root on Debian)"
        )
    return engine


def _apt_mirror() -> str | None:
    """The Debian mirror the host's apt uses (deb822 or one-line sources), if any."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file() or path.suffix not in ("", ".list", ".sources"):
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and len(words) > 1 and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"] and len(words) > 2 and "security" not in line:
                return next(w for w in words[1:] if "://" in w)
    return None


def build_base_image(engine: Engine, tag: str = LOCAL_BASE) -> float:
    """debootstrap a bookworm root file system with Python 3.11 and import it as `tag`.

    Needs root (debootstrap) and returns the seconds it took. The image matches what
    the Dockerfiles use of python:3.11-slim-bookworm: python3.11, python and pip on
    /usr/local/bin, pip usable by root (no PEP 668 marker), no apt caches or docs.
    """
    return _debootstrap_image(engine, tag, BASE_PACKAGES, _python_layout, 'CMD ["python3"]')


def build_redis_image(engine: Engine, tag: str = REDIS_STANDIN) -> float:
    """Debian's redis-server (and redis-cli) as an image, for when REDIS_IMAGE cannot be
    pulled: a stand-in for docker-compose.yml's Redis, run as its user 999 with /data
    owned by it as in the official image. Returns the seconds it took."""

    def data_dir(rootfs: Path) -> None:
        data = rootfs / "data"
        data.mkdir(exist_ok=True)
        os.chown(data, 999, 999)

    return _debootstrap_image(engine, tag, ("redis-server",), data_dir, 'CMD ["redis-server"]')


def _debootstrap_image(
    engine: Engine,
    tag: str,
    packages: Sequence[str],
    prepare: Callable[[Path], None],
    cmd: str,
) -> float:
    """debootstrap --variant=minbase bookworm with `packages`, `prepare`d, imported as `tag`."""
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        raise ContainerError("debootstrap is missing: apt-get install debootstrap")
    if os.geteuid() != 0:
        raise ContainerError("building an image with debootstrap needs root")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="churn-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        argv = [debootstrap, "--variant=minbase", f"--include={','.join(packages)}"]
        argv += ["bookworm", str(rootfs)]
        mirror = _apt_mirror()
        subprocess.run(argv + ([mirror] if mirror else []), check=True, capture_output=True)
        _trim_rootfs(rootfs)
        prepare(rootfs)
        archive = Path(tmp) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
        changes = [
            "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            cmd,
        ]
        engine.run("import", *[a for c in changes for a in ("--change", c)], str(archive), tag)
    return time.monotonic() - started


def _trim_rootfs(rootfs: Path) -> None:
    """Drop apt caches and docs."""
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
        target = rootfs / junk
        if target.is_dir():
            for entry in target.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                elif entry.name != "lock":
                    entry.unlink()


def _python_layout(rootfs: Path) -> None:
    """python and pip where the official image has them, pip usable by root."""
    (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
    local_bin = rootfs / "usr/local/bin"
    for name, points_to in {
        "python3.11": "/usr/bin/python3.11",
        "python3": "/usr/bin/python3.11",
        "python": "/usr/bin/python3.11",
        "pip": "/usr/bin/pip3",
        "pip3": "/usr/bin/pip3",
    }.items():
        link = local_bin / name
        link.unlink(missing_ok=True)
        link.symlink_to(points_to)


def python_image(engine: Engine) -> str:
    """The base for PYTHON_IMAGE: the official image plus libgomp1 (docker/base.Dockerfile)
    if the official one is present or pullable, else the debootstrapped stand-in."""
    base = _official_or_standin(engine, OFFICIAL_BASE, LOCAL_BASE, build_base_image)
    if base != OFFICIAL_BASE:
        return base
    if not engine.image_exists(OFFICIAL_WITH_LIBS):
        _say(f"containers: building {OFFICIAL_WITH_LIBS} ({OFFICIAL_BASE} + libgomp1)")
        engine.run(
            "build", "-t", OFFICIAL_WITH_LIBS, "--build-arg", f"OFFICIAL={OFFICIAL_BASE}",
            "-f", str(DOCKER_DIR / "base.Dockerfile"), str(DOCKER_DIR), timeout=900,
        )  # fmt: skip
    return OFFICIAL_WITH_LIBS


def redis_image(engine: Engine) -> str:
    """docker-compose.yml's Redis image if present or pullable, else Debian's stand-in."""
    return _official_or_standin(engine, REDIS_IMAGE, REDIS_STANDIN, build_redis_image)


def _official_or_standin(
    engine: Engine, official: str, standin: str, build: Callable[[Engine, str], float]
) -> str:
    if engine.image_exists(official):
        return official
    if engine.run("pull", official, check=False, timeout=300).returncode == 0:
        return official
    if not engine.image_exists(standin):
        _say(f"containers: {official} cannot be pulled; building {standin} from Debian packages")
        build(engine, standin)
    return standin


def fetch_wheelhouse(dest: Path = WHEELHOUSE) -> int:
    """scripts/wheelhouse.sh into `dest` with this interpreter's pip; the wheel count.

    The script is the one home of what is fetched and how (hashes, platform tags); CD
    runs it without the project's environment.
    """
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(WHEELHOUSE_SCRIPT), str(dest)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise ContainerError(f"fetching the wheelhouse failed: {proc.stderr[-2000:]}")
    return sum(1 for _ in dest.glob("*.whl"))


def build_image(engine: Engine, image: str, tag: str, base: str) -> float:
    """Build one image from its Dockerfile with no network; returns the seconds it took."""
    dockerfile = DOCKER_DIR / IMAGES[image]
    if not any(WHEELHOUSE.glob("*.whl")):
        raise ContainerError(f"{WHEELHOUSE} has no wheels: run `make wheelhouse` first")
    started = time.monotonic()
    argv = ["build", "--network", "none", "-f", str(dockerfile)]
    if engine.name == "podman":  # OCI format drops HEALTHCHECK and SHELL
        argv += ["--format", "docker"]
    argv += ["--build-arg", f"PYTHON_IMAGE={base}", "-t", f"{image}:{tag}", str(PROJECT_ROOT)]
    engine.run(*argv, timeout=1800, capture=False)
    return time.monotonic() - started


def image_size_mb(engine: Engine, ref: str) -> float:
    """Uncompressed size of a local image, in MB (10^6 bytes)."""
    out = engine.run("image", "inspect", "--format", "{{.Size}}", ref, timeout=60).stdout
    return int(out.strip()) / 1e6


def build_images(
    tag: str = DEFAULT_TAG, names: Sequence[str] = tuple(IMAGES), engine: Engine | None = None
) -> None:
    """Wheelhouse, base and every image, printing the time and size of each."""
    engine = engine or require_engine()
    count = fetch_wheelhouse()
    _say(f"containers: {count} locked wheels in {WHEELHOUSE.relative_to(PROJECT_ROOT)}")
    base = python_image(engine)
    for image in names:
        seconds = build_image(engine, image, tag, base)
        size = image_size_mb(engine, f"{image}:{tag}")
        _say(f"containers: {image}:{tag} built in {seconds:.0f} s, {size:.0f} MB ({base})")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """CLI of the Makefile's image targets."""
    parser = argparse.ArgumentParser(prog="python -m deployment.containers")
    commands = ("engine", "base-image", "redis-image", "wheelhouse", "images")
    parser.add_argument("command", choices=commands)
    parser.add_argument("--tag", default=os.environ.get("IMAGE_TAG", DEFAULT_TAG))
    parser.add_argument("--image", action="append", choices=tuple(IMAGES))
    args = parser.parse_args(argv)
    try:
        if args.command == "engine":
            engine = require_engine()
            _say(f"{engine.name} ({engine.executable}) on {platform.machine()}")
        elif args.command == "base-image":
            engine = require_engine()
            _say(f"containers: base image {python_image(engine)}")
        elif args.command == "redis-image":  # for CHURN_REDIS_IMAGE of docker-compose.yml
            _say(redis_image(require_engine()))
        elif args.command == "wheelhouse":
            _say(f"containers: {fetch_wheelhouse()} wheels in {WHEELHOUSE}")
        else:
            build_images(args.tag, args.image or tuple(IMAGES))
    except (ContainerError, subprocess.CalledProcessError) as e:
        sys.stderr.write(f"containers: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
