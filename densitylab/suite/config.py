"""Suite configuration: a TOML file, validated key by key, expanded into runs with stable ids.

A suite is ``[suite]``, ``[train]`` (defaults for every model), ``[[datasets]]``, ``[[models]]``
and ``[[metrics]]``, each key declared once in :mod:`densitylab.suite.schema`
(``docs/user-guide.md`` shows it with examples). Every error names the offending key, e.g.
``models[1].kind: unknown model 'vea'; expected one of 'flow', 'gan', 'vae'``.

A run is one (dataset, model, seed). Its id (:func:`run_id`) hashes its fully resolved
configuration: every default filled in from the code (the dataset's ``target.params``, the
model's ``config`` minus the data shape and weight seed, which the suite fills in, the model's
own learning rate, every metric parameter) and the major.minor version of densitylab (a release
that changes results bumps it). So changing a default in code computes the run again, and
writing a default out or leaving it implicit gives the same id. The device, the suite's name,
the thread count and ``batch_seeds`` are not part of the id: they say where, how and under which
name a run was computed, not what. A run's ``config`` is what its worker builds from.
"""

from __future__ import annotations

import hashlib
import json
import numbers
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .. import __version__
from .._checking import Errors as _Errors
from .._checking import check, check_fields, check_value, expected_one_of, read_toml
from .._runtime import LR_SCHEDULES  # the one definition, shared with models' fit
from . import registry
from .references import reference_models
from .schema import (
    TRAIN_DEFAULTS,
    TRAIN_OPTIONAL,
    ModelEntry,
    SuiteFile,
    SuiteSection,
    metric_params,
)
from .sweeps import expand_sweeps

__all__ = [
    "SuiteConfig",
    "SuiteConfigError",
    "RunSpec",
    "TRAIN_DEFAULTS",
    "LR_SCHEDULES",
    "version_key",
    "load_suite",
    "parse_suite",
    "builtin_suites",
    "resolve_suite_path",
    "run_id",
]


class SuiteConfigError(ValueError, TypeError):
    """Every error found in a suite file, one per line (``errors`` holds them as a list); both a
    ValueError and a TypeError, so code that catches either for one bad key still catches it."""

    def __init__(self, errors: list[str], source: str | None = None):
        self.errors = list(errors)
        self.source = source
        head = (f"{source}: " if source else "") + (
            f"{len(errors)} errors in the suite:" if len(errors) > 1 else "")
        text = "\n  ".join([head, *errors]) if len(errors) > 1 else head + errors[0]
        super().__init__(text)


@dataclass(frozen=True)
class RunSpec:
    """One run of a suite: everything needed to train and evaluate one model on one dataset."""

    suite: str
    dataset: str
    model: str
    seed: int
    config: dict[str, Any]
    device: str = "auto"
    threads: int | None = None  # torch threads for this run; None: leave torch's setting
    #: The suite file's folder, searched first for ``plugins`` (not part of the run id).
    plugin_dir: str | None = None
    #: The code the runner expects to compute the run (:func:`.provenance.spec_code`; the record
    #: holds the code its process ran). Not in the id.
    code: dict[str, Any] | None = None
    #: Write TensorBoard event files of the run (``[suite] tensorboard``; not in the id).
    tensorboard: bool = False

    @property
    def run_id(self) -> str:
        """Short hash of the resolved configuration (see :func:`run_id`)."""
        return run_id(self.config)

    @property
    def label(self) -> str:
        """``dataset/model/seed``, the name ``--only`` patterns match."""
        return f"{self.dataset}/{self.model}/{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (what is sent to worker processes and Dask workers)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)


