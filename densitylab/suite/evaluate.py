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

import hashlib
import inspect
import json
import logging
import math
import platform
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._runtime import logger, resolve_device, torch_threads
from . import registry
from .config import RunSpec, _data_shape, import_plugin
from .registry import MetricSpec
from .store import RunStore

__all__ = ["EvalContext", "BUILTIN_METRICS", "execute_run", "execute_batched_runs", "batch_key",
           "evaluate_metrics", "derive_seed", "labelled_value", "summarize_history"]

HISTORY_POINTS = 200  # training curves are stored averaged into at most this many points


@dataclass
class EvalContext:
    """What a metric sees: the target, the trained model and the evaluation samples."""

    target: Any
    model: Any
    samples: torch.Tensor  # eval_samples drawn from the model
    reference: torch.Tensor  # a fresh target sample of the same size
    seed: int
    eval_samples: int
    device: torch.device

    @property
    def is_image(self) -> bool:
        """True for image datasets (samples of shape (n, C, H, W))."""
        return self.samples.ndim > 2

    def heldout(self, n: int) -> torch.Tensor:
        """``n`` target points never used in training or as the reference sample."""
        return _draw(self.target, n, derive_seed(self.seed, "heldout"))


def derive_seed(seed: int, purpose: str) -> int:
    """A seed for one purpose of a run (``"sample"``, ``"reference"``...), stable across runs."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


# ---------------------------------------------------------------- built-in metrics


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _needs_mixture(ctx: EvalContext) -> str | None:
    if not hasattr(ctx.target, "means") or not hasattr(ctx.target, "stds"):
        return "the target is not a Gaussian mixture (mode centres unknown)"
    return None


def _needs_model_density(ctx: EvalContext) -> str | None:
    if not getattr(ctx.model, "has_density", False):
        return f"{type(ctx.model).__name__} has no tractable density"
    return None


def _needs_both_densities(ctx: EvalContext) -> str | None:
    if not getattr(ctx.target, "has_density", False):
        return "the target has no closed-form density"
    return _needs_model_density(ctx)


def _needs_images(ctx: EvalContext) -> str | None:
    return None if ctx.is_image else "not an image dataset"


def _needs_stacked(ctx: EvalContext) -> str | None:
    if not ctx.is_image or ctx.samples.shape[1] != 3:
        return "not a stacked-digits dataset (3 channels)"
    return None


def _mode_coverage(ctx: EvalContext, threshold: float, min_count: int) -> dict[str, Any]:
    from densitylab import metrics

    mc = metrics.mode_coverage(ctx.samples, ctx.target, threshold=threshold, min_count=min_count)
    return _coverage_values(mc)


def _coverage_values(mc) -> dict[str, Any]:
    out = {
        "modes_covered": float(mc.modes_covered),
        "num_modes": float(mc.num_modes),
        "high_quality_fraction": float(mc.high_quality_fraction),
        "counts": [int(c) for c in torch.as_tensor(mc.counts).reshape(-1).tolist()],
    }
    if mc.kl_to_uniform is None:  # no high-quality sample: the histogram KL is undefined
        out["kl_modes_note"] = "undefined: no high-quality sample"
    else:
        out["kl_modes"] = float(mc.kl_to_uniform)
    return out


def _mmd(ctx: EvalContext, kernel: str, bandwidth, estimator: str) -> dict[str, Any]:
    from densitylab import metrics

    value = metrics.mmd(_flat(ctx.samples), _flat(ctx.reference), kernel=kernel,
                        bandwidth=bandwidth, estimator=estimator)
    return {"mmd": float(value)}


def _kl_knn(ctx: EvalContext, k: int) -> dict[str, Any]:
    from densitylab import metrics

    x, y = _flat(ctx.samples), _flat(ctx.reference)
    # kl_knn(x, y) estimates KL(P||Q) with x ~ P: the model's samples first gives KL(model||target)
    return {"kl_knn_model_target": float(metrics.kl_knn(x, y, k=k)),
            "kl_knn_target_model": float(metrics.kl_knn(y, x, k=k))}


_ESTIMATORS = {"Flow": "exact", "VAE": "IWAE bound", "Diffusion": "probability-flow ODE"}


def _needs_likelihood(ctx: EvalContext, sigma=None, **_) -> str | None:
    """A model with a density, or a GAN when an observation noise ``sigma`` is stated (AIS)."""
    if getattr(ctx.model, "has_density", False):
        return None
    if sigma is not None and hasattr(ctx.model, "generator"):
        return None
    return (f"{type(ctx.model).__name__} has no tractable density (a GAN is scored by AIS "
            "when the metric states an observation noise: params = {{ sigma = ... }})")


def _log_likelihood(ctx: EvalContext, num_samples: int, sigma: float | None, ais_points: int,
                    ais_steps: int, ais_chains: int) -> dict[str, Any]:
    """Held-out log-likelihood of every family beside the target's own log-density: flow exact,
    VAE IWAE, diffusion probability-flow ODE (and the variational bound of any model with an
    ``elbo``), GAN by AIS under N(x; G(z), sigma^2 I) on ``ais_points`` of the held-out points."""
    n = num_samples or ctx.eval_samples
    x = ctx.heldout(n).to(ctx.device)
    model = ctx.model
    out: dict[str, Any] = {}
    if getattr(model, "has_density", False):
        with torch.no_grad():  # a diffusion's ODE turns gradients on where it needs them
            logq = torch.as_tensor(_model_log_prob(model, x, ctx.seed)).double()
        out["loglik_estimator"] = _ESTIMATORS.get(type(model).__name__, "model.log_prob")
        if hasattr(model, "elbo"):
            with torch.no_grad():
                elbo = model.elbo(x, seed=derive_seed(ctx.seed, "elbo"))
            out["heldout_elbo"] = float(torch.as_tensor(elbo).double().mean())
    else:
        from densitylab import metrics

        x = x[:ais_points]
        res = metrics.ais_log_likelihood(model.generator, x, model.latent_dim, sigma,
                                         num_steps=ais_steps, num_chains=ais_chains,
                                         seed=derive_seed(ctx.seed, "ais"))
        logq = res.log_likelihood
        out["heldout_loglik_stderr"] = res.mean_stderr
        out["loglik_estimator"] = f"AIS, sigma = {sigma:g}"
    out["heldout_loglik"] = float(logq.mean())
    if getattr(ctx.target, "has_density", False):
        logp = torch.as_tensor(ctx.target.log_prob(x.to(ctx.target.device))).double()
        out["target_loglik"] = float(logp.mean())
    return out


def _check_log_likelihood(num_samples: int, sigma, ais_points: int, ais_steps: int,
                          ais_chains: int) -> None:
    """``sigma``: None or a positive std; the counts are integers (``num_samples`` >= 0)."""
    from .._validation import check_int, check_positive

    check_int(num_samples, "num_samples", minimum=0)
    check_positive(sigma, "sigma", allow_none=True)
    check_int(ais_points, "ais_points", minimum=1)
    check_int(ais_steps, "ais_steps", minimum=1)
    check_int(ais_chains, "ais_chains", minimum=1)


def _model_log_prob(model, x: torch.Tensor, seed: int) -> torch.Tensor:
    """``model.log_prob(x)``, seeded when the estimate is random (the VAE's IWAE bound)."""
    if "seed" in inspect.signature(model.log_prob).parameters:
        return model.log_prob(x, seed=derive_seed(seed, "log_prob"))
    return model.log_prob(x)


def _kl_mc(ctx: EvalContext, num_samples: int) -> dict[str, Any]:
    from densitylab import metrics

    n = num_samples or ctx.eval_samples
    # the model's log_prob may be a random estimate (IWAE): fork the global generator so the
    # value is seeded and the caller's random stream untouched
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(derive_seed(ctx.seed, "kl_mc"))
        # KL(target || model): the direction that punishes a model for missing target mass
        est = metrics.kl_mc(ctx.target, ctx.model, n, seed=derive_seed(ctx.seed, "kl_mc_x"))
    return {"kl_mc_target_model": float(est.value), "kl_mc_stderr": float(est.stderr)}


def _prdc(ctx: EvalContext, k: int) -> dict[str, Any]:
    from densitylab import metrics

    res = metrics.prdc(_flat(ctx.reference), _flat(ctx.samples), k=k)
    d = res.to_dict() if hasattr(res, "to_dict") else dict(res._asdict())
    return {name: float(d[name]) for name in ("precision", "recall", "density", "coverage")}


def _stacked_modes(ctx: EvalContext, threshold: float | None, min_count: int) -> dict[str, Any]:
    from densitylab import images

    mc = images.count_stacked_modes(ctx.samples, threshold=threshold, min_count=min_count)
    return _coverage_values(mc)


def _check_stacked_modes(threshold: float | None, min_count: int) -> None:
    """``threshold``: None (count every sample) or a confidence in (0, 1); ``min_count`` >= 1."""
    from .._validation import check_int, check_probability

    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise TypeError(f"threshold: expected a number in (0, 1), got "
                            f"{type(threshold).__name__} {threshold!r}")
        check_probability(threshold, "threshold")
    check_int(min_count, "min_count", minimum=1)


def _c2st(ctx: EvalContext, classifier: str, folds: int) -> dict[str, Any]:
    from densitylab import metrics

    res = metrics.c2st(_flat(ctx.samples), _flat(ctx.reference), classifier=classifier,
                       folds=folds, seed=derive_seed(ctx.seed, "c2st"))
    return {"c2st": res.accuracy, "c2st_stderr": res.stderr, "c2st_pvalue": res.pvalue}


def _check_c2st(classifier: str, folds: int) -> None:
    from densitylab import metrics

    from .._validation import check_choice, check_int

    check_choice(classifier, "classifier", metrics.CLASSIFIERS)
    check_int(folds, "folds", minimum=2)


def _sliced_wasserstein(ctx: EvalContext, num_projections: int, p: float) -> dict[str, Any]:
    from densitylab import metrics

    value = metrics.sliced_wasserstein(_flat(ctx.samples), _flat(ctx.reference),
                                       num_projections=num_projections, p=p,
                                       seed=derive_seed(ctx.seed, "sliced_wasserstein"))
    return {"sliced_wasserstein": value}


def _check_sliced_wasserstein(num_projections: int, p: float) -> None:
    from .._validation import check_int, check_positive

    check_int(num_projections, "num_projections", minimum=1)
    if check_positive(p, "p") < 1:
        raise ValueError(f"p: expected a number >= 1, got {p!r}")


def _energy_distance(ctx: EvalContext, estimator: str) -> dict[str, Any]:
    from densitylab import metrics

    value = metrics.energy_distance(_flat(ctx.samples), _flat(ctx.reference), estimator)
    return {"energy_distance": value}


def _check_energy_distance(estimator: str) -> None:
    from .._validation import check_choice

    check_choice(estimator, "estimator", ("biased", "unbiased"))


def _feature_metrics(ctx: EvalContext) -> dict[str, Any]:
    from densitylab import images

    return {k: float(v) for k, v in images.feature_metrics(ctx.reference, ctx.samples).items()}


BUILTIN_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("mode_coverage", _mode_coverage, {"threshold": 3.0, "min_count": 1},
               _needs_mixture,
               "modes covered, high-quality fraction and KL of the mode histogram to uniform "
               "(VEEGAN / PacGAN protocol)"),
    MetricSpec("mmd", _mmd, {"kernel": "rbf", "bandwidth": None, "estimator": "unbiased"},
               description="MMD^2 between model samples and a fresh target sample "
               "(Gretton et al. 2012)", min_samples=lambda **_: 2),
    MetricSpec("kl_knn", _kl_knn, {"k": 1},
               description="k-NN KL estimates in both directions (Wang, Kulkarni, Verdu 2009)",
               min_samples=lambda k: k + 1),
    MetricSpec("log_likelihood", _log_likelihood,
               {"num_samples": 0, "sigma": None, "ais_points": 100, "ais_steps": 200,
                "ais_chains": 8}, _needs_likelihood,
               "mean model log-density on held-out target points (flow: exact; VAE: IWAE bound; "
               "diffusion: probability-flow ODE, with the variational bound beside; GAN: AIS "
               "under N(x; G(z), sigma^2 I) when sigma is given), beside the target's own",
               check=_check_log_likelihood),
    MetricSpec("kl_mc", _kl_mc, {"num_samples": 0}, _needs_both_densities,
               "Monte Carlo KL(target || model) from target samples"),
    MetricSpec("prdc", _prdc, {"k": 5},
               description="precision, recall, density, coverage (Naeem et al. 2020)",
               min_samples=lambda k: k + 1),
    MetricSpec("stacked_modes", _stacked_modes, {"threshold": None, "min_count": 1},
               _needs_stacked,
               "classifier-based mode count over the 1,000 digit triples (VEEGAN / PacGAN "
               "stacked-MNIST protocol); threshold: per-channel confidence a sample needs to "
               "count (none: every sample)", check=_check_stacked_modes),
    MetricSpec("feature_metrics", _feature_metrics, {}, _needs_images,
               "KID, Frechet distance and PRDC on digit-classifier features"),
    MetricSpec("c2st", _c2st, {"classifier": "mlp", "folds": 5},
               description="classifier two-sample test: held-out accuracy telling model samples "
               "from target samples (0.5 = indistinguishable), its s.e. and binomial p-value "
               "(Lopez-Paz and Oquab 2017)", check=_check_c2st),
    MetricSpec("sliced_wasserstein", _sliced_wasserstein, {"num_projections": 128, "p": 2.0},
               description="sliced Wasserstein SW_p^p between model samples and a fresh target "
               "sample (Bonneel et al. 2015)", check=_check_sliced_wasserstein),
    MetricSpec("energy_distance", _energy_distance, {"estimator": "biased"},
               description="squared energy distance between model samples and a fresh target "
               "sample (Szekely and Rizzo 2013)", check=_check_energy_distance),
)


