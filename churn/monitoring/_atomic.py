"""Publish output directories and files atomically: readers see all of it or none.

Batch predictions and drift reports are read by people and by the dashboard while
new ones are written. Each output is assembled in a hidden temporary directory next
to its final place and renamed into place (os.rename is atomic within a file
system), so a crash or a concurrent reader never sees half a report.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def stamp(moment: datetime) -> str:
    """A sortable, filesystem-safe UTC time stamp: 20250301T101500Z."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"output time stamps must be timezone-aware, got naive {moment!r}")
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def publish_dir(root: Path, name: str, fill: Callable[[Path], None]) -> Path:
    """Build a directory with `fill(tmp_dir)` and rename it to `root/name`.

    When `root/name` exists already (two runs in the same second), `-2`, `-3`, ...
    is appended: an existing output is never overwritten. The temporary directory
    is removed if `fill` raises.
    """
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=root))
    try:
        fill(tmp)
        # mkdtemp/mkstemp create owner-only entries; outputs are for every reader.
        tmp.chmod(0o755)
        for entry in tmp.iterdir():
            entry.chmod(0o644)
        for attempt in range(1, 1000):
            target = root / (name if attempt == 1 else f"{name}-{attempt}")
            try:
                tmp.rename(target)  # fails if target exists and is not empty
            except OSError:
                if target.exists():
                    continue
                raise
            return target
        raise FileExistsError(f"{root / name}: too many outputs with the same name")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_json_atomic(path: Path, content: Mapping[str, Any]) -> None:
    """Write JSON to `path` via a temporary file in the same directory and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=2, sort_keys=True, allow_nan=False)
        tmp.chmod(0o644)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
