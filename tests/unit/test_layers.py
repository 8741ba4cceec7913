"""tools/layers.py: the project's import layers hold, and the checker can see a breach."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from churn.settings import PROJECT_ROOT

LAYERS = PROJECT_ROOT / "tools" / "layers.py"


def run_check(root: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(LAYERS), *([str(root)] if root else [])]
    return subprocess.run(args, capture_output=True, text=True, check=False)


def test_the_tree_respects_the_layers() -> None:
    result = run_check()
    assert result.returncode == 0, result.stderr
    assert "imports respect the layers" in result.stdout


def write(root: Path, module: str, source: str) -> None:
    path = root / Path(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.parents:  # packages all the way down
        if parent == root:
            break
        (parent / "__init__.py").touch()
    path.write_text(source)


def test_each_rule_is_reported_with_the_chain(tmp_path: Path) -> None:
    write(tmp_path, "churn.cli", "from serving.local import base_url\n")
    write(tmp_path, "serving.local", "def base_url() -> str: ...\n")
    write(tmp_path, "serving.runtime", "import mlserver\nfrom deployment import bundle\n")
    write(tmp_path, "deployment.bundle", "def f() -> None:\n    import steps.x\n")  # lazy
    write(tmp_path, "steps.x", "from serving.helper import g\n")
    write(tmp_path, "serving.helper", "from serving.runtime import X\n")
    result = run_check(tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert "churn.cli imports serving: churn must not import serving" in lines
    assert any(line.startswith("serving.runtime imports deployment") for line in lines)
    assert any(line.startswith("deployment.bundle imports steps") for line in lines)
    assert any(
        "steps.x -> serving.helper -> serving.runtime -> mlserver" in line for line in lines
    ), lines
    assert lines[-1].startswith("layers: ")
