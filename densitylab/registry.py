"""One registry of what densitylab builds by name: datasets, model kinds, model presets and
suite metrics, plus the model classes :func:`densitylab.models.load` rebuilds from a file.

:data:`REGISTRY` holds the namespaces ``REGISTRY.datasets``, ``.models``, ``.presets`` and
``.metrics`` and the class table ``REGISTRY.model_classes``. A name is found in three places, in
this order:

1. Run-time registrations (:func:`register_model`, :func:`register_dataset`,
   :func:`register_preset`, ``densitylab.suite.registry.register_metric``), typically made by a
   suite's ``plugins`` module. They live in the registering process, so use them with the
   sequential runner, worker processes that import the same plugins, or a Dask cluster with
   ``processes=False``.
2. Built-ins: the targets of :mod:`densitylab.distributions` and :mod:`densitylab.images`; the
   model kinds and presets that :mod:`densitylab.models` adds when it is imported; the reference
   rows (``oracle``, ``noise``) and metrics that :mod:`densitylab.suite.registry` adds. A
   namespace imports the modules that add its built-ins (``sources``) on its first lookup.
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

A model kind whose factory is a batchable :class:`~densitylab.models.GenerativeModel` subclass
also trains many seeds as one computation; that batched form is derived from the class
(:func:`densitylab.models.batched.batched_class`), never registered. So one line,
``register_model("mine", MyModel)``, makes a new model kind usable in suites, batched over
seeds, and loadable with ``models.load``.

Calling conventions: a dataset factory is called as ``factory(**params)`` and returns a target
with ``sample(n, seed=)`` and ``dim`` (or ``data_shape``); a model factory as
``factory(data_dim=D, seed=S, **params)`` for vectors, ``factory(data_shape=(C, H, W), seed=S,
**params)`` for images (``seed`` is left out when ``params`` fixes it).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import distributions, images
from ._checking import expected_one_of
from ._runtime import logger

__all__ = [
    "Entry", "Namespace", "Registry", "REGISTRY", "PluginError", "ModelParamError",
    "ENTRY_POINT_GROUPS", "SUITE_FILLED_MODEL_KEYS",
    "dataset_names", "model_names", "preset_names", "metric_names", "get_metric",
    "make_dataset", "build_model",
    "make_preset", "preset_train", "model_defaults", "model_parameters", "check_model_params",
    "register_dataset", "register_model", "register_preset", "register_model_class",
    "model_class", "unregister",
]

#: The model factory keywords the suite fills in for every run from the dataset and the run's
#: seed (not hyperparameters): they never enter a run's resolved model parameters.
SUITE_FILLED_MODEL_KEYS = ("data_dim", "data_shape", "seed")

#: The entry-point group read for each namespace.
ENTRY_POINT_GROUPS = {"datasets": "densitylab.datasets", "models": "densitylab.models",
                      "metrics": "densitylab.metrics"}


class PluginError(ImportError):
    """An entry-point plugin could not be loaded (import failed, or it is of the wrong kind)."""


@dataclass(frozen=True)
class Entry:
    """One name of a namespace: what it stands for, where it comes from, and what is known of it.

    ``value`` is a dataset or model factory, a metric's ``MetricSpec``, or (for presets) a
    :class:`~densitylab.models.Preset` (None for a preset registered as a kind and parameters).
    ``source`` is ``"built-in"``, ``"registered"`` or ``"entry point NAME = VALUE"``.
    ``metadata`` holds per-namespace facts: for models ``defaults`` (hyperparameter defaults of
    a model that reports no ``config``) and ``reference`` (a reference row); for registered
    presets ``kind`` and ``params``.
    """

    name: str
    value: Any
    source: str = "built-in"
    metadata: Mapping[str, Any] = field(default_factory=dict)


Convert = Callable[[str, Any, str], Entry]


class Namespace:
    """The names of one kind (``"dataset"``, ``"model"``, ``"metric"`` or ``"preset"``).

    Built-ins come from ``builtins()`` (read at each lookup, so they reflect their modules'
    tables) and from :meth:`add_builtins`, called by the modules named in ``sources`` when they
    are imported (on the first lookup); entry points of ``group`` are discovered on the first
    lookup and each is loaded on first use (see the module docstring).
    """

    def __init__(self, kind: str, group: str | None = None, *,
                 builtins: Callable[[], Mapping[str, Entry]] | None = None,
                 convert: Convert | None = None, sources: tuple[str, ...] = ()):
        self.kind = kind
        self.group = group
        self._computed = builtins
        self._convert = convert
        self._sources = sources
        self._added: dict[str, Entry] = {}
        self._registered: dict[str, Entry] = {}
        self._entry_points: dict[str, list[Any]] | None = None
        self._loaded: dict[str, Entry] = {}

    # ------------------------------------------------------------ lookup
    def names(self) -> list[str]:
        """Every name of this namespace, sorted."""
        return sorted({*self._registered, *self.builtins(), *self._plugins()})

    def __contains__(self, name: object) -> bool:
        return name in self._registered or name in self.builtins() or name in self._plugins()

    def get(self, name: str) -> Entry:
        """The entry ``name``: a registration, else a built-in, else an entry-point plugin.

        Raises:
            ValueError: no such name (the message lists the known ones).
            PluginError: the entry point of that name failed to load.
        """
        if name in self._registered:
            return self._registered[name]
        builtins = self.builtins()
        if name in builtins:
            return builtins[name]
        if name in self._plugins():
            return self._load(name)
        known = self.names()
        expected = ", ".join(map(repr, known)) if known else "(none installed)"
        raise ValueError(f"unknown {self.kind} {name!r}; expected one of {expected}")

    def entries(self) -> dict[str, Entry]:
        """The registered entries and the built-ins added so far, by name: nothing is imported
        (neither ``sources`` nor entry points)."""
        computed = self._computed() if self._computed is not None else {}
        return {**computed, **self._added, **self._registered}

    def builtins(self) -> dict[str, Entry]:
        """The built-in entries by name, after importing the modules that add them."""
        for module in self._sources:
            importlib.import_module(module)  # adds its built-ins when first imported
        computed = self._computed() if self._computed is not None else {}
        return {**computed, **self._added}

    # ------------------------------------------------------------ registration
    def add_builtins(self, entries: Iterable[Entry], *, convert: Convert | None = None) -> None:
        """Add built-in entries (the module owning them calls this when imported); ``convert``
        checks what this namespace's entry points load and makes their entries."""
        for entry in entries:
            self._added[entry.name] = entry
        if convert is not None:
            self._convert = convert

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
                builtins = self.builtins()
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
        convert = self._convert or _factory_plugin(self.kind)
        entry = convert(name, obj, where)
        self._loaded[name] = entry
        return entry


