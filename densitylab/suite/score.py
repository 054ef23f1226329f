"""The suite's score stage: a trained run in, its record (and what to keep beside it) out
(:func:`score_run`); :class:`CurveScorer` scores the same metrics during training.

Every evaluation draw (model samples, a fresh target sample for two-sample metrics, held-out
target points for likelihoods) uses a seed derived from the run's seed, so a run is
reproducible on CPU from its configuration alone.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import torch

from .. import __version__
from .._runtime import logger
from ..results.records import RECORD_FORMAT, RunRecord
from ..scoring import evaluate_metrics
from ..scoring.context import EvalContext, derive_seed, model_log_prob, sample_points
from . import registry
from .provenance import run_code
from .schema import SuiteSection
from .train import TrainedRun, failure

HISTORY_POINTS = 200  # training curves are stored averaged into at most this many points

#: Images kept per image run (the report's image grids show at most 8 x 8).
SAVED_IMAGES = 64


@dataclass
class ScoredRun:
    """A run's record and what the store keeps beside it: the ``arrays`` of its samples file
    (None: none saved) and the trained ``model`` to save (None: ``save_models`` is off)."""

    record: RunRecord
    arrays: dict[str, np.ndarray] | None = None
    model: Any = None


def score_run(run: TrainedRun, curves: dict[str, Any] | None = None) -> ScoredRun:
    """The record of a trained run: its training outcome, and for a run that trained to the
    end its samples scored by every metric of the run (see the module docstring); ``curves``:
    the scores during training of a :class:`CurveScorer`."""
    spec = run.spec
    data: dict[str, Any] = {
        "run_id": spec.run_id, "format": RECORD_FORMAT, "suite": spec.suite,
        "dataset": spec.dataset, "model": spec.model, "seed": spec.seed, "config": spec.config,
        "versions": {"densitylab": __version__, "torch": torch.__version__,
                     "numpy": np.__version__, "python": platform.python_version(),
                     "pyro": pyro.__version__},
        "code": dict(spec.code or {}), "host": platform.node(),
        "device": str(run.device or spec.device), "threads": torch.get_num_threads(),
        "train_s": run.train_s}
    if curves is not None:
        data["curves"] = curves
    if run.batch_seeds is not None:
        data["batched"] = {"seeds": run.batch_seeds,
                           "train_s_total": run.train_s * len(run.batch_seeds)}
    arrays = model = None
    if run.error is not None:
        data.update(status="failed", error=run.error, traceback=run.traceback)
    else:
        try:
            outcome, arrays, model = _evaluated(run)
            # the code this process ran (a remote Dask worker may run other code than the
            # runner that checked the folder; file digests and the git commit are cached)
            outcome["code"] = run_code(run.model, run.target,
                                       [m["name"] for m in spec.config["metrics"]])
            data.update(outcome)
        except Exception as err:  # recorded and retried on the next run of the suite
            error, trace = failure(spec, err)
            data.update(status="failed", error=error, traceback=trace)
    return ScoredRun(RunRecord.from_dict(data), arrays, model)


def _evaluated(run: TrainedRun) -> tuple[dict[str, Any], dict[str, np.ndarray] | None, Any]:
    """What scoring a trained run adds to its record (as JSON data), the arrays to save beside
    it and the model to save (None when not kept)."""
    cfg = run.spec.config
    out: dict[str, Any] = {"history": summarize_history(run.history),
                           "steps": cfg["train"]["steps"]}
    if run.diverged:  # an untrained model's scores are no result: scored with nothing
        div = run.diverged
        return {**out, "diverged": div, "metrics": {}, "eval_s": 0.0, "status": "diverged",
                "error": f"training diverged at step {div['step']} (loss {div['loss']}); "
                         "lower the learning rate"}, None, None
    start = time.perf_counter()
    ctx = evaluation_context(run.spec, run.target, run.model, run.device)
    out["metric_s"] = {}
    out["metrics"] = evaluate_metrics(ctx, cfg["metrics"], registry.get_metric,
                                      seconds=out["metric_s"])
    arrays = None
    if cfg.get("save_samples", SuiteSection.save_samples):
        arrays = saved_arrays(ctx)
        grid = cfg.get("density_grid", 0)
        if (not ctx.is_image and grid and ctx.samples.shape[1] == 2
                and getattr(run.model, "has_density", False)):
            try:
                arrays.update(_density_grid(run.model, ctx.reference, grid, run.device))
            except Exception as err:  # the figure is optional; the run still counts
                logger.warning("density grid for %s failed: %s", run.spec.label, err)
    out.update(eval_s=time.perf_counter() - start, status="ok")
    return out, arrays, run.model if cfg.get("save_models") else None


def evaluation_context(spec, target, model, device: torch.device) -> EvalContext:
    """The samples a run is scored on: ``eval_samples`` points of the model and as many of the
    target, each drawn with a seed derived from the run's."""
    cfg = spec.config
    n = cfg["eval_samples"]
    with torch.no_grad():
        samples = sample_points(model, n, derive_seed(spec.seed, "sample"),
                                **cfg["model"].get("sample", {})).to(device)
    reference = sample_points(target, n, derive_seed(spec.seed, "reference")).to(device)
    if samples.shape[1:] != reference.shape[1:]:
        raise ValueError(f"model samples have shape {tuple(samples.shape[1:])} per point but the "
                         f"dataset has {tuple(reference.shape[1:])}")
    return EvalContext(target, model, samples, reference, spec.seed, n, device,
                       train_size=cfg["train"].get("train_size"))


