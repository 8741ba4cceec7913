"""The steps image runs a real pipeline: `zenml pipeline run` of the feature pipeline inside
the container, against this test's own Redis, as a ZenML step pod runs the project's code.

The container runs as the image's user (uid 1000) with every capability dropped, the
project from /app (the image's working directory and ZenML's source root), a ZenML
store and CHURN_HOME on a mounted volume (the churn-state volume of k8s/), and the
host network to reach Redis. What the container wrote is then read on the host with
Feast's own client: the registry it applied, and in Redis every customer's features
equal to the offline store it wrote.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator

import numpy as np
import pytest
from containers_support import engine_or_skip, env_args, image
from isolation import isolated_stack, redis_env

from churn.data.offline import read_offline_table
from churn.features.store import get_store, online_features
from churn.schema import ENTITY_KEY, Group, feature_names
from churn.settings import Settings

pytestmark = pytest.mark.integration

IMAGE = "churn-steps"
HOME_IN_IMAGE = "/var/lib/churn"
SAMPLE = 500


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict[str, str]]]:
    """A CHURN_HOME the container's uid 1000 can write, with its own running Redis."""
    path = tmp_path_factory.mktemp("steps_image_home")
    path.chmod(0o777)
    env = redis_env(path, "steps-image")
    with isolated_stack(env) as (settings, _):
        yield settings, env


def test_feature_pipeline_runs_in_the_steps_image(home: tuple[Settings, dict[str, str]]) -> None:
    settings, env = home
    engine = engine_or_skip()
    ref = image(engine, IMAGE)
    container_env = {
        **{k: v for k, v in env.items() if k.startswith("CHURN_REDIS_")},
        "CHURN_HOME": HOME_IN_IMAGE,
        "ZENML_CONFIG_PATH": f"{HOME_IN_IMAGE}/zenml",
    }
    argv = engine.command(
        "run", "--rm", "--network", "host", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "-v", f"{settings.home}:{HOME_IN_IMAGE}",
        *env_args(container_env), ref,
        "zenml", "pipeline", "run", "pipelines.feature_pipeline.feature_pipeline",
        "-c", "configs/feature_pipeline.yaml",
    )  # fmt: skip
    proc = subprocess.run(
        argv, env={**os.environ, **engine.env}, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Pipeline run has finished" in proc.stdout + proc.stderr

    registry = settings.feast_registry_path
    assert registry.is_file() and registry.stat().st_uid == 1000  # the image's user wrote it
    offline = read_offline_table(Group.ACCOUNT.value, settings.offline_dir)
    assert offline[ENTITY_KEY].nunique() == 10_000  # configs/feature_pipeline.yaml
    sample = offline.sample(SAMPLE, random_state=0).set_index(ENTITY_KEY)
    served = online_features(get_store(settings=settings), sample.index.tolist())
    for name in feature_names(Group.ACCOUNT):
        ours = np.asarray(served.columns[name])
        theirs = sample[name].to_numpy()
        if ours.dtype.kind in "fi":
            np.testing.assert_allclose(ours.astype(float), theirs.astype(float), err_msg=name)
        else:
            assert ours.tolist() == theirs.tolist(), name


def test_the_steps_image_holds_no_index_configuration_or_credentials() -> None:
    """Nothing of the host's pip/uv configuration, certificates or index addresses in
    the images' files or build history (the builds ran offline from a wheelhouse)."""
    engine = engine_or_skip()
    for name in (IMAGE, "churn-mlserver"):
        ref = image(engine, name)
        history = engine.run("history", "--no-trunc", "--format", "{{.CreatedBy}}", ref).stdout
        remote = re.findall(r"https?://(?!127\.0\.0\.1[:/])[^\s'\"]+", history)
        assert remote == [], f"{name}: {remote}"
        assert "PIP_" not in history.replace("PIP_DISABLE_PIP_VERSION_CHECK", ""), name
        found = engine.run(
            "run", "--rm", "--network", "none", "--entrypoint", "sh", ref, "-c",
            "ls /etc/pip.conf /etc/xdg/pip /root/.config/pip /root/.pip /home/churn/.config/pip "
            "/home/churn/.config/uv /etc/uv /wheels 2>/dev/null; "
            "grep -rlsE 'index-url|find-links' /etc /home /root 2>/dev/null; "
            "env | grep -E '^(PIP_|UV_|REQUESTS_CA_BUNDLE|SSL_CERT_FILE)' | "
            "grep -v '^PIP_DISABLE_PIP_VERSION_CHECK'; true",
            check=False,
        ).stdout  # fmt: skip
        assert found.strip() == "", f"{name}: {found}"
