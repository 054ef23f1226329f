"""Benchmark suites: TOML config -> runs -> one atomic JSON record per run -> tidy results.

Example:
    >>> from densitylab import suite
    >>> cfg = suite.load_suite("quick")                 # or a path to a TOML file
    >>> result = suite.run_suite(cfg, "results/quick")  # doctest: +SKIP
    >>> print(result.summary())                         # doctest: +SKIP
"""

from ..results.store import RunStore, load_model
from .config import RunSpec, SuiteConfig, builtin_suites, load_suite, parse_suite, run_id
from .evaluate import EvalContext, execute_run
from .registry import (
    REGISTRY,
    MetricSpec,
    PluginError,
    dataset_names,
    metric_names,
    model_names,
    register_dataset,
    register_metric,
    register_model,
    unregister,
)
from .runners import SuiteResult, run_suite

__all__ = [
    "RunSpec",
    "SuiteConfig",
    "SuiteResult",
    "RunStore",
    "EvalContext",
    "MetricSpec",
    "REGISTRY",
    "PluginError",
    "builtin_suites",
    "load_suite",
    "parse_suite",
    "run_id",
    "run_suite",
    "load_model",
    "execute_run",
    "dataset_names",
    "model_names",
    "metric_names",
    "register_dataset",
    "register_model",
    "register_metric",
    "unregister",
]
