"""k-NN KL and entropy against analytic Gaussian values; Monte Carlo KL against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from densitylab import distributions, metrics


def gaussian_kl(m0, s0, m1, s1):
    """KL(N(m0, s0) || N(m1, s1)), the closed form."""
    d = len(m0)
    s1_inv = np.linalg.inv(s1)
    diff = m1 - m0
    return 0.5 * (np.trace(s1_inv @ s0) + diff @ s1_inv @ diff - d
                  + np.log(np.linalg.det(s1) / np.linalg.det(s0)))


PAIRS = [
    # isotropic, shifted mean
    (np.zeros(2), np.eye(2), np.array([1.0, 0.0]), np.eye(2)),
    # anisotropic and correlated P against an axis-aligned, broader Q
    (np.zeros(2), np.array([[1.0, 0.6], [0.6, 0.5]]), np.array([0.3, -0.4]), np.diag([1.5, 2.0])),
    # anisotropic P, isotropic Q
    (np.zeros(2), np.diag([0.25, 2.0]), np.zeros(2), np.eye(2)),
]


@pytest.mark.parametrize(("m0", "s0", "m1", "s1"), PAIRS)
def test_kl_knn_matches_analytic_gaussian_kl(m0, s0, m1, s1):
    n = 20_000
    estimates = []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        x = rng.multivariate_normal(m0, s0, n)
        y = rng.multivariate_normal(m1, s1, n)
        estimates.append(metrics.kl_knn(x, y))
    assert np.mean(estimates) == pytest.approx(gaussian_kl(m0, s0, m1, s1), abs=0.05)


def test_kl_knn_near_zero_for_same_distribution():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(10_000, 2)), rng.normal(size=(10_000, 2))
    assert abs(metrics.kl_knn(x, y)) < 0.05


def test_kl_knn_brute_force_path_agrees_with_tree():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(400, 3)), rng.normal(size=(300, 3)) + 0.5
    tree = metrics.kl_knn(x, y, k=3, method="kdtree")
    brute = metrics.kl_knn(torch.tensor(x), torch.tensor(y), k=3, method="brute")
    assert brute == pytest.approx(tree, rel=1e-9)


def test_kl_knn_matches_formula_from_scratch():
    """The WKV formula written out with a full distance matrix."""
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(70, 2)) * 2
    k = 2
    dxx = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    np.fill_diagonal(dxx, np.inf)
    dxy = np.sqrt(((x[:, None] - y[None]) ** 2).sum(-1))
    rho = np.sort(dxx, 1)[:, k - 1]
    nu = np.sort(dxy, 1)[:, k - 1]
    want = 2 * np.mean(np.log(nu / rho)) + np.log(70 / 49)
    assert metrics.kl_knn(x, y, k=k) == pytest.approx(want, rel=1e-12)


def test_kl_knn_duplicates_are_finite_and_documented_rule():
    """Duplicates: the k-th strictly positive distance is used (coincident points count once)."""
    rng = np.random.default_rng(10)
    base = rng.normal(size=(300, 2))
    y = rng.normal(size=(300, 2)) + 0.5
    x_dup = np.concatenate([base, base[:50]])  # 50 exact duplicates
    y_dup = np.concatenate([y, base[:10]])     # y shares 10 points with x
    value = metrics.kl_knn(x_dup, y_dup)
    assert math.isfinite(value)
    # The rule from scratch: distances equal to zero are skipped.
    dxx = np.sqrt(((x_dup[:, None] - x_dup[None]) ** 2).sum(-1))
    dxy = np.sqrt(((x_dup[:, None] - y_dup[None]) ** 2).sum(-1))
    rho = np.array([np.min(r[r > 0]) for r in dxx])
    nu = np.array([np.min(r[r > 0]) for r in dxy])
    want = 2 * np.mean(np.log(nu / rho)) + np.log(len(y_dup) / (len(x_dup) - 1))
    assert value == pytest.approx(want, rel=1e-12)
    brute = metrics.kl_knn(torch.tensor(x_dup), torch.tensor(y_dup), method="brute")
    assert brute == pytest.approx(want, rel=1e-9)


def test_kl_knn_all_identical_points_raise():
    with pytest.raises(ValueError, match="distinct"):
        metrics.kl_knn(np.ones((10, 2)), np.random.default_rng(0).normal(size=(10, 2)))


def test_entropy_knn_matches_gaussian_entropy():
    rng = np.random.default_rng(11)
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    x = rng.multivariate_normal(np.zeros(2), cov, 20_000)
    analytic = 0.5 * np.log((2 * np.pi * np.e) ** 2 * np.linalg.det(cov))
    assert metrics.entropy_knn(x) == pytest.approx(analytic, abs=0.03)
    x3 = rng.normal(size=(5000, 3)) * 0.5
    analytic3 = 0.5 * np.log((2 * np.pi * np.e * 0.25) ** 3)
    assert metrics.entropy_knn(x3, k=3) == pytest.approx(analytic3, abs=0.05)


def test_kl_mc_matches_analytic_gaussian_kl():
    p = distributions.GaussianMixture([[0.0, 0.0]], [[1.0, 0.5]], dtype=torch.float64)
    q = distributions.GaussianMixture([[1.0, -0.5]], [[2.0, 1.0]], dtype=torch.float64)
    res = metrics.kl_mc(p, q, 50_000, seed=0)
    m1 = np.array([1.0, -0.5])
    want = gaussian_kl(np.zeros(2), np.diag([1.0, 0.25]), m1, np.diag([4.0, 1.0]))
    assert res.num_samples == 50_000
    assert 0 < res.stderr < 0.01
    assert abs(res.value - want) < 4 * res.stderr
    assert res == metrics.kl_mc(p, q, 50_000, seed=0)  # seeded
    assert metrics.kl_mc(p, p, 1000, seed=1).value == pytest.approx(0.0, abs=1e-12)


def test_kl_mc_rejects_targets_without_density():
    p = distributions.GaussianMixture([[0.0, 0.0]], [1.0])
    with pytest.raises(TypeError, match="q"):
        metrics.kl_mc(p, distributions.two_moons(), 100)
    with pytest.raises(TypeError, match="p"):
        metrics.kl_mc(object(), p, 100)
    with pytest.raises(ValueError, match="num_samples"):
        metrics.kl_mc(p, p, 1)


@pytest.mark.parametrize(
    ("call", "exc", "word"),
    [
        (lambda x, y: metrics.kl_knn(x, y, k=0), ValueError, "k"),
        (lambda x, y: metrics.kl_knn(x[:3], y, k=3), ValueError, "x"),
        (lambda x, y: metrics.kl_knn(x, y[:2], k=3), ValueError, "y"),
        (lambda x, y: metrics.kl_knn(x, y[:, :1]), ValueError, "feature"),
        (lambda x, y: metrics.kl_knn(x[:, 0], y), ValueError, "dimension"),
        (lambda x, y: metrics.kl_knn(x, y, method="ball"), ValueError, "method"),
        (lambda x, y: metrics.kl_knn(np.where(x > 1, np.nan, x), y), ValueError, "NaN"),
        (lambda x, y: metrics.entropy_knn(x, k=2.5), TypeError, "k"),
    ],
)
def test_bad_inputs_raise(call, exc, word):
    rng = np.random.default_rng(0)
    with pytest.raises(exc, match=word):
        call(rng.normal(size=(20, 2)), rng.normal(size=(20, 2)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_kl_knn_cuda_paths_agree():
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(2000, 10)), rng.normal(size=(2000, 10)) + 0.2
    cpu = metrics.kl_knn(x, y)
    gpu = metrics.kl_knn(torch.tensor(x, device="cuda"), torch.tensor(y, device="cuda"))
    assert gpu == pytest.approx(cpu, rel=1e-9)
