"""Data-copying tests against independent truths: brute-force statistics, the Poisson
nearest-neighbour ratio law, a copier (positive control) and fresh samples (null control)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from densitylab import distributions, metrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _brute_z(a: np.ndarray, b: np.ndarray) -> float:
    """Mann-Whitney z of a against b from pair counts (no ties in these data)."""
    u = float((a[:, None] > b[None, :]).sum() + 0.5 * (a[:, None] == b[None, :]).sum())
    n1, n2 = len(a), len(b)
    return (u - n1 * n2 / 2 + 0.5) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)


def _ring_sets(n: int, seed: int):
    p = distributions.ring(dtype=torch.float64)
    return (p.sample(n, seed=10 * seed + 1), p.sample(n, seed=10 * seed + 2),
            p.sample(n, seed=10 * seed + 3))


def _copier(train: torch.Tensor, m: int, seed: int, bandwidth: float = 1e-4) -> torch.Tensor:
    """Samples of a Gaussian KDE of the training set with a tiny bandwidth."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(train), (m,), generator=gen)
    return train[idx] + bandwidth * torch.randn(m, train.shape[1], generator=gen,
                                                dtype=train.dtype)


def test_ct_single_cell_is_the_mann_whitney_z_of_nearest_distances():
    rng = np.random.default_rng(0)
    train, held, gen = rng.normal(size=(300, 2)), rng.normal(size=(200, 2)), rng.normal(
        size=(150, 2)) * 0.9
    res = metrics.data_copying(train, held, gen, num_cells=1)
    lg = np.sqrt(((gen[:, None] - train[None]) ** 2).sum(-1)).min(1)
    lh = np.sqrt(((held[:, None] - train[None]) ** 2).sum(-1)).min(1)
    z = _brute_z(lg, lh)
    assert res.statistic == pytest.approx(z, rel=1e-9)
    assert res.zscore == pytest.approx(z, rel=1e-9)  # one cell: C_T is the z-score itself
    assert res.pvalue == pytest.approx(norm.cdf(z), rel=1e-9)
    assert res.cells_used == 1


def test_ct_excludes_cells_without_generated_or_held_out_points_by_label():
    """Three separated clusters: generated points avoid cluster 1, held-out points avoid
    cluster 2. Only cell 0 (and cell 2 if it had held-out points) can count; weights are the
    held-out fractions of the cells used, indexed by cell, not by position."""
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    train = np.concatenate([c + rng.normal(size=(100, 2)) for c in centres])
    held = np.concatenate([centres[0] + rng.normal(size=(60, 2)),
                           centres[1] + rng.normal(size=(40, 2))])
    gen = np.concatenate([centres[0] + 0.5 * rng.normal(size=(50, 2)),
                          centres[2] + rng.normal(size=(50, 2))])
    res = metrics.data_copying(train, held, gen, num_cells=3, seed=0)
    assert sorted(res.cell_held_out) == [0, 40, 60]
    assert sorted(res.cell_generated) == [0, 50, 50]
    assert res.cells_used == 1
    c0 = res.cell_held_out.index(60)
    t0 = train[:100]
    lg = np.sqrt(((gen[:50, None] - t0[None]) ** 2).sum(-1)).min(1)
    lh = np.sqrt(((held[:60, None] - t0[None]) ** 2).sum(-1)).min(1)
    z = _brute_z(lg, lh)
    assert res.cell_z[c0] == pytest.approx(z, rel=1e-9)
    assert res.statistic == pytest.approx(z, rel=1e-9)
    assert res.cell_weight[c0] == pytest.approx(0.6)
    assert res.generated_fraction == pytest.approx(0.5)
    assert sum(math.isnan(v) for v in res.cell_z) == 2


def test_ct_is_a_weighted_mean_and_stouffer_gives_its_pvalue():
    train, held, gen = _ring_sets(800, 0)
    res = metrics.data_copying(train, held, gen, num_cells=8, seed=3)
    used = [i for i, z in enumerate(res.cell_z) if not math.isnan(z)]
    w = np.array([res.cell_weight[i] for i in used])
    z = np.array([res.cell_z[i] for i in used])
    assert res.statistic == pytest.approx(float(w @ z / w.sum()), rel=1e-12)
    assert res.zscore == pytest.approx(float(w @ z / np.sqrt(w @ w)), rel=1e-12)
    assert res.pvalue == pytest.approx(float(norm.cdf(res.zscore)), rel=1e-12)
    assert metrics.data_copying(train, held, gen, num_cells=8, seed=3) == res  # seeded


