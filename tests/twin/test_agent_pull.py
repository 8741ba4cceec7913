"""The agent's download on the twin: rclone, the rendered remote, the S3 twin."""

from __future__ import annotations

from pathlib import Path

import pytest

from churn import twin
from deployment.seldon.render import RCLONE_REMOTE, model_rclone_secret, rclone_remote
from deployment.twin_agent import AgentPullError, agent_model_settings, pull, secret_remote


def _twin_remote(cfg: twin.TwinConfig, creds: twin.Credentials) -> dict[str, object]:
    """The churn-rclone Secret's remote, for an S3-compatible endpoint with keys."""
    return rclone_remote(
        endpoint=cfg.s3_endpoint,
        access_key_id=creds.s3_access_key,
        secret_access_key=creds.s3_secret_key,
        region=twin.REGION,
    )


def test_rclone_pulls_a_storage_uri_through_the_rendered_remote(
    twin_config: twin.TwinConfig, twin_up: twin.Credentials, tmp_path: Path
) -> None:
    s3 = twin.s3_client(twin_config, twin_up)
    files = {"model-settings.json": b'{"name": "churn"}', "bundle/manifest.json": b"{}"}
    for key, body in files.items():
        s3.put_object(Bucket=twin.BUCKET, Key=f"models/churn/7/{key}", Body=body)
    uri = f"{RCLONE_REMOTE}://{twin.BUCKET}/models/churn/7"
    dest = pull(uri, tmp_path / "models" / "churn", _twin_remote(twin_config, twin_up))
    assert {
        p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()
    } == files


def test_a_remote_of_another_name_cannot_read_the_storage_uri(
    twin_config: twin.TwinConfig, twin_up: twin.Credentials, tmp_path: Path
) -> None:
    """The storageUri's scheme must be the remote's name: `s3` and nothing else."""
    remote = {**_twin_remote(twin_config, twin_up), "name": "aws"}
    with pytest.raises(AgentPullError):
        pull(f"s3://{twin.BUCKET}/models/churn/7", tmp_path / "m", remote)


def test_an_empty_prefix_fails_the_pull(
    twin_config: twin.TwinConfig, twin_up: twin.Credentials, tmp_path: Path
) -> None:
    """Nothing is fetched from a prefix that holds no objects (no silent empty copy)."""
    with pytest.raises(AgentPullError):
        pull(
            f"s3://{twin.BUCKET}/models/none",
            tmp_path / "m",
            _twin_remote(twin_config, twin_up),
        )


def test_the_agent_keeps_only_the_fields_its_model_settings_struct_knows() -> None:
    """Seldon's agent re-marshals model-settings.json: inputs, outputs and custom
    parameters are gone, the name is versioned and parameters.version is set."""
    bundle_settings = {
        "name": "churn",
        "implementation": "serving.runtime.ChurnRuntime",
        "parameters": {"uri": ".", "custom": "dropped"},
        "inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": "churn_probability", "datatype": "FP64", "shape": [-1]}],
    }
    assert agent_model_settings(bundle_settings, "churn_3", 3) == {
        "name": "churn_3",
        "parallel_workers": 0,
        "implementation": "serving.runtime.ChurnRuntime",
        "parameters": {"uri": ".", "version": "3"},
    }


def test_the_secret_a_model_names_carries_the_rendered_remote(
    twin_config: twin.TwinConfig, twin_up: twin.Credentials
) -> None:
    remote = _twin_remote(twin_config, twin_up)
    model = {
        "metadata": {"name": "churn", "namespace": "churn"},
        "spec": {"secretName": "churn-rclone"},
    }
    secret = model_rclone_secret(model, remote)
    assert secret["metadata"] == {
        **secret["metadata"],
        "name": "churn-rclone",
        "namespace": "churn",
    }
    assert secret_remote(secret) == remote
