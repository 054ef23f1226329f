"""Calibration by ranks against truths: the oracle's coverage is the diagonal, a model with its
modes' scale x0.25 is under-dispersed and x4 over-dispersed (as sbi's TARP test), and the ranks
are the counts written out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from densitylab import distributions, metrics
from densitylab.distributions import GaussianMixture
from densitylab.metrics.calibration import draw_sample_sets

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N, L = 500, 200  # the oracle's curve: KS distance above 0.1 at N = 500 has probability < 1e-3


def _scaled(target, scale):
    return GaussianMixture(target.means, target.stds * scale, target.weights, dtype=torch.float64)


def _gaussian(scale=1.0):
    return GaussianMixture(torch.zeros(1, 2), torch.ones(1) * scale, dtype=torch.float64)


@pytest.mark.parametrize("method", ["tarp", "hpd", "pit"])
def test_oracle_coverage_is_within_0_1_of_the_diagonal(method):
    for target in (distributions.ring(dtype=torch.float64), _gaussian()):
        x = target.sample(N, seed=1)
        y = target.sample(N * L, seed=2)
        res = metrics.calibration(x, y, method=method, log_prob=target.log_prob, num_samples=L)
        assert res.max_deviation < 0.1
        assert np.abs(np.array(res.coverage) - np.array(res.alpha)).max() == pytest.approx(
            res.max_deviation)
        assert res.dispersion == "calibrated", res
        assert res.coverage[0] == 0.0 and res.coverage[-1] == 1.0


@pytest.mark.parametrize("method", ["tarp", "hpd", "pit"])
@pytest.mark.parametrize(("scale", "expected"), [(0.25, "under"), (4.0, "over")])
def test_scaled_gaussian_is_called_under_or_over_dispersed(method, scale, expected):
    """sbi's TARP check: posterior-like Gaussian, the model's scale x0.25 / x4."""
    x = _gaussian().sample(N, seed=3)
    model = _gaussian(scale)
    res = metrics.calibration(x, model.sample(N * L, seed=4), method=method,
                              log_prob=model.log_prob, num_samples=L)
    assert res.dispersion == expected
    assert res.ks_pvalue < 1e-6


@pytest.mark.parametrize(("scale", "expected"), [(0.25, "under"), (4.0, "over")])
def test_ring_modes_scaled_are_called_by_hpd(scale, expected):
    target = distributions.ring(dtype=torch.float64)
    model = _scaled(target, scale)
    res = metrics.calibration(target.sample(N, seed=5), model.sample(N * L, seed=6),
                              method="hpd", log_prob=model.log_prob, num_samples=L)
    assert res.dispersion == expected


def test_ring_modes_scaled_are_miscalibrated_not_calibrated_for_tarp():
    """Separated modes: a distance rank moves only within its mode's band, so the signed area
    cannot read the width (documented); the uniformity test still rejects at N = L = 1,000
    (at N = 500, L = 200 it does not: KS p = 0.06, the call is "calibrated")."""
    target = distributions.ring(dtype=torch.float64)
    res = metrics.calibration(target.sample(1000, seed=1),
                              _scaled(target, 0.25).sample(1000 * 1000, seed=2),
                              method="tarp", num_samples=1000)
    assert res.ks_pvalue < 0.01
    assert res.dispersion != "calibrated"


def test_hpd_levels_are_the_counts_of_denser_samples():
    """Per-point sample sets (N, L, d) and log q(z) = -|z|^2: the level of x_i lies in
    [c_i, c_i + 1] / (L + 1), c_i = #{j : |y_ij| < |x_i|} (no ties), so the signed area is
    1/2 - mean((c_i + 1/2) / (L + 1)) up to the tie-breaking uniforms."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = rng.normal(size=(400, 30, 2)) * 1.3
    res = metrics.calibration(x, y, method="hpd", log_prob=lambda z: -(z**2).sum(-1),
                              num_bootstrap=0)
    c = (np.linalg.norm(y, axis=2) < np.linalg.norm(x, axis=1)[:, None]).sum(1)
    expected = 0.5 - np.mean((c + 0.5) / 31)
    assert res.area == pytest.approx(expected, abs=4 / (31 * np.sqrt(12 * 400)))
    assert res.num_samples == 30 and res.coverage_low == ()


