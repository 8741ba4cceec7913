"""The project's import layers, checked from the source (run by `make lint`).

Why: each package has one job, and an import in the wrong direction quietly drags a
heavy runtime into a place that must not need it (MLServer into a ZenML step pod, the
kubernetes client into the inference server) or makes the domain package depend on
its callers. The rules, from the bottom up:

- `churn` (the domain) imports none of serving, deployment, steps, pipelines, dashboard;
- `serving` (what runs inside MLServer) imports neither deployment nor the ZenML
  layers nor the dashboard;
- `deployment` (bundles, the local server manager, Seldon) imports no ZenML layer;
- `steps` and `pipelines` reach no module that imports MLServer, directly or through
  the project's own modules (a step pod has no inference server in it).

Imports are read with `ast` (module level and inside functions alike: a lazy import
is still a dependency), so nothing is executed. Exit status 1 lists every violation.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
PACKAGES: Final = ("churn", "serving", "deployment", "steps", "pipelines", "dashboard")
FORBIDDEN: Final[dict[str, tuple[str, ...]]] = {
    "churn": ("serving", "deployment", "steps", "pipelines", "dashboard"),
    "serving": ("deployment", "steps", "pipelines", "dashboard"),
    "deployment": ("steps", "pipelines", "dashboard"),
}
NO_MLSERVER: Final = ("steps", "pipelines")
MLSERVER: Final = "mlserver"


@dataclass(frozen=True)
class Violation:
    """One import against the rules: where, what, and which rule."""

    module: str
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.module} imports {self.imported}: {self.rule}"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.AST, module: str) -> Iterator[str]:
    """Absolute names of everything a module imports (relative imports resolved)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            yield prefix
            yield from (f"{prefix}.{alias.name}" for alias in node.names)


def import_graph(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, set[str]]:
    """module -> the names it imports, for every .py file of the given packages."""
    graph: dict[str, set[str]] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            module = _module_name(path, root)
            graph[module] = set(_imports(ast.parse(path.read_text(), str(path)), module))
    return graph


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def _project_edges(graph: Mapping[str, set[str]], module: str) -> set[str]:
    """The project modules `module` imports (a `from a import b` may name a module b)."""
    return {name for name in graph[module] if name in graph}


def _reaches_mlserver(graph: Mapping[str, set[str]]) -> dict[str, list[str]]:
    """module -> one import chain that ends in MLServer (absent: it reaches none)."""
    chains: dict[str, list[str]] = {}
    for module in graph:
        seen = {module}
        stack: list[list[str]] = [[module]]
        while stack:
            chain = stack.pop()
            here = chain[-1]
            if any(_top(name) == MLSERVER for name in graph[here]):
                chains[module] = [*chain, MLSERVER]
                break
            for nxt in sorted(_project_edges(graph, here) - seen):
                seen.add(nxt)
                stack.append([*chain, nxt])
    return chains


def violations(graph: Mapping[str, set[str]]) -> list[Violation]:
    """Every import against the rules of this module's docstring."""
    found: set[Violation] = set()
    for module, names in graph.items():
        layer = _top(module)
        for name in names:
            if _top(name) in FORBIDDEN.get(layer, ()):
                rule = f"{layer} must not import {_top(name)}"
                found.add(Violation(module, _top(name) if name in graph else name, rule))
    chains = _reaches_mlserver(graph)
    for module, chain in chains.items():
        if _top(module) in NO_MLSERVER:
            rule = f"{_top(module)} must not reach MLServer ({' -> '.join(chain)})"
            found.add(Violation(module, chain[1], rule))
    return sorted(found, key=str)


def main(argv: list[str]) -> int:
    """Check the tree at ROOT (or the folder given); print violations, exit 1 if any."""
    root = Path(argv[0]) if argv else ROOT
    graph = import_graph(root, [p for p in PACKAGES if (root / p).is_dir()])
    problems = violations(graph)
    for problem in problems:
        sys.stderr.write(f"{problem}\n")
    if problems:
        sys.stderr.write(f"layers: {len(problems)} import(s) against the layers\n")
        return 1
    sys.stdout.write(f"layers: {len(graph)} modules, imports respect the layers\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
