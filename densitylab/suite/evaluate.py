"""One run of a suite: train a model on a dataset, sample from it, score the samples, record.

:func:`execute_run` is what every runner calls (in this process, a worker process or a Dask
worker). It never raises for a failure of the run itself: a failed run is recorded with its
error (status ``"failed"``) and retried the next time the suite runs. A metric that fails is
recorded as that metric's error and the other metrics still count.

Seeds: the model is trained with the run's seed; the evaluation draws (model samples, a fresh
target sample for two-sample metrics, held-out target points for likelihoods) use seeds derived
from it, so a run is reproducible on CPU from its configuration alone.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
import traceback
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._runtime import logger, resolve_device, torch_threads
from ..scoring import BUILTIN_METRICS, evaluate_metrics, labelled_value
from ..scoring.context import EvalContext, declared_options, derive_seed, draw, model_log_prob
from . import registry
from .config import RunSpec, _data_shape, import_plugin
from .provenance import run_code
from .records import (
    RECORD_FORMAT,
    BatchInfo,
    Curves,
    Divergence,
    History,
    MetricResult,
    RunRecord,
)
from .schema import TRAIN_DEFAULTS, SuiteSection
from .store import RunStore

__all__ = ["EvalContext", "BUILTIN_METRICS", "execute_run", "execute_batched_runs", "batch_key",
           "evaluate_metrics", "derive_seed", "labelled_value", "summarize_history"]

HISTORY_POINTS = 200  # training curves are stored averaged into at most this many points


def summarize_history(history: Any, points: int = HISTORY_POINTS) -> dict[str, Any]:
    """Per-step losses averaged into at most ``points`` chunks per series, plus final values.

    Accepts a list of floats, a list of per-step dicts, a dict of per-step lists, or an object
    with such a ``losses``/``history`` attribute.
    """
    series = _history_series(history)
    out: dict[str, Any] = {"steps": 0, "series": {}, "final": {}}
    for name, values in series.items():
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if arr.size == 0:
            continue
        out["steps"] = max(out["steps"], int(arr.size))
        chunks = np.array_split(np.arange(arr.size), min(points, arr.size))
        out["series"][name] = {
            "step": [int(c[-1]) + 1 for c in chunks],
            "value": [float(np.nanmean(arr[c])) for c in chunks],
        }
        tail = arr[-max(1, arr.size // 20):]
        out["final"][name] = float(np.nanmean(tail))
    return out


def _history_series(history: Any) -> dict[str, list[float]]:
    if history is None:
        return {}
    for attr in ("losses", "history"):
        if hasattr(history, attr) and not isinstance(history, dict | list | tuple):
            return _history_series(getattr(history, attr))
    if hasattr(history, "to_dict") and not isinstance(history, dict):
        return _history_series(history.to_dict())
    if isinstance(history, dict):
        return {str(k): [float(x) for x in v] for k, v in history.items()
                if isinstance(v, list | tuple | np.ndarray | torch.Tensor)}
    items = list(history)
    if items and isinstance(items[0], dict):
        keys = [k for k, v in items[0].items() if isinstance(v, int | float) and k != "step"]
        return {k: [float(row.get(k, math.nan)) for row in items] for k in keys}
    return {"loss": [float(x) for x in items]}


def _density_grid(model, reference: torch.Tensor, size: int, device) -> dict[str, np.ndarray]:
    """Model log-density on a ``size x size`` grid covering the target sample (plus a margin)."""
    lo = reference.min(0).values.double()
    hi = reference.max(0).values.double()
    pad = 0.15 * (hi - lo).clamp_min(1e-3)
    xs = torch.linspace(float(lo[0] - pad[0]), float(hi[0] + pad[0]), size, dtype=torch.float64)
    ys = torch.linspace(float(lo[1] - pad[1]), float(hi[1] + pad[1]), size, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1).to(reference.dtype).to(device)
    with torch.no_grad():
        logp = torch.cat([torch.as_tensor(model_log_prob(model, chunk, 0)).detach().cpu()
                          for chunk in pts.split(4096)])
    return {"grid_x": xs.numpy(), "grid_y": ys.numpy(),
            "grid_logp": logp.double().reshape(size, size).numpy()}


def _fit(model, target, train: dict[str, Any], seed: int, device: torch.device,
         callback=None):
    """Train on fresh batches from the target with the run's resolved ``train`` options.

    ``steps``, ``batch_size``, ``lr`` and ``lr_schedule`` go to ``fit`` (the schedule only when
    the model declares it in ``fit_options`` or it is not the default: the suite refused a
    schedule a model lacks when it was loaded), ``train_size`` when the suite sets it (a finite
    training set drawn once per seed), ``callback`` (the ``eval_every`` scorer) when given, and
    ``device`` and ``progress`` when declared. The suite's ``threads`` is applied around the
    whole run by the caller.
    """
    kwargs = {"steps": train["steps"], "batch_size": train["batch_size"], "seed": seed}
    if train.get("train_size") is not None:
        kwargs["train_size"] = train["train_size"]
    if callback is not None:
        kwargs["callback"] = callback
    if train.get("lr") is not None:
        kwargs["lr"] = train["lr"]
    params = declared_options(model, "fit")
    schedule = train.get("lr_schedule", TRAIN_DEFAULTS["lr_schedule"])
    if schedule != TRAIN_DEFAULTS["lr_schedule"] or "lr_schedule" in params:
        kwargs["lr_schedule"] = schedule
    if "device" in params:
        kwargs["device"] = device
    if "progress" in params:
        kwargs["progress"] = False
    return model.fit(target, **kwargs)


class _CurveRecorder:
    """The ``eval_every`` callback of a fit: every ``every`` steps, score the run's metrics on
    a fixed evaluation sample (the same seeds as the final evaluation) and keep the series.

    Scoring happens inside a forked random state and puts the networks back in training mode,
    so the training itself (and so the final result) is the same with and without it.
    """

    def __init__(self, spec: RunSpec, target, device: torch.device, every: int, live=None):
        cfg = spec.config
        self.spec, self.target, self.device, self.every = spec, target, device, every
        self.live = live  # a TensorBoard log shown the scores as they come (or None)
        self.n = cfg["eval_samples"]
        self.reference = draw(target, self.n, derive_seed(spec.seed, "reference")).to(device)
        self.curves: dict[str, Any] = {"step": [], "values": {}}

    def __call__(self, step: int, losses, model) -> bool:
        if (step + 1) % self.every == 0:
            self.score(step + 1, model)
        return False

    def score(self, step: int, model) -> None:
        """Score ``model`` as it is after ``step`` steps and append the values."""
        networks = getattr(model, "networks", None)
        was_training = bool(getattr(networks, "training", False))
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), _quiet_logger():
            with torch.no_grad():
                samples = draw(model, self.n, derive_seed(self.spec.seed, "sample"),
                                **self.spec.config["model"].get("sample", {}))
            ctx = EvalContext(self.target, model, samples.to(self.device), self.reference,
                              self.spec.seed, self.n, self.device,
                              train_size=self.spec.config["train"].get("train_size"))
            out = evaluate_metrics(ctx, [m for m in self.spec.config["metrics"]
                                         if m.get("curves", True)], registry.get_metric)
        if was_training:
            networks.train()
        index = len(self.curves["step"])
        self.curves["step"].append(int(step))
        for group in out.values():
            for name, value in group.get("values", {}).items():
                series = self.curves["values"].setdefault(name, [math.nan] * index)
                series.append(float(value))
        for series in self.curves["values"].values():  # a value missing at this step: NaN
            series.extend([math.nan] * (index + 1 - len(series)))
        if self.live is not None:
            self.live.curves(step, {k: v[-1] for k, v in self.curves["values"].items()})


@contextmanager
def _quiet_logger():
    """Silence the densitylab logger's warnings for the duration (a metric failing early in
    training is expected: it is a missing point of the curve, not worth a warning)."""
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


def _import_plugins(spec: RunSpec) -> None:
    """Import the suite's plugins (registrations a worker process has not seen yet), searching
    the suite file's folder first."""
    for module in spec.config.get("plugins", []):
        import_plugin(module, spec.plugin_dir)


