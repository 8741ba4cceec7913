"""What Seldon's agent does with a Model's storageUri, replayed with rclone on the twin.

Why: Seldon Core 2's agent downloads every Model with rclone, through the remote the
storageUri's scheme names (`s3://bucket/key` is read as `s3:bucket/key`), configured
from the Secret the Model names. The production twin runs that same download, with
the remote built by deployment.seldon.render.rclone_remote (the one source the
churn-rclone Secret is rendered from), so a wrong remote name, type or provider fails
here as it would fail the agent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deployment.seldon.render import rclone_env


class AgentPullError(RuntimeError):
    """rclone could not fetch a storageUri (missing tool, wrong remote, missing object)."""


def rclone_path(storage_uri: str) -> str:
    """The rclone path of a storageUri, as the agent forms it: `<scheme>:<rest>`."""
    scheme, sep, rest = storage_uri.partition("://")
    if not sep or not scheme or not rest:
        raise AgentPullError(f"storageUri {storage_uri!r} is not <scheme>://<path>")
    return f"{scheme}:{rest}"


def pull(storage_uri: str, dest: Path, remote: Mapping[str, Any], timeout_s: float = 120) -> Path:
    """Copy storageUri's objects into dest with rclone and only `remote` configured.

    The environment holds no other rclone remote and no ambient rclone config file, so
    the download succeeds only through the remote given.
    """
    binary = shutil.which("rclone")
    if binary is None:
        raise AgentPullError("rclone was not found on PATH (apt-get install rclone)")
    # AWS_CA_BUNDLE too: a host's bundle makes rclone's S3 client refuse its own transport
    # ("LoadCustomCABundleError"), and the agent's container has none.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("RCLONE_") and k != "AWS_CA_BUNDLE"
    }
    env |= rclone_env(remote) | {"RCLONE_CONFIG": os.devnull}
    dest.mkdir(parents=True, exist_ok=True)
    args = [binary, "copy", "--error-on-no-transfer", rclone_path(storage_uri), str(dest)]
    result = subprocess.run(
        args, capture_output=True, text=True, env=env, timeout=timeout_s, check=False
    )
    if result.returncode != 0:
        raise AgentPullError(f"rclone copy {storage_uri} failed: {result.stderr.strip()}")
    return dest
