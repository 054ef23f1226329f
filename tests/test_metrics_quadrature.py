"""Latent quadrature: against the closed form of linear-Gaussian decoders, against scipy's
adaptive quadrature for a decoder with its own variance, its convergence flag, and (slow) as the
truth that IWAE and AIS are checked against on trained ring models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from densitylab import distributions, metrics, models

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _linear(d, k, sigma, seed=1):
    """x = A z + b + sigma noise: p(x) = N(b, A A^T + sigma^2 I)."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(d, k, generator=gen, dtype=torch.float64)
    b = torch.randn(d, generator=gen, dtype=torch.float64)
    cov = a @ a.T + sigma**2 * torch.eye(d, dtype=torch.float64)
    return (lambda z: z @ a.T + b), torch.distributions.MultivariateNormal(b, cov)


def _draw(dist, n, seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return dist.sample((n,))


@pytest.mark.parametrize("d, k, sigma", [(2, 2, 0.05), (3, 2, 0.2), (2, 1, 0.01), (1, 1, 0.3)])
def test_linear_gaussian_decoder_matches_its_closed_form_within_1e_3_nats(d, k, sigma):
    decode, marginal = _linear(d, k, sigma)
    x = _draw(marginal, 100)
    res = metrics.quadrature_log_likelihood(decode, x, latent_dim=k, sigma=sigma)
    err = (res.log_likelihood - marginal.log_prob(x)).abs()
    assert res.converged and res.num_unconverged == 0
    assert float(err.max()) < 1e-3
    assert res.log_likelihood.shape == res.error.shape == (100,)
    assert res.mean == pytest.approx(float(marginal.log_prob(x).mean()), abs=1e-3)


def test_a_posterior_cut_by_the_grid_edge_is_flagged_and_a_wider_grid_recovers_it():
    # points 4 units out: two of them are explained only by latents beyond |z| = 6
    decode, marginal = _linear(2, 2, 0.1)
    x = marginal.mean + 4.0 * torch.tensor([[1.0, 0.0], [0.0, -1.0], [0.7, 0.7]]).double()
    cut = metrics.quadrature_log_likelihood(decode, x, latent_dim=2, sigma=0.1, bound=6.0,
                                            max_resolution=512)
    wrong = (cut.log_likelihood - marginal.log_prob(x)).abs() > 1e-3
    assert bool(wrong.any()) and not bool(cut.point_converged[wrong].any())
    assert bool((cut.edge_share[wrong] > cut.tolerance).all())
    wide = metrics.quadrature_log_likelihood(decode, x, latent_dim=2, sigma=0.1, bound=10.0)
    assert wide.converged
    assert torch.allclose(wide.log_likelihood, marginal.log_prob(x), atol=1e-3, rtol=0)


def test_a_decoder_with_its_own_variance_matches_scipy_adaptive_quadrature():
    scipy_integrate = pytest.importorskip("scipy.integrate")

    def decode(z):  # a curved mean and a scale that varies with z
        mean = torch.cat([torch.sin(2 * z), z**2 - 1], dim=1)
        scale = 0.05 + 0.1 * torch.sigmoid(3 * z[:, 0])
        return mean, scale

    x = torch.tensor([[0.3, -0.5], [0.9, 0.2], [-0.7, 0.6], [2.0, 2.0]], dtype=torch.float64)
    res = metrics.quadrature_log_likelihood(decode, x, latent_dim=1)
    assert res.converged
    for i, xi in enumerate(x.numpy()):
        def integrand(z, xi=xi):
            mean = np.array([math.sin(2 * z), z * z - 1])
            s = 0.05 + 0.1 / (1 + math.exp(-3 * z))
            log_n = -0.5 * ((xi - mean) ** 2).sum() / s**2 - 2 * math.log(s) - math.log(2 * math.pi)
            return math.exp(log_n - 0.5 * z * z) / math.sqrt(2 * math.pi)

        value, _ = scipy_integrate.quad(integrand, -8, 8, points=np.linspace(-3, 3, 61).tolist(),
                                        limit=2000, epsabs=0, epsrel=1e-11)
        assert float(res.log_likelihood[i]) == pytest.approx(math.log(value), abs=1e-6)


def test_per_dimension_scales_match_the_closed_form():
    # scale (m, d) constant per dimension: p(x) = N(b, A A^T + diag(s^2))
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(2, 2, generator=gen, dtype=torch.float64)
    s = torch.tensor([0.05, 0.2], dtype=torch.float64)
    marginal = torch.distributions.MultivariateNormal(torch.zeros(2).double(),
                                                      a @ a.T + torch.diag(s**2))
    x = _draw(marginal, 50)
    res = metrics.quadrature_log_likelihood(lambda z: (z @ a.T, s.expand(z.shape[0], 2)), x)
    assert res.converged
    assert float((res.log_likelihood - marginal.log_prob(x)).abs().max()) < 1e-3


def test_an_unresolved_decoder_is_flagged_not_passed():
    # a very sharp observation model on a grid capped at 128 nodes per axis cannot converge
    decode, marginal = _linear(3, 2, 1e-3)
    x = _draw(marginal, 20)
    res = metrics.quadrature_log_likelihood(decode, x, sigma=1e-3, resolution=64,
                                            max_resolution=128)
    assert not res.converged and res.num_unconverged > 0
    assert bool((res.error[~res.point_converged] > res.tolerance).all())
    d = res.to_dict()
    assert d["converged"] is False and d["resolution"] == 128


def test_same_input_same_numbers():
    decode, marginal = _linear(2, 2, 0.1)
    x = _draw(marginal, 30)
    a = metrics.quadrature_log_likelihood(decode, x, sigma=0.1)
    b = metrics.quadrature_log_likelihood(decode, x, sigma=0.1, batch_size=7)
    assert torch.allclose(a.log_likelihood, b.log_likelihood, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"decode": "no"}, TypeError, "decode"),
    ({"latent_dim": 3}, ValueError, "latent_dim"),
    ({"sigma": -1.0}, ValueError, "sigma"),
    ({"sigma": None}, ValueError, "sigma"),
    ({"resolution": 48}, ValueError, "resolution"),
    ({"tolerance": 0.0}, ValueError, "tolerance"),
    ({"x": np.array([[np.nan, 0.0]])}, ValueError, "x"),
    ({"decode": lambda z: z[:, :1]}, ValueError, "values per latent"),
    ({"decode": lambda z: (z, -torch.ones(z.shape[0])), "sigma": None}, ValueError, "scale"),
    ({"decode": lambda z: (z, torch.ones(z.shape[0]))}, ValueError, "sigma must be None"),
])
def test_bad_input_is_refused_with_a_named_argument(kwargs, error, match):
    args = {"decode": lambda z: z, "x": torch.zeros(3, 2), "latent_dim": 2, "sigma": 0.1,
            **kwargs}
    with pytest.raises(error, match=match):
        metrics.quadrature_log_likelihood(**args)


