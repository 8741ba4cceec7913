"""Register the ZenML stacks in stacks/ (local, eks) from their templates.

The stack files are ZenML's own export format with ${...} placeholders, so that no
machine-specific path or AWS account is committed. render_stack() fills them from
churn.settings (local paths, MLflow URI) and the environment (EKS names), and fails
naming every unset variable; register_stack() then runs `zenml stack import`. This
module shells out to the zenml CLI and imports nothing from ZenML, so the domain
package stays free of orchestration imports.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from churn.settings import PROJECT_ROOT, Settings

STACKS_DIR = PROJECT_ROOT / "stacks"
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")
_SECRET_REF = re.compile(r"\{\{([a-z0-9_]+)\.[a-z_]+\}\}")


class StackConfigError(ValueError):
    """A stack template could not be rendered (unknown stack or unset variables)."""


def stack_file(name: str) -> Path:
    """Template of stack `name`; StackConfigError lists the stacks that exist."""
    path = STACKS_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in STACKS_DIR.glob("*.yaml"))
        raise StackConfigError(f"unknown stack {name!r}; stacks/ holds {known}")
    return path


def stack_variables(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """Values for the placeholders: the environment, plus the MLflow URI from settings."""
    values = dict(environ)
    values.setdefault("CHURN_MLFLOW_TRACKING_URI", settings.tracking_uri)
    values.setdefault("CHURN_K8S_NAMESPACE", "churn")  # the namespace of every k8s/ manifest
    return values


def render_stack(name: str, values: Mapping[str, str]) -> str:
    """The stack file with every ${...} replaced; names all missing variables at once."""
    text = stack_file(name).read_text()
    missing = sorted({v for v in _PLACEHOLDER.findall(text) if not values.get(v)})
    if missing:
        raise StackConfigError(f"stack {name!r} needs these environment variables: {missing}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _zenml_cli() -> str:
    """The zenml executable beside this interpreter (the project's venv), not PATH's."""
    return str(Path(sys.executable).with_name("zenml"))


def register_stack(name: str, settings: Settings, environ: Mapping[str, str] | None = None) -> bool:
    """Render stacks/<name>.yaml and `zenml stack import` it; False if it already exists.

    An existing stack of that name is left as it is (delete it with `zenml stack
    delete` to re-register). Raises CalledProcessError with zenml's output when the
    import fails.
    """
    env = environ if environ is not None else os.environ
    text = render_stack(name, stack_variables(settings, env))
    zenml = _zenml_cli()
    exists = subprocess.run([zenml, "stack", "describe", name], capture_output=True, check=False)
    if exists.returncode == 0:
        differences = stack_differences(yaml.safe_load(text), _exported_stack(zenml, name))
        if differences:
            raise StackConfigError(
                f"stack {name!r} is already registered in the ZenML store "
                f"{env.get('ZENML_CONFIG_PATH', '(global config)')} with other settings "
                f"(another checkout?): {'; '.join(differences)}. Use this checkout's store "
                f"(make sets ZENML_CONFIG_PATH=<checkout>/.churn/zenml) or run "
                f"`zenml stack delete {name}` first"
            )
        return False
    if name == "local":
        settings.home.joinpath("mlflow").mkdir(parents=True, exist_ok=True)
    for secret in sorted(set(_SECRET_REF.findall(text))):
        _ensure_secret(zenml, secret, env)
    with tempfile.TemporaryDirectory() as tmp:
        rendered = Path(tmp) / f"{name}.yaml"
        rendered.write_text(text)
        subprocess.run(
            [zenml, "stack", "import", name, "-f", str(rendered)],
            check=True,
            capture_output=True,
            text=True,
        )
    return True


def _exported_stack(zenml: str, name: str) -> dict[str, Any]:
    """The registered stack as `zenml stack export` writes it (same format as stacks/)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.yaml"
        subprocess.run(
            [zenml, "stack", "export", name, str(out)], check=True, capture_output=True, text=True
        )
        exported: dict[str, Any] = yaml.safe_load(out.read_text())
    return exported


def _components(stack: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{component type: {name, flavor, configuration}} of a stack file's content."""
    out: dict[str, dict[str, Any]] = {}
    for kind, entries in (stack.get("components") or {}).items():
        entry = entries[0] if isinstance(entries, list) else entries
        out[kind] = {
            "name": entry.get("name"),
            "flavor": entry.get("flavor"),
            "configuration": entry.get("configuration") or {},
        }
    return out


def stack_differences(wanted: Mapping[str, Any], registered: Mapping[str, Any]) -> list[str]:
    """How a registered stack differs from the rendered template, one phrase per field.

    Why: stacks live in the ZenML store, which by default is per user, not per
    checkout; a stack of the same name registered from another checkout points at
    that checkout's MLflow database, and silently reusing it would send this
    checkout's runs and champion lookups elsewhere.
    """
    want, have = _components(wanted), _components(registered)
    differences: list[str] = []
    for kind in sorted(set(want) | set(have)):
        if kind not in have:
            differences.append(f"{kind} missing")
            continue
        if kind not in want:
            differences.append(f"extra {kind} {have[kind]['name']!r}")
            continue
        for field in ("name", "flavor"):
            if want[kind][field] != have[kind][field]:
                differences.append(
                    f"{kind}.{field} is {have[kind][field]!r}, expected {want[kind][field]!r}"
                )
        w_conf, h_conf = want[kind]["configuration"], have[kind]["configuration"]
        for key in sorted(set(w_conf) | set(h_conf)):
            if w_conf.get(key) != h_conf.get(key):
                differences.append(
                    f"{kind}.{key} is {h_conf.get(key)!r}, expected {w_conf.get(key)!r}"
                )
    return differences


def activate_stack(name: str) -> None:
    """`zenml stack set <name>`: make it the stack that `zenml pipeline run` uses.

    Raises CalledProcessError with zenml's output when the stack does not exist.
    """
    zenml = _zenml_cli()
    subprocess.run([zenml, "stack", "set", name], check=True, capture_output=True, text=True)


def _ensure_secret(zenml: str, secret: str, environ: Mapping[str, str]) -> None:
    """Make sure ZenML secret `secret` exists before a stack that references it is imported.

    ZenML resolves secret references at registration. An existing secret is kept; a
    missing one is created from MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD, and
    without them StackConfigError says which command creates it.
    """
    probe = subprocess.run([zenml, "secret", "get", secret], capture_output=True, check=False)
    if probe.returncode == 0:
        return
    user = environ.get("MLFLOW_TRACKING_USERNAME")
    password = environ.get("MLFLOW_TRACKING_PASSWORD")
    if not (user and password):
        raise StackConfigError(
            f"ZenML secret {secret!r} is missing: run `zenml secret create {secret} "
            "--username=<mlflow user> --password=<mlflow password>` or set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    subprocess.run(
        [zenml, "secret", "create", secret, f"--username={user}", f"--password={password}"],
        check=True,
        capture_output=True,
        text=True,
    )


def run_config(
    config: Path, *, step_image: str | None = None, overrides: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A pipeline config for a run on a remote stack, from configs/<pipeline>.yaml.

    `step_image` makes the steps run on a prebuilt image (docker/steps.Dockerfile,
    pushed by CD) instead of ZenML building one; `overrides` set parameters by dotted
    key (e.g. {"seldon.image": "<ecr>/churn-mlops-mlserver:1.2.0"}), parsed as YAML
    scalars. The local stack needs neither: configs/ stay stack-neutral.
    """
    content: dict[str, Any] = yaml.safe_load(config.read_text()) or {}
    if step_image:
        content.setdefault("settings", {})["docker"] = {
            "parent_image": step_image,
            "skip_build": True,
        }
    for dotted, raw in (overrides or {}).items():
        node = content.setdefault("parameters", {})
        *parents, leaf = dotted.split(".")
        for key in parents:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise StackConfigError(f"{dotted}: {key!r} is not a mapping in {config}")
            node = child
        node[leaf] = yaml.safe_load(raw)
    return content
