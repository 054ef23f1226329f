"""What a suite can name: datasets, models and metrics, looked up by name.

Datasets are the targets of :mod:`densitylab.distributions` plus the image sets of
:mod:`densitylab.images`; models are :func:`densitylab.models.make` names; metrics are the
evaluators of :mod:`densitylab.suite.evaluate`. Extra entries can be registered at run time
(``register_model``, ``register_dataset``, ``register_metric``), which is how a user benchmarks a
model of their own through the same suites; registrations live in the registering process, so
use them with the sequential runner or a Dask cluster with ``processes=False``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from .. import distributions
from .context import Model, check_model
from .metric_adapters import BUILTIN_METRICS, MetricSpec
from .references import REFERENCE_KINDS, make_reference

__all__ = [
    "MetricSpec",
    "IMAGE_DATASETS",
    "dataset_names",
    "model_names",
    "metric_names",
    "make_dataset",
    "make_model",
    "model_factory",
    "get_metric",
    "register_dataset",
    "register_model",
    "register_metric",
    "register_preset",
    "preset_names",
    "make_preset",
    "preset_train",
    "unregister",
]

#: Image datasets built from :mod:`densitylab.images` (not ``distributions.make`` names).
IMAGE_DATASETS = ("blobs", "digits", "stacked_digits")




_EXTRA_DATASETS: dict[str, Callable[..., Any]] = {}
_EXTRA_MODELS: dict[str, Callable[..., Any]] = {}
_METRICS: dict[str, MetricSpec] = {}
_EXTRA_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {}


def _optional_module(name: str):
    """Import ``densitylab.<name>`` if it is present in this installation, else None."""
    try:
        return importlib.import_module(f"densitylab.{name}")
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("densitylab"):
            return None
        raise


def dataset_names() -> list[str]:
    """Every dataset name a suite may use."""
    names = set(distributions.available()) | set(_EXTRA_DATASETS)
    images = _optional_module("images")
    if images is not None and hasattr(images, "available"):
        names |= set(images.available())
    return sorted(names)


def model_names() -> list[str]:
    """Every model kind a suite may use (``densitylab.models.available()`` plus registered ones)."""
    names = set(_EXTRA_MODELS) | set(REFERENCE_KINDS)
    models = _optional_module("models")
    if models is not None and hasattr(models, "available"):
        names |= set(models.available())
    return sorted(names)


def metric_names() -> list[str]:
    """Every metric name a suite may use."""
    _ensure_builtin_metrics()
    return sorted(_METRICS)


def make_dataset(name: str, params: dict[str, Any]):
    """Build the dataset ``name`` with ``params``: a target with ``sample(n, seed)`` and ``dim``."""
    if name in _EXTRA_DATASETS:
        return _EXTRA_DATASETS[name](**params)
    if name in IMAGE_DATASETS:
        images = _optional_module("images")
        if images is None:
            raise ValueError(f"unknown dataset {name!r}: densitylab.images is not installed")
        return images.make(name, **params)
    return distributions.make(name, **params)


def make_model(kind: str, params: dict[str, Any], *, data_shape: tuple[int, ...],
               seed: int | None = None) -> Model:
    """Build an untrained model of ``kind`` for points of shape ``data_shape``; it is checked
    against the :class:`~densitylab.suite.context.Model` protocol (TypeError otherwise)."""
    return check_model(_build_model(kind, params, data_shape=data_shape, seed=seed), kind)


def _build_model(kind: str, params: dict[str, Any], *, data_shape: tuple[int, ...],
                 seed: int | None = None):
    """Build an untrained model of ``kind`` for points of shape ``data_shape``.

    Vectors are passed as ``data_dim``, images as ``data_shape``; ``seed`` (the weight
    initialisation seed) is passed unless ``params`` sets one.
    """
    shape_kw = {"data_dim": data_shape[0]} if len(data_shape) == 1 else {"data_shape": data_shape}
    extra = {**shape_kw, **({"seed": seed} if seed is not None and "seed" not in params else {})}
    if kind in _EXTRA_MODELS:
        factory = _EXTRA_MODELS[kind]
        return factory(**_accepted(factory, extra), **params)
    if kind in REFERENCE_KINDS:
        return make_reference(kind, **extra, **params)
    models = _optional_module("models")
    if models is None:
        raise ValueError(f"unknown model {kind!r}: densitylab.models is not installed")
    return models.make(kind, **extra, **params)


def preset_names() -> list[str]:
    """Every model preset a suite's ``[[models]]`` table may name with ``preset = "NAME"``:
    ``densitylab.models.PRESETS`` plus presets registered with :func:`register_preset`."""
    names = set(_EXTRA_PRESETS)
    models = _optional_module("models")
    presets = getattr(models, "PRESETS", None) if models is not None else None
    if isinstance(presets, dict):
        names |= set(presets)
    return sorted(names)


def make_preset(name: str, params: dict[str, Any], *, data_shape: tuple[int, ...],
                seed: int | None = None) -> tuple[str, Any]:
    """``(kind, model)``: the preset ``name`` built for ``data_shape`` with ``params``
    overriding the preset's own settings key by key.

    A preset registered here is a model kind and its default parameters; any other comes from
    ``densitylab.models.preset(name, **overrides)``, and its kind is the registered model kind
    of the class it returns.
    """
    if name in _EXTRA_PRESETS:
        kind, defaults = _EXTRA_PRESETS[name]
        return kind, make_model(kind, {**defaults, **params}, data_shape=data_shape, seed=seed)
    models = _optional_module("models")
    if models is None or not hasattr(models, "preset"):
        raise ValueError(f"unknown preset {name!r}; expected one of "
                         f"{', '.join(map(repr, preset_names())) or '(none installed)'}")
    shape_kw = {"data_dim": data_shape[0]} if len(data_shape) == 1 else {"data_shape": data_shape}
    extra = {**shape_kw, **({"seed": seed} if seed is not None and "seed" not in params else {})}
    model = models.preset(name, **extra, **params)
    for kind, cls in getattr(models, "_REGISTRY", {}).items():
        if type(model) is cls:
            return kind, model
    raise ValueError(f"preset {name!r} builds a {type(model).__name__}, which is not a "
                     f"registered model kind")


def preset_train(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The published ``fit`` options of preset ``name`` for the model built with ``params``
    (``densitylab.models.preset_train_defaults``); none for presets registered here."""
    if name in _EXTRA_PRESETS:
        return {}
    models = _optional_module("models")
    defaults = getattr(models, "preset_train_defaults", None) if models is not None else None
    return dict(defaults(name, **params)) if defaults is not None else {}