class CurveScorer:
    """The ``eval_every`` callback of a fit: every ``every`` steps, score the run's metrics on
    a fixed evaluation sample (the same seeds as the final evaluation) and keep the series;
    ``then`` (a live log) is called after each step too, and sees the scores as they come.

    Scoring runs in a forked random state and puts the networks back in training mode, so the
    training (and the final result) is the same with and without it. A metric failing early in
    training is a missing point of the curve, not worth a warning.
    """

    def __init__(self, spec, target, device: torch.device, every: int, then=None):
        self.spec, self.target, self.device, self.every, self.then = (spec, target, device,
                                                                       every, then)
        self.curves: dict[str, Any] = {"step": [], "values": {}}  # the JSON layout of Curves

    def __call__(self, step: int, losses, model) -> bool:
        if (step + 1) % self.every == 0:
            self.score(step + 1, model)
        return bool(self.then(step, losses, model)) if self.then is not None else False

    def score(self, step: int, model) -> None:
        """Score ``model`` as it is after ``step`` steps and append the values."""
        networks = getattr(model, "networks", None)
        was_training = bool(getattr(networks, "training", False))
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            ctx = evaluation_context(self.spec, self.target, model, self.device)
            out = evaluate_metrics(ctx, [m for m in self.spec.config["metrics"]
                                         if m.get("curves", True)], registry.get_metric,
                                   log_failures=False)
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
        if callable(getattr(self.then, "curves", None)):
            self.then.curves(step, {k: v[-1] for k, v in self.curves["values"].items()})

    def close(self) -> None:
        """Close the live log this scorer feeds (if any)."""
        if callable(getattr(self.then, "close", None)):
            self.then.close()


def summarize_history(history: Any, points: int = HISTORY_POINTS) -> dict[str, Any]:
    """Per-step losses averaged into at most ``points`` chunks per series, plus final values
    (the mean of the last 5 % of steps): the JSON layout of a record's ``history``.

    Accepts a list of floats, a list of per-step dicts, a dict of per-step lists, or an object
    with such a ``losses``/``history`` attribute (a :class:`densitylab.models.History`).
    """
    out: dict[str, Any] = {"steps": 0, "series": {}, "final": {}}
    for name, values in _history_series(history).items():
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if arr.size == 0:
            continue
        out["steps"] = max(out["steps"], int(arr.size))
        chunks = np.array_split(np.arange(arr.size), min(points, arr.size))
        out["series"][name] = {"step": [int(c[-1]) + 1 for c in chunks],
                               "value": [float(np.nanmean(arr[c])) for c in chunks]}
        out["final"][name] = float(np.nanmean(arr[-max(1, arr.size // 20):]))
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