@dataclass(frozen=True)
class SuiteConfig:
    """A validated suite: its settings and the list of runs it expands to.

    Each ``[suite]`` setting keeps its name and its default from
    :class:`~densitylab.suite.schema.SuiteSection`, which says what it means and whether it
    enters the run ids (``save_models`` only when true; ``device``, ``threads``,
    ``batch_seeds``, ``tensorboard`` and ``primary`` never: they say how runs are computed,
    shown or tested, not what is computed).
    """

    name: str
    device: str
    seeds: tuple[int, ...]
    eval_samples: int
    train: dict[str, Any]
    datasets: tuple[dict[str, Any], ...]
    models: tuple[dict[str, Any], ...]
    metrics: tuple[dict[str, Any], ...]
    description: str = SuiteSection.description
    save_samples: bool = SuiteSection.save_samples
    density_grid: int = SuiteSection.density_grid
    threads: int | None = SuiteSection.threads
    source: str | None = None
    runs: tuple[RunSpec, ...] = field(default=(), repr=False)
    batch_seeds: bool = SuiteSection.batch_seeds
    save_models: bool = SuiteSection.save_models
    tensorboard: bool = SuiteSection.tensorboard
    #: None: the default primary values per dataset (:mod:`densitylab.report.primary`)
    primary: tuple[str, ...] | None = SuiteSection.primary

    def run_ids(self) -> list[str]:
        """The ids of every run of the suite, in order."""
        return [r.run_id for r in self.runs]

    def suite_info(self) -> dict[str, Any]:
        """What a results folder records of the suite that fills it (its ``suite.json``)."""
        return {"name": self.name, "description": self.description, "source": self.source,
                "device": self.device, "seeds": list(self.seeds),
                "eval_samples": self.eval_samples, "run_ids": self.run_ids(),
                "settings": self.settings(),
                "primary": None if self.primary is None else list(self.primary)}

    def settings(self) -> dict[str, Any]:
        """What the suite computes, as plain data: compared key by key when a results folder
        written by another configuration is reused (device, threads and ``batch_seeds`` say how,
        not what, and are left out)."""
        return {"name": self.name, "seeds": list(self.seeds), "eval_samples": self.eval_samples,
                "save_samples": self.save_samples, "density_grid": self.density_grid,
                "save_models": self.save_models, "train": self.train,
                "datasets": {d["label"]: {"name": d["name"], "params": d["params"]}
                             for d in self.datasets},
                "models": {m["label"]: {k: v for k, v in m.items() if k != "label"}
                           for m in self.models},
                "metrics": {m.get("label", m["name"]): m["params"] for m in self.metrics}}


def version_key() -> str:
    """The ``major.minor`` of densitylab's version: the part that enters run ids."""
    return ".".join(__version__.split(".")[:2])