def _describe_entry_point(ep) -> str:
    dist = getattr(ep, "dist", None)
    owner = f" of {dist.name}" if dist is not None and getattr(dist, "name", None) else ""
    return f"entry point '{ep.name} = {ep.value}' in group {ep.group!r}{owner}"


def _factory_plugin(kind: str) -> Convert:
    def convert(name: str, obj: Any, where: str) -> Entry:
        if not callable(obj):
            raise PluginError(f"{kind} {name!r}: {where} loads a {type(obj).__name__}, not a "
                              f"callable {kind} factory")
        if kind == "model" and isinstance(obj, type):
            REGISTRY.model_classes.setdefault(obj.__name__, obj)
        return Entry(name, obj, where)

    return convert


def _builtin_datasets() -> dict[str, Entry]:
    out = {name: Entry(name, functools.partial(distributions.make, name))
           for name in distributions.available()}
    out.update({name: Entry(name, functools.partial(images.make, name), metadata={"image": True})
                for name in images.available()})
    return out


class Registry:
    """Every name densitylab builds: ``datasets``, ``models``, ``presets`` and ``metrics``
    (:class:`Namespace` each; datasets, models and metrics also read their entry-point groups,
    :data:`ENTRY_POINT_GROUPS`), and ``model_classes``, the model classes by class name that
    ``models.load`` rebuilds saved files as."""

    def __init__(self):
        self.datasets = Namespace("dataset", ENTRY_POINT_GROUPS["datasets"],
                                  builtins=_builtin_datasets)
        self.models = Namespace("model", ENTRY_POINT_GROUPS["models"],
                                sources=("densitylab.models", "densitylab.suite.registry"))
        self.presets = Namespace("preset", sources=("densitylab.models",))
        self.metrics = Namespace("metric", ENTRY_POINT_GROUPS["metrics"],
                                 sources=("densitylab.suite.registry",))
        self.model_classes: dict[str, type] = {}

    def namespaces(self) -> tuple[Namespace, ...]:
        """The four namespaces, in the order ``densitylab list`` shows them."""
        return (self.datasets, self.models, self.presets, self.metrics)

    def refresh_plugins(self) -> None:
        """Read the entry-point groups again on the next lookup (after installing a plugin)."""
        for namespace in self.namespaces():
            namespace.refresh()


