"""churn.files: published directories are complete or absent, and readable by every user."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from churn.files import assemble_dir, publish_dir


def _fill(root: Path) -> None:
    """What the bundle builder does: private temporary files and folders, nested."""
    nested = Path(tempfile.mkdtemp(dir=root, prefix="drift-"))
    fd, name = tempfile.mkstemp(dir=nested, suffix=".json")  # 0600, like the sidecar was
    os.close(fd)
    Path(name).write_text("{}", encoding="utf-8")
    (root / "manifest.json").write_text("{}", encoding="utf-8")


def _modes(tree: Path) -> dict[str, int]:
    return {
        p.relative_to(tree.parent).as_posix(): stat.S_IMODE(p.stat().st_mode)
        for p in [tree, *tree.rglob("*")]
    }


@pytest.mark.parametrize("how", ["assemble", "publish"])
def test_published_trees_are_readable_by_others(tmp_path: Path, how: str) -> None:
    """A bundle built on the host is read by the MLServer image's uid 1000: before the
    fix the directory was 0700 and the detector sidecar 0600 (Permission denied)."""
    if how == "assemble":
        out = tmp_path / "bundle"
        assemble_dir(out, _fill)
    else:
        out = publish_dir(tmp_path, "report", _fill)
    modes = _modes(out)
    assert len(modes) == 4
    for name, mode in modes.items():
        is_dir = (tmp_path / name).is_dir()
        assert mode == (0o755 if is_dir else 0o644), (name, oct(mode))


def test_a_failing_fill_leaves_nothing(tmp_path: Path) -> None:
    def broken(root: Path) -> None:
        _fill(root)
        raise RuntimeError("half way")

    with pytest.raises(RuntimeError):
        assemble_dir(tmp_path / "bundle", broken)
    assert list(tmp_path.iterdir()) == []
