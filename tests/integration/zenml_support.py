"""The zenml CLI as users run it, and edited pipeline configs, for the integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from churn.settings import PROJECT_ROOT

ZENML = str(Path(sys.executable).with_name("zenml"))


def zenml(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the zenml CLI from the repository root; with `check`, a failure shows its output."""
    result = subprocess.run(
        [ZENML, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, env=os.environ.copy()
    )
    if check:
        assert result.returncode == 0, (
            f"zenml {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
    return result


def edited_config(base: str, directory: Path, edit: dict[str, Any]) -> Path:
    """configs/<base>.yaml with some parameters replaced, written into `directory`."""
    config = yaml.safe_load((PROJECT_ROOT / "configs" / f"{base}.yaml").read_text())
    config["parameters"].update(edit)
    path = directory / f"{base}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