# ---------------------------------------------------------------- evaluation


def evaluate_metrics(ctx: EvalContext, metric_configs: list[dict[str, Any]]) -> dict[str, Any]:
    """Score ``ctx`` with each configured metric; one failure does not stop the others.

    Returns ``{label: {"values": {name: float}, "details": {...}}}``, or ``{"skipped": why}``
    when the metric does not apply, or ``{"error": message}`` when it raised. ``label`` is the
    entry's label (default: the metric's name); under a label other than the name the values
    are renamed by :func:`labelled_value` and the result also holds ``"metric"`` (the metric's
    name) and ``"value_names"`` (renamed value -> the metric's own value name).
    """
    out: dict[str, Any] = {}
    for mc in metric_configs:
        spec = registry.get_metric(mc["name"])
        label = mc.get("label", spec.name)
        reason = _applies(spec, ctx, mc["params"])
        if reason is not None:
            out[label] = {"skipped": reason}
            continue
        try:
            result = spec.fn(ctx, **mc["params"])
            values, details = {}, {}
            for key, value in result.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    values[key] = float(value)
                else:
                    details[key] = value
            bad = [k for k, v in values.items() if not math.isfinite(v)]
            if bad:
                raise FloatingPointError(f"non-finite value(s) for {', '.join(bad)}")
            out[label] = {"values": values, "details": details}
            if label != spec.name:
                names = {labelled_value(spec.name, label, k): k for k in values}
                out[label] = {"values": {r: values[k] for r, k in names.items()},
                              "details": details, "metric": spec.name, "value_names": names}
        except Exception as err:  # a metric failure is recorded, not fatal to the run
            logger.warning("metric %s failed: %s", label, err)
            out[label] = {"error": f"{type(err).__name__}: {err}"}
    return out


