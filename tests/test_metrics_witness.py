"""MMD witness maps: the map against a brute-force computation, and on a ring model that drops
two modes the significant 'missing mass' region holds exactly those two modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _targets import ring_without

from densitylab import metrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_witness_and_t_map_match_brute_force_on_the_evaluation_halves():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 2)), rng.normal(size=(30, 2)) + [0.5, 0.0]
    res = metrics.witness_map(x, y, seed=3, grid_size=5, num_permutations=50, bandwidth=0.7)
    gen = torch.Generator().manual_seed(3)  # the documented split: shuffle each set, halve it
    x2 = x[torch.randperm(40, generator=gen).numpy()[20:]]
    y2 = y[torch.randperm(30, generator=gen).numpy()[15:]]
    gx, gy = np.meshgrid(res.grid_x, res.grid_y)
    t = np.stack([gx.ravel(), gy.ravel()], 1)
    kx = np.exp(-((x2[:, None] - t[None]) ** 2).sum(-1) / (2 * 0.7**2))
    ky = np.exp(-((y2[:, None] - t[None]) ** 2).sum(-1) / (2 * 0.7**2))
    w = kx.mean(0) - ky.mean(0)
    se = np.sqrt(kx.var(0, ddof=1) / 20 + ky.var(0, ddof=1) / 15 + 1e-12)
    np.testing.assert_allclose(res.witness.ravel(), w, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(res.tmap.ravel(), w / se, rtol=1e-8)
    pooled = np.concatenate([x, y])
    assert res.grid_x[0] == pytest.approx(pooled[:, 0].min() - 0.1 * np.ptp(pooled[:, 0]))
    assert res.pvalue.min() >= 1 / 51
    assert ((res.pvalue <= 0.05) == res.significant).all()
    assert (res.missing | res.excess == res.significant).all()


def test_chosen_bandwidth_is_far_below_the_median_heuristic_on_narrow_modes():
    p, q = ring_without(3)
    x, y = p.sample(400, seed=1), q.sample(400, seed=2)
    best, cands, ratios = metrics.witness.select_bandwidth(x, y)
    assert best == cands[int(np.argmax(ratios))]
    assert best < metrics.median_bandwidth(x, y) / 4


@pytest.mark.slow
def test_ring_model_dropping_two_modes_is_missing_mass_exactly_there():
    dropped = [2, 5]
    p, q = ring_without(*dropped)
    res = metrics.witness_map(p.sample(1000, seed=10), q.sample(1000, seed=20), seed=0)
    gx, gy = np.meshgrid(res.grid_x, res.grid_y)
    means = p.means.numpy()

    def dist(mask):
        pts = np.stack([gx[mask], gy[mask]], 1)
        return np.linalg.norm(pts[:, None] - means[None], axis=2)

    d = dist(res.missing)
    # every significant missing-mass point is nearest to a dropped mode, both are covered
    # (a grid point within 0.1 of each centre), and no kept mode has one within 0.1
    assert set(d.argmin(1).tolist()) == set(dropped)
    assert sorted(np.flatnonzero((d < 0.1).any(0)).tolist()) == dropped
    # the kept modes carry the dropped ones' weight: any excess lies away from dropped modes
    assert not (dist(res.excess)[:, dropped] < 0.1).any()


def test_witness_map_needs_2d_points():
    with pytest.raises(ValueError, match="2 columns"):
        metrics.witness_map(np.zeros((10, 3)), np.ones((10, 3)))
    with pytest.raises(ValueError, match="alpha"):
        metrics.witness_map(np.zeros((10, 2)), np.ones((10, 2)), alpha=0.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_give_the_cpu_map():
    rng = np.random.default_rng(0)
    x, y = torch.tensor(rng.normal(size=(60, 2))), torch.tensor(rng.normal(size=(50, 2)) + 0.5)
    cpu = metrics.witness_map(x, y, grid_size=8, num_permutations=50)
    gpu = metrics.witness_map(x.cuda(), y.cuda(), grid_size=8, num_permutations=50)
    np.testing.assert_allclose(gpu.tmap, cpu.tmap, rtol=1e-9, atol=1e-12)
    assert (gpu.significant == cpu.significant).all() and gpu.bandwidth == cpu.bandwidth
