"""The report's modules import one way: tables and figures share their names through
``report.naming`` instead of importing each other (no import cycle, even a lazy one)."""

from __future__ import annotations

import ast
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "densitylab" / "report"


def _imports(path: Path) -> set[str]:
    """Relative modules ``path`` imports anywhere (top level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_figures_and_markdown_do_not_import_each_other():
    assert "markdown" not in _imports(REPORT / "figures.py")
    assert "figures" not in _imports(REPORT / "markdown.py")
