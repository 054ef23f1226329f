"""The suite's built-in metrics: adapters from an :class:`~densitylab.suite.context.EvalContext`
to the pure functions of :mod:`densitylab.metrics` (and :mod:`densitylab.images`), each declared
once as a :class:`MetricSpec` with its defaults, its applicability test and its parameter check.

Run execution (:mod:`densitylab.suite.evaluate`) calls them through the registry
(:mod:`densitylab.suite.registry`); this module imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import metrics
from .._validation import check_choice, check_int, check_positive, check_probability
from ..metrics.likelihood import SIGMA_GRID
from ..metrics.modes import HIGH_QUALITY_STDS
from .context import EvalContext, derive_seed, draw, model_log_prob

__all__ = ["MetricSpec", "BUILTIN_METRICS"]


@dataclass(frozen=True)
class MetricSpec:
    """A suite metric: ``fn(context, **params) -> {value_name: float}``.

    ``defaults`` lists every parameter the metric takes (with its default), so that a suite's
    metric table is validated key by key and the resolved parameters enter the run id.
    ``applies(context, **params)`` (called with the metric's resolved parameters) returns None
    when the metric applies, else the reason it is skipped.
    ``check(**params)``, when given, validates the resolved parameters when the suite is loaded
    (raising TypeError/ValueError naming the parameter), so a bad value fails before training.
    """

    name: str
    fn: Callable[..., dict[str, float]]
    defaults: dict[str, Any] = field(default_factory=dict)
    applies: Callable[..., str | None] = lambda context, **params: None
    description: str = ""
    check: Callable[..., None] | None = None
    #: ``min_samples(**params)``: the smallest evaluation sample the metric is defined on (e.g.
    #: k + 1 points for a k-nearest-neighbour radius); the suite refuses a smaller
    #: ``eval_samples`` when it loads. None: no minimum beyond one point.
    min_samples: Callable[..., int] | None = None


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _needs_mixture(ctx: EvalContext, **_: Any) -> str | None:
    if not hasattr(ctx.target, "means") or not hasattr(ctx.target, "stds"):
        return "the target is not a Gaussian mixture (mode centres unknown)"
    return None


def _needs_model_density(ctx: EvalContext, **_: Any) -> str | None:
    if not getattr(ctx.model, "has_density", False):
        return f"{type(ctx.model).__name__} has no tractable density"
    return None


def _needs_both_densities(ctx: EvalContext, **_: Any) -> str | None:
    if not getattr(ctx.target, "has_density", False):
        return "the target has no closed-form density"
    return _needs_model_density(ctx)


def _needs_images(ctx: EvalContext, **_: Any) -> str | None:
    return None if ctx.is_image else "not an image dataset"


def _needs_stacked(ctx: EvalContext, **_: Any) -> str | None:
    if not ctx.is_image or ctx.samples.shape[1] != 3:
        return "not a stacked-digits dataset (3 channels)"
    return None


def _mode_coverage(ctx: EvalContext, threshold: float, min_count: int) -> dict[str, Any]:
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
    value = metrics.mmd(_flat(ctx.samples), _flat(ctx.reference), kernel=kernel,
                        bandwidth=bandwidth, estimator=estimator)
    return {"mmd": float(value)}


def _kl_knn(ctx: EvalContext, k: int) -> dict[str, Any]:
    x, y = _flat(ctx.samples), _flat(ctx.reference)
    # kl_knn(x, y) estimates KL(P||Q) with x ~ P: the model's samples first gives KL(model||target)
    return {"kl_knn_model_target": float(metrics.kl_knn(x, y, k=k)),
            "kl_knn_target_model": float(metrics.kl_knn(y, x, k=k))}


_ESTIMATORS = {"Flow": "exact", "VAE": "IWAE bound", "Diffusion": "probability-flow ODE"}
#: The kind of each estimator (densitylab.report.likelihood_order reads it to decide which
#: differences of likelihood have a guaranteed direction).
_KINDS = {"Flow": "exact", "VAE": "bound in expectation", "Diffusion": "approximation",
          "OracleReference": "exact", "NoiseReference": "exact"}
#: Share of the per-point values dropped at each end for ``heldout_loglik_trimmed``.
TRIM = 0.01
#: Importance samples of a VAE's IWAE bound (within 0.05 nats per point of the latent
#: quadrature on a trained ring VAE at this K: docs/metrics.md).
IWAE_SAMPLES = 1000


def _needs_likelihood(ctx: EvalContext, sigma=None, **_: Any) -> str | None:
    """A model with a density, or a GAN when an observation noise ``sigma`` is stated (AIS or
    quadrature; ``sigma = "validated"`` chooses it on a validation split)."""
    if getattr(ctx.model, "has_density", False):
        return None
    if sigma is not None and hasattr(ctx.model, "generator"):
        return None
    return (f"{type(ctx.model).__name__} has no tractable density (a GAN is scored under "
            "N(x; G(z), sigma^2 I) when the metric states sigma: params = { sigma = 0.05 } "
            "or { sigma = \"validated\" })")  # plain strings: single braces


def _log_likelihood(ctx: EvalContext, num_samples: int, sigma, sigma_grid, validation_points: int,
                    estimator: str, ais_points: int, ais_steps: int, ais_chains: int,
                    ode_rtol: float) -> dict[str, Any]:
    """Held-out log-likelihood of every family beside the target's own log-density, on one
    held-out set (the same points for every estimator of the run, and for every model of a suite
    with the same seed): flow exact, VAE IWAE (and, with a latent space of dimension <= 2, its
    exact value by latent quadrature), diffusion probability-flow ODE with its per-point check
    (and the variational bound of any model with an ``elbo``), GAN under N(x; G(z), sigma^2 I)
    by quadrature (latents <= 2) and/or AIS, sigma given or chosen on a validation split."""
    n = num_samples or ctx.eval_samples
    x = ctx.heldout(n).to(ctx.device)
    model = ctx.model
    # numbers under "loglik_settings" are details (what was used), not values to compare
    settings: dict[str, Any] = {"heldout_points": int(x.shape[0])}
    out: dict[str, Any] = {"loglik_settings": settings}
    flagged = None
    if getattr(model, "has_density", False):
        name = type(model).__name__
        out["loglik_estimator"] = _ESTIMATORS.get(name, "model.log_prob")
        out["loglik_kind"] = _KINDS.get(name, "unknown")
        if hasattr(model, "checked_log_prob"):  # a diffusion's ODE with its own check
            checked = model.checked_log_prob(x, rtol=ode_rtol,
                                             seed=derive_seed(ctx.seed, "log_prob"))
            logq, flagged = checked.log_prob.double(), checked.flagged
            out["loglik_check"] = checked.describe()
        else:
            with torch.no_grad():  # a diffusion's ODE turns gradients on where it needs them
                logq = torch.as_tensor(model_log_prob(model, x, ctx.seed,
                                                      num_samples=IWAE_SAMPLES)).double()
        if hasattr(model, "elbo"):
            with torch.no_grad():
                elbo = model.elbo(x, seed=derive_seed(ctx.seed, "elbo"))
            out["heldout_elbo"] = float(torch.as_tensor(elbo).double().mean())
        if _gaussian_decoder_with_small_latent(model):
            quad = metrics.quadrature_log_likelihood(
                lambda z: (model.decoder(z), model.decoder.scale()), x, model.latent_dim)
            out["heldout_loglik_quadrature"] = quad.mean
            settings["quadrature_unconverged"] = quad.num_unconverged
    else:
        logq, flagged = _decoder_log_likelihood(ctx, x, out, settings, sigma, sigma_grid,
                                                validation_points, estimator, ais_points,
                                                ais_steps, ais_chains)
    _summarise(logq, flagged, out)
    if getattr(ctx.target, "has_density", False):
        logp = torch.as_tensor(ctx.target.log_prob(x.to(ctx.target.device))).double()
        out["target_loglik"] = float(logp.mean())
    return out


def _gaussian_decoder_with_small_latent(model) -> bool:
    return (getattr(model, "likelihood", None) == "gaussian" and hasattr(model, "decoder")
            and getattr(model, "latent_dim", 3) <= 2)


def _decoder_log_likelihood(ctx, x, out, settings, sigma, sigma_grid, validation_points, estimator,
                            ais_points, ais_steps, ais_chains):
    """A GAN's held-out log-likelihood under N(x; G(z), sigma^2 I): per-point values and the
    points flagged by the estimator's own check; fills ``out`` (values) and ``settings``
    (what was chosen)."""
    model = ctx.model
    k = model.latent_dim
    if sigma == "validated":
        choice = metrics.select_sigma(model.generator, ctx.validation(validation_points), k,
                                      tuple(sigma_grid), seed=derive_seed(ctx.seed, "sigma"),
                                      num_steps=ais_steps, num_chains=ais_chains)
        sigma = choice.sigma
        out["sigma_selection"] = choice.to_dict()
    settings["sigma"] = float(sigma)
    cap = _perfect_generator_loglik(ctx.target, x, sigma)
    if cap is not None:  # a generator whose G(z) is distributed exactly as the target
        out["perfect_generator_loglik"] = cap
    if estimator == "auto":
        estimator = "quadrature" if k <= 2 else "ais"
    if estimator in ("quadrature", "both") and k > 2:
        raise ValueError(f"estimator={estimator!r} needs a latent space of dimension <= 2, "
                         f"got {k} (use 'ais')")
    logq = flagged = None
    if estimator in ("ais", "both"):
        xa = x[:ais_points] if ais_points else x
        res = metrics.ais_log_likelihood(model.generator, xa, k, sigma, num_steps=ais_steps,
                                         num_chains=ais_chains, seed=derive_seed(ctx.seed, "ais"))
        out["heldout_loglik_ais"] = res.mean
        out["heldout_loglik_stderr"] = res.mean_stderr
        settings["ais_points"] = int(xa.shape[0])
        settings["ais_steps"], settings["ais_chains"] = ais_steps, ais_chains
        logq = res.log_likelihood
        out["loglik_estimator"] = f"AIS, sigma = {sigma:g}"
        out["loglik_kind"] = "bound in expectation"
    if estimator in ("quadrature", "both"):
        res = metrics.quadrature_log_likelihood(model.generator, x, k, sigma)
        out["heldout_loglik_quadrature"] = res.mean
        settings["quadrature_unconverged"] = res.num_unconverged
        settings["quadrature_resolution"] = res.resolution
        logq, flagged = res.log_likelihood, ~res.point_converged
        out["loglik_estimator"] = f"latent quadrature, sigma = {sigma:g}"
        out["loglik_kind"] = "quadrature"
    return logq, flagged


def _perfect_generator_loglik(target, x: torch.Tensor, sigma: float) -> float | None:
    """Mean log-density of ``x`` under the target smoothed by N(0, sigma^2 I): what a generator
    whose outputs follow the target exactly scores at this sigma (its cap in expectation). For
    a Gaussian mixture the smoothed target is the mixture with variances ``std^2 + sigma^2``,
    exactly; None for other targets."""
    if not all(hasattr(target, a) for a in ("means", "stds", "weights", "log_prob")):
        return None
    from ..distributions import GaussianMixture

    stds = torch.as_tensor(target.stds).double()
    smoothed = GaussianMixture(torch.as_tensor(target.means).double(),
                               (stds**2 + sigma**2).sqrt(),
                               torch.as_tensor(target.weights).double(), dtype=torch.float64)
    return float(smoothed.log_prob(x.double().cpu()).mean())


def _summarise(logq: torch.Tensor, flagged: torch.Tensor | None, out: dict[str, Any]) -> None:
    """Mean (the estimand, a cross-entropy), median and a trimmed mean of the per-point values,
    and how many points the estimator's own check flagged (a diffusion's ODE can send rare tail
    points to absurd values, docs/metrics.md; the median and trimmed mean show when a few
    points dominate the mean)."""
    out["heldout_loglik"] = float(logq.mean())
    out["heldout_loglik_median"] = float(logq.median())
    m = logq.numel()
    cut = int(TRIM * m)
    kept = logq.sort().values[cut:m - cut] if m - 2 * cut > 0 else logq
    out["heldout_loglik_trimmed"] = float(kept.mean())
    if flagged is not None:
        out["heldout_loglik_flagged"] = int(flagged.sum())


def _check_log_likelihood(num_samples: int, sigma, sigma_grid, validation_points: int,
                          estimator: str, ais_points: int, ais_steps: int, ais_chains: int,
                          ode_rtol: float) -> None:
    """``sigma``: None, a positive std or ``"validated"`` (chosen over ``sigma_grid``, positive
    numbers, on ``validation_points`` points); ``estimator``: auto, quadrature, ais or both;
    the counts are integers (``num_samples`` and ``ais_points`` >= 0, 0 meaning all);
    ``ode_rtol`` (a diffusion's ODE check, the tighter of its two tolerances) is positive."""
    check_int(num_samples, "num_samples", minimum=0)
    if sigma != "validated":
        if isinstance(sigma, str):
            raise TypeError(f"sigma must be a positive number, 'validated' or omitted, got "
                             f"{sigma!r}")
        check_positive(sigma, "sigma", allow_none=True)
    if isinstance(sigma_grid, str) or not isinstance(sigma_grid, list | tuple) or not sigma_grid:
        raise TypeError(f"sigma_grid must be a non-empty list of positive numbers, got "
                        f"{sigma_grid!r}")
    for value in sigma_grid:
        check_positive(value, "sigma_grid")
    check_int(validation_points, "validation_points", minimum=1)
    check_choice(estimator, "estimator", ("auto", "quadrature", "ais", "both"))
    check_int(ais_points, "ais_points", minimum=0)
    check_int(ais_steps, "ais_steps", minimum=1)
    check_int(ais_chains, "ais_chains", minimum=1)
    check_positive(ode_rtol, "ode_rtol")


def _kl_mc(ctx: EvalContext, num_samples: int) -> dict[str, Any]:
    n = num_samples or ctx.eval_samples
    # the model's log_prob may be a random estimate (IWAE): fork the global generator so the
    # value is seeded and the caller's random stream untouched
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(derive_seed(ctx.seed, "kl_mc"))
        # KL(target || model): the direction that punishes a model for missing target mass
        est = metrics.kl_mc(ctx.target, ctx.model, n, seed=derive_seed(ctx.seed, "kl_mc_x"))
    return {"kl_mc_target_model": float(est.value), "kl_mc_stderr": float(est.stderr)}


def _prdc(ctx: EvalContext, k: int) -> dict[str, Any]:
    res = metrics.prdc(_flat(ctx.reference), _flat(ctx.samples), k=k)
    d = res.to_dict() if hasattr(res, "to_dict") else dict(res._asdict())
    return {name: float(d[name]) for name in ("precision", "recall", "density", "coverage")}


def _stacked_modes(ctx: EvalContext, threshold: float | None, min_count: int) -> dict[str, Any]:
    images = _images()

    mc = images.count_stacked_modes(ctx.samples, threshold=threshold, min_count=min_count)
    return _coverage_values(mc)


def _check_stacked_modes(threshold: float | None, min_count: int) -> None:
    """``threshold``: None (count every sample) or a confidence in (0, 1); ``min_count`` >= 1."""
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise TypeError(f"threshold: expected a number in (0, 1), got "
                            f"{type(threshold).__name__} {threshold!r}")
        check_probability(threshold, "threshold")
    check_int(min_count, "min_count", minimum=1)


def _c2st(ctx: EvalContext, classifier: str, folds: int) -> dict[str, Any]:
    res = metrics.c2st(_flat(ctx.samples), _flat(ctx.reference), classifier=classifier,
                       folds=folds, seed=derive_seed(ctx.seed, "c2st"))
    return {"c2st": res.accuracy, "c2st_stderr": res.stderr, "c2st_pvalue": res.pvalue}


def _check_c2st(classifier: str, folds: int) -> None:
    check_choice(classifier, "classifier", metrics.CLASSIFIERS)
    check_int(folds, "folds", minimum=2)


def _sliced_wasserstein(ctx: EvalContext, num_projections: int, p: float) -> dict[str, Any]:
    value = metrics.sliced_wasserstein(_flat(ctx.samples), _flat(ctx.reference),
                                       num_projections=num_projections, p=p,
                                       seed=derive_seed(ctx.seed, "sliced_wasserstein"))
    return {"sliced_wasserstein": value}


def _check_sliced_wasserstein(num_projections: int, p: float) -> None:
    check_int(num_projections, "num_projections", minimum=1)
    if check_positive(p, "p") < 1:
        raise ValueError(f"p: expected a number >= 1, got {p!r}")


def _energy_distance(ctx: EvalContext, estimator: str) -> dict[str, Any]:
    value = metrics.energy_distance(_flat(ctx.samples), _flat(ctx.reference), estimator)
    return {"energy_distance": value}


def _check_mmd(kernel: str, bandwidth, estimator: str) -> None:
    from ..metrics.kernels import KERNELS
    from ..metrics.mmd import ESTIMATORS

    check_choice(kernel, "kernel", KERNELS)
    check_choice(estimator, "estimator", ESTIMATORS)


def _check_energy_distance(estimator: str) -> None:
    check_choice(estimator, "estimator", ("biased", "unbiased"))


def _needs_training_set(ctx: EvalContext, **_: Any) -> str | None:
    if ctx.train_size is None and not ctx.has_fixed_images():
        return "the run has no fixed training set (set train.train_size)"
    return None


def _data_copying(ctx: EvalContext, num_cells: int, held_out: int) -> dict[str, Any]:
    """C_T, authenticity and nearest-neighbour ratios of the model's samples against the run's
    training set, each beside held-out target points (``held_out``: how many; 0 = eval_samples)."""
    train = _flat(ctx.training_set()).to(ctx.device)
    held = _flat(ctx.heldout(held_out or ctx.eval_samples)).to(ctx.device)
    gen = _flat(ctx.samples)
    ct = metrics.data_copying(train, held, gen, seed=derive_seed(ctx.seed, "data_copying"),
                              num_cells=num_cells)
    auth = metrics.authenticity(train, held, gen)
    ratio = metrics.nn_distance_ratio(train, held, gen)
    out = {"data_copying": ct.statistic, "data_copying_zscore": ct.zscore,
           "data_copying_pvalue": ct.pvalue, "data_copying_cells": float(ct.cells_used),
           "authenticity": auth.generated, "authenticity_heldout": auth.held_out,
           "authenticity_pvalue": auth.pvalue, "nn_ratio_below": ratio.generated_below,
           "nn_ratio_below_heldout": ratio.held_out_below,
           "nn_distance_pvalue": ratio.pvalue}
    if not ctx.is_image:
        # C_T against a fresh target set of the training set's size: a model whose modes are
        # too narrow is closer to any such set than fresh points are (C_T < 0 here too), a
        # copier only to its own training set (docs/metrics.md, "Data copying")
        fresh = _flat(draw(ctx.target, train.shape[0], derive_seed(ctx.seed, "fresh_set")))
        control = metrics.data_copying(fresh.to(ctx.device), held, gen,
                                       seed=derive_seed(ctx.seed, "data_copying"),
                                       num_cells=num_cells)
        out["data_copying_fresh_set"] = control.statistic
        out["data_copying_fresh_set_pvalue"] = control.pvalue
    return out


def _check_data_copying(num_cells: int, held_out: int) -> None:
    check_int(num_cells, "num_cells", minimum=1)
    check_int(held_out, "held_out", minimum=0)


def _calibration(ctx: EvalContext, method: str, num_points: int) -> dict[str, Any]:
    """Calibration ranks of ``num_points`` held-out target points among the model's samples
    (L = eval_samples // num_points each, disjoint sets); HPD scores by the model's log_prob,
    or by a KDE of some of its samples for a model without a density (a GAN)."""
    x = _flat(ctx.heldout(num_points)).to(ctx.device)
    y = _flat(ctx.samples)
    log_prob: Any = None
    if method == "hpd" and not getattr(ctx.model, "has_density", False):
        log_prob = "kde"
    elif method == "hpd":
        def log_prob(z):
            return model_log_prob(ctx.model, z, ctx.seed)
    res = metrics.calibration(x, y, method=method, seed=derive_seed(ctx.seed, "calibration"),
                              log_prob=log_prob)
    return {"calibration_area": res.area, "calibration_area_zscore": res.area_zscore,
            "calibration_ks_pvalue": res.ks_pvalue,
            "calibration_max_deviation": res.max_deviation, "calibration_dispersion":
            res.dispersion, "calibration_samples_per_point": float(res.num_samples)}


def _check_calibration(method: str, num_points: int) -> None:
    check_choice(method, "method", metrics.CALIBRATION_METHODS)
    check_int(num_points, "num_points", minimum=2)


def _prd_curve(ctx: EvalContext, classifier: str, folds: int) -> dict[str, Any]:
    """PRD curve (Simon et al. 2019) of the model's samples against a fresh target sample from
    a cross-fitted classifier: F_8 (recall-weighted) and F_1/8 (precision-weighted) as values,
    the curve at 101 angles in the details."""
    res = metrics.prd_curve(_flat(ctx.reference), _flat(ctx.samples), classifier=classifier,
                            folds=folds, seed=derive_seed(ctx.seed, "prd"), num_angles=101)
    return {"prd_f8": res.f_beta, "prd_f1_8": res.f_beta_inv,
            "prd_precision": list(res.precision), "prd_recall": list(res.recall)}


def _check_prd_curve(classifier: str, folds: int) -> None:
    check_choice(classifier, "classifier", metrics.prd.PRD_CLASSIFIERS)
    check_int(folds, "folds", minimum=2)


def _feature_metrics(ctx: EvalContext) -> dict[str, Any]:
    images = _images()

    return {k: float(v) for k, v in images.feature_metrics(ctx.reference, ctx.samples).items()}


BUILTIN_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("mode_coverage", _mode_coverage,
               {"threshold": HIGH_QUALITY_STDS, "min_count": 1},
               _needs_mixture,
               "modes covered, high-quality fraction and KL of the mode histogram to uniform "
               "(VEEGAN / PacGAN protocol)"),
    MetricSpec("mmd", _mmd, {"kernel": "rbf", "bandwidth": None, "estimator": "unbiased"},
               description="MMD^2 between model samples and a fresh target sample "
               "(Gretton et al. 2012)", min_samples=lambda **_: 2, check=_check_mmd),
    MetricSpec("kl_knn", _kl_knn, {"k": 1},
               description="k-NN KL estimates in both directions (Wang, Kulkarni, Verdu 2009)",
               min_samples=lambda k: k + 1),
    MetricSpec("log_likelihood", _log_likelihood,
               {"num_samples": 0, "sigma": None, "sigma_grid": list(SIGMA_GRID),
                "validation_points": 500, "estimator": "auto", "ais_points": 0,
                "ais_steps": 500, "ais_chains": 16, "ode_rtol": 1e-6}, _needs_likelihood,
               "mean model log-density on one set of held-out target points (flow: exact; VAE: "
               "IWAE bound, and its latent quadrature with latents <= 2; diffusion: "
               "probability-flow ODE with flagged points, the variational bound beside; GAN: "
               "quadrature or AIS under N(x; G(z), sigma^2 I), sigma given or validated, with "
               "the cap a perfect generator reaches), beside the target's own",
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
    MetricSpec("data_copying", _data_copying, {"num_cells": 10, "held_out": 0},
               _needs_training_set,
               "copying of the fixed training set: C_T (Meehan et al. 2020; < 0 and a small "
               "p-value mean copying), authenticity (Alaa et al. 2022) and the share of "
               "nearest-neighbour distance ratios below 1/3, each beside held-out points",
               check=_check_data_copying),
    MetricSpec("calibration", _calibration, {"method": "tarp", "num_points": 100},
               description="calibration by ranks of held-out points among the model's samples "
               "(tarp, hpd: by the model's density or a KDE of its samples, or pit): signed "
               "coverage area (> 0 over-dispersed), KS p-value, dispersion call",
               check=_check_calibration, min_samples=lambda method, num_points: num_points),
    MetricSpec("prd_curve", _prd_curve, {"classifier": "mlp", "folds": 5},
               description="precision-recall curve for distributions from a cross-fitted "
               "classifier (Simon et al. 2019): F_8 (recall) and F_1/8 (precision) summaries",
               check=_check_prd_curve),
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


def _needs_dequantized_density(ctx: EvalContext, **params: Any) -> str | None:
    if getattr(ctx.target, "levels", None) is None:
        return ("the target is not dequantised (bits per dimension are defined for a density of "
                "dequantised discrete pixels: dequantize = true)")
    return _LOG_LIKELIHOOD.applies(ctx, **params)


def _bits_per_dim(ctx: EvalContext, **params: Any) -> dict[str, Any]:
    """The ``log_likelihood`` metric's values on a dequantised image target, with its mean
    held-out log-density (and the variational bound, where there is one) also in bits per
    dimension: ``(-loglik + D log L) / (D log 2)`` for ``L`` pixel levels (Theis et al. 2016)."""
    out = _LOG_LIKELIHOOD.fn(ctx, **params)
    dim, levels = int(ctx.reference[0].numel()), int(ctx.target.levels)
    bpd = _images().bits_per_dim
    out["bits_per_dim"] = bpd(out["heldout_loglik"], dim, levels)
    if "heldout_elbo" in out:
        out["bits_per_dim_elbo"] = bpd(out["heldout_elbo"], dim, levels)
    out.setdefault("loglik_settings", {})["levels"] = levels
    return out


_LOG_LIKELIHOOD = next(spec for spec in BUILTIN_METRICS if spec.name == "log_likelihood")
BUILTIN_METRICS += (
    MetricSpec("bits_per_dim", _bits_per_dim, dict(_LOG_LIKELIHOOD.defaults),
               _needs_dequantized_density,
               "the log_likelihood metric on dequantised images (same parameters and values), "
               "with the mean held-out log-density in bits per dimension, "
               "(-loglik + D log L) / (D log 2) for L pixel levels: an upper bound on the "
               "discrete model's code length (Theis et al. 2016)",
               check=_LOG_LIKELIHOOD.check),
)


def _images():
    """:mod:`densitylab.images`, imported on first use: an image metric is the only user of the
    digit classifier and its data, which a 2D suite never loads."""
    from .. import images

    return images
