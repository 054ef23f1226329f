"""The model package imports without cycles, at module level, and each module loads alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import densitylab

ROOT = Path(densitylab.__file__).parent
MODULES = sorted(
    ["densitylab.losses", "densitylab._errors"]
    + [f"densitylab.models.{p.stem}" for p in (ROOT / "models").glob("*.py")
       if p.stem != "__init__"]
)


def _internal_imports(module: str) -> tuple[set[str], list[str]]:
    """Module-level densitylab imports of ``module``, and imports made inside functions."""
    path = ROOT.joinpath(*module.split(".")[1:]).with_suffix(".py")
    if not path.exists():
        path = ROOT.joinpath(*module.split(".")[1:], "__init__.py")
    package = module.rpartition(".")[0] if path.name != "__init__.py" else module
    tree = ast.parse(path.read_text())
    top, nested = set(), []

    def resolve(node: ast.ImportFrom) -> list[str]:
        if node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        if not prefix.startswith("densitylab"):
            return []
        # "from . import x" may name a submodule
        return [prefix] + [f"{prefix}.{a.name}" for a in node.names]

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            targets = resolve(node)
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.startswith("densitylab")]
        else:
            continue
        if not targets:
            continue
        if node in tree.body or any(node in getattr(b, "body", []) for b in tree.body
                                    if isinstance(b, ast.If)):  # TYPE_CHECKING blocks
            top.update(targets)
        else:
            nested.append(f"{module}: line {node.lineno}")
    return top, nested


def test_no_import_cycles_and_no_imports_hidden_in_functions():
    graph = {}
    hidden = []
    for module in MODULES + ["densitylab.models"]:
        top, nested = _internal_imports(module)
        known = {*MODULES, "densitylab.models"}
        graph[module] = {t for t in top if t != module and t in known}
        hidden += nested
    assert not hidden, f"imports inside functions: {hidden}"
    # depth-first search for a cycle
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                pytest.fail(f"import cycle: {' -> '.join([*path, node, nxt])}")
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [])


def test_each_module_imports_first_and_alone():
    # In a fresh interpreter, so that no test after this one sees a second copy of the model
    # classes (re-importing in this process rebinds densitylab.models on its parent package).
    script = (
        "import importlib, sys\n"
        f"for module in {MODULES!r}:\n"
        "    for k in [k for k in sys.modules if k.startswith('densitylab.models')]:\n"
        "        del sys.modules[k]\n"
        "    importlib.import_module(module)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT.parent, timeout=300)
    assert done.returncode == 0, done.stderr


def test_training_diverged_is_one_class_everywhere():
    from densitylab._errors import TrainingDiverged
    from densitylab.models import base

    assert densitylab.TrainingDiverged is TrainingDiverged is base.TrainingDiverged
