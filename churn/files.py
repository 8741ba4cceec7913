"""Files the project publishes: checksums, and directories and JSON written atomically.

Why one home: serving bundles, drift models, batch predictions, drift reports and
the test-input cache are all read while new ones are written (by MLServer, Seldon's
agent, the dashboard, a later test run). Each is assembled in a hidden temporary
sibling and renamed into place (rename is atomic within a file system), so a crash
or a concurrent reader never sees half of one, and a failure leaves nothing behind.
The same sha256 is what manifests record and what downloads are checked against.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

T = TypeVar("T")
_CHUNK: Final = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large files do not fill memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def stamp(moment: datetime) -> str:
    """A sortable, filesystem-safe UTC time stamp: 20250301T101500Z."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"output time stamps must be timezone-aware, got naive {moment!r}")
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@contextmanager
def _staging(parent: Path, name: str) -> Iterator[Path]:
    """A hidden temporary directory next to `parent/name`, removed unless renamed away."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def assemble_dir(out_dir: Path, fill: Callable[[Path], T], *, replace: bool = False) -> T:
    """Build `out_dir` with `fill(staging)`, then rename the staging directory into place.

    `out_dir` must be absent or empty (FileExistsError otherwise) unless `replace`,
    which swaps out a previous version (a cache being refilled). Returns what `fill`
    returns; if `fill` raises, nothing is left behind and `out_dir` is unchanged.
    """
    if not replace and out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} exists and is not an empty directory")
    with _staging(out_dir.parent, out_dir.name) as staging:
        value = fill(staging)
        open_to_readers(staging)
        if out_dir.is_dir():
            if replace:
                shutil.rmtree(out_dir)
            else:
                out_dir.rmdir()
        staging.rename(out_dir)
    return value


def open_to_readers(tree: Path) -> None:
    """Make every directory under `tree` 0755 and every file 0644.

    Why: mkdtemp and mkstemp create owner-only entries (0700, 0600), so a published
    directory built in a staging folder would be unreadable to any other user: a
    serving bundle written on the host and mounted into the MLServer image (uid 1000)
    failed with "Permission denied" on manifest.json. Outputs are for every reader.
    """
    tree.chmod(0o755)
    for parent, dirs, files in os.walk(tree):
        for name in dirs:
            (Path(parent) / name).chmod(0o755)
        for name in files:
            (Path(parent) / name).chmod(0o644)


def publish_dir(root: Path, name: str, fill: Callable[[Path], None]) -> Path:
    """Build a directory with `fill(tmp_dir)` and rename it to `root/name`, readable by all.

    When `root/name` exists already (two runs in the same second), `-2`, `-3`, ...
    is appended: an existing output is never overwritten. Returns the final path.
    """
    with _staging(root, name) as tmp:
        fill(tmp)
        open_to_readers(tmp)
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


def write_json_atomic(path: Path, content: Mapping[str, Any]) -> None:
    """Write JSON to `path` via a temporary file in the same directory and os.replace.

    Strict JSON (no NaN or Infinity: other languages' parsers reject them), keys
    sorted so that two writes of the same content are byte-identical.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=2, sort_keys=True, allow_nan=False)
            handle.write("\n")
        tmp.chmod(0o644)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