@pytest.mark.slow
def test_select_sigma_finds_the_generating_noise_and_scores_each_sigma_exactly():
    # data from a linear decoder with sigma 0.2: the closed form N(b, A A^T + s^2 I) at each
    # grid value is the truth for the validation likelihoods, and 0.2 maximises it
    decode, marginal = _linear(3, 2, 0.2)
    x = _draw(marginal, 200)
    a = decode(torch.eye(2, dtype=torch.float64)) - decode(torch.zeros(1, 2, dtype=torch.float64))
    grid = (0.1, 0.2, 0.8)
    choice = metrics.select_sigma(decode, x, 2, grid)
    assert choice.sigma == 0.2 and choice.estimator == "quadrature" and not choice.at_edge
    for s, value in zip(grid, choice.log_likelihoods, strict=True):
        cov = a.T @ a + s**2 * torch.eye(3, dtype=torch.float64)
        truth = torch.distributions.MultivariateNormal(marginal.mean, cov).log_prob(x).mean()
        assert value == pytest.approx(float(truth), abs=1e-3)
    assert choice.to_dict()["sigmas"] == list(grid)


def test_select_sigma_refuses_a_bad_grid():
    with pytest.raises(ValueError, match="sigmas"):
        metrics.select_sigma(lambda z: z, torch.zeros(3, 2), 2, [0.1, -0.2])
    with pytest.raises(TypeError, match="sigmas"):
        metrics.select_sigma(lambda z: z, torch.zeros(3, 2), 2, "wide")


