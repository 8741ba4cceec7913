"""Parsing a feature store config that names the DuckDB store needs neither DuckDB nor ibis.

The MLServer image installs only what serving imports (docker/serving.in) and serving
parses feature_store.yaml / feature_store.eks.yaml for the Redis connection: both name
churn.features.offline_duckdb's store, whose classes import DuckDB and ibis only when
used. A subprocess with both imports blocked parses both configs; using the store
then fails on the blocked import (so the block is real).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from churn.settings import PROJECT_ROOT

SCRIPT = textwrap.dedent(
    """
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("ibis", "duckdb"):
                raise ImportError("blocked " + name)
            return None

    sys.meta_path.insert(0, Block())
    from churn.features.store import repo_config

    local = repo_config()
    eks = repo_config(yaml_file="feature_store.eks.yaml", environ={"CHURN_S3_BUCKET": "b"})
    print(local.offline_store.type, eks.offline_store.staging_location)
    assert "ibis" not in sys.modules and "duckdb" not in sys.modules
    import churn.features.offline_duckdb as store

    try:
        store.ChurnDuckDBOfflineStore
    except ImportError as e:
        print("using it:", e)
    """
)


def test_configs_parse_without_duckdb_and_ibis() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = done.stdout.strip().splitlines()[-2:]
    assert (
        first == "churn.features.offline_duckdb.ChurnDuckDBOfflineStore s3://b/churn/feast/staging"
    )
    assert second == "using it: blocked ibis"