def test_authenticity_matches_brute_force_with_training_indices():
    rng = np.random.default_rng(2)
    train, held, gen = rng.normal(size=(120, 2)), rng.normal(size=(90, 2)), rng.normal(
        size=(70, 2))
    res = metrics.authenticity(train, held, gen)

    def brute(q):
        dtt = np.sqrt(((train[:, None] - train[None]) ** 2).sum(-1))
        np.fill_diagonal(dtt, np.inf)
        dqt = np.sqrt(((q[:, None] - train[None]) ** 2).sum(-1))
        j = dqt.argmin(1)  # the nearest training point of each query
        return float((dtt.min(1)[j] < dqt.min(1)).mean())

    assert res.generated == pytest.approx(brute(gen))
    assert res.held_out == pytest.approx(brute(held))
    assert 0.3 < res.held_out < 0.7  # no copying is about one half, not 1
    # duplicated training points have r = 0: every point nearest to one is authentic
    train = np.concatenate([train, train[:40]])
    dup = metrics.authenticity(train, held, gen)
    assert dup.generated == pytest.approx(brute(gen)) and dup.held_out == pytest.approx(
        brute(held))


def test_distance_ratio_baseline_is_r_squared_for_uniform_2d_points():
    """Homogeneous Poisson process in 2D: P(d1/d2 < r) = r^2 (queries away from the border)."""
    rng = np.random.default_rng(3)
    train = rng.uniform(size=(20_000, 2))
    queries = 0.25 + 0.5 * rng.uniform(size=(4_000, 2))
    _, ratio = metrics.copying.distance_ratios(train, queries)
    for r in (1 / 3, 0.5, 0.8):
        expected = r**2
        tol = 4 * math.sqrt(expected * (1 - expected) / len(queries))
        assert (ratio < r).mean() == pytest.approx(expected, abs=tol)


def test_copier_is_flagged_by_all_three_tests():
    train, held, _ = _ring_sets(1000, 1)
    gen = _copier(train, 1000, seed=5)
    assert metrics.data_copying(train, held, gen).pvalue < 0.01
    auth = metrics.authenticity(train, held, gen)
    assert auth.pvalue < 0.01 and auth.generated < auth.held_out
    ratio = metrics.nn_distance_ratio(train, held, gen)
    assert ratio.pvalue < 0.01 and ratio.generated_below > ratio.held_out_below


def test_underfitting_model_is_caught_by_the_greater_alternative():
    train, held, _ = _ring_sets(1000, 2)
    blurry = distributions.ring(std=0.03, dtype=torch.float64).sample(1000, seed=9)
    res = metrics.data_copying(train, held, blurry, alternative="greater")
    assert res.statistic > 0 and res.pvalue < 0.01


@pytest.mark.slow
def test_fresh_target_samples_are_rejected_at_the_nominal_rate():
    """200 null repeats (fresh train, held-out and 'generated' target draws) at alpha = 0.05:
    each test rejects at most 5 % of them (measured: C_T 9, authenticity 10, distance 8 of
    200)."""
    rejections = np.zeros(3)
    for rep in range(200):
        train, held, gen = _ring_sets(500, 100 + rep)
        rejections += [metrics.data_copying(train, held, gen, num_cells=5).pvalue <= 0.05,
                       metrics.authenticity(train, held, gen).pvalue <= 0.05,
                       metrics.nn_distance_ratio(train, held, gen).pvalue <= 0.05]
    assert (rejections <= 10).all(), rejections


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"num_cells": 0}, "num_cells"),
    ({"alternative": "bigger"}, "alternative"),
    ({"tau": -1.0}, "tau"),
])
def test_bad_options_raise(kwargs, match):
    x = np.zeros((30, 2)) + np.arange(30)[:, None]
    with pytest.raises(ValueError, match=match):
        metrics.data_copying(x, x, x, **kwargs)


def test_mismatched_dimensions_raise():
    with pytest.raises(ValueError, match="generated"):
        metrics.authenticity(np.zeros((5, 2)), np.zeros((5, 2)), np.zeros((5, 3)))


@pytest.mark.slow
def test_sanity_battery_runs_the_copying_controls_and_they_pass():
    from densitylab.metrics import sanity

    mmd = [s for s in sanity.default_scores() if s.name == "mmd"]
    rep = sanity.run(scores=mmd, targets=("ring",), checks=("identical",), n=100, reps=2,
                     controls=True)
    controls = [r for r in rep.results if r.check in sanity.CONTROL_CHECKS]
    assert {(r.score, r.check) for r in controls} == {
        (s, c) for s in ("data_copying", "authenticity", "nn_distance_ratio")
        for c in ("copier", "oracle")}
    assert all(r.status == "pass" for r in controls), [r.detail for r in controls]
    assert "| data_copying | n/a | pass | pass |" in rep.to_markdown()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_give_the_cpu_results():
    train, held, gen = _ring_sets(300, 3)
    for fn in (metrics.data_copying, metrics.authenticity, metrics.nn_distance_ratio):
        cpu = fn(train, held, gen)
        gpu = fn(train.cuda(), held.cuda(), gen.cuda())
        assert gpu.pvalue == pytest.approx(cpu.pvalue, rel=1e-9, abs=1e-300)
