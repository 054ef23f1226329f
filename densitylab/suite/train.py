"""The suite's train stage: run specs in, trained models out (:func:`train_unit`).

It never scores or writes anything, and never raises for a run: a run whose training raised
comes back with its ``error`` set, so one failure never hides the other runs of a unit.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any

import torch

from .._errors import TrainingDiverged
from .._runtime import logger, resolve_device
from . import registry
from .config import RunSpec
from .schema import TRAIN_DEFAULTS


@dataclass
class TrainedRun:
    """One run after the train stage: its model and training outcome, or the error it raised."""

    spec: RunSpec
    target: Any = None
    model: Any = None
    history: Any = None
    #: ``{"step", "loss"}`` where training hit a non-finite loss, else None
    diverged: dict[str, Any] | None = None
    train_s: float = 0.0
    device: torch.device | None = None
    #: the seeds trained together with this one as one batched model (None: trained alone)
    batch_seeds: list[int] | None = None
    error: str | None = None
    traceback: str | None = None


def train_unit(specs: list[RunSpec], callback_for=None) -> list[TrainedRun]:
    """Train the runs ``specs`` (one run, or runs differing only in their seed) and return one
    :class:`TrainedRun` per spec, in order: as one batched model (:mod:`densitylab.models.batched`)
    when the model kind has a batched form that takes every option of the run, else one by one.
    ``callback_for(spec, target, model, device)`` may return a fit callback for a run trained
    alone (the ``eval_every`` scorer, the live TensorBoard log), or None."""
    if len(specs) > 1:
        batched = _train_batched(specs)
        if batched is not None:
            return batched
    return [_train_alone(spec, callback_for) for spec in specs]


def _train_alone(spec: RunSpec, callback_for) -> TrainedRun:
    run = TrainedRun(spec)
    try:
        run.device = resolve_device(spec.device)
        cfg = spec.config
        run.target, shape = registry.run_dataset(spec)
        run.model = registry.make_model(cfg["model"]["kind"], cfg["model"]["params"],
                                        data_shape=shape, seed=spec.seed)
        callback = callback_for(spec, run.target, run.model, run.device) if callback_for else None
        start = time.perf_counter()
        try:
            run.history = run.model.fit(run.target, **fit_options(run.model, cfg["train"],
                                                                  spec.seed, run.device, callback))
        except TrainingDiverged as err:  # a failure of the configuration: said, not raised
            run.diverged = {"step": err.step, "loss": float(err.loss)}
            run.history = getattr(run.model, "history", None)
        finally:
            if callback is not None and callable(getattr(callback, "close", None)):
                callback.close()
        run.train_s = time.perf_counter() - start
    except Exception as err:  # recorded by the store and retried on the next run of the suite
        run.error, run.traceback = failure(run.spec, err)
    return run


def _train_batched(specs: list[RunSpec]) -> list[TrainedRun] | None:
    """The runs trained as one batched model, or None when the batched form cannot take an
    option of theirs (they then train one by one)."""
    first = specs[0]
    cfg = first.config
    runs = [TrainedRun(spec) for spec in specs]
    try:
        device = resolve_device(first.device)
        if cfg["train"].get("eval_every") is not None:
            raise ValueError("eval_every scores each seed during its own fit")
        target, shape = registry.run_dataset(first)
        shape_kw = {"data_dim": shape[0]} if len(shape) == 1 else {"data_shape": shape}
        batched = registry.batched_model_class(cfg["model"]["kind"])(
            seeds=[s.seed for s in specs], **shape_kw, **cfg["model"]["params"])
        options = fit_options(batched, cfg["train"], None, device, None)
    except (TypeError, ValueError) as err:
        logger.info("%s: training the %d seeds one by one (%s)", first.label, len(specs), err)
        return None
    start = time.perf_counter()
    try:
        histories = batched.fit(target, **options)
        models = batched.unstack()
    except Exception as err:  # every run of the batch failed; each is retried next time
        for run in runs:
            run.error, run.traceback = failure(run.spec, err)
            run.train_s = (time.perf_counter() - start) / len(specs)
        return runs
    train_s = (time.perf_counter() - start) / len(specs)
    for run, model, history, div in zip(runs, models, histories, batched.divergences,
                                        strict=True):
        run.target, run.model, run.history, run.device = target, model, history, device
        run.diverged = None if div is None else dict(div)
        run.train_s, run.batch_seeds = train_s, [s.seed for s in specs]
    return runs


def fit_options(model, train: dict[str, Any], seed: int | None, device: torch.device,
                callback=None) -> dict[str, Any]:
    """The keywords of ``model.fit`` for the run's resolved ``train`` options: each option that
    is set, and an optional one (``lr_schedule``, ``device``, ``progress``: off) only when the
    model's ``fit_options`` declare it; ``seed`` only for a single model (a batched one has its
    seeds)."""
    declared = registry.declared_options(model, "fit")
    kwargs: dict[str, Any] = {"steps": train["steps"], "batch_size": train["batch_size"]}
    if seed is not None:
        kwargs["seed"] = seed
    if train.get("train_size") is not None:
        if seed is None and "train_size" not in declared:
            raise ValueError("the batched model's fit takes no train_size")
        kwargs["train_size"] = train["train_size"]
    if callback is not None:
        kwargs["callback"] = callback
    if train.get("lr") is not None:
        kwargs["lr"] = train["lr"]
    schedule = train.get("lr_schedule", TRAIN_DEFAULTS["lr_schedule"])
    if schedule != TRAIN_DEFAULTS["lr_schedule"] or "lr_schedule" in declared:
        kwargs["lr_schedule"] = schedule
    if "device" in declared:
        kwargs["device"] = device
    if "progress" in declared:
        kwargs["progress"] = False
    return kwargs


def failure(spec: RunSpec, err: BaseException) -> tuple[str, str]:
    """The ``error`` and ``traceback`` recorded for a run that raised ``err`` (logged as a
    warning); the run is retried the next time the suite runs."""
    error = f"{type(err).__name__}: {err}"
    logger.warning("run %s (%s) failed: %s", spec.label, spec.run_id, error)
    return error, traceback.format_exc()