def _versions() -> dict[str, str]:
    import densitylab

    out = {"densitylab": densitylab.__version__, "torch": torch.__version__,
           "numpy": np.__version__, "python": platform.python_version()}
    try:
        import pyro

        out["pyro"] = pyro.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def execute_run(spec: RunSpec | dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Train, sample, score and record one run in ``out_dir/runs/<run_id>.json``.

    Returns a short summary (``run_id``, ``label``, ``status``, ``wall_s``, ``error``). A run
    that raises is recorded with ``status = "failed"`` and its error, not re-raised.
    """
    if isinstance(spec, dict):
        spec = RunSpec.from_dict(spec)
    store = RunStore(out_dir)
    record = _base_record(spec)
    start = time.perf_counter()
    try:
        device = resolve_device(spec.device)
        record.device = str(device)
        with torch_threads(spec.threads):
            record.threads = torch.get_num_threads()
            _train_and_score(record, spec, store, device)
        _set_status(record)
    except Exception as err:  # recorded and retried on the next run of the suite
        _record_failure(record, spec, err)
    return _finish(record, store, time.perf_counter() - start, spec)


def _base_record(spec: RunSpec) -> RunRecord:
    return RunRecord(run_id=spec.run_id, format=RECORD_FORMAT, suite=spec.suite,
                     dataset=spec.dataset, model=spec.model, seed=spec.seed, config=spec.config,
                     versions=_versions(), code=dict(spec.code or {}), host=platform.node())


def _set_status(record: RunRecord) -> None:
    """``"diverged"`` when training hit a non-finite loss (a failure of the configuration,
    reported as such and never averaged into results; the Python API raises
    ``TrainingDiverged`` there), else ``"ok"``."""
    div = record.diverged
    if div:
        record.status = "diverged"
        record.error = (f"training diverged at step {div.step} (loss {div.loss}); lower the "
                        "learning rate")
    else:
        record.status = "ok"


def _record_failure(record: RunRecord, spec: RunSpec, err: BaseException) -> None:
    record.status = "failed"
    record.error = f"{type(err).__name__}: {err}"
    record.traceback = traceback.format_exc()
    if record.device is None:
        record.device = str(spec.device)
    logger.warning("run %s (%s) failed: %s", spec.label, spec.run_id, record.error)


def _finish(record: RunRecord, store: RunStore, wall_s: float, spec: RunSpec) -> dict[str, Any]:
    record.wall_s = wall_s
    record.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if spec.tensorboard:  # before the record: a run without its record is computed again
        from .tblog import write_run_events

        try:
            write_run_events(store, record)
        except Exception as err:  # the log is a view of the record; the run still counts
            logger.warning("TensorBoard events of %s not written: %s", spec.label, err)
    store.write_record(record)
    return {"run_id": record.run_id, "label": f"{record.dataset}/{record.model}/{record.seed}",
            "status": record.status, "wall_s": wall_s, "error": record.error}


def batch_key(spec: RunSpec) -> str | None:
    """Runs with equal keys differ only in their seed and can train as one batched model.

    None when the model kind has no batched implementation (see
    :mod:`densitylab.models.batched`) or the run fixes the model's own seed.
    """
    cfg = spec.config
    if registry.batched_model_class(cfg["model"]["kind"]) is None:  # e.g. a user model
        return None
    if "seed" in cfg["model"]["params"]:
        return None
    rest = {k: v for k, v in cfg.items() if k != "seed"}
    return json.dumps([spec.suite, spec.dataset, spec.model, spec.device, rest], sort_keys=True)


def execute_batched_runs(specs: list[RunSpec | dict[str, Any]],
                         out_dir: str | Path) -> list[dict[str, Any]]:
    """Train the runs ``specs`` (equal :func:`batch_key`, distinct seeds) as one batched model.

    Each seed is trained as its single run would be (see :mod:`densitylab.models.batched`),
    then unstacked and scored, and recorded exactly as :func:`execute_run` records it, plus
    ``"batched": {"seeds", "train_s_total"}``; ``train_s`` is the batched training time
    divided by the number of seeds. An option the batched model does not support falls back to
    one :func:`execute_run` per spec. Returns one summary per run.
    """
    specs = [RunSpec.from_dict(s) if isinstance(s, dict) else s for s in specs]
    if len(specs) == 1:
        return [execute_run(specs[0], out_dir)]
    with torch_threads(specs[0].threads):
        return _execute_batched_runs(specs, out_dir)


def _execute_batched_runs(specs: list[RunSpec], out_dir: str | Path) -> list[dict[str, Any]]:
    first = specs[0]
    cfg = first.config
    try:
        device = resolve_device(first.device)
        _import_plugins(first)
        if cfg["train"].get("eval_every") is not None:
            raise ValueError("eval_every scores each seed during its own fit")
        target = registry.make_dataset(cfg["dataset"]["name"], cfg["dataset"]["params"])
        shape = _data_shape(target)
        shape_kw = {"data_dim": shape[0]} if len(shape) == 1 else {"data_shape": shape}
        batched = registry.batched_model_class(cfg["model"]["kind"])(
            seeds=[s.seed for s in specs], **shape_kw, **cfg["model"]["params"])
        extra = {}
        if cfg["train"].get("train_size") is not None:
            if "train_size" not in declared_options(batched, "fit"):
                raise ValueError("the batched model's fit takes no train_size")
            extra["train_size"] = cfg["train"]["train_size"]
    except (TypeError, ValueError) as err:
        logger.info("%s: training the %d seeds one by one (%s)", first.label, len(specs), err)
        return [execute_run(s, out_dir) for s in specs]

    store = RunStore(out_dir)
    train = cfg["train"]
    start = time.perf_counter()
    try:
        histories = batched.fit(target, steps=train["steps"], batch_size=train["batch_size"],
                                lr=train.get("lr"),
                                lr_schedule=train.get("lr_schedule",
                                                      TRAIN_DEFAULTS["lr_schedule"]),
                                device=device, progress=False, **extra)
        trained = batched.unstack()
    except Exception as err:  # every run of the batch failed; each is retried next time
        wall = (time.perf_counter() - start) / len(specs)
        out = []
        for spec in specs:
            record = _base_record(spec)
            _record_failure(record, spec, err)
            out.append(_finish(record, store, wall, spec))
        return out
    train_s = (time.perf_counter() - start) / len(specs)
    seeds = [s.seed for s in specs]
    out = []
    for spec, model, history, div in zip(specs, trained, histories, batched.divergences,
                                         strict=True):
        record = _base_record(spec)
        record.device = str(device)
        record.batched = BatchInfo(seeds=seeds, train_s_total=train_s * len(specs))
        t0 = time.perf_counter()
        try:
            _score(record, spec, store, device, target, model, history,
                   None if div is None else dict(div), train_s)
            _set_status(record)
        except Exception as err:  # recorded and retried on the next run of the suite
            _record_failure(record, spec, err)
        out.append(_finish(record, store, train_s + time.perf_counter() - t0, spec))
    return out


def _train_and_score(record: RunRecord, spec: RunSpec, store: RunStore,
                     device: torch.device) -> None:
    import densitylab

    cfg = spec.config
    _import_plugins(spec)
    target = registry.make_dataset(cfg["dataset"]["name"], cfg["dataset"]["params"])
    model = registry.make_model(cfg["model"]["kind"], cfg["model"]["params"],
                                data_shape=_data_shape(target), seed=spec.seed)

    every = cfg["train"].get("eval_every")
    live = _live_log(spec, store, model)
    recorder = _CurveRecorder(spec, target, device, every, live) if every else None
    callback = _both(recorder, live)
    t0 = time.perf_counter()
    diverged = None
    try:
        history = _fit(model, target, cfg["train"], spec.seed, device, callback=callback)
    except densitylab.TrainingDiverged as err:  # a failure of the configuration: say so
        diverged = {"step": err.step, "loss": float(err.loss)}
        history = getattr(model, "history", None)
    finally:
        if live is not None:
            live.close()
    train_s = time.perf_counter() - t0
    _score(record, spec, store, device, target, model, history, diverged, train_s)
    if recorder is not None:
        record.curves = Curves.from_dict(recorder.curves)


def _live_log(spec: RunSpec, store: RunStore, model):
    """The TensorBoard log of a run while it trains (``tensorboard = true`` and a model whose
    ``fit`` takes a callback), else None; see :class:`densitylab.suite.tblog.LiveLog`."""
    if not spec.tensorboard or "callback" not in declared_options(model, "fit"):
        return None
    from .tblog import LiveLog

    try:
        return LiveLog(store, spec, spec.config["train"]["steps"])
    except Exception as err:  # the log is optional; the run is not
        logger.warning("no live TensorBoard log for %s: %s", spec.label, err)
        return None


def _both(first, second):
    """One fit callback calling ``first`` then ``second`` (either may be None); stops when
    either asks to."""
    if first is None or second is None:
        return first if second is None else second

    def callback(step, losses, model):
        stop = first(step, losses, model)
        return bool(second(step, losses, model)) or bool(stop)

    return callback


def _score(record: RunRecord, spec: RunSpec, store: RunStore, device: torch.device, target,
           model, history, diverged: dict[str, Any] | None, train_s: float) -> None:
    """Sample the trained ``model``, score it with the run's metrics, save its samples (with the
    reference sample and the target's modes, see :func:`saved_arrays`) into ``record``.

    A diverged run is not scored: its metrics would describe an untrained model.
    """
    cfg = spec.config
    # the code this process ran (a remote Dask worker may run other code than the runner that
    # checked the folder; file digests and the git commit are cached per process)
    record.code = run_code(model, target, [m["name"] for m in cfg["metrics"]])
    record.history = History.from_dict(summarize_history(history))
    record.train_s = train_s
    record.trained_steps = cfg["train"]["steps"]
    if diverged:
        record.diverged = Divergence.from_dict(diverged)
        record.keep_empty("metrics")
        record.eval_s = 0.0
        return
    n = cfg["eval_samples"]
    t1 = time.perf_counter()
    with torch.no_grad():
        samples = draw(model, n, derive_seed(spec.seed, "sample"),
                        **cfg["model"].get("sample", {})).to(device)
    reference = draw(target, n, derive_seed(spec.seed, "reference")).to(device)
    if samples.shape[1:] != reference.shape[1:]:
        raise ValueError(f"model samples have shape {tuple(samples.shape[1:])} per point but the "
                         f"dataset has {tuple(reference.shape[1:])}")
    ctx = EvalContext(target, model, samples, reference, spec.seed, n, device,
                      train_size=cfg["train"].get("train_size"))
    record.metrics = {label: MetricResult.from_dict(result)
                      for label, result in evaluate_metrics(ctx, cfg["metrics"],
                                                            registry.get_metric).items()}

    if cfg.get("save_samples", SuiteSection.save_samples):
        arrays = saved_arrays(ctx)
        grid = cfg.get("density_grid", 0)
        if (not ctx.is_image and grid and samples.shape[1] == 2
                and getattr(model, "has_density", False)):
            try:
                arrays.update(_density_grid(model, reference, grid, device))
            except Exception as err:  # the figure is optional; the run still counts
                logger.warning("density grid for %s failed: %s", spec.label, err)
        record.samples_file = store.write_samples(spec.run_id, arrays).name
    if cfg.get("save_models"):
        _save_model(record, spec, store, model)
    record.eval_s = time.perf_counter() - t1


def _save_model(record: RunRecord, spec: RunSpec, store: RunStore, model) -> None:
    """Save the trained model beside the record (before it: a record names only a complete
    file). A model without ``save`` (the oracle and noise reference rows, a plugin model) is
    noted in the log and its record has no ``model_file``."""
    if not callable(getattr(model, "save", None)):
        logger.info("%s: model kind %r has no save(path); its weights are not kept", spec.label,
                    spec.config["model"]["kind"])
        return
    record.model_file = store.write_model(spec.run_id, model).name


#: Images kept per image run (the report's image grids show at most 8 x 8).
SAVED_IMAGES = 64


def saved_arrays(ctx: EvalContext) -> dict[str, np.ndarray]:
    """What a run saves beside its record for the report, which never rebuilds a dataset.

    ``samples``: the model's evaluation samples (an image run: the first :data:`SAVED_IMAGES`);
    ``reference``: as many points of the run's own reference sample (the target sample its
    two-sample metrics compared against); ``mode_means`` / ``mode_stds``: the target's mode
    centres and standard deviations, when it has them (a Gaussian mixture).
    """
    keep = SAVED_IMAGES if ctx.is_image else len(ctx.samples)
    arrays = {"samples": _numpy(ctx.samples[:keep]), "reference": _numpy(ctx.reference[:keep])}
    means, stds = getattr(ctx.target, "means", None), getattr(ctx.target, "stds", None)
    if isinstance(means, torch.Tensor) and isinstance(stds, torch.Tensor):
        arrays["mode_means"] = means.detach().cpu().double().numpy()
        arrays["mode_stds"] = stds.detach().cpu().double().numpy()
    return arrays


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().float().numpy()
