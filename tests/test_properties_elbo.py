"""ELBO <= IWAE_K <= log p(x) on the linear-Gaussian VAE, whose marginal is analytic.

With ``network="linear"`` the model is ``z ~ N(0, I)``, ``x | z ~ N(W z + b, s^2 I)``, so
``p(x) = N(x; b, W W^T + s^2 I)`` (probabilistic PCA, Tipping and Bishop 1999), the posterior
``p(z | x)`` is Gaussian, and for the Gaussian guide ``q(z | x) = N(mu, diag(sigma^2))`` the
ELBO is analytic (Kingma and Welling, 2014):

    E_q[log p(x | z)] - KL(q || N(0, I))
      = -D/2 log(2 pi s^2) - (|x - W mu - b|^2 + sum_l sigma_l^2 |W_l|^2) / (2 s^2) - KL,

which also equals ``log p(x) - KL(q || p(z | x))``. IWAE (Burda, Grosse and Salakhutdinov,
ICLR 2016): ``E[IWAE_K]`` increases with ``K`` from the ELBO to ``log p(x)``.

Monte Carlo checks compare means of ``R`` independent estimates with a tolerance of
``Z_TOL`` standard errors: for the few hundred hypothesis examples of the thorough profile,
a false alarm has probability below 1e-4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import given
from hypothesis import strategies as st

from densitylab import losses, models, testing

Z_TOL = 6.0
REPLICATES = 100


@dataclass
class LinearGaussianCase:
    vae: models.VAE
    w: torch.Tensor  # (D, L) decoder weight
    b: torch.Tensor  # (D,) decoder bias
    s: float  # decoder noise std
    x: torch.Tensor  # (n, D) points to score


def _matrix(draw, rows, cols, bound):
    values = draw(st.lists(st.floats(-bound, bound), min_size=rows * cols,
                           max_size=rows * cols))
    return torch.tensor(values, dtype=torch.float64).reshape(rows, cols)


@st.composite
def linear_gaussian_vaes(draw, max_latent_dim: int = 2):
    """A linear VAE in float64 with drawn decoder and guide parameters, and 2 points to score."""
    d = draw(st.integers(1, 3), label="data_dim")
    latent = draw(st.integers(1, max_latent_dim), label="latent_dim")
    s = draw(st.floats(0.3, 2.0), label="decoder std")
    vae = models.VAE(data_dim=d, latent_dim=latent, network="linear", decoder_scale=s, seed=0)
    vae.networks.double()
    w, b = _matrix(draw, d, latent, 2.0), _matrix(draw, 1, d, 2.0)[0]
    # the guide's log-scales are (small weights) @ x + (bias in [-1.5, 1]): scales in [0.1, 5]
    enc_w = torch.cat([_matrix(draw, latent, d, 1.0), _matrix(draw, latent, d, 0.1)])
    enc_b = torch.cat([_matrix(draw, 1, latent, 1.0)[0],
                       torch.tensor(draw(st.lists(st.floats(-1.5, 1.0), min_size=latent,
                                                  max_size=latent)), dtype=torch.float64)])
    with torch.no_grad():
        vae.decoder.net.net[0].weight.copy_(w)
        vae.decoder.net.net[0].bias.copy_(b)
        vae.encoder.net.net[0].weight.copy_(enc_w)
        vae.encoder.net.net[0].bias.copy_(enc_b)
    x = _matrix(draw, 2, d, 3.0)
    # the decoder keeps its fixed std as a float32 log-scale buffer: use the value it holds
    return LinearGaussianCase(vae, w, b, float(vae.decoder.scale()), x)


def log_marginal(case: LinearGaussianCase) -> torch.Tensor:
    d = case.w.shape[0]
    cov = case.w @ case.w.T + case.s**2 * torch.eye(d, dtype=torch.float64)
    return torch.distributions.MultivariateNormal(case.b, cov).log_prob(case.x)


def guide_params(case: LinearGaussianCase) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return case.vae.encoder(case.x)


def analytic_elbo(case: LinearGaussianCase) -> torch.Tensor:
    """Expected log-likelihood in closed form minus the analytic KL(q || N(0, I))."""
    mu, sigma = guide_params(case)
    d = case.w.shape[0]
    residual = ((case.x - mu @ case.w.T - case.b) ** 2).sum(1)
    spread = (sigma**2 * (case.w**2).sum(0)[None, :]).sum(1)
    expected_loglik = (-0.5 * d * math.log(2 * math.pi * case.s**2)
                       - (residual + spread) / (2 * case.s**2))
    return expected_loglik - losses.gaussian_kl(mu, sigma)


def kl_to_posterior(case: LinearGaussianCase) -> torch.Tensor:
    """KL(q(z | x) || p(z | x)) with the exact Gaussian posterior of the linear model."""
    mu, sigma = guide_params(case)
    latent = case.w.shape[1]
    precision = torch.eye(latent, dtype=torch.float64) + case.w.T @ case.w / case.s**2
    post_cov = torch.linalg.inv(precision)
    post_mean = (case.x - case.b) @ case.w @ post_cov / case.s**2
    q = torch.distributions.MultivariateNormal(mu, torch.diag_embed(sigma**2))
    post = torch.distributions.MultivariateNormal(post_mean, post_cov.expand(len(case.x), -1, -1))
    return torch.distributions.kl_divergence(q, post)


def replicated_iwae(case: LinearGaussianCase, k: int, seed: int):
    """Mean and standard error, per point, of REPLICATES independent IWAE_k estimates."""
    lw = case.vae.log_weights(case.x, num_samples=REPLICATES * k, seed=seed)
    estimates = losses.iwae_bound(lw.reshape(REPLICATES, k, -1), dim=1)  # (R, n)
    return estimates.mean(0), estimates.std(0) / math.sqrt(REPLICATES)


@given(linear_gaussian_vaes())
def test_the_two_analytic_forms_of_the_elbo_agree_and_lie_below_log_p(case):
    # an internal check of the truth used below: E_q[log p(x|z)] - KL(q || prior) equals
    # log p(x) - KL(q || posterior), and the gap is a KL, so non-negative
    elbo = analytic_elbo(case)
    testing.assert_close(elbo, log_marginal(case) - kl_to_posterior(case), rtol=1e-9, atol=1e-9,
                         name="analytic ELBO")
    assert bool((elbo <= log_marginal(case) + 1e-9).all())


@given(linear_gaussian_vaes(), st.integers(0, 2**20))
def test_monte_carlo_elbo_agrees_with_the_analytic_kl_form(case, seed):
    lw = case.vae.log_weights(case.x, num_samples=1000, seed=seed)  # (K, n)
    mc, se = lw.mean(0), lw.std(0) / math.sqrt(lw.shape[0])
    testing.assert_close(case.vae.elbo(case.x, num_samples=1000, seed=seed), mc, rtol=1e-12,
                         atol=1e-12, name="vae.elbo vs mean log-weight")
    truth = analytic_elbo(case)
    gap = (mc - truth).abs()
    assert bool((gap <= Z_TOL * se + 1e-9).all()), (mc, truth, se)


@given(linear_gaussian_vaes(), st.integers(0, 2**20))
def test_elbo_below_iwae_below_log_marginal(case, seed):
    log_p = log_marginal(case)
    elbo = analytic_elbo(case)
    # pathwise, on the same draws: log-mean-exp of the log-weights >= their mean (Jensen)
    iwae_16 = case.vae.log_prob(case.x, num_samples=16, seed=seed)
    elbo_16 = case.vae.elbo(case.x, num_samples=16, seed=seed)
    assert bool((iwae_16 >= elbo_16 - 1e-12).all())
    # in expectation: ELBO <= E[IWAE_8] <= log p(x)
    mean, se = replicated_iwae(case, 8, seed)
    assert bool((mean >= elbo - Z_TOL * se - 1e-9).all()), (mean, elbo, se)
    assert bool((mean <= log_p + Z_TOL * se + 1e-9).all()), (mean, log_p, se)


@given(linear_gaussian_vaes(), st.integers(0, 2**20))
def test_iwae_grows_with_k_in_expectation(case, seed):
    ks = (1, 4, 16)
    # independent draws for every K (different seeds), so the comparison is statistical
    estimates = [replicated_iwae(case, k, seed + i) for i, k in enumerate(ks)]
    for (m_small, se_small), (m_big, se_big) in zip(estimates, estimates[1:], strict=False):
        tol = Z_TOL * torch.sqrt(se_small**2 + se_big**2) + 1e-9
        assert bool((m_big >= m_small - tol).all()), (ks, [e[0] for e in estimates])
    log_p = log_marginal(case)
    m_last, se_last = estimates[-1]
    assert bool((m_last <= log_p + Z_TOL * se_last + 1e-9).all())


@given(linear_gaussian_vaes(max_latent_dim=1), st.integers(0, 2**20))
def test_a_guide_equal_to_the_posterior_makes_every_bound_tight(case, seed):
    # with one latent dimension the exact posterior N(A (x - b), v) is a linear guide: set it,
    # and every log-weight equals log p(x), so ELBO = IWAE_K = log p(x) up to round-off
    w, s = case.w, case.s
    v = 1.0 / (1.0 + float((w**2).sum()) / s**2)
    a = v * w.T / s**2  # (1, D)
    d = w.shape[0]
    with torch.no_grad():
        enc = case.vae.encoder.net.net[0]
        enc.weight.copy_(torch.cat([a, torch.zeros(1, d, dtype=torch.float64)]))
        enc.bias.copy_(torch.tensor([-float(a @ case.b), 0.5 * math.log(v)], dtype=torch.float64))
    log_p = log_marginal(case)
    testing.assert_close(kl_to_posterior(case), torch.zeros(2), atol=1e-9, name="KL(q || post)")
    testing.assert_close(analytic_elbo(case), log_p, rtol=1e-9, atol=1e-9, name="analytic ELBO")
    lw = case.vae.log_weights(case.x, num_samples=8, seed=seed)
    testing.assert_close(lw, log_p.expand_as(lw), rtol=1e-9, atol=1e-9, name="log-weights")
    testing.assert_close(case.vae.log_prob(case.x, num_samples=8, seed=seed), log_p, rtol=1e-9,
                         atol=1e-9, name="IWAE_8")
