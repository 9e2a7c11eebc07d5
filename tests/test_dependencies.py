"""Run-time dependencies are what ``src/`` imports, and nothing it does not (CONTRACT 6)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> tuple[set[str], set[str]]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    def names(specs: list[str]) -> set[str]:
        return {_norm(re.split(r"[<>=!~;\[ ]", s, maxsplit=1)[0]) for s in specs}
    return names(meta["project"]["dependencies"]), names(meta["dependency-groups"]["dev"])


def imported_top_level() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - {"git_mirror", "__future__"} - set(sys.stdlib_module_names)


def test_every_import_of_src_is_a_declared_runtime_dependency() -> None:
    runtime, _ = declared()
    dists = packages_distributions()
    missing = {}
    for module in sorted(imported_top_level()):
        owners = {_norm(d) for d in dists.get(module, [module])}
        if not owners & runtime:
            missing[module] = sorted(owners)
    assert missing == {}, f"imported by src/ but not in [project.dependencies]: {missing}"


def test_test_only_tools_are_not_runtime_dependencies() -> None:
    runtime, dev = declared()
    for tool in ("kubernetes-validate", "pytest", "hypothesis", "mypy", "ruff", "httpx"):
        assert tool not in runtime, tool
    assert "kubernetes-validate" in dev
