"""The README as a new user reads it: every command it shows exists, every file it names is there.

Checks the code blocks and inline code of README.md: `make <target>` against the
Makefile's targets, `churn <command> <action>` against the CLI's parser,
`zenml pipeline run pipelines.<module>.<name>` against the pipeline modules, and every
repository path (configs/, docker/, k8s/, stacks/, ...) against the tree.
"""

from __future__ import annotations

import argparse
import re

import pytest

from churn.cli import build_parser
from churn.settings import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text()
MAKEFILE = (PROJECT_ROOT / "Makefile").read_text()
TOP_DIRS = (
    "churn", "configs", "dashboard", "docker", "feature_repo", "k8s", "monitoring",
    "notebooks", "pipelines", "serving", "stacks", "steps", "tests", "benchmarks",
    "scripts", "tools", ".github", ".ci",
)  # fmt: skip


def _code() -> str:
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S)
    inline = re.findall(r"`([^`\n]+)`", README)
    return "\n".join(blocks + inline)


def test_every_make_target_in_the_readme_exists() -> None:
    targets = set(re.findall(r"^([a-zA-Z][\w-]*):", MAKEFILE, flags=re.M))
    used = set(re.findall(r"\bmake ([a-z][\w-]*)", _code()))
    assert used, "the README shows no make command"
    assert used <= targets, f"README names missing make targets: {sorted(used - targets)}"


def _choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands (or actions) a parser accepts as its first positional."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
        if action.choices is not None and not action.option_strings:
            return {str(c): parser for c in action.choices}
    return {}


def test_every_churn_command_in_the_readme_parses() -> None:
    # `.venv/bin/churn ...` anywhere, or `churn ...` at the start of a line (not
    # `kubectl -n churn create ...`, where churn is a namespace)
    call = r"churn ([a-z][\w-]*)(?: ([a-z][\w-]*))?"
    calls = re.findall(r"\.venv/bin/" + call, _code()) + re.findall(r"(?m)^" + call, _code())

    assert calls, "the README shows no churn command"
    commands = _choices(build_parser())
    for command, action in calls:
        assert command in commands, f"`churn {command}`: no such command"
        actions = _choices(commands[command])
        if actions and action:
            assert action in actions, f"`churn {command} {action}`: no such action"


@pytest.mark.parametrize(
    "source", sorted(set(re.findall(r"pipeline run (pipelines\.\w+\.\w+)", README)))
)
def test_every_pipeline_in_the_readme_exists(source: str) -> None:
    _, module, name = source.split(".")
    path = PROJECT_ROOT / "pipelines" / f"{module}.py"
    assert path.is_file(), f"{source}: {path} missing"
    assert re.search(rf"^def {name}\(", path.read_text(), flags=re.M), f"{source}: no {name}()"


def test_every_repository_path_in_the_readme_exists() -> None:
    pattern = r"(?<![\w./$-])((?:{})/[\w./-]*[\w-])".format(
        "|".join(re.escape(d) for d in TOP_DIRS)
    )
    paths = set(re.findall(pattern, README))
    assert len(paths) > 10
    missing = sorted(p for p in paths if not (PROJECT_ROOT / p).exists())
    assert not missing, f"README names paths that do not exist: {missing}"
