"""Log-likelihood of a decoder-based model by annealed importance sampling (AIS).

A decoder ``g: z -> x`` (a GAN's generator, a VAE's decoder mean) defines, under a Gaussian
observation model, ``p(x) = int N(x; g(z), sigma^2 I) N(z; 0, I) dz``. AIS (Neal, Statistics
and Computing 2001) estimates it by moving chains from the prior to the posterior through the
geometric path ``f_b(z) = N(z; 0, I) N(x; g(z), sigma^2 I)^b``, ``0 = b_0 < ... < b_T = 1``, with
Hamiltonian Monte Carlo transitions; as Wu, Burda, Salakhutdinov and Grosse ("On the
Quantitative Analysis of Decoder-Based Generative Models", ICLR 2017) do for GANs and VAEs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._runtime import make_generator
from .._validation import check_choice, check_int, check_positive, check_probability
from .quadrature import check_decoder_inputs, quadrature_log_likelihood

__all__ = ["AISResult", "SigmaSelection", "ais_log_likelihood", "select_sigma"]

#: The default grid of observation stds :func:`select_sigma` searches.
SIGMA_GRID = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


@dataclass(frozen=True)
class AISResult:
    """Per-point AIS estimates ``log_likelihood`` ``(n,)`` (log-mean-exp of the chains' log
    weights) and their standard errors ``stderr`` ``(n,)`` (delta method over chains), with the
    HMC acceptance rate averaged over chains, points and steps."""

    log_likelihood: torch.Tensor
    stderr: torch.Tensor
    acceptance_rate: float
    num_steps: int
    num_chains: int
    sigma: float

    @property
    def mean(self) -> float:
        """Mean log-likelihood over the points (nats per point)."""
        return float(self.log_likelihood.mean())

    @property
    def mean_stderr(self) -> float:
        """Standard error of :attr:`mean` from the chains (points treated as independent)."""
        n = self.log_likelihood.numel()
        return float(self.stderr.pow(2).sum().sqrt() / max(n, 1))

    def to_dict(self) -> dict:
        """Plain-Python dictionary (JSON-ready)."""
        return {"log_likelihood": self.log_likelihood.tolist(), "stderr": self.stderr.tolist(),
                "mean": self.mean, "mean_stderr": self.mean_stderr,
                "acceptance_rate": self.acceptance_rate, "num_steps": self.num_steps,
                "num_chains": self.num_chains, "sigma": self.sigma}


def sigmoid_schedule(num_steps: int, rad: float = 4.0) -> torch.Tensor:
    """Inverse temperatures ``b_0 = 0 < ... < b_T = 1`` spaced as a rescaled sigmoid (dense near
    both ends; Grosse, Ghahramani, Adams 2015, as in Wu et al. 2017), float64 ``(T + 1,)``."""
    s = torch.sigmoid(torch.linspace(-rad, rad, num_steps + 1, dtype=torch.float64))
    return (s - s[0]) / (s[-1] - s[0])


def ais_log_likelihood(decode: Callable[[torch.Tensor], torch.Tensor], x, latent_dim: int,
                       sigma: float, num_steps: int = 500, num_chains: int = 16, seed: int = 0, *,
                       leapfrog_steps: int = 10, step_size: float = 0.05,
                       target_acceptance: float = 0.65, batch_size: int = 1024) -> AISResult:
    """AIS estimate of ``log p(x)`` under ``x = decode(z) + sigma * noise``, ``z ~ N(0, I)``.

    Arguments:
        decode: a callable mapping latents ``(m, latent_dim)`` to data means ``(m, *x.shape[1:])``
            (differentiable; it is called on ``num_chains * batch`` rows at once).
        x: data ``(n, ...)``, a tensor or array.
        latent_dim: size of z.
        sigma: std of the Gaussian observation noise (a model parameter, part of the answer:
            state it beside the number).
        num_steps: annealing steps (inverse temperatures on a sigmoid schedule).
        num_chains: independent chains per point; the estimate is the log of the mean weight.
        seed: seeds the chains (same seed, same numbers on CPU).
        leapfrog_steps, step_size: HMC trajectory length and initial leapfrog step. A pilot
            AIS pass adapts each point's step (Wu et al.'s rule): after each transition it is
            multiplied by 1.02 when the chains' mean acceptance probability exceeds
            ``target_acceptance`` and by 0.98 otherwise. The estimate comes from a second,
            independent pass that replays the pilot's steps: its kernels are fixed in advance,
            so its weights are exactly unbiased (adapting inside the estimating pass makes each
            kernel depend on the chain's past, which biases the weights upward).
        batch_size: points processed together.

    Each chain's weight ``w = prod_t f_{b_t}(z_{t-1}) / f_{b_{t-1}}(z_{t-1})`` is unbiased for
    ``p(x)`` (each HMC transition leaves ``f_b`` invariant). So ``log mean(w)`` is a
    stochastic lower bound on ``log p(x)`` in expectation (Jensen), tight as steps grow
    (Wu et al. 2017, section 3). Cost: two passes of ``num_steps * leapfrog_steps`` decoder
    forward and backward passes on ``num_chains * n`` rows. Returns an :class:`AISResult` (float64).
    """
    x, latent_dim = check_decoder_inputs(decode, x, latent_dim)
    sigma = check_positive(sigma, "sigma")
    num_steps = check_int(num_steps, "num_steps", minimum=1)
    num_chains = check_int(num_chains, "num_chains", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    leapfrog_steps = check_int(leapfrog_steps, "leapfrog_steps", minimum=1)
    step_size = check_positive(step_size, "step_size")
    target_acceptance = check_probability(target_acceptance, "target_acceptance")
    batch_size = check_int(batch_size, "batch_size", minimum=1)

    gen = make_generator(seed, "cpu")
    betas = sigmoid_schedule(num_steps)
    results, accepts = [], []
    for start in range(0, x.shape[0], batch_size):
        part = x[start:start + batch_size]
        args = (decode, part, latent_dim, sigma, betas, num_chains, gen, leapfrog_steps,
                step_size, target_acceptance)
        _, _, steps = _ais_batch(*args)  # pilot: adapt the leapfrog steps
        lw, acc, _ = _ais_batch(*args, steps=steps)
        results.append(lw)
        accepts.append(acc * part.shape[0])
    log_w = torch.cat(results, dim=1)  # (chains, n)
    est = torch.logsumexp(log_w, dim=0) - math.log(num_chains)
    # delta method: se(log mean w) = sd(w) / (sqrt(C) mean(w)), computed on w / max(w)
    w = torch.exp(log_w - log_w.max(dim=0).values)
    sd = w.std(dim=0, unbiased=True) if num_chains > 1 else torch.full_like(est, math.inf)
    stderr = sd / (math.sqrt(num_chains) * w.mean(dim=0))
    return AISResult(est, stderr, float(sum(accepts) / x.shape[0]), num_steps, num_chains, sigma)


def _ais_batch(decode, x, latent_dim, sigma, betas, num_chains, gen, leapfrog_steps, step_size,
               target_acceptance, steps: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, float, torch.Tensor]:
    """One AIS pass over a batch of points: log weights ``(chains, n)``, the mean acceptance and
    the leapfrog step used at each annealing step for each point, ``(T, n)``.

    ``steps=None`` adapts each point's step (shared by its chains) from the chains' mean
    acceptance: a pilot pass. Given ``steps``, the kernels are fixed in advance, so the pass is
    exact AIS with unbiased weights.
    """
    n = x.shape[0]
    dtype, device = x.dtype, x.device
    xr = x.reshape(1, n, -1)
    d = xr.shape[-1]
    log_norm = -0.5 * d * math.log(2 * math.pi * sigma**2)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device=device,
                                                                          dtype=dtype)

    def log_lik(z):  # (C, n, k) -> (C, n), float64
        mean = decode(z.reshape(num_chains * n, latent_dim)).reshape(num_chains, n, -1)
        return (-0.5 * ((xr - mean) ** 2).sum(-1) / sigma**2).double() + log_norm

    def lik_and_grad(z):  # log N(x; decode(z), sigma^2 I) and its gradient in z
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            ll = log_lik(z)
            (g,) = torch.autograd.grad(ll.sum(), z)
        return ll.detach(), g.detach()

    def energy(z, ll, beta):  # U = -log f_beta(z) up to a constant
        return 0.5 * (z.double() ** 2).sum(-1) - beta * ll

    z = randn(num_chains, n, latent_dim)
    eps = torch.full((n, 1), step_size, dtype=dtype, device=device)
    used = torch.empty(len(betas) - 1, n, dtype=dtype, device=device)
    log_w = torch.zeros(num_chains, n, dtype=torch.float64, device=device)
    acc_sum = 0.0
    ll, g_ll = lik_and_grad(z)
    for t in range(1, len(betas)):
        beta = float(betas[t])
        if steps is not None:
            eps = steps[t - 1][:, None]
        used[t - 1] = eps[:, 0]
        log_w = log_w + (beta - float(betas[t - 1])) * ll
        # one HMC transition leaving f_beta invariant (leapfrog on U, Metropolis correction)
        p = randn(num_chains, n, latent_dim)
        u0 = energy(z, ll, beta) + 0.5 * (p.double() ** 2).sum(-1)
        zn, ll_n, g_n = z, ll, g_ll
        pn = p - 0.5 * eps * (zn - beta * g_n)
        for step in range(leapfrog_steps):
            zn = zn + eps * pn
            ll_n, g_n = lik_and_grad(zn)
            if step < leapfrog_steps - 1:
                pn = pn - eps * (zn - beta * g_n)
        pn = pn - 0.5 * eps * (zn - beta * g_n)
        u1 = energy(zn, ll_n, beta) + 0.5 * (pn.double() ** 2).sum(-1)
        log_accept = torch.nan_to_num((u0 - u1).clamp(max=0.0), nan=-math.inf)
        prob = log_accept.exp()
        accept = torch.rand(num_chains, n, generator=gen, dtype=torch.float64).to(device) < prob
        z = torch.where(accept[..., None], zn, z)
        ll = torch.where(accept, ll_n, ll)
        g_ll = torch.where(accept[..., None], g_n, g_ll)
        if steps is None:
            high = prob.mean(dim=0) > target_acceptance
            eps = eps * torch.where(high, 1.02, 0.98).to(dtype)[:, None]
        acc_sum += float(prob.mean())
    return log_w, acc_sum / (len(betas) - 1), used


@dataclass(frozen=True)
class SigmaSelection:
    """The observation std that maximises the mean validation log-likelihood (``sigma``), the
    grid searched (``sigmas``), the mean validation log-likelihood at each (``log_likelihoods``,
    nats per point), the estimator used and whether each value converged (quadrature)."""

    sigma: float
    sigmas: tuple[float, ...]
    log_likelihoods: tuple[float, ...]
    estimator: str
    converged: tuple[bool, ...]

    @property
    def at_edge(self) -> bool:
        """True when the best sigma is the smallest or largest of the grid (widen the grid)."""
        return self.sigma in (self.sigmas[0], self.sigmas[-1])

    def to_dict(self) -> dict:
        """Plain-Python dictionary (JSON-ready)."""
        return {"sigma": self.sigma, "sigmas": list(self.sigmas),
                "log_likelihoods": list(self.log_likelihoods), "estimator": self.estimator,
                "converged": list(self.converged), "at_edge": self.at_edge}


def select_sigma(decode: Callable[[torch.Tensor], torch.Tensor], x_val, latent_dim: int,
                 sigmas=SIGMA_GRID, *, estimator: str = "auto", seed: int = 0,
                 **ais_options) -> SigmaSelection:
    """The std ``sigma`` of the observation model ``N(x; decode(z), sigma^2 I)`` that maximises
    the mean log-likelihood of validation points ``x_val`` over the grid ``sigmas``.

    A decoder without a noise model (a GAN's generator) has a likelihood only once sigma is
    fixed, and its value depends on sigma more than on the generator; choosing sigma by
    likelihood on a split that is not the test set keeps that choice from flattering the
    test number (Wu, Burda, Salakhutdinov and Grosse, ICLR 2017, treat sigma as a
    hyperparameter of the GAN's observation model).
    ``estimator``: ``"quadrature"`` (:func:`quadrature_log_likelihood`, latents of dimension
    <= 2), ``"ais"`` (:func:`ais_log_likelihood` with ``ais_options``) or ``"auto"``
    (quadrature when it applies). Cost: one likelihood evaluation of ``x_val`` per grid value.
    """
    check_choice(estimator, "estimator", ("auto", "quadrature", "ais"))
    latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
    if isinstance(sigmas, str) or not hasattr(sigmas, "__iter__"):
        raise TypeError(f"sigmas must be a sequence of positive numbers, got {sigmas!r}")
    grid = tuple(sorted(check_positive(s, "sigmas") for s in sigmas))
    if not grid:
        raise ValueError("sigmas must hold at least one value")
    if estimator == "auto":
        estimator = "quadrature" if latent_dim <= 2 else "ais"
    values, converged = [], []
    for sigma in grid:
        if estimator == "quadrature":
            res = quadrature_log_likelihood(decode, x_val, latent_dim, sigma)
            values.append(res.mean)
            converged.append(res.converged)
        else:
            res = ais_log_likelihood(decode, x_val, latent_dim, sigma, seed=seed, **ais_options)
            values.append(res.mean)
            converged.append(True)
    best = max(range(len(grid)), key=lambda i: values[i])
    return SigmaSelection(grid[best], grid, tuple(values), estimator, tuple(converged))