def test_inputs_are_not_modified_and_results_are_seeded():
    target = _gaussian()
    x, y = target.sample(200, seed=1), target.sample(200 * 50, seed=2)
    x0, y0 = x.clone(), y.clone()
    a = metrics.calibration(x, y, seed=3, num_samples=50)
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert a == metrics.calibration(x, y, seed=3, num_samples=50)
    assert len(a.coverage_low) == len(a.alpha) == 101
    assert all(lo <= c <= hi for lo, c, hi in zip(a.coverage_low, a.coverage, a.coverage_high,
                                                   strict=True))


def test_overlapping_sample_sets_from_a_small_pool_are_distinct_rows():
    pool = torch.arange(50.0)[:, None]
    index = draw_sample_sets(pool, 30, 20, seed=0)
    assert index.shape == (30, 20)
    assert all(len(set(row.tolist())) == 20 for row in index)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"method": "sbc"}, ValueError, "method"),
    ({"method": "hpd"}, TypeError, "log_prob"),
    ({"num_levels": 1}, ValueError, "num_levels"),
    ({"alpha_level": 1.5}, ValueError, "alpha_level"),
])
def test_bad_options_raise(kwargs, error, match):
    x = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(error, match=match):
        metrics.calibration(x, x, **kwargs)


def test_sample_sets_of_the_wrong_shape_raise():
    x = np.zeros((20, 2))
    with pytest.raises(ValueError, match="N = 20"):
        metrics.calibration(x, np.zeros((10, 5, 2)))
    with pytest.raises(ValueError, match="features"):
        metrics.calibration(x, np.zeros((20, 5, 3)))
    with pytest.raises(ValueError, match="kde"):
        metrics.calibration(x, np.zeros((20, 5, 2)), method="hpd", log_prob="kde")
    with pytest.raises(ValueError, match="log_prob"):
        metrics.calibration(x, np.zeros((50, 2)), method="hpd", log_prob="kdf")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ["tarp", "hpd", "pit"])
def test_cuda_inputs_give_the_cpu_result(method):
    target = _gaussian()
    x, y = target.sample(100, seed=1), target.sample(100 * 30, seed=2)
    cpu = metrics.calibration(x, y, method=method, log_prob=target.log_prob, num_samples=30)
    gpu = metrics.calibration(x.cuda(), y.cuda(), method=method,
                              log_prob=lambda z: target.log_prob(z.cpu()), num_samples=30)
    assert gpu.area == pytest.approx(cpu.area, abs=1e-12) and gpu.dispersion == cpu.dispersion


@pytest.mark.parametrize(("scale", "expected"), [(1.0, "calibrated"), (0.25, "under"),
                                                 (4.0, "over")])
def test_hpd_with_a_kde_of_the_samples_reads_the_ring_modes_width(scale, expected):
    """No density needed (a GAN): the KDE is fitted on pool rows the sample sets do not use."""
    target = distributions.ring(dtype=torch.float64)
    model = _scaled(target, scale)
    res = metrics.calibration(target.sample(100, seed=11), model.sample(100 * 20 + 2000, 12),
                              method="hpd", log_prob="kde", num_samples=20)
    assert res.dispersion == expected


def test_kde_log_density_is_the_gaussian_mixture_of_its_centres():
    from densitylab.metrics.calibration import GaussianKDE

    rng = np.random.default_rng(4)
    centres, z = rng.normal(size=(300, 2)), rng.normal(size=(50, 2))
    kde = GaussianKDE(torch.tensor(centres), 0.3)
    # the mixture of N(c_j, 0.3^2 I) written out
    expected = np.log(np.mean(np.exp(-((z[:, None] - centres[None]) ** 2).sum(-1) / 0.18), 1)
                      / (2 * np.pi * 0.09))
    np.testing.assert_allclose(kde(torch.tensor(z)).numpy(), expected, rtol=1e-10)
