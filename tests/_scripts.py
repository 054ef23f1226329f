"""The analysis scripts under benchmarks/analysis/, imported as modules by their tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ANALYSIS = Path(__file__).resolve().parents[1] / "benchmarks" / "analysis"


def analysis_script(name: str) -> ModuleType:
    """``benchmarks/analysis/<name>.py`` as a freshly executed module."""
    spec = importlib.util.spec_from_file_location(name, ANALYSIS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