def register_preset(name: str, kind: str, params: dict[str, Any]) -> None:
    """Make ``preset = name`` in a suite mean model ``kind`` with ``params`` as defaults."""
    _EXTRA_PRESETS[name] = (kind, dict(params))


def model_factory(kind: str) -> Callable[..., Any]:
    """The callable that builds models of ``kind`` (a registered factory or the model class)."""
    if kind in _EXTRA_MODELS:
        return _EXTRA_MODELS[kind]
    if kind in REFERENCE_KINDS:
        return make_reference
    models = _optional_module("models")
    registry = getattr(models, "_REGISTRY", None) if models is not None else None
    if isinstance(registry, dict) and kind in registry:
        return registry[kind]
    raise ValueError(f"unknown model {kind!r}; expected one of {', '.join(model_names())}")


def _accepted(fn: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``kwargs`` that ``fn`` takes (all of them when it takes ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def get_metric(name: str) -> MetricSpec:
    """The registered metric ``name`` (ValueError listing the known ones otherwise)."""
    _ensure_builtin_metrics()
    if name not in _METRICS:
        known = ", ".join(repr(n) for n in sorted(_METRICS))
        raise ValueError(f"unknown metric {name!r}; expected one of {known}")
    return _METRICS[name]


def register_dataset(name: str, factory: Callable[..., Any]) -> None:
    """Make ``factory(**params)`` (returning a target with ``sample``/``dim``) usable by name."""
    _EXTRA_DATASETS[name] = factory


def register_model(name: str, factory: Callable[..., Any]) -> None:
    """Make ``factory(data_dim=..., **params)`` usable as a model kind in suites."""
    _EXTRA_MODELS[name] = factory


def register_metric(spec: MetricSpec) -> None:
    """Add (or replace) a suite metric."""
    _ensure_builtin_metrics()
    _METRICS[spec.name] = spec


def unregister(name: str) -> None:
    """Forget a dataset, model or metric registered at run time (built-ins stay)."""
    _EXTRA_DATASETS.pop(name, None)
    _EXTRA_MODELS.pop(name, None)
    _EXTRA_PRESETS.pop(name, None)
    spec = _METRICS.get(name)
    if spec is not None and spec.name not in _builtin_metric_names():
        _METRICS.pop(name)


def _builtin_metric_names() -> set[str]:
    return {spec.name for spec in BUILTIN_METRICS}


def _ensure_builtin_metrics() -> None:
    if _METRICS:
        return
    for spec in BUILTIN_METRICS:
        _METRICS.setdefault(spec.name, spec)