#: The one registry every part of densitylab reads.
REGISTRY = Registry()


# ---------------------------------------------------------------- names and datasets


def dataset_names() -> list[str]:
    """Every dataset name a suite may use."""
    return REGISTRY.datasets.names()


def model_names() -> list[str]:
    """Every model kind a suite may use (the model families, the reference rows, registered
    models and entry-point plugins)."""
    return REGISTRY.models.names()


def preset_names() -> list[str]:
    """Every model preset a suite's ``[[models]]`` table may name with ``preset = "NAME"``:
    ``densitylab.models.PRESETS`` plus presets registered with :func:`register_preset`."""
    return REGISTRY.presets.names()


def metric_names() -> list[str]:
    """Every metric name a suite may use (the built-in ``MetricSpec`` s, which
    :mod:`densitylab.suite.registry` adds, registered metrics and entry-point plugins)."""
    return REGISTRY.metrics.names()


def get_metric(name: str) -> Any:
    """The ``MetricSpec`` called ``name`` (ValueError listing the known ones otherwise)."""
    return REGISTRY.metrics.get(name).value


def make_dataset(name: str, params: dict[str, Any]):
    """Build the dataset ``name`` with ``params``: a target with ``sample(n, seed)`` and ``dim``."""
    return REGISTRY.datasets.get(name).value(**params)


# ---------------------------------------------------------------- models


def model_class(class_name: str) -> type:
    """The model class called ``class_name`` (what a saved file records), for ``models.load``.

    Raises:
        ValueError: no model class of that name is defined or registered.
    """
    if class_name not in REGISTRY.model_classes:
        raise ValueError(f"unknown model class {class_name!r} in file")
    return REGISTRY.model_classes[class_name]


def register_model_class(cls: type, *, replace: bool = False) -> None:
    """Make ``models.load`` rebuild files saved by ``cls``: the first class defined under a
    name, or with ``replace`` (an explicit registration) this one."""
    if replace:
        REGISTRY.model_classes[cls.__name__] = cls
    else:
        REGISTRY.model_classes.setdefault(cls.__name__, cls)


