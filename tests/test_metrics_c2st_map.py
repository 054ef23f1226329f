"""The C2ST probability map against the analytic posterior q / (p + q): two Gaussians one
standard deviation apart, and a ring model that drops two of the eight modes (the kept modes
then carry weight 1/6 each against the target's 1/8, so the posterior there is 4/7)."""

from __future__ import annotations

import numpy as np
import pytest
from _targets import ring_without

from densitylab import metrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _nodes(res):
    gx, gy = np.meshgrid(res.grid_x, res.grid_y)
    return np.stack([gx, gy], -1)


def test_map_matches_the_gaussian_shift_posterior_where_there_is_data():
    rng = np.random.default_rng(0)
    mu = np.array([1.0, 0.0])
    x, y = rng.standard_normal((2000, 2)), rng.standard_normal((2000, 2)) + mu
    res = metrics.c2st_map(x, y, seed=0, grid_size=32)
    t = _nodes(res)
    truth = 1.0 / (1.0 + np.exp(-(t @ mu - mu @ mu / 2)))  # log q/p = mu.t - |mu|^2 / 2
    bulk = (np.linalg.norm(t, axis=-1) < 2) | (np.linalg.norm(t - mu, axis=-1) < 2)
    err = np.abs(res.probability - truth)[bulk]
    assert bulk.sum() > 100 and err.max() < 0.1 and err.mean() < 0.03
    np.testing.assert_allclose(res.log_ratio, np.log(res.probability / (1 - res.probability)),
                               rtol=1e-9)


def test_map_reuses_the_c2st_classifiers():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((300, 2)), rng.standard_normal((340, 2)) + [0.8, 0.0]
    for classifier in ("mlp", "logistic"):
        res = metrics.c2st_map(x, y, classifier=classifier, seed=4, grid_size=8)
        assert res.test == metrics.c2st(x, y, classifier=classifier, seed=4)
        assert res.probability.shape == (8, 8) and ((0 < res.probability)
                                                    & (res.probability < 1)).all()


def test_ring_model_dropping_two_modes_reads_zero_there_and_four_sevenths_elsewhere():
    dropped = [2, 5]
    p, q = ring_without(*dropped)
    res = metrics.c2st_map(p.sample(2500, seed=10), q.sample(2500, seed=20), seed=0,
                           grid_size=96)
    t, means = _nodes(res).reshape(-1, 2), p.means.numpy()
    # each mode's nearest grid node (at most 0.02, two mode stds, from its centre): near a mode
    # both densities are that mode's Gaussian, so the posterior is the weights' ratio
    nearest = np.linalg.norm(t[:, None] - means[None], axis=-1).argmin(0)
    at_modes = res.probability.reshape(-1)[nearest]
    kept = [m for m in range(8) if m not in dropped]
    assert at_modes[dropped].max() < 0.1
    assert np.abs(at_modes[kept] - 4 / 7).max() < 0.15
    assert abs(np.median(at_modes[kept]) - 4 / 7) < 0.05

def test_map_needs_2d_points_and_a_valid_grid():
    with pytest.raises(ValueError, match="2 columns"):
        metrics.c2st_map(np.zeros((10, 3)), np.ones((10, 3)))
    with pytest.raises(ValueError, match="grid_size"):
        metrics.c2st_map(np.zeros((10, 2)), np.ones((10, 2)), grid_size=1)
    with pytest.raises(ValueError, match="padding"):
        metrics.c2st_map(np.zeros((10, 2)), np.ones((10, 2)), padding=-1.0)
