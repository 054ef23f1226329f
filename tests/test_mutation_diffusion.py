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
