#!/usr/bin/env bash
# ZenML's own server and dashboard over this checkout's ZenML store, in the foreground.
#
#   scripts/zenml_ui.sh [--port N]   build the tool env if needed, then serve (make zenml-ui)
#   scripts/zenml_ui.sh --lock       recompile tools/zenml-ui.lock from the project's zenml pin
#
# zenml[server] cannot live in .venv (its fastapi<=0.115.8 needs starlette<0.46, Streamlit
# 1.67 needs starlette>=0.46), so the server runs from its own environment, built with uv
# from tools/zenml-ui.lock into .churn/tools/zenml-ui (CHURN_ZENML_UI_ENV overrides).
# The store is the one ZENML_CONFIG_PATH names (the Makefile's default: .churn/zenml). The
# server gets its own, empty ZENML_CONFIG_PATH and the store's URL in ZENML_STORE_URL, so
# the checkout's client config (config.yaml) is never rewritten; database migrations are
# off, and the script refuses a store whose schema is not the project's zenml version.
# Auth is NO_AUTH, as `zenml login --local` does: every request is the store's default
# user, so the server listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

LOCK=tools/zenml-ui.lock
TOOL_ENV="${CHURN_ZENML_UI_ENV:-$ROOT/.churn/tools/zenml-ui}"
CONFIG="${ZENML_CONFIG_PATH:-$ROOT/.churn/zenml}"
HOST=127.0.0.1
PORT="${ZENML_UI_PORT:-8237}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
UV="$(command -v uv || echo "$PYTHON -m uv")"

die() {
  echo "zenml-ui: $*" >&2
  exit 1
}

# The project's zenml version: the exact pin in pyproject.toml.
ZENML_VERSION="$(grep -oE '"zenml\[[a-z,]+\]==[0-9][0-9a-z.]*"' pyproject.toml | head -n1 | sed -E 's/.*==([^"]+)"/\1/')"
[ -n "$ZENML_VERSION" ] || die "no exact zenml pin found in pyproject.toml"

case "${1:-}" in
  --lock)
    $UV pip compile --quiet - --python-version 3.11 --no-header --no-annotate -o "$LOCK" \
      <<<"zenml[server]==$ZENML_VERSION"
    # exact pins only: no index URLs, options or hosts in a committed file
    if grep -vqE '^[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+$' "$LOCK"; then
      die "$LOCK has lines other than name==version: $(grep -vE '^[A-Za-z0-9._-]+==' "$LOCK" | head -n3)"
    fi
    echo "zenml-ui: $LOCK compiled ($(wc -l <"$LOCK") packages)"
    exit 0
    ;;
  --port)
    [ -n "${2:-}" ] || die "--port needs a number"
    PORT="$2"
    ;;
  "") ;;
  *) die "unknown argument: $1 (use --port N or --lock)" ;;
esac
[[ "$PORT" =~ ^[0-9]+$ ]] || die "port must be a number, got '$PORT'"

# Refuse before building anything when there is no store to show.
NO_STORE="no ZenML store at $CONFIG yet: run \`make demo\` or a pipeline first"
[ -f "$CONFIG/config.yaml" ] || die "$NO_STORE"

grep -q "^zenml==$ZENML_VERSION\$" "$LOCK" \
  || die "$LOCK does not pin zenml==$ZENML_VERSION (the project's): run scripts/zenml_ui.sh --lock"

# The tool env: built once, rebuilt when the lock changes (fast when present).
PY="$TOOL_ENV/bin/python"
stamp="$TOOL_ENV/.churn-installed"
if [ ! -f "$stamp" ] || [ "$LOCK" -nt "$stamp" ]; then
  mkdir -p "$(dirname "$TOOL_ENV")"
  exec 9>"$TOOL_ENV.build-lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi  # two builders: one waits
  if [ ! -f "$stamp" ] || [ "$LOCK" -nt "$stamp" ]; then
    echo "zenml-ui: building the ZenML server environment in $TOOL_ENV (once)" >&2
    [ -x "$PY" ] || $UV venv --quiet --python "$PYTHON" "$TOOL_ENV"
    $UV pip sync --quiet --python "$PY" --compile-bytecode "$LOCK"
    touch "$stamp"
  fi
  exec 9>&-
fi

# The store's URL, checked: same zenml as the project, a local SQLite file that exists,
# and a schema at exactly this zenml's revision (so no migration is ever needed).
STORE_URL="$("$PY" - "$CONFIG" "$ZENML_VERSION" "$NO_STORE" <<'EOF'
import importlib.metadata
import sqlite3
import sys
from pathlib import Path

import yaml

config, expected, no_store = Path(sys.argv[1]), sys.argv[2], sys.argv[3]


def die(message: str) -> None:
    sys.exit(f"zenml-ui: {message}")


tool = importlib.metadata.version("zenml")
if tool != expected:
    die(f"the tool env has zenml {tool} but the project pins {expected}: delete {sys.prefix}")
store = (yaml.safe_load((config / "config.yaml").read_text()) or {}).get("store") or {}
default_db = config / "local_stores" / "default_zen_store" / "zenml.db"
url = store.get("url") or f"sqlite:///{default_db}"
if not url.startswith("sqlite:///"):
    die(f"{config} uses the ZenML store {url}, not a local SQLite one: open that server's dashboard")
db = Path(url.removeprefix("sqlite:///"))
if not db.is_file():
    die(no_store)
with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as connection:
    try:
        revisions = [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.DatabaseError as e:
        die(f"{db} is not a ZenML store ({e})")
if revisions != [tool]:
    die(
        f"the store {db} is at schema {revisions}, this dashboard's zenml is {tool}; the server "
        "never migrates it: run any zenml command with the project's .venv first"
    )
print(url)
EOF
)" || exit 1

# The server's own ZenML config directory: nothing is written there in server mode.
SERVER_HOME="$TOOL_ENV/server-home"
mkdir -p "$SERVER_HOME"
cd "$SERVER_HOME"
echo "zenml-ui: ZenML dashboard on http://$HOST:$PORT over ${STORE_URL#sqlite:///} (Ctrl+C stops it)" >&2
exec env \
  ZENML_CONFIG_PATH="$SERVER_HOME" \
  ZENML_STORE_URL="$STORE_URL" \
  ZENML_LOCAL_STORES_PATH="$CONFIG/local_stores" \
  ZENML_SERVER=true \
  ZENML_SERVER_DEPLOYMENT_TYPE=local \
  ZENML_SERVER_AUTH_SCHEME=NO_AUTH \
  ZENML_SERVER_AUTO_ACTIVATE=True \
  ZENML_SERVER_ALLOW_LOCAL_FILE_ACCESS=true \
  DISABLE_DATABASE_MIGRATION=True \
  ZENML_ANALYTICS_OPT_IN=false \
  "$PY" -m uvicorn zenml.zen_server.zen_server_api:app \
  --host "$HOST" --port "$PORT" --no-server-header
