"""Toy targets: the published protocol's geometry, exact densities, seeding and input checks."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from densitylab import distributions as D


def test_ring_matches_protocol_means_and_has_k_distinct_modes():
    p = D.ring()
    angles = 2 * np.pi * np.arange(8) / 8
    expected = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    np.testing.assert_allclose(p.means.numpy(), expected, atol=1e-6)
    assert torch.unique(p.means.round(decimals=5), dim=0).shape[0] == 8
    assert p.isotropic_std == pytest.approx(0.01)
    np.testing.assert_allclose(p.weights.numpy(), np.full(8, 1 / 8), rtol=1e-6)


def test_grid_matches_protocol_means():
    q = D.grid()
    got = {tuple(row) for row in q.means.numpy().round(6).tolist()}
    assert got == {(a, b) for a in (-4.0, -2.0, 0.0, 2.0, 4.0) for b in (-4.0, -2.0, 0.0, 2.0, 4.0)}
    assert q.isotropic_std == pytest.approx(0.05)


def test_mixture_log_prob_matches_scipy():
    means = np.array([[0.0, 1.0], [2.0, -1.0], [-3.0, 0.5]])
    stds = np.array([[0.5, 1.5], [1.0, 0.3], [2.0, 2.0]])
    weights = np.array([0.2, 0.5, 0.3])
    g = D.GaussianMixture(means, stds, weights, dtype=torch.float64)
    x = np.random.default_rng(0).normal(size=(50, 2)) * 3
    dens = sum(
        w * stats.multivariate_normal(m, np.diag(s**2)).pdf(x)
        for m, s, w in zip(means, stds, weights, strict=True)
    )
    np.testing.assert_allclose(g.log_prob(x).numpy(), np.log(dens), rtol=1e-10)


def test_log_prob_is_finite_far_from_every_mode():
    p = D.ring(dtype=torch.float64)
    lp = p.log_prob(torch.tensor([[100.0, 100.0]], dtype=torch.float64))
    assert torch.isfinite(lp).all()
    # Far away the nearest mode dominates: log p ~ log(1/8) + log N(d; 0, s^2 I).
    d2 = float(((torch.tensor([100.0, 100.0], dtype=torch.float64) - p.means) ** 2).sum(1).min())
    expected = math.log(1 / 8) - d2 / (2 * 0.01**2) - 2 * math.log(0.01) - math.log(2 * math.pi)
    assert float(lp) == pytest.approx(expected, rel=1e-9)


def test_samples_follow_the_mixture():
    g = D.GaussianMixture([[0.0, 0.0], [10.0, 0.0]], [1.0, 0.5], [0.25, 0.75], dtype=torch.float64)
    x, comp = g.sample_with_labels(20_000, seed=1)
    assert abs(float((comp == 1).double().mean()) - 0.75) < 0.02
    second = x[comp == 1]
    assert abs(float(second[:, 0].mean()) - 10.0) < 0.03
    assert abs(float(second[:, 0].std()) - 0.5) < 0.02


@pytest.mark.parametrize("name", D.available())
def test_same_seed_same_samples(name):
    t = D.make(name)
    assert torch.equal(t.sample(100, seed=3), t.sample(100, seed=3))
    assert not torch.equal(t.sample(100, seed=3), t.sample(100, seed=4))
    assert t.sample(7).shape == (7, 2)


def test_checkerboard_density_integrates_to_one_and_matches_samples():
    c = D.checkerboard(side=4)
    x = c.sample(5000, seed=0)
    assert torch.isfinite(c.log_prob(x)).all()
    # Riemann sum of the density over a fine grid covering the support.
    h = 0.01
    axis = torch.arange(-2 + h / 2, 2, h)
    pts = torch.cartesian_prod(axis, axis)
    assert float(c.log_prob(pts).exp().sum() * h * h) == pytest.approx(1.0, abs=1e-3)


def test_targets_without_density_say_so():
    with pytest.raises(NotImplementedError, match="no closed-form density"):
        D.two_moons().log_prob(torch.zeros(3, 2))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: D.GaussianMixture([[0.0, 0.0]], [0.0]), ValueError, "stds"),
        (lambda: D.GaussianMixture([[0.0, 0.0]], [1.0, 2.0]), ValueError, "stds"),
        (lambda: D.GaussianMixture([0.0, 0.0], [1.0]), ValueError, "means"),
        (lambda: D.GaussianMixture([[np.nan, 0.0]], [1.0]), ValueError, "means"),
        (lambda: D.GaussianMixture([[0.0, 0.0]], [1.0], [-1.0]), ValueError, "weights"),
        (lambda: D.ring(n_modes=0), ValueError, "n_modes"),
        (lambda: D.grid(std=-1), ValueError, "std"),
        (lambda: D.make("rng"), ValueError, "unknown dataset 'rng'"),
        (lambda: D.make("ring", radius="1"), TypeError, "radius"),
        (lambda: D.ring().sample(-1), ValueError, "n"),
        (lambda: D.ring().log_prob(torch.zeros(3, 3)), ValueError, "columns"),
    ],
)
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
