"""The scripts under benchmarks/analysis/ and benchmarks/perf/, imported as modules by their
tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark_script(name: str, folder: str = "analysis") -> ModuleType:
    """``benchmarks/<folder>/<name>.py`` as a freshly executed module."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