def run_id(config: dict[str, Any]) -> str:
    """First 12 hex digits of SHA-256 over ``config`` as canonical JSON (sorted keys)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def builtin_suites() -> dict[str, Path]:
    """The suites shipped inside the package (``densitylab/suites/*.toml``), by name."""
    folder = Path(__file__).resolve().parent.parent / "suites"
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}


def resolve_suite_path(suite: str | Path) -> Path:
    """A path to a TOML file, or the name of a built-in suite (``quick``, ``toy2d``)."""
    path = Path(suite)
    if path.is_file():
        return path
    shipped = builtin_suites()
    if str(suite) in shipped:
        return shipped[str(suite)]
    known = ", ".join(repr(n) for n in shipped)
    raise FileNotFoundError(
        f"suite {str(suite)!r} is neither a file nor a built-in suite; built-in suites: {known}"
    )


def load_suite(suite: str | Path, *, device: str | None = None) -> SuiteConfig:
    """Read and validate a suite TOML file (or built-in suite name); ``device`` overrides it."""
    path = resolve_suite_path(suite)
    return parse_suite(read_toml(path), default_name=path.stem, device=device, source=str(path),
                       base_dir=path.resolve().parent)


def parse_suite(
    data: dict[str, Any], *, default_name: str = "suite", device: str | None = None,
    source: str | None = None, base_dir: str | Path | None = None,
) -> SuiteConfig:
    """Validate a suite given as a dict (the parsed TOML) and expand it into runs.

    The file is checked against :mod:`densitylab.suite.schema`, each dataset and model is built
    and each metric's parameters checked, then the constraints between keys, before anything is
    trained; every error found is raised in one :class:`SuiteConfigError`. ``base_dir`` (the
    suite file's folder) is searched first for plugin modules.
    """
    if not isinstance(data, dict):
        raise SuiteConfigError([f"suite file: expected a table, got {type(data).__name__} "
                                f"{data!r}"], source)
    errs = _Errors()
    plugin_dir = str(base_dir) if base_dir is not None else None
    plugins = _import_plugins(data, plugin_dir, errs)  # they register names the file may use
    top = check(data, SuiteFile, "", errs)
    written = top.get("suite", {})
    suite = SuiteSection(**written)
    name = suite.name if suite.name is not None else default_name
    dev = suite.device if device is None else check_value(SuiteSection, "device", device,
                                                          "suite.device", errs)
    # a wrong eval_samples (written, but not in the checked table) is reported once: no
    # sample-size check against a stand-in
    raw = data.get("suite")
    wrong = isinstance(raw, dict) and "eval_samples" in raw and "eval_samples" not in written
    eval_samples = None if wrong else suite.eval_samples

    base_train = dict(TRAIN_DEFAULTS)
    if suite.eval_every is not None:  # [suite] eval_every is the default of [train] eval_every
        base_train["eval_every"] = suite.eval_every
    written_train = top.get("train", {})
    train = _overlay(base_train, written_train)
    datasets, shapes = _datasets(top.get("datasets", []), errs)
    models = _models(expand_sweeps(top.get("models", []), errs), train, errs,
                     written_train=written_train, base_train=base_train)
    if suite.references:  # the oracle and noise rows, shown first
        models = errs.value(lambda: reference_models(models, train), []) + models
    resolved = _resolve_models(models, datasets, shapes, errs)
    metrics = _metrics(top.get("metrics", []), errs)
    if eval_samples is not None:
        _check_sample_sizes(metrics, eval_samples, errs)
    _check_train(train, "train", errs)
    for m in models:
        if m["train"] != train:
            _check_train(m["train"], f"{m['key']}.train", errs)
    if errs.messages:
        raise SuiteConfigError(list(dict.fromkeys(errs.messages)), source)
    version = version_key()

    runs = []
    for ds in datasets:
        for m in models:
            params, model_train = resolved[ds["label"], m["label"]]
            for seed in suite.seeds:
                cfg = {
                    "dataset": {"label": ds["label"], "name": ds["name"], "params": ds["params"]},
                    "model": {"label": m["label"], "kind": m["kind"], "params": params,
                              **({"sample": m["sample"]} if "sample" in m else {})},
                    "train": model_train,
                    "seed": seed,
                    "eval_samples": eval_samples,
                    "metrics": metrics,
                    "save_samples": suite.save_samples,
                    "density_grid": suite.density_grid,
                    "densitylab": version,
                }
                if suite.save_models:  # only when set, so that other run ids stay
                    cfg["save_models"] = True
                if plugins:
                    cfg["plugins"] = plugins
                runs.append(RunSpec(name, ds["label"], m["label"], seed, cfg, dev,
                                    suite.threads, plugin_dir if plugins else None,
                                    tensorboard=suite.tensorboard))
    for m in models:
        m.pop("key", None)
    as_written = ("description", "save_samples", "density_grid", "threads", "batch_seeds",
                  "save_models", "tensorboard", "primary", "seeds")
    return SuiteConfig(
        name=name, device=dev, eval_samples=eval_samples, train=train, source=source,
        datasets=tuple(datasets), models=tuple(models), metrics=tuple(metrics),
        runs=tuple(runs), **{k: getattr(suite, k) for k in as_written})


def _overlay(base: dict[str, Any], written: dict[str, Any]) -> dict[str, Any]:
    """Training options: ``base`` with the checked ``written`` keys over it; an optional option
    (``TRAIN_OPTIONAL``) is kept only when set, so that runs which do not use it keep their ids."""
    out = {**base, **{k: v for k, v in written.items() if k not in TRAIN_OPTIONAL}}
    for name in TRAIN_OPTIONAL:
        value = written.get(name, out.pop(name, None))
        if value is not None:
            out[name] = value
    return out


def _check_sample_sizes(metrics: list[dict[str, Any]], eval_samples: int, errs: _Errors) -> None:
    """Each metric's smallest evaluation sample (``MetricSpec.min_samples``) against
    ``eval_samples``: a metric that cannot be computed on so few points fails now, not inside
    every run after training."""
    for i, m in enumerate(metrics):
        spec = registry.get_metric(m["name"])
        if spec.min_samples is None:
            continue
        with errs:
            need = int(spec.min_samples(**m["params"]))
            shown = ", ".join(f"{k}={v!r}" for k, v in m["params"].items()) or "its defaults"
            if eval_samples < need:
                raise ValueError(
                    f"suite.eval_samples: {eval_samples} is too few for metrics[{i}] "
                    f"({m['name']} with {shown}), which needs at least "
                    f"{need} samples; raise eval_samples to {need} or more")


def _check_train(train: dict[str, Any], key: str, errs: _Errors) -> None:
    """Constraints between training keys: ``eval_every <= steps``, ``train_size >= batch_size``."""
    every, steps = train.get("eval_every"), train.get("steps")
    if every is not None and steps is not None and every > steps:
        errs.add(f"{key}.eval_every: {every} is more than steps ({steps}), so the metrics "
                 f"would never be scored during training; expected at most {steps}")
    size, batch = train.get("train_size"), train.get("batch_size")
    if size is not None and batch is not None and size < batch:
        errs.add(f"{key}.train_size: {size} is smaller than batch_size ({batch}); expected a "
                 f"training set of at least one batch")


# ---------------------------------------------------------------- sections


def _import_plugins(data: dict[str, Any], base_dir: str | None, errs: _Errors) -> list[str]:
    """Import the modules ``[suite] plugins`` names (the suite file's folder first, then
    ``sys.path``) before the rest of the file is checked, so that the models, datasets and
    metrics they register can be named in it; returns their names. A value of the wrong type is
    left to the schema to report."""
    suite = data.get("suite")
    value = suite.get("plugins", []) if isinstance(suite, dict) else []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return []
    for i, module in enumerate(value):
        try:
            registry.import_plugin(module, base_dir)
        except ImportError as err:
            where = f"the suite's folder {base_dir}, then sys.path" if base_dir else "sys.path"
            errs.add(f"suite.plugins[{i}]: cannot import {module!r} (looked in {where}): {err}")
    return list(value)


def _datasets(items: list[dict[str, Any] | None], errs: _Errors
              ) -> tuple[list[dict[str, Any]], dict[str, tuple[int, ...]]]:
    """Datasets with resolved parameters (``target.params``: the code's defaults filled in),
    and each one's data shape by label; each checked ``[[datasets]]`` entry (None: one with an
    error) is built once, so that a mistyped parameter fails now."""
    out, labels, shapes = [], set(), {}
    for i, item in enumerate(items):
        if item is None:
            continue
        key = f"datasets[{i}]"
        with errs:
            name, params = item["name"], dict(item.get("params") or {})
            label = item.get("label") or name
            _unique(label, labels, f"{key}.label")
            try:
                target = registry.make_dataset(name, params)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{key}.params: {err}") from err
            resolved = getattr(target, "params", None)
            if isinstance(resolved, dict):
                params = {**params, **resolved}
            shapes[label] = registry.data_shape_of(target)
            out.append({"label": label, "name": name,
                        "params": _jsonable(params, f"{key}.params")})
    return out, shapes


def _models(items: list[dict[str, Any] | None], train: dict[str, Any], errs: _Errors, *,
            written_train: dict[str, Any], base_train: dict[str, Any]) -> list[dict[str, Any]]:
    """The checked ``[[models]]`` entries with their training options. A model named by
    ``preset`` trains with the preset's published ``fit`` options
    (``models.preset_train_defaults``) under the keys the suite's ``[train]`` writes, under the
    model's own ``train``."""
    out, labels = [], set()
    for i, item in enumerate(items):
        if item is None:
            continue
        key = item.get("_key", f"models[{i}]")  # a swept entry's location names its setting
        with errs:
            label, preset = item["name"], item.get("preset")
            kind = item.get("kind")
            if kind is None and preset is None:  # the name is the kind
                kind = check_value(ModelEntry, "kind", item.get("_name", label), f"{key}.kind",
                                   errs)  # a swept entry's label is name[setting]
                if kind is None:
                    continue
            _unique(label, labels, f"{key}.name")
            params = dict(item.get("params") or {})
            try:  # once, not per dataset
                registry.check_model_params(kind, params)
            except registry.ModelParamError as err:
                raise ValueError(f"{key}.params.{err.key}: {err.reason}") from err
            base = train
            if preset is not None:
                published = {k: v for k, v in registry.preset_train(preset, params).items()
                             if k in TRAIN_DEFAULTS or k in TRAIN_OPTIONAL}
                base = _overlay({**base_train, **published}, written_train)
            entry = {"label": label, "kind": kind, "params": params,
                     "train": _overlay(base, item.get("train") or {}), "key": key}
            if preset is not None:
                entry["preset"] = preset
            if item.get("sample"):  # written into the run only when set, so other run ids stay
                entry["sample"] = dict(item["sample"])
            out.append(entry)
    return out


def _resolve_models(models: list[dict[str, Any]], datasets: list[dict[str, Any]],
                    shapes: dict[str, tuple[int, ...]], errs: _Errors):
    """``{(dataset label, model label): (resolved params, resolved train)}``.

    Each model (or ``preset``, its ``params`` overriding the preset's) is built once per
    dataset, untrained: an unsuitable hyperparameter fails now, naming the model and the
    dataset, and the built model gives its hyperparameters with the defaults filled in.
    """
    out = {}
    for m in models:
        key = m["key"]
        said = False  # an error that is the same on every dataset is said once
        for ds in datasets:
            if said:
                break
            where = f"{key}.params (on dataset {ds['label']!r})"
            with errs:
                try:
                    if "preset" in m:
                        kind, model = registry.make_preset(
                            m["preset"], m["params"], data_shape=shapes[ds["label"]], seed=0)
                        if m["kind"] is not None and m["kind"] != kind:
                            raise ValueError(f"preset {m['preset']!r} is a {kind!r} model, but "
                                             f"kind = {m['kind']!r}; drop kind or make it match")
                        m["kind"] = kind
                    else:
                        model = registry.make_model(m["kind"], m["params"],
                                                    data_shape=shapes[ds["label"]], seed=0)
                except registry.ModelParamError as err:
                    said = True
                    raise ValueError(f"{key}.params.{err.key}: {err.reason}") from err
                except (TypeError, ValueError) as err:
                    raise ValueError(f"{where}: {err}") from err
                kind = m["kind"]
                options = sorted(registry.declared_options(model, "sample"))
                for option in m.get("sample", {}):
                    if option not in options:
                        fix = (expected_one_of(option, options) if options else
                               f"{kind!r} takes no sample options; remove sample")
                        said = True
                        raise ValueError(f"{key}.sample.{option}: model kind {kind!r} samples "
                                         f"without such an option (its sample_options do not "
                                         f"declare {option!r}); {fix}")
                params = _jsonable(_resolved_params(kind, model, m["params"]), where)
                out[ds["label"], m["label"]] = (params,
                                                _resolved_train(model, kind, m["train"], key))
    return out


def _resolved_params(kind: str, model, written: dict[str, Any]) -> dict[str, Any]:
    """The model's hyperparameters for its run id: the built model's ``config`` (its own
    account wins: ``output="auto"`` -> ``"sigmoid"``), or for a registered model without one
    the ``defaults`` declared at registration, under what the suite file writes."""
    config = getattr(model, "config", None)
    if isinstance(config, dict):
        resolved = {**written, **config}
    else:
        resolved = {**registry.model_defaults(kind), **written}
    resolved = {k: v for k, v in resolved.items() if k not in registry.SUITE_FILLED_MODEL_KEYS}
    if "seed" in written:  # the suite file fixes the weights' seed for every run
        resolved["seed"] = written["seed"]
    return resolved


def _resolved_train(model, kind: str, train: dict[str, Any], key: str) -> dict[str, Any]:
    """``train`` with the model's ``default_lr`` filled in; an option the model's
    ``fit_options`` do not declare (a schedule, a finite training set, ``eval_every``'s
    callback) is refused here, before any run."""
    out = dict(train)
    if out["lr"] is None:
        default_lr = getattr(model, "default_lr", None)
        if isinstance(default_lr, numbers.Real) and not isinstance(default_lr, bool):
            out["lr"] = float(default_lr)
    options = registry.declared_options(model, "fit")
    for name, (option, lacks, fix) in _NEEDS_FIT_OPTION.items():
        value = out.get(name)
        if value not in (None, "constant") and option not in options:
            raise ValueError(f"{key}.train.{name}: model kind {kind!r} {lacks} (its fit_options "
                             f"do not declare {option}); {fix.format(value)}")
    return out


#: Training keys a model takes only when its ``fit_options`` declare a fit option:
#: ``key: (that option, what a model without it cannot do, the fix)``.
_NEEDS_FIT_OPTION = {
    "lr_schedule": ("lr_schedule", "has no learning-rate schedule",
                    "expected 'constant', got {!r}"),
    "train_size": ("train_size", "cannot train on a finite training set", "remove train_size"),
    "eval_every": ("callback", "cannot be scored during training", "remove eval_every"),
}


def _jsonable(value: dict[str, Any], key: str) -> dict[str, Any]:
    """``value`` as plain JSON data (tuples become lists), so that ids hash what records hold."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise TypeError(f"{key}: resolved parameters are not plain data ({err})") from err


def _metrics(items: list[dict[str, Any] | None], errs: _Errors) -> list[dict[str, Any]]:
    """Metric entries ``{"name", "params"}``, each ``params`` checked against the metric's
    declaration (:func:`schema.metric_params`), then by its own ``check``. ``"label"`` (its name
    in results, so that one metric can appear twice) and ``"curves": False`` are written only
    when they differ from the default, so that the run ids of entries without them stay."""
    out, labels = [], set()
    for i, item in enumerate(items):
        if item is None:
            continue
        key = f"metrics[{i}]"
        with errs:
            name = item["name"]
            label = item.get("label", name)
            _unique(label, labels, f"{key}.label" if "label" in item else f"{key}.name")
            spec = registry.get_metric(name)
            before = len(errs)
            params = check_fields(item.get("params") or {}, metric_params(spec.defaults),
                                  f"{key}.params", errs)
            if len(errs) > before:
                continue
            params = {**spec.defaults, **params}
            if spec.check is not None:
                try:
                    spec.check(**params)
                except (TypeError, ValueError) as err:
                    raise type(err)(f"{key}.params: {err}") from err
            entry = {"name": name, "params": params}
            if label != name:
                entry["label"] = label
            if not item.get("curves", True):
                entry["curves"] = False
            out.append(entry)
    return out


def _unique(label: str, seen: set[str], key: str) -> None:
    if label in seen:
        raise ValueError(f"{key}: {label!r} is used twice; give each entry a distinct label")
    seen.add(label)
