"""Likelihood metrics: the held-out log-likelihood of every model family beside the target's own
log-density, and the Monte Carlo KL(target || model) of models with a density."""

from __future__ import annotations

from typing import Any

import torch

from .. import metrics
from ..distributions import GaussianMixture
from ..metrics.likelihood import SIGMA_GRID
from ._common import needs_both_densities
from .constraints import Choice, Integer, Keyword, ListOf, NoneValue, Positive
from .context import EvalContext, derive_seed, model_log_prob
from .spec import HIGHER, LOWER, MetricSpec, Param, ValueInfo

__all__ = ["LOG_LIKELIHOOD", "KL_MC", "TRIM", "IWAE_SAMPLES", "needs_likelihood"]

#: Share of the per-point values dropped at each end for ``heldout_loglik_trimmed``.
TRIM = 0.01
#: Importance samples of a VAE's IWAE bound (within 0.05 nats per point of the latent
#: quadrature on a trained ring VAE at this K: docs/metrics.md).
IWAE_SAMPLES = 1000


def needs_likelihood(ctx: EvalContext, sigma=None, **_: Any) -> str | None:
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
        # what the model declares of its log_prob (densitylab.models.base.GenerativeModel)
        out["loglik_estimator"] = getattr(model, "log_prob_estimator", "model.log_prob")
        out["loglik_kind"] = getattr(model, "log_prob_kind", "unknown")
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


LOG_LIKELIHOOD = MetricSpec(
    "log_likelihood", _log_likelihood, applies=needs_likelihood,
    description="mean model log-density on one set of held-out target points (flow: exact; VAE: "
    "IWAE bound, and its latent quadrature with latents <= 2; diffusion: probability-flow ODE "
    "with flagged points, the variational bound beside; GAN: quadrature or AIS under "
    "N(x; G(z), sigma^2 I), sigma given or validated, with the cap a perfect generator "
    "reaches), beside the target's own",
    params=(
        Param("num_samples", 0, (Integer(minimum=0),), "held-out points; 0: eval_samples"),
        Param("sigma", None, (Positive(), Keyword("validated"), NoneValue()),
              "a GAN's observation noise; 'validated': chosen over sigma_grid"),
        Param("sigma_grid", list(SIGMA_GRID), (ListOf(Positive()),),
              "the noises a validated sigma is chosen from"),
        Param("validation_points", 500, (Integer(minimum=1),),
              "points of the validation split that choose sigma"),
        Param("estimator", "auto", (Choice(("auto", "quadrature", "ais", "both")),),
              "a GAN's estimator; auto: quadrature for latents <= 2, else AIS"),
        Param("ais_points", 0, (Integer(minimum=0),), "held-out points AIS scores; 0: all"),
        Param("ais_steps", 500, (Integer(minimum=1),), "AIS annealing steps"),
        Param("ais_chains", 16, (Integer(minimum=1),), "AIS chains per point"),
        Param("ode_rtol", 1e-6, (Positive(),),
              "a diffusion's ODE check: the tighter of its two tolerances"),
    ),
    values={
        "heldout_loglik": ValueInfo(
            HIGHER, "mean model log-density on held-out target points (VAE: importance-weighted "
                    "bound, Burda et al. 2016; flow: exact)", headline=True),
        "heldout_loglik_median": ValueInfo(
            HIGHER, "median of the same per-point log-densities: far above the mean when a few "
                    "held-out points dominate it"),
        "heldout_loglik_trimmed": ValueInfo(
            HIGHER, f"mean of the same per-point log-densities without the {TRIM:.0%} lowest and "
                    "highest"),
        "heldout_loglik_quadrature": ValueInfo(
            HIGHER, "mean log-density on the same points by quadrature over a latent space of "
                    "dimension <= 2 (exact up to the grid)"),
        "heldout_loglik_ais": ValueInfo(
            HIGHER, "mean log-density on the same points by annealed importance sampling under "
                    "N(x; G(z), sigma^2 I) (Wu et al. 2017)"),
        "heldout_loglik_stderr": ValueInfo(None, "standard error of the AIS mean"),
        "heldout_loglik_flagged": ValueInfo(
            None, "held-out points the estimator's own check flagged (a diffusion's ODE, an "
                  "unconverged quadrature)"),
        "heldout_elbo": ValueInfo(HIGHER, "mean variational bound (ELBO) on the same points"),
        "perfect_generator_loglik": ValueInfo(
            None, "what a generator whose outputs follow the target exactly scores at this "
                  "sigma (the cap of a GAN's likelihood)"),
        "target_loglik": ValueInfo(
            None, "mean target log-density on the same points (the ceiling)"),
    })


def _kl_mc(ctx: EvalContext, num_samples: int) -> dict[str, Any]:
    n = num_samples or ctx.eval_samples
    # the model's log_prob may be a random estimate (IWAE): fork the global generator so the
    # value is seeded and the caller's random stream untouched
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(derive_seed(ctx.seed, "kl_mc"))
        # KL(target || model): the direction that punishes a model for missing target mass
        est = metrics.kl_mc(ctx.target, ctx.model, n, seed=derive_seed(ctx.seed, "kl_mc_x"))
    return {"kl_mc_target_model": float(est.value), "kl_mc_stderr": float(est.stderr)}


KL_MC = MetricSpec(
    "kl_mc", _kl_mc, applies=needs_both_densities,
    description="Monte Carlo KL(target || model) from target samples",
    params=(Param("num_samples", 0, (Integer(minimum=0),), "target samples; 0: eval_samples"),),
    values={
        "kl_mc_target_model": ValueInfo(
            LOWER, "Monte Carlo estimate of KL(target || model) from target samples", 0.0),
        "kl_mc_stderr": ValueInfo(None, "standard error of that Monte Carlo estimate"),
    })
