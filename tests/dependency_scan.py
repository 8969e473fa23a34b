"""Which third-party modules does a source tree import, and is each one declared in pyproject.toml?

Every `import x` / `from x import y` is collected with `ast`, at module level and inside functions alike (a
missing plotting library imported inside a function fails only when a user reaches that function). Relative
imports, the standard library and the project's own package are left out. Each remaining top-level module is
mapped to the distribution that provides it (`importlib.metadata.packages_distributions`) and that
distribution must be named in the allowed requirement lists; a module no installed distribution provides is
reported too (it cannot be declared correctly without knowing its distribution).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path


@dataclass(frozen=True)
class Undeclared:
    module: str                 # top-level module name as imported
    where: str                  # "path:line" of one import of it
    distribution: str | None    # the installed distribution providing it, None when none does

    def __str__(self) -> str:
        dist = self.distribution or "no installed distribution provides it"
        return f"{self.where}: imports {self.module!r} ({dist}), not declared in pyproject.toml"


def normalize(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalize(re.split(r"[\s<>=!~;\[(@]", requirement.strip(), maxsplit=1)[0])


def declared(pyproject: Path, extras: tuple[str, ...] | None = None) -> set[str]:
    """Distribution names in [project] dependencies plus the optional groups `extras` (None: all of them)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    names = {requirement_name(r) for r in project.get("dependencies", [])}
    for group, reqs in project.get("optional-dependencies", {}).items():
        if extras is None or group in extras:
            names |= {requirement_name(r) for r in reqs}
    return names


def imported_modules(root: Path) -> dict[str, str]:
    """Top-level module name -> "path:line" of its first absolute import, for every .py file under root."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], f"{path}:{node.lineno}")
    return found


def undeclared_imports(root: Path, allowed: set[str], own: set[str]) -> list[Undeclared]:
    """Imports under root that are neither stdlib, nor one of `own` packages, nor provided by `allowed`."""
    providers = packages_distributions()
    problems = []
    for module, where in imported_modules(root).items():
        if module in sys.stdlib_module_names or module in own or module == "__future__":
            continue
        dists = [normalize(d) for d in providers.get(module, [])]
        if not any(d in allowed for d in dists):
            problems.append(Undeclared(module, where, dists[0] if dists else None))
    return problems
