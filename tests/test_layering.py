"""Layering: Ray only in guide_ray/engine/; the light packages import neither torch nor ray.

Static half: every module's imports (AST, including imports inside functions) are checked, so a
stray `import ray` anywhere outside engine/ fails here even if no test executes it. Command
modules may reach the engine only inside a function (they are imported at CLI parse time).
Dynamic half: importing the light packages in a fresh interpreter leaves torch and ray unloaded.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "guide_ray"
MODULES = sorted(PACKAGE.rglob("*.py"))


def _imports(tree: ast.AST) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import statement in `tree`."""
    top = {id(node) for node in tree.body} if isinstance(tree, ast.Module) else set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno, id(node) in top))
    return found


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def test_package_has_modules() -> None:
    assert len(MODULES) > 20 and PACKAGE / "engine" / "scheduler.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_ray_only_in_engine(path: Path) -> None:
    in_engine = path.parent == PACKAGE / "engine"
    for name, line, _ in _imports(ast.parse(path.read_text())):
        if name == "ray" or name.startswith("ray."):
            assert in_engine, f"{_rel(path)}:{line} imports {name}; Ray belongs in guide_ray/engine/ only"


@pytest.mark.parametrize("path", sorted((PACKAGE / "commands").glob("*.py")), ids=_rel)
def test_commands_reach_heavy_code_only_inside_functions(path: Path) -> None:
    for name, line, top_level in _imports(ast.parse(path.read_text())):
        heavy = name.split(".")[0] in ("torch", "ray") or name.startswith("guide_ray.engine")
        assert not (heavy and top_level), f"{_rel(path)}:{line} imports {name} at module level"


def test_the_checker_sees_nested_imports() -> None:
    tree = ast.parse("import os\ndef f():\n    import ray\n    from ray.util import x\n")
    assert _imports(tree) == [("os", 1, True), ("ray", 3, False), ("ray.util", 4, False)]


LIGHT = [
    "guide_ray", "guide_ray.errors", "guide_ray.cli",
    "guide_ray.config.base", "guide_ray.config.guide", "guide_ray.config.manifest", "guide_ray.config.job",
    "guide_ray.store.schema", "guide_ray.store.results", "guide_ray.store.runkey", "guide_ray.store.artifacts",
    "guide_ray.reduce.tables", "guide_ray.reduce.report",
    "guide_ray.commands.run", "guide_ray.commands.submit", "guide_ray.commands.report", "guide_ray.commands.manifest",
]


def test_light_packages_import_neither_torch_nor_ray() -> None:
    code = (f"import importlib, sys\nfor m in {LIGHT!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
