"""AIS log-likelihood of decoder models: against the analytic marginal of a linear decoder, and
(slow) against IWAE on a trained VAE decoder."""

from __future__ import annotations

import math

import pytest
import torch

from densitylab import distributions, metrics, models

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _linear_decoder(d, k, sigma, seed=1):
    """x = A z + b + sigma noise, z ~ N(0, I_k): p(x) = N(b, A A^T + sigma^2 I) exactly."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(d, k, generator=gen, dtype=torch.float64)
    b = torch.randn(d, generator=gen, dtype=torch.float64)
    marginal = torch.distributions.MultivariateNormal(b, a @ a.T + sigma**2 * torch.eye(d).double())
    return (lambda z: z @ a.T + b), marginal


def _points(marginal, n, seed=0):
    """``n`` seeded draws of the marginal (the global RNG is left as it was)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return marginal.sample((n,))


def _check_linear(n, tolerance, adapted=True, **kwargs):
    decode, marginal = _linear_decoder(d=3, k=2, sigma=0.2)
    x = _points(marginal, n)
    result = metrics.ais_log_likelihood(decode, x, latent_dim=2, sigma=0.2, **kwargs)
    err = result.log_likelihood - marginal.log_prob(x)
    assert result.log_likelihood.shape == result.stderr.shape == (n,)
    assert abs(float(err.mean())) < tolerance
    # a stochastic lower bound: on average not above the truth by more than its standard error
    assert float(err.mean()) <= result.mean_stderr
    if adapted:  # enough steps for the step-size adaptation to reach its target
        assert 0.3 < result.acceptance_rate < 0.95


@pytest.mark.slow
def test_ais_with_default_settings_is_within_005_nats_of_a_linear_decoders_marginal():
    _check_linear(400, 0.05)


def test_short_ais_is_close_to_a_linear_decoders_marginal():
    # the same check at a tenth of the default annealing steps, looser (the default run's version)
    _check_linear(100, 0.1, adapted=False, num_steps=50)


def test_ais_with_one_step_is_importance_sampling_from_the_prior():
    # one annealing step: each chain's weight is N(x; decode(z), sigma^2 I) at z ~ prior, whose
    # mean is p(x); with many chains the log of the mean converges to log p(x)
    decode, marginal = _linear_decoder(d=2, k=2, sigma=0.5)
    x = _points(marginal, 5)
    result = metrics.ais_log_likelihood(decode, x, 2, 0.5, num_steps=1, num_chains=20000)
    err = (result.log_likelihood - marginal.log_prob(x)).abs()
    assert bool((err < 4 * result.stderr + 0.01).all())
    assert bool((result.stderr < 0.05).all())


def test_same_seed_same_numbers_and_to_dict():
    decode, marginal = _linear_decoder(d=2, k=1, sigma=0.3)
    x = _points(marginal, 4)
    a = metrics.ais_log_likelihood(decode, x, 1, 0.3, num_steps=5, num_chains=3, seed=4)
    b = metrics.ais_log_likelihood(decode, x, 1, 0.3, num_steps=5, num_chains=3, seed=4)
    assert torch.equal(a.log_likelihood, b.log_likelihood)
    d = a.to_dict()
    assert d["sigma"] == 0.3 and len(d["log_likelihood"]) == 4 and math.isfinite(d["mean"])


@pytest.mark.parametrize("kwargs, error", [
    ({"decode": "not callable"}, TypeError),
    ({"sigma": 0.0}, ValueError),
    ({"sigma": -1.0}, ValueError),
    ({"latent_dim": 0}, ValueError),
    ({"num_steps": 0}, ValueError),
    ({"num_chains": 1.5}, TypeError),
    ({"x": [[float("nan"), 0.0]]}, ValueError),
    ({"target_acceptance": 1.5}, ValueError),
])
def test_bad_input_is_refused(kwargs, error):
    args = {"decode": lambda z: z, "x": torch.zeros(2, 2), "latent_dim": 2, "sigma": 0.1}
    args.update(kwargs)
    with pytest.raises(error):
        metrics.ais_log_likelihood(**args)


def test_gan_log_prob_points_to_ais():
    gan = models.GAN(data_dim=2, hidden=(8,), seed=0)
    with pytest.raises(models.NoDensityError, match="ais_log_likelihood"):
        gan.log_prob(torch.zeros(3, 2))
    # the generator is a decoder AIS can score at a stated sigma
    res = metrics.ais_log_likelihood(gan.generator, torch.zeros(3, 2), 2, 0.5, num_steps=3,
                                     num_chains=2)
    assert torch.isfinite(res.log_likelihood).all()


@pytest.mark.slow
def test_ais_agrees_with_iwae_on_a_trained_vae_decoder():
    target = distributions.two_moons(noise=0.1)
    vae = models.VAE(data_dim=2, latent_dim=2, hidden=(32, 32), decoder_scale=0.1, seed=0)
    vae.fit(target, steps=1500, batch_size=128, seed=0, progress=False)
    x = target.sample(50, seed=1)
    iwae = torch.stack([vae.log_prob(x, num_samples=1000, seed=s) for s in range(4)])
    ais = metrics.ais_log_likelihood(vae.decoder, x, latent_dim=2, sigma=0.1, num_steps=1000)
    iwae_mean = float(iwae.mean())
    iwae_se = float(iwae.mean(1).std()) / 2
    assert abs(ais.mean - iwae_mean) < 3 * math.hypot(ais.mean_stderr, iwae_se) + 0.02
