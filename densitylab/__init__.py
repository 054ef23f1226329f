"""densitylab: learn probability distributions and diagnose how well a model has learned them."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from ._errors import TrainingDiverged

__version__ = "0.1.0"

_SUBMODULES = ("distributions", "images", "losses", "metrics", "models", "stats", "testing")

if TYPE_CHECKING:  # pragma: no cover
    from . import distributions, images, losses, metrics, models, stats, testing  # noqa: F401


def __getattr__(name: str):
    # Submodules load on first use so that `import densitylab` stays cheap (the CLI starts fast).
    if name in _SUBMODULES:
        module = import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'densitylab' has no attribute {name!r}")


__all__ = ["TrainingDiverged", "__version__", *_SUBMODULES]