def _applies(spec: MetricSpec, ctx: EvalContext, params: dict[str, Any]) -> str | None:
    """``spec.applies(ctx)``, or ``spec.applies(ctx, **params)`` when it takes parameters."""
    if len(inspect.signature(spec.applies).parameters) > 1:
        return spec.applies(ctx, **params)
    return spec.applies(ctx)


def labelled_value(metric: str, label: str, value: str) -> str:
    """A value's name in results under a metric entry's ``label``.

    The value named like the metric takes the label (``mmd`` under ``mmd_modes`` ->
    ``mmd_modes``), a value prefixed by the metric's name keeps its suffix (``c2st_pvalue``
    under ``c2st_knn`` -> ``c2st_knn_pvalue``), any other value is prefixed by the label
    (``precision`` under ``prdc_k10`` -> ``prdc_k10_precision``).
    """
    if label == metric:
        return value
    if value == metric:
        return label
    if value.startswith(metric + "_"):
        return label + value[len(metric):]
    return f"{label}_{value}"


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
        logp = torch.cat([torch.as_tensor(_model_log_prob(model, chunk, 0)).detach().cpu()
                          for chunk in pts.split(4096)])
    return {"grid_x": xs.numpy(), "grid_y": ys.numpy(),
            "grid_logp": logp.double().reshape(size, size).numpy()}


