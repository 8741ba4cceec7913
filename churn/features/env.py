"""The environment feature_store.yaml expects, rendered from churn.settings.

Feast 0.49 reads feature_store.yaml through `os.path.expandvars`: `$VAR` and
`${VAR}` are replaced when VAR is set, left verbatim when it is not, and there is
no `${VAR:-default}` syntax. Our yaml therefore names the same CHURN_* variables
that churn.settings reads, and this module provides both halves:

- `feast_env(settings)`: those variables with the values settings resolved (its
  defaults included), so `eval "$(python -m churn.features.env)"` (or `churn env`)
  makes the plain `feast` CLI see exactly what the Python code sees;
- `substitute(text, env)`: a strict expandvars that raises on an unset variable,
  used by churn.features.store to load the yaml without touching os.environ.

No Feast import here: printing the environment must stay instant.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Mapping
from typing import Final

from churn.settings import Settings, get_settings

# Feast's offline_store.type for each value of Settings.offline_store (the yaml reads it
# from CHURN_FEAST_OFFLINE_STORE, which only this module sets).
OFFLINE_STORE_TYPES: Final[dict[str, str]] = {
    "duckdb": "churn.features.offline_duckdb.ChurnDuckDBOfflineStore",
    "file": "file",
}
# Feast's batch_engine.type for each value of Settings.materialization_engine
# (CHURN_FEAST_BATCH_ENGINE in the yaml).
BATCH_ENGINE_TYPES: Final[dict[str, str]] = {
    "bulk": "churn.features.bulk_engine.RedisBulkEngine",
    "local": "local",
    "k8s": "k8s",
}

_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


class MissingEnvironmentVariableError(KeyError):
    """feature_store.yaml names a variable that has no value."""


def feast_env(settings: Settings) -> dict[str, str]:
    """CHURN_* variables used by feature_repo/feature_store.yaml, resolved by settings."""
    return {
        "CHURN_HOME": str(settings.home),
        "CHURN_REDIS_HOST": settings.redis_host,
        "CHURN_REDIS_PORT": str(settings.redis_port),
        "CHURN_REDIS_PASSWORD": settings.redis_password.get_secret_value(),
        "CHURN_REDIS_DB": str(settings.redis_db),
        "CHURN_FEAST_OFFLINE_STORE": OFFLINE_STORE_TYPES[settings.offline_store],
        "CHURN_FEAST_BATCH_ENGINE": BATCH_ENGINE_TYPES[settings.materialization_engine],
        "CHURN_STEPS_IMAGE": settings.steps_image,
    }


def substitute(text: str, env: Mapping[str, str], *, source: str = "feature_store.yaml") -> str:
    """Replace $VAR / ${VAR} like os.path.expandvars, but fail on an unset VAR.

    Feast would keep "${CHURN_HOME}" literally and create a directory of that name;
    an error naming the variable is the useful outcome.
    """
    missing: list[str] = []

    def _value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in env:
            missing.append(name)
            return match.group(0)
        return env[name]

    out = _VAR.sub(_value, text)
    if missing:
        raise MissingEnvironmentVariableError(
            f"{source} uses unset environment variable(s) {sorted(set(missing))}"
        )
    return out


def render_exports(env: Mapping[str, str]) -> str:
    """`export NAME=value` lines, shell-quoted, for `eval "$(...)"` or `source`."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())


def main() -> int:
    """Print the exports for the current settings (`python -m churn.features.env`)."""
    sys.stdout.write(render_exports(feast_env(get_settings())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
