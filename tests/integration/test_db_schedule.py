"""The daily snapshot pipeline's EKS schedule renders and registers, with no cluster.

What runs: `churn stack run-config --schedule` renders the config; the EKS stack
(stacks/eks.yaml: Kubernetes orchestrator, S3 artifact store) is imported into a
fresh ZenML store; `zenml pipeline run` with the rendered config registers the cron
schedule, uses the prebuilt step image, uploads the code to S3 (the twin's moto
server stands in), and stops where a local ZenML store must: a remote orchestrator
needs a ZenML server (`zenml login`), which is what submits the CronJob on EKS.

One stand-in, outside the schedule's path: a kubeconfig whose context names the
stack's (the orchestrator validates it exists; its server is never called). The
stack file is imported as committed (its container registry flavor is `default`: the
`aws` flavor imports sagemaker and aws-profile-manager, which are not installed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ports import free_port

from churn import twin
from churn.settings import PROJECT_ROOT, Settings
from churn.stacks import render_stack, stack_variables

pytestmark = pytest.mark.integration

CONTEXT = "arn:aws:eks:eu-west-1:123456789012:cluster/churn"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/churn-mlops-steps:0.1.0"
KUBECONFIG = f"""apiVersion: v1
kind: Config
clusters:
- name: churn
  cluster: {{server: "https://127.0.0.1:{{port}}"}}
contexts:
- name: {CONTEXT}
  context: {{cluster: churn, user: churn}}
current-context: {CONTEXT}
users:
- name: churn
  user: {{token: not-a-token}}
"""


@pytest.fixture(scope="module")
def eks_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A fresh ZenML store, an S3 twin (moto) with the bucket, and a kubeconfig."""
    base = tmp_path_factory.mktemp("schedule")
    home = Path(tempfile.mkdtemp(prefix="churn-schedule-"))
    cfg = twin.TwinConfig(
        home=home, redis_port=0, postgres_port=0, s3_port=free_port(), mlflow_port=0
    )
    creds = twin.credentials(cfg)
    twin.start_s3(cfg, creds)
    kubeconfig = base / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG.replace("{port}", str(free_port())))
    env = {
        **os.environ,
        **twin.s3_env(cfg, creds),
        "ZENML_CONFIG_PATH": str(base / "zenml"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "AUTO_OPEN_DASHBOARD": "false",
        "KUBECONFIG": str(kubeconfig),
        "EKS_KUBE_CONTEXT": CONTEXT,
        "AWS_ACCOUNT_ID": "123456789012",
        "CHURN_S3_BUCKET": twin.BUCKET,
        "CHURN_MLFLOW_TRACKING_URI": "https://mlflow.example.internal",
    }
    try:
        yield env
    finally:
        twin.stop_s3(cfg)
        shutil.rmtree(home, ignore_errors=True)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False, timeout=600
    )


def test_the_schedule_renders_over_the_pipeline_config(tmp_path: Path) -> None:
    out = tmp_path / "daily.yaml"
    done = _run(
        [sys.executable, "-m", "churn.cli", "stack", "run-config",
         "configs/daily_snapshot_pipeline.yaml", "--schedule",
         "configs/daily_snapshot_schedule.eks.yaml", "--step-image", IMAGE, "-o", str(out)],
        dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(out.read_text())
    shipped = yaml.safe_load((PROJECT_ROOT / "configs/daily_snapshot_pipeline.yaml").read_text())
    assert rendered["schedule"] == {"name": "churn-daily-snapshot", "cron_expression": "30 2 * * *"}
    assert rendered["settings"]["docker"] == {"parent_image": IMAGE, "skip_build": True}
    assert rendered["settings"]["orchestrator.kubernetes"]["concurrency_policy"] == "Forbid"
    # the EKS run reads the URL from the ZenML secret; every other value is the shipped one
    assert rendered["parameters"]["source"].pop("url_secret") == "customer_db"
    assert shipped["parameters"]["source"].pop("url_secret") is None
    assert rendered["parameters"] == shipped["parameters"]
    assert rendered["parameters"]["day"] is None  # each cron run snapshots its own day


def test_the_eks_schedule_registers_without_a_cluster(
    eks_env: dict[str, str], churn_env: Settings, tmp_path: Path
) -> None:
    zenml = str(Path(sys.executable).with_name("zenml"))
    assert _run([zenml, "secret", "create", "mlflow_eks", "--username=ci", "--password=x"],
                eks_env).returncode == 0  # fmt: skip
    stack = render_stack("eks", stack_variables(churn_env, eks_env))
    assert "flavor: kubernetes" in stack
    stack_file = tmp_path / "eks.yaml"
    stack_file.write_text(stack)
    for args in (["stack", "import", "eks", "-f", str(stack_file)], ["stack", "set", "eks"]):
        done = _run([zenml, *args], eks_env)
        assert done.returncode == 0, done.stdout + done.stderr
    config = tmp_path / "daily.yaml"
    assert _run(
        [sys.executable, "-m", "churn.cli", "stack", "run-config",
         "configs/daily_snapshot_pipeline.yaml", "--schedule",
         "configs/daily_snapshot_schedule.eks.yaml", "--step-image", IMAGE, "-o", str(config)],
        eks_env,
    ).returncode == 0  # fmt: skip

    run = _run(
        [zenml, "pipeline", "run", "pipelines.daily_snapshot_pipeline.daily_snapshot_pipeline",
         "-c", str(config)],
        eks_env,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert "Created schedule" in output and "churn-daily-snapshot" in output, output[-3000:]
    assert IMAGE in output  # the prebuilt step image, no build
    # Submitting the CronJob is the ZenML server's job (zenml login on EKS); here it stops.
    assert run.returncode != 0 and "require a remote ZenML server" in output, output[-3000:]

    listed = _run([zenml, "pipeline", "schedule", "list", "--output", "json"], eks_env)
    schedules = json.loads(listed.stdout)["items"]
    assert [(s["name"], s["pipeline"], s["cron_expression"], s["active"]) for s in schedules] == [
        ("churn-daily-snapshot", "daily_snapshot_pipeline", "30 2 * * *", True)
    ]
