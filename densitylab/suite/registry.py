"""What a suite can name: one registry of datasets, models, metrics and model presets.

:data:`REGISTRY` holds four namespaces (``REGISTRY.datasets``, ``.models``, ``.metrics``,
``.presets``); every part of the suite (validation, run execution, ``densitylab list`` and
``describe``) looks names up there and nowhere else. A name is found in three places, in this
order:

1. Run-time registrations (:func:`register_model`, :func:`register_dataset`,
   :func:`register_metric`, :func:`register_preset`), typically made by a suite's ``plugins``
   module. They live in the registering process, so use them with the sequential runner, worker
   processes that import the same plugins, or a Dask cluster with ``processes=False``.
2. Built-ins: the targets of :mod:`densitylab.distributions` and :mod:`densitylab.images`, the
   model kinds of :func:`densitylab.models.make` and the reference rows (``oracle``, ``noise``),
   the metrics of :mod:`densitylab.suite.metric_adapters`, and ``densitylab.models.PRESETS``.
3. Entry-point plugins: an installed package declares, in its ``pyproject.toml``::

       [project.entry-points."densitylab.models"]
       mymodel = "mypackage.models:MyModel"        # a model factory
       [project.entry-points."densitylab.datasets"]
       mydata = "mypackage.data:make_mydata"       # a dataset factory
       [project.entry-points."densitylab.metrics"]
       mymetric = "mypackage.metrics:MY_METRIC"    # a MetricSpec named "mymetric"

   The groups are read with :func:`importlib.metadata.entry_points` on the first lookup in a
   namespace (so in every worker process too, with no ``plugins`` list), and an entry point is
   imported only when its name is first used. One that fails to import, or loads something of
   the wrong kind, raises :class:`PluginError` naming the entry point. An entry point never
   replaces a built-in name (it is ignored with a warning).

Calling conventions: a dataset factory is called as ``factory(**params)`` and returns a target
with ``sample(n, seed=)`` and ``dim`` (or ``data_shape``); a model factory as
``factory(data_dim=D, seed=S, **params)`` for vectors, ``factory(data_shape=(C, H, W), seed=S,
**params)`` for images (``seed`` is left out when ``params`` fixes it), and returns a
:class:`~densitylab.suite.context.Model`; a metric is a :class:`MetricSpec`.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import distributions
from .._runtime import logger
from ..scoring import BUILTIN_METRICS, MetricSpec
from .context import Model, check_model
from .references import REFERENCE_KINDS, make_reference

__all__ = [
    "MetricSpec",
    "Entry",
    "Namespace",
    "Registry",
    "REGISTRY",
    "PluginError",
    "ENTRY_POINT_GROUPS",
    "FILLED_IN",
    "IMAGE_DATASETS",
    "dataset_names",
    "model_names",
    "metric_names",
    "make_dataset",
    "make_model",
    "model_factory",
    "model_defaults",
    "batched_model_class",
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

#: The model factory keywords the suite fills in for every run (not hyperparameters): they
#: never enter a run's resolved model parameters.
FILLED_IN = ("data_dim", "data_shape", "seed")

#: The entry-point group read for each namespace.
ENTRY_POINT_GROUPS = {"datasets": "densitylab.datasets", "models": "densitylab.models",
                      "metrics": "densitylab.metrics"}


class PluginError(ImportError):
    """An entry-point plugin could not be loaded (import failed, or it is of the wrong kind)."""


@dataclass(frozen=True)
class Entry:
    """One name of a namespace: what it stands for, where it comes from, and what is known of it.

    ``value`` is a dataset or model factory, a :class:`MetricSpec`, or (for presets) the
    callable building the preset's model. ``source`` is ``"built-in"``, ``"registered"`` or
    ``"entry point NAME = VALUE"``. ``metadata`` holds per-namespace facts: for models
    ``defaults`` (hyperparameter defaults of a model that reports no ``config``), ``batched``
    (the class that trains many seeds at once, or None) and ``reference`` (a reference row);
    for presets ``kind`` and ``params`` of a registered preset.
    """

    name: str
    value: Any
    source: str = "built-in"
    metadata: Mapping[str, Any] = field(default_factory=dict)


class Namespace:
    """The names of one kind (``"dataset"``, ``"model"``, ``"metric"`` or ``"preset"``).

    Built-ins are read from their modules at each lookup (so they always reflect those
    modules' tables); entry points of ``group`` are discovered on the first lookup and each is
    loaded on first use (see the module docstring).
    """

    def __init__(self, kind: str, group: str | None,
                 builtins: Callable[[], dict[str, Entry]],
                 convert: Callable[[str, Any, str], Entry] | None = None):
        self.kind = kind
        self.group = group
        self._builtins = builtins
        self._convert = convert
        self._registered: dict[str, Entry] = {}
        self._entry_points: dict[str, list[Any]] | None = None
        self._loaded: dict[str, Entry] = {}

    # ------------------------------------------------------------ lookup
    def names(self) -> list[str]:
        """Every name of this namespace, sorted."""
        return sorted({*self._registered, *self._builtins(), *self._plugins()})

    def __contains__(self, name: object) -> bool:
        return (name in self._registered or name in self._builtins()
                or name in self._plugins())

    def get(self, name: str) -> Entry:
        """The entry ``name``: a registration, else a built-in, else an entry-point plugin.

        Raises:
            ValueError: no such name (the message lists the known ones).
            PluginError: the entry point of that name failed to load.
        """
        if name in self._registered:
            return self._registered[name]
        builtins = self._builtins()
        if name in builtins:
            return builtins[name]
        if name in self._plugins():
            return self._load(name)
        known = self.names()
        expected = ", ".join(map(repr, known)) if known else "(none installed)"
        raise ValueError(f"unknown {self.kind} {name!r}; expected one of {expected}")

    # ------------------------------------------------------------ registration
    def register(self, entry: Entry) -> None:
        """Add (or replace) a run-time entry; it takes precedence over built-ins and plugins."""
        if not isinstance(entry.name, str) or not entry.name:
            raise TypeError(f"name: expected a non-empty string, got {entry.name!r}")
        self._registered[entry.name] = entry

    def unregister(self, name: str) -> None:
        """Forget a run-time entry (built-ins and entry points stay)."""
        self._registered.pop(name, None)

    def refresh(self) -> None:
        """Forget the discovered entry points; the next lookup reads the groups again."""
        self._entry_points = None
        self._loaded.clear()

    # ------------------------------------------------------------ entry points
    def _plugins(self) -> dict[str, list[Any]]:
        if self._entry_points is None:
            found: dict[str, list[Any]] = {}
            if self.group is not None:
                builtins = self._builtins()
                for ep in importlib.metadata.entry_points(group=self.group):
                    if ep.name in builtins:
                        logger.warning("ignoring %s: %r is a built-in %s",
                                       _describe_entry_point(ep), ep.name, self.kind)
                        continue
                    found.setdefault(ep.name, []).append(ep)
            self._entry_points = found
        return self._entry_points

    def _load(self, name: str) -> Entry:
        if name in self._loaded:
            return self._loaded[name]
        eps = self._plugins()[name]
        if len(eps) > 1:
            raise PluginError(f"{self.kind} {name!r} is declared by several entry points: "
                              f"{'; '.join(_describe_entry_point(ep) for ep in eps)}; "
                              "uninstall one of them")
        ep = eps[0]
        where = _describe_entry_point(ep)
        try:
            obj = ep.load()
        except Exception as err:
            raise PluginError(f"{self.kind} {name!r}: {where} failed to load: "
                              f"{type(err).__name__}: {err}") from err
        assert self._convert is not None  # a namespace with a group has a converter
        entry = self._convert(name, obj, where)
        self._loaded[name] = entry
        return entry


def _describe_entry_point(ep) -> str:
    dist = getattr(ep, "dist", None)
    owner = f" of {dist.name}" if dist is not None and getattr(dist, "name", None) else ""
    return f"entry point '{ep.name} = {ep.value}' in group {ep.group!r}{owner}"


def _factory_plugin(kind: str) -> Callable[[str, Any, str], Entry]:
    def convert(name: str, obj: Any, where: str) -> Entry:
        if not callable(obj):
            raise PluginError(f"{kind} {name!r}: {where} loads a {type(obj).__name__}, not a "
                              f"callable {kind} factory")
        return Entry(name, obj, where)

    return convert


def _metric_plugin(name: str, obj: Any, where: str) -> Entry:
    if not isinstance(obj, MetricSpec):
        raise PluginError(f"metric {name!r}: {where} loads a {type(obj).__name__}, not a "
                          "densitylab.suite.MetricSpec")
    if obj.name != name:
        raise PluginError(f"metric {name!r}: {where} loads the MetricSpec {obj.name!r}; the "
                          "entry point's name must be the metric's name")
    return Entry(name, obj, where)


# ---------------------------------------------------------------- built-ins


def _optional_module(name: str):
    """Import ``densitylab.<name>`` if it is present in this installation, else None."""
    try:
        return importlib.import_module(f"densitylab.{name}")
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("densitylab"):
            return None
        raise


def _builtin_datasets() -> dict[str, Entry]:
    out = {name: Entry(name, functools.partial(distributions.make, name))
           for name in distributions.available()}
    images = _optional_module("images")
    if images is not None:
        out.update({name: Entry(name, functools.partial(images.make, name),
                                metadata={"image": True}) for name in images.available()})
    return out


def _builtin_models() -> dict[str, Entry]:
    out = {}
    models = _optional_module("models")
    if models is not None:
        batched = _optional_module("models.batched")
        for kind in models.available():
            out[kind] = Entry(kind, functools.partial(models.make, kind),
                              metadata={"batched": batched.batched_class(kind)})
    for kind in REFERENCE_KINDS:
        out[kind] = Entry(kind, functools.partial(make_reference, kind),
                          metadata={"reference": True})
    return out


def _builtin_metrics() -> dict[str, Entry]:
    return {spec.name: Entry(spec.name, spec) for spec in BUILTIN_METRICS}


def _builtin_presets() -> dict[str, Entry]:
    models = _optional_module("models")
    presets = getattr(models, "PRESETS", None) if models is not None else None
    if not isinstance(presets, dict):
        return {}
    return {name: Entry(name, functools.partial(models.preset, name),
                        metadata={"train": functools.partial(models.preset_train_defaults, name)})
            for name in presets}


class Registry:
    """Every name a suite may use: ``datasets``, ``models``, ``metrics`` and ``presets``
    (:class:`Namespace` each; the first three also read their entry-point groups,
    :data:`ENTRY_POINT_GROUPS`)."""

    def __init__(self):
        self.datasets = Namespace("dataset", ENTRY_POINT_GROUPS["datasets"], _builtin_datasets,
                                  _factory_plugin("dataset"))
        self.models = Namespace("model", ENTRY_POINT_GROUPS["models"], _builtin_models,
                                _factory_plugin("model"))
        self.metrics = Namespace("metric", ENTRY_POINT_GROUPS["metrics"], _builtin_metrics,
                                 _metric_plugin)
        self.presets = Namespace("preset", None, _builtin_presets)

    def namespaces(self) -> tuple[Namespace, ...]:
        """The four namespaces, in the order ``densitylab list`` shows them."""
        return (self.datasets, self.models, self.presets, self.metrics)

    def refresh_plugins(self) -> None:
        """Read the entry-point groups again on the next lookup (after installing a plugin)."""
        for namespace in self.namespaces():
            namespace.refresh()


#: The one registry every part of the suite reads.
REGISTRY = Registry()


# ---------------------------------------------------------------- the functional interface


def dataset_names() -> list[str]:
    """Every dataset name a suite may use."""
    return REGISTRY.datasets.names()


def model_names() -> list[str]:
    """Every model kind a suite may use (``densitylab.models.available()``, the reference rows,
    registered models and entry-point plugins)."""
    return REGISTRY.models.names()


def metric_names() -> list[str]:
    """Every metric name a suite may use."""
    return REGISTRY.metrics.names()


def preset_names() -> list[str]:
    """Every model preset a suite's ``[[models]]`` table may name with ``preset = "NAME"``:
    ``densitylab.models.PRESETS`` plus presets registered with :func:`register_preset`."""
    return REGISTRY.presets.names()


def make_dataset(name: str, params: dict[str, Any]):
    """Build the dataset ``name`` with ``params``: a target with ``sample(n, seed)`` and ``dim``."""
    return REGISTRY.datasets.get(name).value(**params)


def _model_keywords(params: dict[str, Any], data_shape: tuple[int, ...],
                    seed: int | None) -> dict[str, Any]:
    """What a model factory receives besides ``params``: the data shape (``data_dim`` for
    vectors, ``data_shape`` for images) and ``seed`` unless ``params`` fixes one."""
    shape_kw = {"data_dim": data_shape[0]} if len(data_shape) == 1 else {"data_shape": data_shape}
    return {**shape_kw, **({"seed": seed} if seed is not None and "seed" not in params else {})}


class ModelParamError(ValueError):
    """A key of a model's ``params`` that the model cannot take: ``key`` names it and the
    message says what to write instead."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"params.{key}: {reason}")
        self.key, self.reason = key, reason


def check_model_params(kind: str, params: Mapping[str, Any]) -> None:
    """Refuse the keys of ``params`` that come from the dataset (``data_dim``, ``data_shape``),
    saying so, before a model of ``kind`` is built.

    Raises:
        ModelParamError: naming the key and how to fix it.
    """
    for key in ("data_dim", "data_shape"):
        if key in params:
            raise ModelParamError(key, f"{key} comes from the dataset (each model is built for "
                                       f"the points of the dataset it runs on); remove {key} "
                                       "from params")


def model_parameters(kind: str) -> list[str] | None:
    """The parameters model ``kind`` declares: the keys of the ``config`` of a model built with
    its defaults for 2D points (the ``defaults`` given at registration for a model without a
    ``config``), with ``seed``; None when neither is known."""
    entry = REGISTRY.models.get(kind)
    try:
        model = entry.value(**_model_keywords({}, (2,), 0))
        config = getattr(model, "config", None)
    except Exception:  # noqa: BLE001 - e.g. a model for images only
        config = None
    if not isinstance(config, Mapping):
        config = entry.metadata.get("defaults") or None
    if config is None:
        return None
    return sorted({*config, "seed"} - {"data_dim", "data_shape"})


def _unknown_param(kind: str, err: TypeError) -> ModelParamError | None:
    """A clear error for Python's "unexpected keyword argument 'x'" from a model factory."""
    found = re.search(r"unexpected keyword argument '(\w+)'", str(err))
    valid = model_parameters(kind) if found else None
    if found is None or valid is None:
        return None
    key = found[1]
    close = difflib.get_close_matches(key, valid, n=1)
    return ModelParamError(key, f"model kind {kind!r} has no parameter {key!r}; "
                                + (f"did you mean {close[0]!r}? " if close else "")
                                + "expected one of " + ", ".join(valid))


def make_model(kind: str, params: dict[str, Any], *, data_shape: tuple[int, ...],
               seed: int | None = None) -> Model:
    """Build an untrained model of ``kind`` for points of shape ``data_shape``; it is checked
    against the :class:`~densitylab.suite.context.Model` protocol (TypeError otherwise).

    The factory is called as ``factory(data_dim=..., seed=..., **params)`` (``data_shape``
    instead of ``data_dim`` for images; no ``seed`` when ``params`` sets one).
    """
    entry = REGISTRY.models.get(kind)
    check_model_params(kind, params)
    keywords = _model_keywords(params, data_shape, seed)
    try:
        model = entry.value(**keywords, **params)
    except TypeError as err:
        clear = _unknown_param(kind, err)
        if clear is not None:
            raise clear from err
        if entry.source == "built-in":
            raise
        raise TypeError(f"model kind {kind!r}: {err} (its factory is called with "
                        f"{', '.join(keywords)} and the suite's params)") from err
    return check_model(model, kind)


def model_factory(kind: str) -> Callable[..., Any]:
    """The callable that builds models of ``kind`` (see :func:`make_model` for its keywords)."""
    return REGISTRY.models.get(kind).value


def model_defaults(kind: str) -> dict[str, Any]:
    """The hyperparameter defaults declared for model ``kind`` (``register_model(...,
    defaults=...)``); the suite uses them for the run ids of a model that reports no
    ``config``. Empty when none were declared."""
    return dict(REGISTRY.models.get(kind).metadata.get("defaults") or {})


def batched_model_class(kind: str) -> type | None:
    """The class that trains many seeds of built-in model ``kind`` as one computation
    (:mod:`densitylab.models.batched`), or None (registered and plugin models train per seed)."""
    return REGISTRY.models.get(kind).metadata.get("batched")


def make_preset(name: str, params: dict[str, Any], *, data_shape: tuple[int, ...],
                seed: int | None = None) -> tuple[str, Any]:
    """``(kind, model)``: the preset ``name`` built for ``data_shape`` with ``params``
    overriding the preset's own settings key by key.

    A preset registered here is a model kind and its default parameters; any other comes from
    ``densitylab.models.preset(name, **overrides)``, and its kind is the registered model kind
    of the class it returns.
    """
    entry = REGISTRY.presets.get(name)
    if entry.source != "built-in":
        kind, defaults = entry.metadata["kind"], entry.metadata["params"]
        return kind, make_model(kind, {**defaults, **params}, data_shape=data_shape, seed=seed)
    model = entry.value(**_model_keywords(params, data_shape, seed), **params)
    models = _optional_module("models")
    for kind, cls in getattr(models, "_REGISTRY", {}).items():
        if type(model) is cls:
            return kind, model
    raise ValueError(f"preset {name!r} builds a {type(model).__name__}, which is not a "
                     f"registered model kind")


def preset_train(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The published ``fit`` options of preset ``name`` for the model built with ``params``
    (``densitylab.models.preset_train_defaults``); none for presets registered here."""
    train = REGISTRY.presets.get(name).metadata.get("train")
    return dict(train(**params)) if train is not None else {}


def get_metric(name: str) -> MetricSpec:
    """The metric ``name`` (ValueError listing the known ones otherwise)."""
    return REGISTRY.metrics.get(name).value


def register_dataset(name: str, factory: Callable[..., Any]) -> None:
    """Make ``factory(**params)`` (returning a target with ``sample``/``dim``) usable by name."""
    REGISTRY.datasets.register(Entry(name, factory, "registered"))


def register_model(name: str, factory: Callable[..., Any], *,
                   defaults: Mapping[str, Any] | None = None) -> None:
    """Make ``factory(data_dim=..., seed=..., **params)`` usable as a model kind in suites.

    ``defaults``: the factory's hyperparameter defaults, which the run ids resolve when the
    built model reports no ``config`` (a model with a ``config`` dict needs none). What the
    model's ``fit``, ``sample`` and ``log_prob`` accept beyond the basic contract is declared on
    the model (``fit_options``, ``sample_options``, ``log_prob_options``; see
    :class:`densitylab.suite.context.Model`).
    """
    if not callable(factory):
        raise TypeError(f"factory: expected a callable building the model, got "
                        f"{type(factory).__name__}")
    if defaults is not None and not isinstance(defaults, Mapping):
        raise TypeError(f"defaults: expected a mapping of hyperparameter defaults, got "
                        f"{type(defaults).__name__}")
    REGISTRY.models.register(Entry(name, factory, "registered",
                                   {"defaults": dict(defaults or {}), "batched": None}))


def register_metric(spec: MetricSpec) -> None:
    """Add (or replace) a suite metric."""
    if not isinstance(spec, MetricSpec):
        raise TypeError(f"spec: expected a MetricSpec, got {type(spec).__name__}")
    REGISTRY.metrics.register(Entry(spec.name, spec, "registered"))


def register_preset(name: str, kind: str, params: dict[str, Any]) -> None:
    """Make ``preset = name`` in a suite mean model ``kind`` with ``params`` as defaults."""
    REGISTRY.presets.register(Entry(name, None, "registered",
                                    {"kind": kind, "params": dict(params)}))


def unregister(name: str) -> None:
    """Forget a dataset, model, preset or metric registered at run time (built-ins and
    entry-point plugins stay)."""
    for namespace in REGISTRY.namespaces():
        namespace.unregister(name)
