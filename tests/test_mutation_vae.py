"""The VAE's ELBO objectives, checked where mutation testing found the suite blind.

Truths independent of Pyro: the negative ELBO of one reparameterised draw written out with
``torch.distributions`` (``z = loc + scale * eps``; Kingma and Welling, ICLR 2014), and, for a
linear decoder whose guide is the exact posterior, ``log p(x)`` of probabilistic PCA (Tipping
and Bishop 1999), which every importance log-weight then equals whatever the draw. See
docs/testing.md.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.distributions as D
from pyro import poutine

from densitylab import models, testing
from densitylab.models.vae import GivenNoiseNormal, trace_log_prob

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def private_param_store():
    """Calling the model's Pyro program directly registers its networks in Pyro's global
    parameter store; keep that out of the tests that check the store stays empty."""
    with pyro.get_param_store().scope():
        yield


def linear_vae(model: testing.LinearGaussianModel, *, exact: bool) -> models.VAE:
    """A float64 linear VAE with the model's decoder; its guide is the exact posterior when
    ``exact`` (the model's W must have orthogonal columns), else shifted and widened."""
    d, latent = model.w.shape
    vae = models.VAE(data_dim=d, latent_dim=latent, network="linear", decoder_scale=model.s,
                     seed=0)
    vae.networks.double()
    cov = torch.linalg.inv(torch.eye(latent, dtype=torch.float64) + model.w.T @ model.w
                           / model.s**2)
    gain = cov @ model.w.T / model.s**2  # posterior mean = gain (x - b)
    with torch.no_grad():
        vae.decoder.net.net[0].weight.copy_(model.w)
        vae.decoder.net.net[0].bias.copy_(model.b)
        enc = vae.encoder.net.net[0]
        enc.weight.zero_()
        enc.weight[:latent].copy_(gain)
        enc.bias[:latent].copy_(-gain @ model.b + (0.0 if exact else 0.3))
        enc.bias[latent:].copy_(0.5 * torch.log(torch.diagonal(cov)) + (0.0 if exact else 0.4))
    return vae


def orthogonal_model(n: int = 7) -> testing.LinearGaussianModel:
    q, _ = torch.linalg.qr(torch.tensor([[1.0, 0.3, -0.2], [0.2, 1.0, 0.4], [-0.5, 0.1, 1.0]],
                                        dtype=torch.float64))
    w = q[:, :2] * torch.tensor([1.5, 0.7], dtype=torch.float64)
    b = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    x = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4)) + b
    # the VAE keeps its fixed decoder std as a log in a float32 buffer: use the value it holds
    vae = models.VAE(data_dim=3, latent_dim=2, network="linear", decoder_scale=0.5)
    vae.networks.double()
    return testing.LinearGaussianModel(w, b, float(vae.decoder.scale()), x)


@pytest.mark.parametrize("num_samples, chunk_size", [(1, 65536), (3, 65536), (3, 6), (4, 1)])
def test_every_log_weight_is_log_p_when_the_guide_is_the_posterior(num_samples, chunk_size):
    model = orthogonal_model()
    vae = linear_vae(model, exact=True)
    lw = vae.log_weights(model.x, num_samples=num_samples, seed=2, chunk_size=chunk_size)
    assert lw.shape == (num_samples, len(model.x))
    testing.assert_close(lw, model.log_marginal().expand(num_samples, -1), rtol=1e-10,
                         name="log-weights at the exact posterior")
    testing.assert_close(vae.elbo(model.x, num_samples, seed=2), model.log_marginal(),
                         rtol=1e-10)
    testing.assert_close(vae.log_prob(model.x, num_samples, seed=2), model.log_marginal(),
                         rtol=1e-10)


def test_the_trace_objective_is_the_negative_elbo_of_the_given_draw():
    model = orthogonal_model()
    vae = linear_vae(model, exact=False)
    eps = torch.randn(len(model.x), 2, dtype=torch.float64,
                      generator=torch.Generator().manual_seed(5))
    loc, scale = vae.encoder(model.x)
    z = loc + scale * eps
    log_q = D.Normal(loc, scale).log_prob(z).sum(1)
    want = -(model.log_joint(model.x, z) - log_q).mean()
    got = vae.trace_elbo_objective(model.x, eps)
    testing.assert_close(got, want.detach(), rtol=1e-10, name="negative ELBO of the draw")
    # the same draw by the sampling path: log_weights' mean over many draws is the ELBO, the
    # objective's expectation (Kingma and Welling 2014), within 6 standard errors
    lw = vae.log_weights(model.x, num_samples=4000, seed=1)
    draws = torch.stack([vae.trace_elbo_objective(model.x, torch.randn(
        len(model.x), 2, dtype=torch.float64, generator=torch.Generator().manual_seed(s)))
        for s in range(200)])
    se = float(draws.std()) / math.sqrt(200) + float(lw.mean(0).std()) / 60
    assert abs(float(draws.mean()) + float(lw.mean())) < 6 * se + 1e-9


def test_the_bernoulli_objective_is_the_binary_cross_entropy_of_the_draw():
    vae = models.VAE(data_dim=4, latent_dim=2, network="linear", likelihood="bernoulli", seed=0)
    vae.networks.double()
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(5, 4, generator=gen, dtype=torch.float64)  # grey levels are admitted
    eps = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    loc, scale = vae.encoder(x)
    z = loc + scale * eps
    logits = vae.decoder(z)
    log_lik = (x * torch.nn.functional.logsigmoid(logits)
               + (1 - x) * torch.nn.functional.logsigmoid(-logits)).sum(1)
    log_prior = D.Normal(0.0, 1.0).log_prob(z).sum(1)
    log_q = D.Normal(loc, scale).log_prob(z).sum(1)
    want = -(log_lik + log_prior - log_q).mean()
    testing.assert_close(vae.trace_elbo_objective(x, eps), want.detach(), rtol=1e-10)