# ---------------------------------------------------------------- trained ring models (slow)
# The toy2d architecture (hidden (128, 128), latent 2), trained briefly: the VAE for 3,000
# steps, the GAN for 5,000 steps at seed 8 (all 8 ring modes, about 85 % high quality).


@pytest.fixture(scope="module")
def ring_vae():
    torch.set_num_threads(1)
    vae = models.VAE(data_dim=2, latent_dim=2, hidden=(128, 128), seed=0)
    vae.fit(distributions.ring(), steps=3000, batch_size=256, lr=1e-3, seed=0, progress=False)
    return vae


@pytest.fixture(scope="module")
def ring_gan():
    torch.set_num_threads(1)
    gan = models.GAN(data_dim=2, latent_dim=2, hidden=(128, 128), seed=8)
    gan.fit(distributions.ring(), steps=5000, batch_size=256, lr=1e-3, seed=8, progress=False,
            lr_schedule="cosine")
    return gan


def _vae_decoder(vae):
    return lambda z: (vae.decoder(z), vae.decoder.scale())


def _check_estimate(estimate, truth, stderr, tolerance):
    """Mean gap within ``tolerance`` nats per point, and not above the truth by more than
    the estimator's standard error (both are lower bounds in expectation)."""
    gap = float((estimate - truth).mean())
    assert abs(gap) < tolerance, gap
    assert gap <= stderr, (gap, stderr)


@pytest.mark.slow
def test_iwae_with_1000_samples_is_within_005_nats_of_the_ring_vaes_quadrature(ring_vae):
    x = distributions.ring().sample(500, seed=123)
    truth = metrics.quadrature_log_likelihood(_vae_decoder(ring_vae), x)
    assert truth.converged
    iwae = ring_vae.log_prob(x, num_samples=1000, seed=0).double()
    # IWAE's noise per point is not returned; the spread of the gaps gives the mean's s.e.
    gaps = iwae - truth.log_likelihood
    _check_estimate(iwae, truth.log_likelihood, float(gaps.std() / len(gaps) ** 0.5), 0.05)


@pytest.mark.slow
def test_ais_defaults_are_within_005_nats_of_the_ring_vaes_quadrature(ring_vae):
    x = distributions.ring().sample(60, seed=123)
    truth = metrics.quadrature_log_likelihood(_vae_decoder(ring_vae), x)
    ais = metrics.ais_log_likelihood(ring_vae.decoder, x, 2,
                                     float(ring_vae.decoder.scale().detach()))
    _check_estimate(ais.log_likelihood, truth.log_likelihood, ais.mean_stderr, 0.05)


@pytest.mark.slow
def test_ais_defaults_are_within_005_nats_of_the_ring_gans_quadrature(ring_gan):
    x = distributions.ring().sample(60, seed=123)
    truth = metrics.quadrature_log_likelihood(ring_gan.generator, x, 2, 0.05)
    assert truth.converged
    ais = metrics.ais_log_likelihood(ring_gan.generator, x, 2, 0.05)
    _check_estimate(ais.log_likelihood, truth.log_likelihood, ais.mean_stderr, 0.05)