def _fit(model, target, train: dict[str, Any], seed: int, device: torch.device,
         callback=None):
    """Train on fresh batches from the target with the run's resolved ``train`` options.

    ``steps``, ``batch_size``, ``lr`` and ``lr_schedule`` go to ``fit`` (the schedule only when
    ``fit`` takes it or it is not the default: the suite refused a schedule a model lacks when it
    was loaded), ``train_size`` when the suite sets it (a finite training set drawn once per
    seed), and ``callback`` (the ``eval_every`` scorer) when given. The suite's ``threads`` is
    applied around the whole run by the caller.
    """
    kwargs = {"steps": train["steps"], "batch_size": train["batch_size"], "seed": seed}
    if train.get("train_size") is not None:
        kwargs["train_size"] = train["train_size"]
    if callback is not None:
        kwargs["callback"] = callback
    if train.get("lr") is not None:
        kwargs["lr"] = train["lr"]
    params = inspect.signature(model.fit).parameters
    schedule = train.get("lr_schedule", "constant")
    if schedule != "constant" or "lr_schedule" in params:
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

    def __init__(self, spec: RunSpec, target, device: torch.device, every: int):
        cfg = spec.config
        self.spec, self.target, self.device, self.every = spec, target, device, every
        self.n = cfg["eval_samples"]
        self.reference = _draw(target, self.n, derive_seed(spec.seed, "reference")).to(device)
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
                samples = _draw(model, self.n, derive_seed(self.spec.seed, "sample"),
                                **self.spec.config["model"].get("sample", {}))
            ctx = EvalContext(self.target, model, samples.to(self.device), self.reference,
                              self.spec.seed, self.n, self.device)
            out = evaluate_metrics(ctx, [m for m in self.spec.config["metrics"]
                                         if m.get("curves", True)])
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


