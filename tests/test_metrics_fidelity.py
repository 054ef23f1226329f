"""PRDC, KID and the Frechet distance against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from densitylab import metrics


def _brute_prdc(real, fake, k):
    """Naeem et al. (2020) written from the definitions with full distance matrices."""
    drr = np.sqrt(((real[:, None] - real[None]) ** 2).sum(-1))
    dff = np.sqrt(((fake[:, None] - fake[None]) ** 2).sum(-1))
    drf = np.sqrt(((real[:, None] - fake[None]) ** 2).sum(-1))  # (N, M)
    r_rad = np.sort(drr, 1)[:, k]  # column 0 is the point itself
    f_rad = np.sort(dff, 1)[:, k]
    precision = np.mean((drf <= r_rad[:, None]).any(0))
    recall = np.mean((drf <= f_rad[None, :]).any(1))
    density = (drf < r_rad[:, None]).sum() / (k * len(fake))
    coverage = np.mean(drf.min(1) <= r_rad)
    return precision, recall, density, coverage


def test_prdc_matches_brute_force():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(120, 4))
    fake = rng.normal(size=(90, 4)) * 1.2 + 0.3
    got = metrics.prdc(real, fake, k=5, block_size=16)
    want = _brute_prdc(real, fake, 5)
    np.testing.assert_allclose(
        [got.precision, got.recall, got.density, got.coverage], want, rtol=1e-12
    )
    high_d = metrics.prdc(real @ rng.normal(size=(4, 40)), fake @ rng.normal(size=(4, 40)), k=3)
    assert 0 <= high_d.precision <= 1


def test_prdc_identical_sets_give_ones_even_with_duplicates():
    x = np.random.default_rng(1).normal(size=(200, 2))
    res = metrics.prdc(x, x, k=5)
    assert (res.precision, res.recall, res.density, res.coverage) == (1.0, 1.0, 1.0, 1.0)
    dup = np.concatenate([x, x])  # every point twice: radii stay positive for k=5
    res = metrics.prdc(dup, dup, k=5)
    assert (res.precision, res.recall, res.coverage) == (1.0, 1.0, 1.0)
    heavy = np.repeat(x[:20], 10, axis=0)  # 10 copies each: k-NN radius 0 for k=5
    res = metrics.prdc(heavy, heavy, k=5)
    assert (res.precision, res.recall, res.coverage) == (1.0, 1.0, 1.0)


def test_prdc_far_apart_sets_give_zeros():
    rng = np.random.default_rng(2)
    res = metrics.prdc(rng.normal(size=(100, 2)), rng.normal(size=(80, 2)) + 100.0, k=5)
    assert (res.precision, res.recall, res.density, res.coverage) == (0.0, 0.0, 0.0, 0.0)


def _brute_kid_subset(a, b, degree=3, coef0=1.0):
    g = 1.0 / a.shape[1]
    kxx = (g * a @ a.T + coef0) ** degree
    kyy = (g * b @ b.T + coef0) ** degree
    kxy = (g * a @ b.T + coef0) ** degree
    n = len(a)
    return ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (n * (n - 1)) \
        - 2 * kxy.mean()


def test_kid_matches_brute_force_over_the_same_subsets():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(150, 6))
    fake = rng.normal(size=(130, 6)) + 0.2
    res = metrics.kid(real, fake, num_subsets=7, subset_size=50, seed=4)
    gen = torch.Generator().manual_seed(4)
    vals = []
    for _ in range(7):
        i = torch.randperm(150, generator=gen)[:50].numpy()
        j = torch.randperm(130, generator=gen)[:50].numpy()
        vals.append(_brute_kid_subset(real[i], fake[j]))
    assert res.mean == pytest.approx(np.mean(vals), rel=1e-10)
    assert res.std == pytest.approx(np.std(vals), rel=1e-8)
    assert res == metrics.kid(real, fake, num_subsets=7, subset_size=50, seed=4)
    with pytest.raises(ValueError, match="subset_size"):
        metrics.kid(real, fake, subset_size=1000)


def test_frechet_distance_matches_scipy_sqrtm_on_fitted_gaussians():
    rng = np.random.default_rng(5)
    a = rng.multivariate_normal([0, 1, 2], [[2, 0.3, 0], [0.3, 1, 0.2], [0, 0.2, 0.5]], 3000)
    b = rng.multivariate_normal([0.5, 1, 1], [[1, 0, 0], [0, 2, 0.4], [0, 0.4, 1]], 2000)
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    want = ((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) \
        - 2 * np.trace(scipy.linalg.sqrtm(ca @ cb).real)
    assert metrics.frechet_distance(a, b) == pytest.approx(want, rel=1e-9)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_singular_covariance_is_finite():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(10, 50))  # rank-deficient covariance (n < d)
    b = rng.normal(size=(12, 50))
    value = metrics.frechet_distance(a, b)
    assert np.isfinite(value) and value > 0


@pytest.mark.parametrize(
    ("call", "exc", "word"),
    [
        (lambda r, f: metrics.prdc(r, f, k=0), ValueError, "k"),
        (lambda r, f: metrics.prdc(r[:5], f, k=5), ValueError, "real"),
        (lambda r, f: metrics.prdc(r, f[:, :2], k=5), ValueError, "feature"),
        (lambda r, f: metrics.kid(r, f, num_subsets=0), ValueError, "num_subsets"),
        (lambda r, f: metrics.kid(r, f, subset_size=10, degree=0), ValueError, "degree"),
        (lambda r, f: metrics.frechet_distance(r[:1], f), ValueError, "real_features"),
        (lambda r, f: metrics.frechet_distance(r, np.where(f > 1, np.nan, f)), ValueError, "fake"),
    ],
)
def test_bad_inputs(call, exc, word):
    rng = np.random.default_rng(0)
    with pytest.raises(exc, match=word):
        call(rng.normal(size=(20, 3)), rng.normal(size=(20, 3)))


def test_prdc_radii_skip_duplicates_of_a_resampled_reference_set():
    # A reference set resampled from 200 distinct points (each drawn 10 times) and fakes that
    # are those points moved by a hair: every fake sits inside its point's ball, so precision
    # and coverage are 1. Radii that counted duplicates would be 0 and give precision 0.
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(200, 3, generator=gen, dtype=torch.float64)
    real = base.repeat(10, 1)
    fake = base + 1e-6 * torch.randn(200, 3, generator=gen, dtype=torch.float64)
    result = metrics.prdc(real, fake, k=5)
    assert result.precision == 1.0
    assert result.coverage == 1.0
    assert metrics.prdc(real, real, k=5).recall == 1.0


def test_prdc_rejects_a_set_with_fewer_than_k_distinct_positions():
    real = torch.zeros(20, 2, dtype=torch.float64)
    real[18:] = 1.0  # the 18 points at 0 have only 2 points at a positive distance
    fake = torch.randn(20, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with pytest.raises(ValueError, match="real has fewer than k=5 distinct neighbour positions"):
        metrics.prdc(real, fake, k=5)