def test_given_noise_fixes_the_draw():
    loc, scale = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
    eps = torch.tensor([0.2, -1.0])
    q = GivenNoiseNormal(loc, scale, eps)
    assert torch.equal(q.rsample(), loc + scale * eps)
    wide = q.expand((3, 2))
    assert isinstance(wide, GivenNoiseNormal)
    assert torch.equal(wide.rsample(), (loc + scale * eps).expand(3, 2))
    assert torch.equal(wide.log_prob(wide.rsample()), D.Normal(loc, scale).log_prob(
        loc + scale * eps).expand(3, 2))
    with pytest.raises(ValueError, match=r"^the given noise fixes the draw; sample_shape must "
                                         r"be empty$"):
        q.rsample((2,))


def drawn_log_weights(vae, model, k, seed):
    """``log p(x, z) - log q(z | x)`` for ``z = loc + scale * eps``, ``eps`` the first ``k n``
    standard normals of the seeded global stream, draw-major ``(k, n)``."""
    n, d = model.x.shape
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        eps = torch.randn(k * n, vae.latent_dim, dtype=torch.float64)
    xr = model.x.expand(k, n, d).reshape(k * n, d)
    loc, scale = vae.encoder(xr)
    z = loc + scale * eps
    return (model.log_joint(xr, z) - D.Normal(loc, scale).log_prob(z).sum(-1)).reshape(k, n)


def test_log_weights_elbo_and_iwae_of_seeded_draws_from_a_mismatched_guide():
    model = orthogonal_model(5)
    vae = linear_vae(model, exact=False)
    with torch.no_grad():
        testing.assert_close(vae.log_weights(model.x, 3, seed=11),
                             drawn_log_weights(vae, model, 3, 11), rtol=1e-10)
        # the defaults: one draw for the ELBO, K = 100 for the IWAE bound
        testing.assert_close(vae.elbo(model.x, seed=4), drawn_log_weights(vae, model, 1, 4)[0],
                             rtol=1e-10)
        lw = drawn_log_weights(vae, model, 100, 4)
        iwae = torch.logsumexp(lw, dim=0) - math.log(100)
        testing.assert_close(vae.log_prob(model.x, seed=4), iwae, rtol=1e-10)
        assert vae.log_weights(model.x, seed=4).shape == (1, 5)
        # unseeded: draws from the global stream, which is left where it was
        state = torch.get_rng_state()
        assert vae.log_weights(model.x, 2).shape == (2, 5)
        assert torch.equal(torch.get_rng_state(), state)


def test_log_weights_read_the_data_in_the_models_dtype():
    vae = models.VAE(data_dim=3, latent_dim=2, network="linear", seed=0)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lw = vae.log_weights(x, 2, seed=1)
    assert lw.dtype == torch.float32
    assert torch.equal(lw, vae.log_weights(x.float(), 2, seed=1))


def test_log_weights_reject_bad_counts_and_seeds_by_name():
    vae = models.VAE(data_dim=3, latent_dim=2, network="linear", seed=0)
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"^num_samples must be >= 1, got 0$"):
        vae.log_weights(x, 0)
    with pytest.raises(ValueError, match=r"^seed must be >= 0, got -1$"):
        vae.log_weights(x, 1, seed=-1)


def test_model_and_guide_put_the_latent_in_one_plate_over_the_batch():
    """Pyro pairs a guide's sites with the model's by name and plate: the model's ``z`` and
    observed ``x`` and the guide's ``z`` sit in the same plate, of the batch's size."""
    model = orthogonal_model(5)
    vae = linear_vae(model, exact=False)

    def frames(site):
        return [(f.name, f.size, f.dim) for f in site["cond_indep_stack"]]

    model_tr = poutine.trace(vae.model).get_trace(model.x)
    guide_tr = poutine.trace(vae.guide).get_trace(model.x)
    plate = frames(guide_tr.nodes["z"])
    assert len(plate) == 1 and plate[0][1] == 5
    assert frames(model_tr.nodes["z"]) == plate == frames(model_tr.nodes["x"])
    assert model_tr.nodes["x"]["is_observed"]
    assert torch.equal(model_tr.nodes["x"]["value"], model.x)


def test_trace_log_prob_sums_every_sample_site():
    a = torch.tensor([[0.5, -1.0, 2.0], [0.0, 1.5, -0.3]])
    b = torch.tensor([1.0, -4.0, 0.25])

    def program():
        with pyro.plate("cols", 3, dim=-1):
            with pyro.plate("rows", 2, dim=-2):
                pyro.sample("a", dist.Normal(0.0, 1.0), obs=a)
            pyro.sample("b", dist.Normal(0.0, 2.0), obs=b)

    def log_normal(v, s):
        return -0.5 * (v / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)

    total = trace_log_prob(poutine.trace(program).get_trace())
    torch.testing.assert_close(total, log_normal(a, 1.0) + log_normal(b, 2.0))
    # each site first summed over its last dimension: a per row, b in full
    by_row = trace_log_prob(poutine.trace(program).get_trace(), sum_dim=-1)
    torch.testing.assert_close(by_row, log_normal(a, 1.0).sum(1) + log_normal(b, 2.0).sum())


def test_given_noise_normal_follows_its_own_validation_flag():
    loc, scale, eps = torch.zeros(2), torch.tensor([1.0, -1.0]), torch.zeros(2)
    for globally in (True, False):
        with pyro.validation_enabled(globally):
            GivenNoiseNormal(loc, scale, eps, validate_args=False)  # no check of the scale
            with pytest.raises(ValueError):
                GivenNoiseNormal(loc, scale, eps, validate_args=True)
