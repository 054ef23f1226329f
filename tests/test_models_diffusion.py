"""The diffusion model: the probability-flow likelihood and the variational bound against
closed-form truths on a Gaussian target, the samplers, the shared model interface, and (slow) a
trained model on the ring."""

from __future__ import annotations

import math

import pytest
import torch

from densitylab import distributions, metrics, models
from densitylab.models.diffusion import (
    AncestralSampler,
    DDIMSampler,
    NoiseSchedule,
    probability_flow_log_prob,
    variational_bound,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RING_STEPS = 12000  # training steps of the slow ring test (budget in docs/performance.md)

MU = torch.tensor([0.5, -1.0], dtype=torch.float64)
_L = torch.tensor([[0.8, 0.0], [0.3, 0.4]], dtype=torch.float64)
SIGMA = _L @ _L.T


class GaussianTruth:
    """x0 ~ N(MU, SIGMA) stays Gaussian under the forward process: x_t ~ N(sqrt(abar) MU,
    abar SIGMA + (1 - abar) I), so E[eps | x_t] = sigma(t) cov_t^{-1} (x_t - mean_t) exactly."""

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule

    def marginal(self, t: torch.Tensor) -> torch.distributions.MultivariateNormal:
        ab = self.schedule.alpha_bar(t)
        cov = ab[..., None, None] * SIGMA + (1 - ab)[..., None, None] * torch.eye(2).double()
        return torch.distributions.MultivariateNormal(ab.sqrt()[..., None] * MU, cov)

    def eps(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        m = self.marginal(t)
        sol = torch.linalg.solve(m.covariance_matrix, (x - m.loc).unsqueeze(-1)).squeeze(-1)
        return self.schedule.sigma2(t).sqrt()[:, None] * sol


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_log_snr_inverts_and_ends_near_pure_noise(kind):
    schedule = NoiseSchedule(kind)
    t = torch.tensor([1e-5, 1e-3, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64)
    assert torch.allclose(schedule.t_of_log_snr(schedule.log_snr(t)), t, rtol=0, atol=1e-12)
    assert float(schedule.alpha_bar(torch.tensor(0.0))) == 1.0
    assert float(schedule.alpha_bar(torch.tensor(1.0))) < 1e-4
    grid = schedule.grid(1000)
    assert bool((grid[1:] < grid[:-1]).all())  # every discrete beta_i is positive


def _points(n=200, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return MU + torch.randn(n, 2, generator=gen, dtype=torch.float64) @ _L.T


def _truth(x):
    return torch.distributions.MultivariateNormal(MU, SIGMA).log_prob(x)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_probability_flow_with_the_exact_score_recovers_the_gaussian_log_density(kind):
    truth = GaussianTruth(NoiseSchedule(kind))
    x = _points()
    one = torch.tensor(1.0, dtype=torch.float64)
    # with the true end marginal p_1, only the ODE solver's error remains
    exact_end = probability_flow_log_prob(truth.eps, x, truth.schedule, num_steps=50,
                                          end_log_prob=truth.marginal(one).log_prob)
    assert float((exact_end - _truth(x)).abs().max()) < 1e-3
    # as a diffusion model computes it (p_1 taken as N(0, I)): within 0.01 nats per point
    default = probability_flow_log_prob(truth.eps, x, truth.schedule, num_steps=50)
    assert float((default - _truth(x)).abs().mean()) < 0.01


def test_hutchinson_divergence_is_unbiased_on_the_gaussian():
    truth = GaussianTruth(NoiseSchedule("linear"))
    x = _points(400)
    est = probability_flow_log_prob(truth.eps, x, truth.schedule, num_steps=20,
                                    divergence="hutchinson",
                                    generator=torch.Generator().manual_seed(0))
    err = est - _truth(x)
    stderr = float(err.std()) / math.sqrt(len(err))
    assert stderr > 0  # the estimator is random: a zero spread would mean it never ran
    assert abs(float(err.mean())) < 3 * stderr + 0.01


class RingTruth:
    """The ring (8 Gaussians, std 0.01) stays a Gaussian mixture under the forward process, so
    E[eps | x_t] is closed-form: sigma(t) sum_k r_k(x) (x - sqrt(abar) m_k) / v_k(t)."""

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule
        self.ring = distributions.ring()

    def eps(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        means, stds = self.ring.means.double(), self.ring.stds.double()
        x = x.double()
        ab = self.schedule.alpha_bar(t)[:, None]
        v = ab * stds[None, :] ** 2 + (1 - ab)
        diff = x[:, None, :] - ab.sqrt()[:, :, None] * means[None]
        logits = (self.ring.weights.double().log()[None] - 0.5 * (diff**2).sum(-1) / v
                  - torch.log(v))
        r = torch.softmax(logits, dim=1)
        return self.schedule.sigma2(t).sqrt()[:, None] * (r[..., None] * diff / v[..., None]).sum(1)


def test_probability_flow_with_the_exact_ring_score_recovers_the_ring_log_density():
    truth = RingTruth(NoiseSchedule("linear"))
    x = truth.ring.sample(200, seed=0).double()
    est = probability_flow_log_prob(truth.eps, x, truth.schedule, num_steps=50)
    assert float((est - truth.ring.log_prob(x).double()).abs().mean()) < 0.02


@pytest.mark.parametrize("sampler, steps", [("ancestral", 100), ("ddim", 50)])
def test_samplers_with_the_exact_ring_score_reproduce_the_ring(sampler, steps):
    model = models.Diffusion(data_dim=2, seed=0)
    truth = RingTruth(model.schedule)
    model.predict_noise = lambda x, t: truth.eps(x, t).float()
    cov = metrics.mode_coverage(model.sample(2500, seed=0, sampler=sampler, steps=steps),
                                truth.ring)
    # the target itself puts 98.9 % of its samples within 3 std of a mode
    assert cov.modes_covered == 8 and cov.high_quality_fraction >= 0.97


def _brute_force_bound(eps_fn, x0, schedule, T, chains, gen):
    """E_q[log p(x_{0:T}) - log q(x_{1:T} | x0)] by simulating whole forward chains, with the
    reverse model written out step by step: an independent route to DDPM's bound."""
    abar = schedule.grid(T)
    n = x0.shape[0]
    x0r = x0.repeat(chains, 1)
    normal = torch.distributions.Normal
    xs = [x0r]
    log_q = torch.zeros(len(x0r), dtype=torch.float64)
    for i in range(1, T + 1):
        beta = 1 - float(abar[i] / abar[i - 1])
        nxt = math.sqrt(1 - beta) * xs[-1] + math.sqrt(beta) * torch.randn(
            x0r.shape, generator=gen, dtype=torch.float64)
        log_q = log_q + normal(math.sqrt(1 - beta) * xs[-1], math.sqrt(beta)).log_prob(nxt).sum(1)
        xs.append(nxt)
    log_p = normal(0.0, 1.0).log_prob(xs[T]).sum(1)
    for i in range(T, 0, -1):
        ab_i, ab_prev = float(abar[i]), float(abar[i - 1])
        beta = 1 - ab_i / ab_prev
        eps = eps_fn(xs[i], torch.full((len(x0r),), i / T, dtype=torch.float64))
        mean = (xs[i] - beta / math.sqrt(1 - ab_i) * eps) / math.sqrt(1 - beta)
        var = beta if i == 1 else beta * (1 - ab_prev) / (1 - ab_i)
        log_p = log_p + normal(mean, math.sqrt(var)).log_prob(xs[i - 1]).sum(1)
    return (log_p - log_q).reshape(chains, n)


def test_variational_bound_matches_a_brute_force_chain_simulation_and_lies_below_the_truth():
    truth = GaussianTruth(NoiseSchedule("linear"))
    x = _points(20)
    gen = torch.Generator().manual_seed(0)
    T = 10
    brute = _brute_force_bound(truth.eps, x, truth.schedule, T, 4000, gen)
    bound = variational_bound(truth.eps, x.repeat(200, 1), truth.schedule, T,
                              generator=gen).reshape(200, len(x))
    diff = float(bound.mean() - brute.mean())
    stderr = math.sqrt(float(bound.var()) / bound.numel() + float(brute.var()) / brute.numel())
    assert abs(diff) < 4 * stderr
    # a lower bound on log p, even with the exact noise predictor: the reverse steps' fixed
    # variances beta~ are smaller than the true reverse variances near the data, so the gap
    # does not vanish as T grows (Ho et al. 2020, Table 2; Nichol and Dhariwal 2021)
    gap_10 = _truth(x) - bound.mean(0)
    many = x.repeat(10, 1)
    gap_1000 = _truth(many) - variational_bound(truth.eps, many, truth.schedule, 1000,
                                                generator=gen)
    for gap in (gap_10, gap_1000):
        assert float(gap.mean()) > 3 * float(gap.std()) / math.sqrt(len(gap))


def _small(**kw):
    return models.Diffusion(data_dim=2, hidden=(16, 16), timesteps=50, seed=0, **kw)


def test_fit_sample_and_likelihoods_have_the_interface_shapes_and_are_seeded():
    ring = distributions.ring()
    a, b = _small(), _small()
    ha = a.fit(ring, steps=5, batch_size=32, seed=3, progress=False)
    b.fit(ring, steps=5, batch_size=32, seed=3, progress=False)
    assert len(ha["loss"]) == 5 and all(math.isfinite(v) for v in ha["loss"])
    for sampler in ("ancestral", "ddim"):
        ya = a.sample(7, seed=1, sampler=sampler, steps=10)
        assert ya.shape == (7, 2)
        assert torch.equal(ya, b.sample(7, seed=1, sampler=sampler, steps=10))
    x = ring.sample(6, seed=0)
    lp = a.log_prob(x, ode_steps=5)
    assert lp.shape == (6,) and torch.isfinite(lp).all()
    assert torch.equal(lp, b.log_prob(x, ode_steps=5))
    elbo = a.log_prob(x, method="elbo", seed=0)
    assert torch.equal(elbo, a.elbo(x, seed=0)) and torch.isfinite(elbo).all()
    assert a.has_density and models.make("diffusion", data_dim=2).has_density


def test_ddim_is_deterministic_given_its_start_and_ancestral_is_not():
    model = _small()
    # DDIM draws only its starting noise: the same start gives the same samples, and they differ
    # from ancestral sampling's, which adds noise at every step but the last
    d1 = model.sample(5, seed=9, sampler="ddim", steps=10)
    anc = model.sample(5, seed=9, sampler="ancestral", steps=10)
    assert torch.equal(d1, model.sample(5, seed=9, sampler="ddim", steps=10))
    assert not torch.allclose(d1, anc)


def test_save_load_round_trip(tmp_path):
    model = _small(schedule="cosine", sampler="ddim", sample_steps=5)
    model.fit(distributions.ring(), steps=2, batch_size=16, seed=0, progress=False)
    path = model.save(tmp_path / "dif.pt")
    back = models.load(path)
    assert isinstance(back, models.Diffusion) and back.config == model.config
    assert torch.equal(back.sample(4, seed=0), model.sample(4, seed=0))


def test_conv_network_on_digit_shaped_images():
    model = models.Diffusion(data_shape=(1, 8, 8), network="conv", conv_width=8, timesteps=20,
                             seed=0)
    x = torch.rand(16, 1, 8, 8)
    model.fit(x, steps=2, batch_size=8, seed=0, progress=False)
    assert model.sample(3, seed=0).shape == (3, 1, 8, 8)
    lp = model.log_prob(x[:3], ode_steps=3, seed=0)  # 64 dims: Hutchinson's estimator
    assert lp.shape == (3,) and torch.isfinite(lp).all()


@pytest.mark.parametrize("kwargs, error", [
    ({"schedule": "quadratic"}, ValueError),
    ({"sampler": "euler"}, ValueError),
    ({"timesteps": 0}, ValueError),
    ({"timesteps": 10, "sample_steps": 11}, ValueError),
    ({"t_min": 1.5}, ValueError),
    ({"embed_dim": 7}, ValueError),
    ({"time_sampling": "beta"}, ValueError),
    ({"hidden": 16}, TypeError),
    ({"network": "conv"}, ValueError),  # flat data
])
def test_bad_arguments_name_the_argument(kwargs, error):
    with pytest.raises(error):
        models.Diffusion(data_dim=2, **kwargs)


def test_bad_call_arguments():
    model = _small()
    with pytest.raises(ValueError, match="method"):
        model.log_prob(torch.zeros(2, 2), method="exact")
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="steps"):
        model.sample(2, steps=51)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trained_diffusion_covers_every_ring_mode_sharply(seed):
    ring = distributions.ring()
    model = models.Diffusion(data_dim=2, seed=seed)
    model.fit(ring, steps=RING_STEPS, batch_size=256, seed=seed, lr=3e-3, lr_schedule="cosine",
              progress=False)
    cov = metrics.mode_coverage(model.sample(2500, seed=seed + 100), ring)
    assert cov.modes_covered == 8
    assert cov.high_quality_fraction >= 0.9
    x = ring.sample(500, seed=seed + 200)
    held_out = float(model.log_prob(x, ode_steps=25).mean())
    target = float(ring.log_prob(x).mean())
    # reported beside the target's own log-density: a model cannot beat the truth by much
    # (a finite sample and the ODE's approximations leave a little room), and a sharp model
    # comes close to it (a blurred ring would score several nats lower)
    assert held_out < target + 0.5
    assert held_out > target - 3.0


def test_noise_predictor_names_and_the_saved_key(tmp_path):
    model = models.Diffusion(data_dim=2, hidden=(8,), timesteps=10, seed=0)
    x, t = torch.randn(4, 2), torch.rand(4, dtype=torch.float64)
    with pytest.warns(DeprecationWarning, match="predict_noise"):
        old = model.eps(x, t)
    assert torch.equal(old, model.predict_noise(x, t))
    assert model.noise_predictor is model.networks["eps"]
    # saved files keep the network's key "eps", so files load with earlier and later versions
    path = model.save(tmp_path / "dif.pt")
    keys = torch.load(path, weights_only=True)["state_dict"]
    assert keys and all(k.startswith("eps.") for k in keys)
    assert torch.equal(models.load(path).predict_noise(x, t), model.predict_noise(x, t))


def test_schedule_adds_noise_and_the_sampler_steps_invert_it_given_the_true_noise():
    schedule = NoiseSchedule("cosine")
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    noise = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    T, i, j = 20, 12, 5
    abar = schedule.grid(T)
    xt = schedule.add_noise(x0, noise, torch.full((5,), i / T, dtype=torch.float64))
    torch.testing.assert_close(xt, abar[i].sqrt() * x0 + (1 - abar[i]).sqrt() * noise)
    # DDIM with the true noise moves along the same noise: x_j = add_noise(x0, noise, t_j)
    torch.testing.assert_close(DDIMSampler(abar).step(noise, i, j, xt),
                               abar[j].sqrt() * x0 + (1 - abar[j]).sqrt() * noise)
    # the ancestral step to the data (j = 0) adds no noise and returns x0
    torch.testing.assert_close(AncestralSampler(abar).step(noise, i, 0, xt), x0)
