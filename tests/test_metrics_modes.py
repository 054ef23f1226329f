"""Mode coverage on hand-built sample sets with known answers (VEEGAN / PacGAN protocol)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from densitylab import distributions, metrics

CENTERS = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])


def test_exact_counts_on_hand_built_set():
    std = 0.5  # high-quality radius 1.5
    samples = np.array([
        [0.1, 0.0], [0.0, -1.0], [1.4, 0.0],     # mode 0: three good
        [10.0, 1.0], [11.6, 0.0],                # mode 1: one good, one at 3.2 std (bad)
        [5.0, 5.0],                              # far from everything (bad, nearest is a tie)
    ])
    res = metrics.mode_coverage(samples, CENTERS, std=std)
    assert res.counts == (3, 1, 0)
    assert res.modes_covered == 2
    assert res.num_modes == 3
    assert res.high_quality_count == 4
    assert res.high_quality_fraction == pytest.approx(4 / 6)
    p = np.array([3, 1]) / 4
    assert res.kl_to_uniform == pytest.approx(float(np.sum(p * np.log(3 * p))))
    assert res.to_dict()["counts"] == [3, 1, 0]


def test_threshold_is_strict_and_min_count():
    std = 0.5
    on_boundary = np.array([[1.5, 0.0]])    # exactly 3 std: not high quality (distance < 3)
    inside = np.array([[1.4999, 0.0]])
    assert metrics.mode_coverage(on_boundary, CENTERS, std=std).counts == (0, 0, 0)
    assert metrics.mode_coverage(inside, CENTERS, std=std).counts == (1, 0, 0)
    samples = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0]])
    assert metrics.mode_coverage(samples, CENTERS, std=std, min_count=2).modes_covered == 1
    assert metrics.mode_coverage(samples, CENTERS, std=std, min_count=1).modes_covered == 2
    assert metrics.mode_coverage(samples, CENTERS, std=std, threshold=0.1).counts == (1, 1, 0)


def test_nearest_centre_uses_std_normalised_distance():
    # Point at x=4: Euclidean-nearer to centre 0 (std 0.5 -> 8 std away) than to centre 1 at
    # x=10 (std 3 -> 2 std away). The protocol assigns by normalised distance: mode 1, good.
    res = metrics.mode_coverage(np.array([[4.0, 0.0]]), CENTERS[:2], std=[0.5, 3.0],
                                return_assignments=True)
    assert res.counts == (0, 1)
    assert res.assignments.tolist() == [1]
    per_axis = metrics.mode_coverage(np.array([[0.0, 2.0]]), CENTERS[:1],
                                     std=np.array([[0.1, 1.0]]))
    assert per_axis.counts == (1,)  # 2 std along the wide axis


def test_histogram_kl_definitions():
    assert metrics.mode_histogram_kl([5, 5, 5, 5]) == pytest.approx(0.0, abs=1e-15)
    assert metrics.mode_histogram_kl([7, 0, 0, 0, 0]) == pytest.approx(math.log(5))
    assert metrics.mode_histogram_kl([0, 0]) is None
    samples = np.array([[0.0, 0.0], [0.2, 0.0]])
    assert metrics.mode_coverage(samples, CENTERS, std=0.5).kl_to_uniform == pytest.approx(
        math.log(3))
    none = metrics.mode_coverage(np.array([[5.0, 5.0]]), CENTERS, std=0.5)
    assert none.kl_to_uniform is None and none.modes_covered == 0


def test_mixture_convenience_on_ring_and_grid():
    ring = distributions.ring()
    x, labels = ring.sample_with_labels(2500, seed=0)
    res = metrics.mode_coverage(x, ring)  # std read from the mixture (0.01)
    assert res.modes_covered == 8
    # Samples of a mode are within 3 std with probability 1 - exp(-9/2) in 2D (chi, 2 dof).
    assert res.high_quality_fraction == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    full = metrics.mode_coverage(x, ring, threshold=100.0, return_assignments=True)
    assert torch.equal(full.assignments.cpu(), labels)
    assert full.counts == tuple(torch.bincount(labels, minlength=8).tolist())
    grid = distributions.grid()
    one_mode = grid.means[7].repeat(100, 1)  # collapse onto one of the 25 modes
    res = metrics.mode_coverage(one_mode, grid)
    assert (res.modes_covered, res.high_quality_fraction) == (1, 1.0)
    assert res.kl_to_uniform == pytest.approx(math.log(25))


def test_from_counts():
    res = metrics.ModeCoverage.from_counts([3, 0, 1], num_samples=10)
    assert (res.modes_covered, res.high_quality_fraction) == (2, 0.4)
    with pytest.raises(ValueError, match="num_samples"):
        metrics.ModeCoverage.from_counts([3, 9], num_samples=10)


@pytest.mark.parametrize(
    ("kwargs", "exc", "word"),
    [
        ({"std": 0.0}, ValueError, "std"),
        ({"std": -1.0}, ValueError, "std"),
        ({"std": None}, ValueError, "std"),
        ({"std": [1.0, 2.0]}, ValueError, "std"),
        ({"std": 1.0, "threshold": 0}, ValueError, "threshold"),
        ({"std": 1.0, "min_count": 0}, ValueError, "min_count"),
    ],
)
def test_bad_options(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        metrics.mode_coverage(np.zeros((4, 2)), CENTERS, **kwargs)


def test_bad_arrays():
    with pytest.raises(ValueError, match="columns"):
        metrics.mode_coverage(np.zeros((4, 3)), CENTERS, std=1.0)
    with pytest.raises(ValueError, match="samples"):
        metrics.mode_coverage(np.full((4, 2), np.inf), CENTERS, std=1.0)
    with pytest.raises(ValueError, match="samples"):
        metrics.mode_coverage(np.zeros((0, 2)), CENTERS, std=1.0)
