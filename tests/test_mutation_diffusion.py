"""The diffusion model's denoising objective and noise schedules, checked where mutation testing
found the suite blind.

Truths written from the papers, not from densitylab's code: the linear (VP) schedule
``log abar(t) = -(0.1 t + 9.95 t^2)``, i.e. ``beta(t) = 0.1 + 19.9 t`` integrated (Song et al.,
ICLR 2021, beta_min = 0.1, beta_max = 20); the cosine schedule ``abar(t) = f(t) / f(0)``,
``f(t) = cos^2((c t + s) / (1 + s) pi / 2)``, s = 0.008 (Nichol and Dhariwal, ICML 2021), with
``c`` solved here by bisection so that ``log abar(1) = -10`` as documented; and the DDPM loss
``mean_i |eps_i - eps_theta(x_t_i, t_i)|^2`` (Ho et al., NeurIPS 2020, eq. 14) evaluated by hand
for a known ``eps_theta``. See docs/testing.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from densitylab import models
from densitylab.models.diffusion import NoiseSchedule

S = 0.008


def linear_log_abar(t):
    return -(0.1 * t + 9.95 * t**2)


def _cosine_c():
    def log_abar_end(c):
        u0 = S / (1 + S) * math.pi / 2
        u1 = (c + S) / (1 + S) * math.pi / 2
        return 2 * (math.log(math.cos(u1)) - math.log(math.cos(u0)))

    lo, hi = 0.5, (1 + S) - S - 1e-9  # u1 < pi / 2
    for _ in range(200):  # log abar(1) falls as c grows
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if log_abar_end(mid) > -10 else (lo, mid)
    return 0.5 * (lo + hi)


def cosine_log_abar(t):
    c = _cosine_c()
    u = (c * np.asarray(t) + S) / (1 + S) * math.pi / 2
    u0 = S / (1 + S) * math.pi / 2
    return 2 * (np.log(np.cos(u)) - math.log(math.cos(u0)))


TIMES = np.array([0.0, 1e-8, 1e-5, 0.01, 0.25, 0.5, 0.77, 1.0])


@pytest.mark.parametrize("kind, truth", [("linear", linear_log_abar),
                                         ("cosine", cosine_log_abar)])
def test_schedules_match_their_published_formulas(kind, truth):
    schedule = NoiseSchedule(kind)
    t = torch.tensor(TIMES, dtype=torch.float64)
    want = truth(TIMES)
    np.testing.assert_allclose(schedule.log_alpha_bar(t).numpy(), want, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(schedule.alpha_bar(t).numpy(), np.exp(want), rtol=1e-10)
    # 1 - abar, accurate where abar is within round-off of 1
    np.testing.assert_allclose(schedule.sigma2(t[1:]).numpy(), -np.expm1(want[1:]), rtol=1e-9)
    lam = schedule.log_snr(t[1:]).numpy()
    np.testing.assert_allclose(lam, want[1:] - np.log(-np.expm1(want[1:])), rtol=1e-9)
    # the inverse, from log-SNR values spread over the whole range
    np.testing.assert_allclose(schedule.t_of_log_snr(torch.tensor(lam)).numpy(), TIMES[1:],
                               rtol=1e-6, atol=1e-12)
    grid = schedule.grid(4)
    assert grid.shape == (5,) and grid.dtype == torch.float64
    np.testing.assert_allclose(grid.numpy(), np.exp(truth(np.arange(5) / 4)), rtol=1e-10)
    assert kind == "linear" or cosine_log_abar(1.0) == pytest.approx(-10.0, abs=1e-9)


def test_schedule_accepts_python_numbers_and_rejects_unknown_kinds():
    schedule = NoiseSchedule("linear")
    assert float(schedule.log_alpha_bar(0.5)) == pytest.approx(linear_log_abar(0.5), rel=1e-14)
    assert NoiseSchedule().kind == "linear"
    with pytest.raises(ValueError, match=r"^unknown schedule 'sigmoid'; expected one of "):
        NoiseSchedule("sigmoid")


@pytest.mark.parametrize("time_sampling", ["uniform", "log_snr"])
@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_training_times_follow_the_documented_law(time_sampling, kind):
    t_min = 1e-3
    model = models.Diffusion(data_dim=2, hidden=(8,), schedule=kind, t_min=t_min,
                             time_sampling=time_sampling, seed=0)
    u = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0 - 1e-12], dtype=torch.float64)
    t = model._training_times(u.float())
    assert t.dtype == torch.float64
    log_abar = linear_log_abar if kind == "linear" else cosine_log_abar
    if time_sampling == "uniform":
        np.testing.assert_allclose(t.numpy(), t_min + (1 - t_min) * u.numpy(), rtol=1e-6)
        return

    def lam(s):
        la = log_abar(np.asarray(s, dtype=np.float64))
        return la - np.log(-np.expm1(la))

    lo, hi = lam(1.0), lam(t_min)  # uniform in log-SNR between the ends
    np.testing.assert_allclose(lam(t.numpy()), lo + (hi - lo) * u.float().double().numpy(),
                               rtol=1e-6, atol=1e-6)
    assert float(t[0]) == pytest.approx(1.0, rel=1e-6)
    assert float(t[-1]) == pytest.approx(t_min, rel=1e-4)


@pytest.mark.parametrize("time_sampling", ["uniform", "log_snr"])
def test_denoising_loss_is_the_ddpm_loss_for_a_known_noise_predictor(time_sampling):
    model = models.Diffusion(data_dim=3, hidden=(8,), time_sampling=time_sampling, seed=0)
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(6, 3, generator=gen)
    u = torch.rand(6, generator=gen, dtype=torch.float64)
    noise = torch.randn(6, 3, generator=gen)
    # a fixed, known predictor: eps_theta(x, t) = 0.5 x + t
    model.predict_noise = lambda x, t: 0.5 * x + t[:, None].to(x.dtype)
    loss = model.denoising_loss(x0, u, noise)
    t = model._training_times(u).numpy()
    ab = np.exp(linear_log_abar(t))[:, None]
    xt = np.sqrt(ab) * x0.double().numpy() + np.sqrt(1 - ab) * noise.double().numpy()
    pred = 0.5 * xt + t[:, None]
    want = np.mean(((noise.double().numpy() - pred) ** 2).sum(1))
    assert float(loss) == pytest.approx(want, rel=1e-5)
    assert loss.shape == ()


def test_denoising_loss_sums_over_every_pixel_of_an_image():
    model = models.Diffusion(data_shape=(1, 8, 8), network="conv", conv_width=4, embed_dim=4,
                             seed=0)
    gen = torch.Generator().manual_seed(2)
    x0 = torch.rand(3, 1, 8, 8, generator=gen)
    u = torch.rand(3, generator=gen, dtype=torch.float64)
    noise = torch.randn(3, 1, 8, 8, generator=gen)
    model.predict_noise = lambda x, t: torch.zeros_like(x)  # loss: mean_i |eps_i|^2, all pixels
    want = float((noise.double() ** 2).reshape(3, -1).sum(1).mean())
    assert float(model.denoising_loss(x0, u, noise)) == pytest.approx(want, rel=1e-6)


def test_schedule_values_stay_float64_for_low_precision_inputs():
    schedule = NoiseSchedule("linear")
    # a Python number and a float32 tensor are read in float64 (the docstrings' promise)
    lam = 3.7
    la = np.log(1 / (1 + np.exp(-lam)))  # log abar = log sigmoid(lam)
    want = (-0.1 + math.sqrt(0.01 - 4 * 9.95 * la)) / (2 * 9.95)  # 9.95 t^2 + 0.1 t + la = 0
    for value in (lam, torch.tensor([lam], dtype=torch.float32)):
        t = schedule.t_of_log_snr(value)
        assert t.dtype == torch.float64
        if isinstance(value, float):
            assert float(t) == pytest.approx(want, rel=1e-12)
    # grid points i / 7 are not float32 numbers
    np.testing.assert_allclose(schedule.grid(7).numpy(),
                               np.exp(linear_log_abar(np.arange(8) / 7)), rtol=1e-13)


def test_add_noise_keeps_the_dtype_of_the_data():
    schedule = NoiseSchedule("cosine")
    x0 = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    noise = torch.tensor([[0.3, 0.1], [-1.0, 2.0]])
    t = torch.tensor([0.2, 0.9], dtype=torch.float64)
    xt = schedule.add_noise(x0, noise, t)
    assert xt.dtype == torch.float32
    ab = np.exp(cosine_log_abar(t.numpy()))[:, None]
    np.testing.assert_allclose(xt.numpy(), np.sqrt(ab) * x0.numpy() + np.sqrt(1 - ab)
                               * noise.numpy(), rtol=1e-6)


def test_ancestral_step_draws_from_the_gaussian_posterior_of_the_chain():
    from densitylab.models.diffusion import AncestralSampler

    abar = torch.tensor([1.0, 0.9, 0.6, 0.35, 0.2], dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    noise = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    sampler = AncestralSampler(abar)
    for i, j in ((4, 2), (3, 1), (2, 1), (4, 3)):
        xi = abar[i].sqrt() * x0 + (1 - abar[i]).sqrt() * noise
        # Gaussian conditioning of x_j on x_i given x0, with x_j = sqrt(abar_j) x0 +
        # sqrt(1 - abar_j) e1 and x_i = sqrt(a) x_j + sqrt(1 - a) e2, a = abar_i / abar_j
        ab_i, ab_j = float(abar[i]), float(abar[j])
        a = ab_i / ab_j
        cov = math.sqrt(a) * (1 - ab_j)  # Cov(x_j, x_i)
        mean = math.sqrt(ab_j) * x0 + cov / (1 - ab_i) * (xi - math.sqrt(ab_i) * x0)
        var = (1 - ab_j) - cov**2 / (1 - ab_i)
        z = torch.randn(4, 3, generator=torch.Generator().manual_seed(10 * i + j),
                        dtype=torch.float64)
        got = sampler.step(noise, i, j, xi, torch.Generator().manual_seed(10 * i + j))
        torch.testing.assert_close(got, mean + math.sqrt(var) * z, rtol=1e-12, atol=1e-12)


def _noise_of(x0):
    """The exact noise predictor for data ``x0`` on the linear schedule: the noise that
    produced ``x_t`` from ``x0``, recovered from ``x_t`` and ``t``."""

    def eps_fn(xt, t):
        ab = torch.as_tensor(np.exp(linear_log_abar(t.numpy())))[:, None]
        return (xt.double() - ab.sqrt() * x0.double()) / (1 - ab).sqrt()

    return eps_fn


@pytest.mark.parametrize("timesteps", [1, 2, 3])
@pytest.mark.parametrize("rows", [1, 4])
def test_variational_bound_with_the_exact_noise_is_the_prior_kl_and_the_decoder_constant(
        timesteps, rows):
    """With the noise that made ``x_i`` as the prediction, every ``mu_theta`` is the posterior
    mean, so each KL term is 0 and the decoder's mean is ``x0``: the bound is
    ``-KL(N(sqrt(abar_T) x0, (1 - abar_T) I) || N(0, I)) - d/2 log(2 pi beta_1)``, whatever
    the draws (here from the global generator)."""
    from densitylab.models.diffusion import variational_bound

    x0 = torch.tensor([[3.0, -4.0, 12.0], [0.0, 0.5, -1.0], [1.0, 1.0, 1.0],
                       [-30.0, 2.0, 0.25]], dtype=torch.float64)[:rows]
    d = 3
    ab_T = math.exp(linear_log_abar(1.0))
    beta_1 = -math.expm1(linear_log_abar(1.0 / timesteps))
    mu, var = math.sqrt(ab_T) * x0.numpy(), 1 - ab_T  # q(x_T | x0)
    kl = 0.5 * ((var + mu**2 - 1 - math.log(var)).sum(1))
    want = -kl - 0.5 * d * math.log(2 * math.pi * beta_1)
    torch.manual_seed(0)
    got = variational_bound(_noise_of(x0), x0, NoiseSchedule("linear"), timesteps)
    assert got.dtype == torch.float64 and got.shape == (rows,)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)


def test_variational_bound_terms_and_draws_for_a_known_noise_predictor():
    """An independent evaluation of Ho et al.'s eq. 5 for ``eps_theta(x, t) = 0.5 x + t`` with
    the same float64 draws, the KL terms by torch.distributions. Also: ``eps_fn`` sees ``x_i``
    in the data's dtype and the times in float64, as the model's other callers pass them."""
    from densitylab.models.diffusion import variational_bound

    seen = []

    def eps_fn(x, t):
        seen.append((x.dtype, t.dtype))
        return 0.5 * x + t[:, None].to(x.dtype)

    T = 3
    x0 = torch.tensor([[0.3, -1.2], [2.0, 0.7]], dtype=torch.float64)
    got = variational_bound(eps_fn, x0, NoiseSchedule("linear"), T,
                            generator=torch.Generator().manual_seed(7))
    assert seen == [(torch.float64, torch.float64)] * T
    gen = torch.Generator().manual_seed(7)
    ab = np.exp(linear_log_abar(np.arange(T + 1) / T))
    normal = torch.distributions.Normal
    want = -torch.distributions.kl_divergence(
        normal(math.sqrt(ab[T]) * x0, math.sqrt(1 - ab[T])), normal(0.0, 1.0)).sum(1)
    for i in range(1, T + 1):
        e = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
        xi = math.sqrt(ab[i]) * x0 + math.sqrt(1 - ab[i]) * e
        alpha = ab[i] / ab[i - 1]
        eps = eps_fn(xi, torch.full((2,), i / T, dtype=torch.float64))
        mu_theta = (xi - (1 - alpha) / math.sqrt(1 - ab[i]) * eps) / math.sqrt(alpha)
        if i == 1:
            want = want + normal(mu_theta, math.sqrt(1 - alpha)).log_prob(x0).sum(1)
            continue
        mu_post = (math.sqrt(ab[i - 1]) * (1 - alpha) * x0
                   + math.sqrt(alpha) * (1 - ab[i - 1]) * xi) / (1 - ab[i])
        sd = math.sqrt((1 - alpha) * (1 - ab[i - 1]) / (1 - ab[i]))
        want = want - torch.distributions.kl_divergence(normal(mu_post, sd),
                                                        normal(mu_theta, sd)).sum(1)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    seen.clear()
    variational_bound(eps_fn, x0.float(), NoiseSchedule("linear"), 1)
    assert seen == [(torch.float32, torch.float64)]


def test_variational_bound_needs_one_step():
    from densitylab.models.diffusion import variational_bound

    eps_fn = _noise_of(torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"^timesteps must be >= 1, got 0$"):
        variational_bound(eps_fn, torch.zeros(1, 2), NoiseSchedule("linear"), 0)


def test_predict_noise_reads_any_float_dtype_and_flattens_shaped_data_for_the_mlp():
    model = models.Diffusion(data_shape=(1, 2, 2), network="mlp", hidden=(8,), embed_dim=4,
                             seed=0)
    x = torch.randn(3, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    want = model.noise_predictor(x.float().reshape(3, 4), t.float()).reshape(3, 1, 2, 2)
    got = model.predict_noise(x, t)
    assert got.dtype == torch.float32 and got.shape == (3, 1, 2, 2)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
