"""Sliced Wasserstein and energy distance against scipy, brute-force numpy sums and the
analytic SW_2^2 = ||delta||^2 / d between N(0, I_d) and N(delta, I_d)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from densitylab import metrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _brute_energy(x, y, unbiased=False):
    def mean_dist(a, b, same):
        d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
        if same and unbiased:
            return d.sum() / (len(a) * (len(a) - 1))
        return d.mean()

    return 2 * mean_dist(x, y, False) - mean_dist(x, x, True) - mean_dist(y, y, True)


def _brute_w_1d(a, b, p):
    """W_p^p between two 1D empirical measures by integrating the quantile functions on a fine
    grid of levels placed at the midpoints of every piece (exact for step functions)."""
    levels = np.union1d(np.arange(1, len(a) + 1) / len(a), np.arange(1, len(b) + 1) / len(b))
    widths = np.diff(np.concatenate([[0.0], levels]))
    mids = levels - widths / 2
    qa = np.sort(a)[np.minimum((mids * len(a)).astype(int), len(a) - 1)]
    qb = np.sort(b)[np.minimum((mids * len(b)).astype(int), len(b) - 1)]
    return float((np.abs(qa - qb) ** p * widths).sum())


@pytest.mark.parametrize("sizes", [(300, 300), (300, 217), (50, 411)])
def test_sliced_wasserstein_1d_p1_equals_scipy(sizes):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(sizes[0], 1))
    b = rng.normal(0.4, 1.5, size=(sizes[1], 1))
    got = metrics.sliced_wasserstein(a, b, num_projections=5, p=1)
    assert got == pytest.approx(scipy.stats.wasserstein_distance(a[:, 0], b[:, 0]), rel=1e-12)


@pytest.mark.parametrize("p", [1.5, 2, 3])
def test_sliced_wasserstein_1d_matches_quantile_integral(p):
    rng = np.random.default_rng(1)
    a, b = rng.exponential(size=(123, 1)), rng.normal(size=(77, 1))
    got = metrics.sliced_wasserstein(a, b, num_projections=3, p=p)
    assert got == pytest.approx(_brute_w_1d(a[:, 0], b[:, 0], p), rel=1e-10)


def test_sliced_wasserstein_averages_projections_to_the_analytic_value():
    # y = x + delta: every projected pair of sorted samples differs by theta . delta exactly, so
    # the value is the Monte Carlo mean of (theta . delta)^2 over directions, whose expectation
    # over the uniform sphere is ||delta||^2 / d; its error must shrink as L grows.
    d, delta = 3, torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    x = torch.randn(200, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    truth = float(delta @ delta) / d
    errors = {}
    for num in (8, 4096):
        vals = [metrics.sliced_wasserstein(x, x + delta, num_projections=num, seed=s)
                for s in range(5)]
        errors[num] = float(np.sqrt(np.mean((np.array(vals) - truth) ** 2)))
    # (theta . delta)^2 has std ~0.37 here: RMS error ~0.13 at L = 8, ~0.006 at L = 4096
    assert errors[4096] < 0.02
    assert errors[4096] < errors[8] / 4


@pytest.mark.slow
def test_sliced_wasserstein_independent_gaussians_approach_analytic_value():
    gen = torch.Generator().manual_seed(1)
    d, delta = 4, torch.tensor([1.0, -1.0, 0.5, 0.0])
    x = torch.randn(100_000, d, generator=gen)
    y = torch.randn(100_000, d, generator=gen) + delta
    truth = float(delta @ delta) / d
    errs = [abs(metrics.sliced_wasserstein(x, y, num_projections=num) - truth)
            for num in (4, 2048)]
    assert errs[1] < 0.01 and errs[1] < errs[0]


def test_sliced_wasserstein_properties():
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(400, 2, generator=gen), torch.randn(300, 2, generator=gen) + 1.0
    assert metrics.sliced_wasserstein(x, x) == 0.0
    a = metrics.sliced_wasserstein(x, y, seed=3)
    assert a == metrics.sliced_wasserstein(x, y, seed=3)  # seeded
    assert a == pytest.approx(metrics.sliced_wasserstein(y, x, seed=3), rel=1e-6)  # symmetric
    assert a == pytest.approx(metrics.sliced_wasserstein(x.double(), y.double(), seed=3), rel=1e-5)
    assert a > 0


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"num_projections": 0}, ValueError, "num_projections"),
        ({"num_projections": 2.5}, TypeError, "num_projections"),
        ({"p": 0.5}, ValueError, "p must be >= 1"),
        ({"p": "2"}, TypeError, "p must be"),
        ({"seed": "a"}, TypeError, "seed"),
    ],
)
def test_sliced_wasserstein_rejects_bad_options(kwargs, err, match):
    x = np.zeros((5, 2))
    with pytest.raises(err, match=match):
        metrics.sliced_wasserstein(x, x + 1, **kwargs)


@pytest.mark.parametrize("fn", [metrics.sliced_wasserstein, metrics.energy_distance])
def test_transport_rejects_bad_samples(fn):
    with pytest.raises(ValueError, match="same feature shape"):
        fn(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        fn(np.full((5, 2), np.nan), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="dimension"):
        fn(np.zeros(5), np.zeros(5))
    with pytest.raises(TypeError, match="x must be"):
        fn("abc", np.zeros((5, 2)))


@pytest.mark.parametrize("sizes", [(200, 200), (150, 97)])
def test_energy_distance_1d_equals_scipy(sizes):
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(sizes[0], 1)), rng.standard_t(3, size=(sizes[1], 1)) + 0.3
    # scipy returns sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|) over the empirical measures
    want = scipy.stats.energy_distance(a[:, 0], b[:, 0]) ** 2
    assert metrics.energy_distance(a, b) == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
@pytest.mark.parametrize("block_size", [None, 7])
def test_energy_distance_2d_equals_brute_force(estimator, block_size):
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(301, 2)) * [1.0, 3.0], rng.normal(size=(250, 2)) + [0.2, 100.0]
    want = _brute_energy(x, y, unbiased=estimator == "unbiased")
    got = metrics.energy_distance(x, y, estimator, block_size=block_size)
    assert got == pytest.approx(want, rel=1e-10)


def test_energy_distance_high_dimension_and_float32():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(120, 40)), rng.normal(size=(90, 40)) + 0.3
    want = _brute_energy(x, y)
    assert metrics.energy_distance(x, y) == pytest.approx(want, rel=1e-10)
    got32 = metrics.energy_distance(x.astype(np.float32), torch.as_tensor(y, dtype=torch.float32))
    assert got32 == pytest.approx(want, rel=1e-4)  # float32 blocks, float64 sums


def test_energy_distance_identical_sets_and_options():
    x = np.random.default_rng(7).normal(size=(50, 3))
    # GEMM distances: sqrt(eps |x|^2) ~ 1e-8 per duplicate pair, far below any sampling noise
    assert metrics.energy_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    x32 = torch.as_tensor(x, dtype=torch.float32)
    assert metrics.energy_distance(x32, x32) == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="estimator"):
        metrics.energy_distance(x, x, "linear")
    with pytest.raises(ValueError, match="at least 2"):
        metrics.energy_distance(x[:1], x, "unbiased")
    with pytest.raises(ValueError, match="block_size"):
        metrics.energy_distance(x, x, block_size=0)