def _as_float(x) -> torch.Tensor:
    if isinstance(x, tuple | list):  # (images, labels) from a labelled image target
        x = x[0]
    t = torch.as_tensor(x)
    return t if t.is_floating_point() else t.float()


def _draw(source, n: int, seed: int, **options) -> torch.Tensor:
    """``n`` points from a target or model, seeded, as a floating tensor; ``options`` are the
    model's ``[[models]] sample`` table (e.g. the VAE's ``noise = true``)."""
    return _as_float(source.sample(n, seed=seed, **options))


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
        record["device"] = str(device)
        with torch_threads(spec.threads):
            record["threads"] = torch.get_num_threads()
            record.update(_train_and_score(spec, store, device))
        _set_status(record)
    except Exception as err:  # recorded and retried on the next run of the suite
        _record_failure(record, spec, err)
    return _finish(record, store, time.perf_counter() - start)


def _base_record(spec: RunSpec) -> dict[str, Any]:
    return {
        "format": 1, "run_id": spec.run_id, "suite": spec.suite, "dataset": spec.dataset,
        "model": spec.model, "seed": spec.seed, "config": spec.config, "versions": _versions(),
        "host": platform.node(),
    }


def _set_status(record: dict[str, Any]) -> None:
    """``"diverged"`` when training hit a non-finite loss (a failure of the configuration,
    reported as such and never averaged into results; the Python API raises
    ``TrainingDiverged`` there), else ``"ok"``."""
    div = record.get("diverged")
    if div:
        record["status"] = "diverged"
        record["error"] = (f"training diverged at step {div.get('step')} "
                           f"(loss {div.get('loss')}); lower the learning rate")
    else:
        record["status"] = "ok"


def _record_failure(record: dict[str, Any], spec: RunSpec, err: BaseException) -> None:
    record["status"] = "failed"
    record["error"] = f"{type(err).__name__}: {err}"
    record["traceback"] = traceback.format_exc()
    record.setdefault("device", str(spec.device))
    logger.warning("run %s (%s) failed: %s", spec.label, spec.run_id, record["error"])