def _model_keywords(params: Mapping[str, Any], data_shape: tuple[int, ...],
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
    return ModelParamError(key, f"model kind {kind!r} has no parameter {key!r}; "
                                + expected_one_of(key, valid))


def build_model(kind: str, params: Mapping[str, Any], *, data_shape: tuple[int, ...],
                seed: int | None = None) -> Any:
    """An untrained model of ``kind`` for points of shape ``data_shape`` (the suite's
    ``make_model`` also checks it against its model protocol).

    The factory is called as ``factory(data_dim=..., seed=..., **params)`` (``data_shape``
    instead of ``data_dim`` for images; no ``seed`` when ``params`` sets one).

    Raises:
        ModelParamError: a key the model cannot take; ValueError: an unknown kind.
    """
    entry = REGISTRY.models.get(kind)
    check_model_params(kind, params)
    keywords = _model_keywords(params, data_shape, seed)
    try:
        return entry.value(**keywords, **params)
    except TypeError as err:
        clear = _unknown_param(kind, err)
        if clear is not None:
            raise clear from err
        if entry.source == "built-in":
            raise
        raise TypeError(f"model kind {kind!r}: {err} (its factory is called with "
                        f"{', '.join(keywords)} and the suite's params)") from err


def model_defaults(kind: str) -> dict[str, Any]:
    """The hyperparameter defaults declared for model ``kind`` (``register_model(...,
    defaults=...)``); the suite uses them for the run ids of a model that reports no
    ``config``. Empty when none were declared."""
    return dict(REGISTRY.models.get(kind).metadata.get("defaults") or {})


# ---------------------------------------------------------------- presets


def make_preset(name: str, params: dict[str, Any], *, data_shape: tuple[int, ...],
                seed: int | None = None) -> tuple[str, Any]:
    """``(kind, model)``: the preset ``name`` built for ``data_shape`` with ``params``
    overriding the preset's own settings key by key.

    A preset registered with :func:`register_preset` is a model kind and its default
    parameters; a built-in one is a :class:`~densitylab.models.Preset`, whose ``kind`` names
    its class.
    """
    entry = REGISTRY.presets.get(name)
    if entry.value is None:
        kind, defaults = entry.metadata["kind"], entry.metadata["params"]
        return kind, build_model(kind, {**defaults, **params}, data_shape=data_shape, seed=seed)
    preset = entry.value
    keywords = _model_keywords(params, data_shape, seed)
    return preset.kind, preset.cls(**preset.model_kwargs(**keywords, **params))


def preset_train(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The published ``fit`` options of preset ``name`` for the model built with ``params``
    (``Preset.train_defaults``); none for presets registered as a kind and parameters."""
    preset = REGISTRY.presets.get(name).value
    return {} if preset is None else preset.train_defaults(**params)


# ---------------------------------------------------------------- registration


def register_dataset(name: str, factory: Callable[..., Any]) -> None:
    """Make ``factory(**params)`` (returning a target with ``sample``/``dim``) usable by name."""
    REGISTRY.datasets.register(Entry(name, factory, "registered"))


def register_model(name: str, factory: Callable[..., Any], *,
                   defaults: Mapping[str, Any] | None = None) -> None:
    """Make ``factory(data_dim=..., seed=..., **params)`` usable as a model kind in suites.

    A :class:`~densitylab.models.GenerativeModel` subclass as ``factory`` is a complete model
    kind: ``models.make`` builds it, ``models.load`` reads its files, and when its training
    step is written against an engine its seeds train as one batched computation.

    ``defaults``: the factory's hyperparameter defaults, which the run ids resolve when the
    built model reports no ``config`` (a model with a ``config`` dict needs none). What the
    model's ``fit``, ``sample`` and ``log_prob`` accept beyond the basic contract is declared on
    the model (``fit_options``, ``sample_options``, ``log_prob_options``).
    """
    if not callable(factory):
        raise TypeError(f"factory: expected a callable building the model, got "
                        f"{type(factory).__name__}")
    if defaults is not None and not isinstance(defaults, Mapping):
        raise TypeError(f"defaults: expected a mapping of hyperparameter defaults, got "
                        f"{type(defaults).__name__}")
    if isinstance(factory, type):
        register_model_class(factory, replace=True)
    REGISTRY.models.register(Entry(name, factory, "registered",
                                   {"defaults": dict(defaults or {})}))


def register_preset(name: str, kind: str, params: dict[str, Any]) -> None:
    """Make ``preset = name`` in a suite mean model ``kind`` with ``params`` as defaults."""
    REGISTRY.presets.register(Entry(name, None, "registered",
                                    {"kind": kind, "params": dict(params)}))


def unregister(name: str) -> None:
    """Forget a dataset, model, preset or metric registered at run time (built-ins and
    entry-point plugins stay)."""
    for namespace in REGISTRY.namespaces():
        namespace.unregister(name)


def declared_options(model: Any, method: str) -> frozenset[str]:
    """The keywords ``model`` declares for ``method`` (``"fit"``, ``"sample"`` or
    ``"log_prob"``) in its ``<method>_options`` attribute; empty when it declares none.

    Raises:
        TypeError: the attribute is not a collection of strings.
    """
    declared = getattr(model, f"{method}_options", ())
    if isinstance(declared, str) or not isinstance(declared, Collection) or not all(
            isinstance(name, str) for name in declared):
        raise TypeError(f"{type(model).__name__}.{method}_options: expected a collection of "
                        f"keyword names, got {declared!r}")
    return frozenset(declared)
