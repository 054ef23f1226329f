"""What a suite can name: the suite's view of :mod:`densitylab.registry`, the one registry of
datasets, model kinds, presets and metrics (lookup order, entry points and calling conventions
are described there), through which every part of the suite looks names up.

It adds the suite's built-ins (the reference rows as model kinds, the built-in metrics) and
checks what the suite needs beyond building: a model meets
:class:`~densitylab.suite.context.Model`, a metric is a :class:`MetricSpec`.
"""

from __future__ import annotations

import functools
import importlib
import sys
import warnings
from typing import Any

from ..models.batched import batched_class
from ..registry import (
    ENTRY_POINT_GROUPS,
    REGISTRY,
    SUITE_FILLED_MODEL_KEYS,
    Entry,
    ModelParamError,
    Namespace,
    PluginError,
    Registry,
    build_model,
    check_model_params,
    dataset_names,
    declared_options,
    get_metric,
    make_dataset,
    make_preset,
    metric_names,
    model_defaults,
    model_names,
    model_parameters,
    preset_names,
    preset_train,
    register_dataset,
    register_model,
    register_preset,
    unregister,
)
from ..scoring import BUILTIN_METRICS, MetricSpec
from .context import Model, check_model
from .references import REFERENCE_KINDS, make_reference

__all__ = [
    "MetricSpec", "Entry", "Namespace", "Registry", "REGISTRY", "PluginError",
    "ENTRY_POINT_GROUPS", "SUITE_FILLED_MODEL_KEYS", "ModelParamError",
    "dataset_names", "model_names", "metric_names", "preset_names",
    "make_dataset", "make_model", "make_preset", "preset_train", "model_defaults",
    "model_parameters", "check_model_params", "batched_model_class", "get_metric",
    "register_dataset", "register_model", "register_metric", "register_preset", "unregister",
    "declared_options", "import_plugin", "import_run_plugins", "data_shape_of", "run_dataset",
]


def _metric_plugin(name: str, obj: Any, where: str) -> Entry:
    if not isinstance(obj, MetricSpec):
        raise PluginError(f"metric {name!r}: {where} loads a {type(obj).__name__}, not a "
                          "densitylab.suite.MetricSpec")
    if obj.name != name:
        raise PluginError(f"metric {name!r}: {where} loads the MetricSpec {obj.name!r}; the "
                          "entry point's name must be the metric's name")
    return Entry(name, obj, where)


REGISTRY.models.add_builtins(
    Entry(kind, functools.partial(make_reference, kind), metadata={"reference": True})
    for kind in REFERENCE_KINDS)
REGISTRY.metrics.add_builtins((Entry(spec.name, spec) for spec in BUILTIN_METRICS),
                              convert=_metric_plugin)


def make_model(kind: str, params: dict[str, Any], *, data_shape: tuple[int, ...],
               seed: int | None = None) -> Model:
    """Build an untrained model of ``kind`` for points of shape ``data_shape``
    (:func:`densitylab.registry.build_model`) and check it against the
    :class:`~densitylab.suite.context.Model` protocol (TypeError naming what it lacks)."""
    return check_model(build_model(kind, params, data_shape=data_shape, seed=seed), kind)


def batched_model_class(kind: str) -> type | None:
    """The class that trains many seeds of model ``kind`` as one computation, derived from the
    kind's model class (:func:`densitylab.models.batched.batched_class`); None when the kind is
    not a batchable model class (a reference row, a plain factory)."""
    return batched_class(REGISTRY.models.get(kind).value)


def register_metric(spec: MetricSpec) -> None:
    """Add (or replace) a suite metric."""
    if not isinstance(spec, MetricSpec):
        raise TypeError(f"spec: expected a MetricSpec, got {type(spec).__name__}")
    REGISTRY.metrics.register(Entry(spec.name, spec, "registered"))


def import_plugin(module: str, base_dir: str | None = None):
    """Import the plugin ``module``, searching ``base_dir`` (the suite file's folder) first.

    ``base_dir`` is on ``sys.path`` only while the module is imported: a plugin is one module
    (or a package imported whole by it), and the caller's import path is left as it was.
    """
    if base_dir is None or base_dir in sys.path:
        return importlib.import_module(module)
    sys.path.insert(0, base_dir)
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(base_dir)


def import_run_plugins(spec) -> None:
    """Import a run's ``plugins`` (registrations a worker process has not seen yet), searching
    the suite file's folder first (``spec``: a :class:`~densitylab.suite.config.RunSpec`)."""
    for module in spec.config.get("plugins", []):
        import_plugin(module, spec.plugin_dir)


def run_dataset(spec) -> tuple[Any, tuple[int, ...]]:
    """A run's dataset (its ``plugins`` imported first) and the shape of one of its points
    (``spec``: a :class:`~densitylab.suite.config.RunSpec`)."""
    import_run_plugins(spec)
    cfg = spec.config
    target = make_dataset(cfg["dataset"]["name"], cfg["dataset"]["params"])
    return target, data_shape_of(target)


def data_shape_of(target) -> tuple[int, ...]:
    """The shape of one point of a dataset: its ``data_shape``, else ``(dim,)``."""
    shape = getattr(target, "data_shape", None)
    return tuple(int(s) for s in shape) if shape is not None else (int(target.dim),)


def _model_factory(kind: str):
    return REGISTRY.models.get(kind).value


#: Old names kept for code written against them: ``name -> (value, what to use instead)``.
_DEPRECATED = {
    "FILLED_IN": (lambda: SUITE_FILLED_MODEL_KEYS, "SUITE_FILLED_MODEL_KEYS"),
    "IMAGE_DATASETS": (lambda: ("blobs", "digits", "stacked_digits"),
                       "densitylab.images.available()"),
    "model_factory": (lambda: _model_factory, "REGISTRY.models.get(kind).value"),
}


def __getattr__(name: str):
    if name in _DEPRECATED:
        value, instead = _DEPRECATED[name]
        warnings.warn(f"densitylab.suite.registry.{name} is deprecated; use {instead}",
                      DeprecationWarning, stacklevel=2)
        return value()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