def _finish(record: dict[str, Any], store: RunStore, wall_s: float) -> dict[str, Any]:
    record["wall_s"] = wall_s
    record["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    store.write_record(record)
    return {"run_id": record["run_id"], "label": f"{record['dataset']}/{record['model']}/"
            f"{record['seed']}", "status": record["status"], "wall_s": wall_s,
            "error": record.get("error")}


def batch_key(spec: RunSpec) -> str | None:
    """Runs with equal keys differ only in their seed and can train as one batched model.

    None when the model kind has no batched implementation (see
    :mod:`densitylab.models.batched`) or the run fixes the model's own seed.
    """
    from densitylab.models.batched import batched_class

    cfg = spec.config
    kind = cfg["model"]["kind"]
    if kind in registry._EXTRA_MODELS or batched_class(kind) is None:  # user model: its own
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
    from densitylab.models.batched import batched_class

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
        batched = batched_class(cfg["model"]["kind"])(
            seeds=[s.seed for s in specs], **shape_kw, **cfg["model"]["params"])
        extra = {}
        if cfg["train"].get("train_size") is not None:
            if "train_size" not in inspect.signature(batched.fit).parameters:
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
                                lr_schedule=train.get("lr_schedule", "constant"),
                                device=device, progress=False, **extra)
        trained = batched.unstack()
    except Exception as err:  # every run of the batch failed; each is retried next time
        wall = (time.perf_counter() - start) / len(specs)
        out = []
        for spec in specs:
            record = _base_record(spec)
            _record_failure(record, spec, err)
            out.append(_finish(record, store, wall))
        return out
    train_s = (time.perf_counter() - start) / len(specs)
    seeds = [s.seed for s in specs]
    out = []
    for spec, model, history, div in zip(specs, trained, histories, batched.divergences,
                                         strict=True):
        record = _base_record(spec)
        record["device"] = str(device)
        record["batched"] = {"seeds": seeds, "train_s_total": train_s * len(specs)}
        t0 = time.perf_counter()
        try:
            record.update(_score(spec, store, device, target, model, history,
                                 None if div is None else dict(div), train_s))
            _set_status(record)
        except Exception as err:  # recorded and retried on the next run of the suite
            _record_failure(record, spec, err)
        out.append(_finish(record, store, train_s + time.perf_counter() - t0))
    return out


def _train_and_score(spec: RunSpec, store: RunStore, device: torch.device) -> dict[str, Any]:
    import densitylab

    cfg = spec.config
    _import_plugins(spec)
    target = registry.make_dataset(cfg["dataset"]["name"], cfg["dataset"]["params"])
    model = registry.make_model(cfg["model"]["kind"], cfg["model"]["params"],
                                data_shape=_data_shape(target), seed=spec.seed)

    every = cfg["train"].get("eval_every")
    recorder = _CurveRecorder(spec, target, device, every) if every else None
    t0 = time.perf_counter()
    diverged = None
    try:
        history = _fit(model, target, cfg["train"], spec.seed, device, callback=recorder)
    except densitylab.TrainingDiverged as err:  # a failure of the configuration: say so
        diverged = {"step": err.step, "loss": float(err.loss)}
        history = getattr(model, "history", None)
    train_s = time.perf_counter() - t0
    out = _score(spec, store, device, target, model, history, diverged, train_s)
    if recorder is not None:
        out["curves"] = recorder.curves
    return out


def _score(spec: RunSpec, store: RunStore, device: torch.device, target, model, history,
           diverged: dict[str, Any] | None, train_s: float) -> dict[str, Any]:
    """Sample the trained ``model``, score it with the run's metrics, save its samples.

    A diverged run is not scored: its metrics would describe an untrained model.
    """
    cfg = spec.config
    if diverged:
        return {"metrics": {}, "history": summarize_history(history), "diverged": diverged,
                "train_s": train_s, "eval_s": 0.0, "steps": cfg["train"]["steps"]}
    n = cfg["eval_samples"]
    t1 = time.perf_counter()
    with torch.no_grad():
        samples = _draw(model, n, derive_seed(spec.seed, "sample"),
                        **cfg["model"].get("sample", {})).to(device)
    reference = _draw(target, n, derive_seed(spec.seed, "reference")).to(device)
    if samples.shape[1:] != reference.shape[1:]:
        raise ValueError(f"model samples have shape {tuple(samples.shape[1:])} per point but the "
                         f"dataset has {tuple(reference.shape[1:])}")
    ctx = EvalContext(target, model, samples, reference, spec.seed, n, device)
    metrics_out = evaluate_metrics(ctx, cfg["metrics"])

    if cfg.get("save_samples", True):
        arrays: dict[str, np.ndarray] = {}
        if ctx.is_image:
            arrays["samples"] = samples[:64].detach().cpu().float().numpy()
        else:
            arrays["samples"] = samples.detach().cpu().float().numpy()
            grid = cfg.get("density_grid", 0)
            if grid and samples.shape[1] == 2 and getattr(model, "has_density", False):
                try:
                    arrays.update(_density_grid(model, reference, grid, device))
                except Exception as err:  # the figure is optional; the run still counts
                    logger.warning("density grid for %s failed: %s", spec.label, err)
        store.write_samples(spec.run_id, arrays)
    return {
        "metrics": metrics_out,
        "history": summarize_history(history),
        "diverged": diverged,
        "train_s": train_s,
        "eval_s": time.perf_counter() - t1,
        "steps": cfg["train"]["steps"],
    }
