"""Uploads of serving folders to the S3 twin, as the deployment pipeline makes them."""

from __future__ import annotations

from pathlib import Path

from churn import twin
from deployment.deploy import upload_dir


def test_uploading_the_same_folder_twice_leaves_one_copy(
    twin_config: twin.TwinConfig, twin_environ: dict[str, str], tmp_path: Path
) -> None:
    """A redeploy of the same champion rewrites its prefix; it never nests the folder
    inside it (fsspec's put copies into an existing prefix unless the source ends in /)."""
    import fsspec

    local = tmp_path / "churn-classifier-v9"
    (local / "drift").mkdir(parents=True)
    (local / "model-settings.json").write_text("{}")
    (local / "drift" / "x.npy").write_bytes(b"x")
    uri = f"s3://{twin.BUCKET}/upload-twice/bundle"
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    for _ in range(2):
        upload_dir(local, uri, fs)
        fs.invalidate_cache()
    found = sorted(p.removeprefix(f"{twin.BUCKET}/upload-twice/bundle/") for p in fs.find(uri))
    assert found == ["drift/x.npy", "model-settings.json"]
