"""The suite file's schema, declared once: every key of ``[suite]``, ``[train]``,
``[[datasets]]``, ``[[models]]`` and ``[[metrics]]`` with its type, default and constraints.

:mod:`densitylab._checking` walks a parsed file against it; :mod:`densitylab.suite.config` adds
what depends on the names it resolves. A metric's ``params`` are declared by the metric itself
(:func:`metric_params`). A default of None means "not written": the key is then derived (a label
from the name) or left to the model (its own learning rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._checking import defaults, fields_like, markdown_table, option, required
from .._runtime import LR_SCHEDULES
from . import registry

__all__ = ["SuiteFile", "SuiteSection", "TrainSection", "DatasetEntry", "ModelEntry",
           "MetricEntry", "TRAIN_DEFAULTS", "TRAIN_OPTIONAL", "DEVICES", "metric_params",
           "reference_markdown"]

#: Devices a suite may name, besides ``cuda:N``.
DEVICES = ("auto", "cpu", "cuda")


def _device(value: str) -> str:
    if value not in DEVICES and not (value.startswith("cuda:") and value[5:].isdigit()):
        raise ValueError(f"expected one of {', '.join(map(repr, DEVICES))} or 'cuda:N', got "
                         f"{value!r}")
    return value


def _seeds(value: int | list[int]) -> tuple[int, ...]:
    """A count ``n`` (seeds 0..n-1) or distinct seeds >= 0, as a tuple."""
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"expected a count of seeds >= 1 or an array of seeds, got {value}")
        return tuple(range(value))
    if not value:
        raise ValueError("expected a non-empty array of seeds or a count, got []")
    for i, seed in enumerate(value):
        if seed < 0:
            raise ValueError(f"expected seeds >= 0, got {seed} at seeds[{i}]")
    return _distinct(value, "seeds")


def _primary(value: list[str]) -> tuple[str, ...]:
    """Distinct, non-empty value names, as a tuple."""
    for i, name in enumerate(value):
        if not name:
            raise ValueError(f"expected non-empty value names, got {name!r} at primary[{i}]")
    return _distinct(value, "value names")


def _distinct(values: list, what: str) -> tuple:
    """``values`` as a tuple, or a ValueError when one is written twice."""
    if len(set(values)) != len(values):
        raise ValueError(f"expected distinct {what}, got {list(values)}")
    return tuple(values)


@dataclass(frozen=True, kw_only=True)
class SuiteSection:
    """``[suite]``: what the suite is called, where it runs, and how runs are scored."""

    name: str = option(None, doc="the suite's name (default: the file's name)")
    description: str = option("", doc="what the suite is for")
    device: str = option("auto", check=_device, doc="auto, cpu, cuda or cuda:N")
    seeds: int | list[int] = option(
        (0,), check=_seeds, doc="distinct seeds >= 0, or a count n meaning 0..n-1")
    eval_samples: int = option(
        2500, minimum=1, doc="samples drawn from each trained model for scoring")
    save_samples: bool = option(
        True, doc="keep the samples (the sample and density figures need them)")
    save_models: bool = option(
        False, doc="keep each run's trained model beside its record (runs/RUN_ID.model.pt; "
        "densitylab load DIR RUN_ID gives it back)")
    tensorboard: bool = option(
        False, doc="write each run's training losses, curves and metrics to TensorBoard event "
        "files under DIR/tb (needs the tensorboard extra; not in the run id)")
    density_grid: int = option(
        64, minimum=0, doc="side of the log-density grid stored for models with a density "
        "(0: none)")
    plugins: list[str] = option(
        (), doc="modules imported before each run, looked up in the suite file's folder first")
    batch_seeds: bool = option(
        False, doc="train the seeds of each GAN/VAE/flow/diffusion model as one batched model "
        "(not in the run id; float32 rounds differently from one-by-one training)")
    threads: int | None = option(
        None, minimum=1, doc="torch threads per run (default: torch's own; not in the run id)")
    references: bool = option(
        True, doc="add the oracle and noise reference rows on every dataset (false: leave them "
        "out)")
    eval_every: int = option(
        None, minimum=1, doc="the default of [train] eval_every")
    primary: list[str] = option(
        None, check=_primary, doc="the metric values whose differences form the tested family "
        "(Holm's correction); the rest are exploratory (default: chosen per dataset kind, see "
        "the user guide; not in the run id)")


@dataclass(frozen=True, kw_only=True)
class TrainSection:
    """``[train]``, and a model's ``train``: the options passed to the model's ``fit``."""

    steps: int = option(2000, minimum=1, doc="optimisation steps")
    batch_size: int = option(256, minimum=1, doc="points per step")
    lr: float = option(
        None, above=0, doc="learning rate (default: the model's own default_lr)")
    lr_schedule: str = option(
        "constant", choices=LR_SCHEDULES,
        doc="constant, or cosine: lr * (1 + cos(pi t / steps)) / 2 at step t")
    train_size: int = option(
        None, minimum=1, doc="a finite training set of this many points, drawn once per seed "
        "(default: a fresh batch from the target at every step)")
    eval_every: int = option(
        None, minimum=1, doc="score the metrics every so many steps (the record's curves); "
        "at most steps")


@dataclass(frozen=True, kw_only=True)
class DatasetEntry:
    """``[[datasets]]``: a target by its registered name."""

    name: str = required(choices=registry.dataset_names, noun="dataset",
                         doc="a dataset name from `densitylab list`")
    label: str = option(None, doc="its name in tables (default: name); unique")
    params: dict[str, Any] = option(None, doc="the dataset's keyword parameters")


@dataclass(frozen=True, kw_only=True)
class ModelEntry:
    """``[[models]]``: a model kind (or a published preset) with its hyperparameters."""

    name: str = required(doc="its label in tables; unique")
    kind: str = option(None, choices=registry.model_names, noun="model",
                              doc="a model name from `densitylab list` (default: name, or the "
                              "preset's kind)")
    preset: str = option(None, choices=registry.preset_names, noun="preset",
                                doc="a named published setup; params override it key by key")
    params: dict[str, Any] = option(None, doc="the model's constructor hyperparameters")
    train: TrainSection = option(None, doc="the keys of [train], for this model only")
    sample: dict[str, Any] = option(None, doc="options for the model's sample(n, seed, ...)")
    sweep: dict[str, Any] = option(
        None, doc="settings to sweep: params.KEY = [values] and train.KEY = [values]; one "
        "model per combination, labelled name[KEY=value,...]")


@dataclass(frozen=True, kw_only=True)
class MetricEntry:
    """``[[metrics]]``: a registered metric with its parameters."""

    name: str = required(choices=registry.metric_names, noun="metric",
                         doc="a metric name from `densitylab list`")
    label: str = option(None, min_length=1,
                               doc="its name in results (default: name); unique")
    params: dict[str, Any] = option(None, doc="the metric's parameters (see the metrics table)")
    curves: bool = option(True, doc="false: left out of the eval_every curves")


@dataclass(frozen=True, kw_only=True)
class SuiteFile:
    """A suite file: the five sections."""

    suite: SuiteSection = option(None, partial=True)
    train: TrainSection = option(None, partial=True, doc="defaults for every model")
    datasets: list[DatasetEntry] = required(min_items=1)
    models: list[ModelEntry] = required(min_items=1)
    metrics: list[MetricEntry] = required(min_items=1)


#: Optional training settings: written into a run's ``train`` only when a suite sets them, so
#: the ids of suites that do not use them stay what they were.
TRAIN_OPTIONAL = ("train_size", "eval_every")
#: Training settings every model gets unless ``[train]`` or the model's ``train`` says otherwise
#: (``lr = None``: the model's own default learning rate, filled in when the suite is resolved).
#: They are passed to the model's ``fit`` (see :meth:`densitylab.models.GenerativeModel.fit`).
TRAIN_DEFAULTS: dict[str, Any] = {k: v for k, v in defaults(TrainSection).items()
                                  if k not in TRAIN_OPTIONAL}


#: The declaration of a metric's ``params``, from its defaults
#: (:func:`densitylab._checking.fields_like`).
metric_params = fields_like


def reference_markdown() -> str:
    """Every key of a suite file as Markdown tables, one per section, generated from this
    declaration (``docs/user-guide.md`` holds a copy that a test keeps equal to it)."""
    sections = [("`[suite]`", SuiteSection),
                ("`[train]`, and a model's `train` (passed to the model's `fit`)", TrainSection),
                ("`[[datasets]]`", DatasetEntry), ("`[[models]]`", ModelEntry),
                ("`[[metrics]]`", MetricEntry)]
    return "\n\n".join(f"{title}\n\n{markdown_table(decl)}" for title, decl in sections)
