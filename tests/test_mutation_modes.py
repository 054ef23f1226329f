"""Mode coverage, checked where mutation testing found the suite blind.

The truth is the VEEGAN / PacGAN protocol written out in numpy from its definition: each sample
goes to the centre with the smallest ``sqrt(sum_d ((x_d - mu_kd) / sigma_kd)^2)`` (first centre
on a tie), is high quality when that distance is strictly below the threshold, and a mode is
covered with ``min_count`` high-quality samples; the histogram KL is ``sum p log(K p)``.
See docs/testing.md.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch

from densitylab import distributions, metrics

modes_module = importlib.import_module("densitylab.metrics.modes")


def brute_coverage(x, centers, std, threshold=3.0, min_count=1):
    x, c = np.asarray(x, dtype=np.float64), np.asarray(centers, dtype=np.float64)
    s = np.broadcast_to(np.asarray(std, dtype=np.float64).reshape(
        (len(c), -1) if np.ndim(std) else (1, 1)), c.shape)
    z = np.sqrt((((x[:, None, :] - c[None]) / s[None]) ** 2).sum(-1))
    arg = z.argmin(1)
    good = z[np.arange(len(x)), arg] < threshold
    counts = np.bincount(arg[good], minlength=len(c))
    return arg, good, counts, int((counts >= min_count).sum())


def brute_kl(counts):
    c = np.asarray(counts, dtype=np.float64)
    if c.sum() == 0:
        return None
    p = c[c > 0] / c.sum()
    return float(np.sum(p * np.log(len(c) * p)))


@pytest.fixture(scope="module")
def cloud():
    rng = np.random.default_rng(30)
    centers = rng.uniform(-4, 4, size=(6, 3))
    x = centers[rng.integers(0, 6, size=400)] + rng.normal(size=(400, 3)) * 0.6
    return x, centers


@pytest.mark.parametrize("std_kind", ["scalar", "zero_dim", "per_mode", "per_axis"])
@pytest.mark.parametrize("chunk", [None, 7])
def test_mode_coverage_matches_the_protocol_from_scratch(cloud, std_kind, chunk, monkeypatch):
    x, centers = cloud
    rng = np.random.default_rng(31)
    std = {"scalar": 0.5, "zero_dim": torch.tensor(0.5), "per_mode": rng.uniform(0.3, 0.9, 6),
           "per_axis": rng.uniform(0.3, 0.9, (6, 3))}[std_kind]
    if chunk is not None:  # several chunks, the last one short
        monkeypatch.setattr(modes_module, "_CHUNK", chunk)
    for threshold, min_count in ((3.0, 1), (1.5, 4)):
        res = metrics.mode_coverage(x, centers, std=std, threshold=threshold,
                                    min_count=min_count, return_assignments=True)
        arg, good, counts, covered = brute_coverage(x, centers, std, threshold, min_count)
        assert res.assignments.tolist() == arg.tolist()
        assert res.counts == tuple(int(v) for v in counts)
        assert res.modes_covered == covered
        assert res.high_quality_fraction == good.sum() / len(x)
        assert res.kl_to_uniform == pytest.approx(brute_kl(counts), rel=1e-12)
        assert (res.num_modes, res.num_samples) == (6, 400)
        assert (res.threshold, res.min_count) == (threshold, min_count)
        assert res.high_quality_count == int(good.sum())


def test_without_return_assignments_there_are_none(cloud):
    x, centers = cloud
    assert metrics.mode_coverage(x, centers, std=0.5).assignments is None


def test_a_mixture_supplies_centres_and_stds():
    iso = distributions.GaussianMixture([[0.0, 0.0], [3.0, 0.0]], [0.4, 0.4])
    aniso = distributions.GaussianMixture([[0.0, 0.0], [3.0, 0.0]], [0.4, 1.2])
    x = np.array([[0.0, 1.0], [1.4, 0.0], [3.0, 3.0], [2.0, 0.0]])
    for mix, std in ((iso, 0.4), (aniso, [0.4, 1.2])):
        res = metrics.mode_coverage(x, mix, return_assignments=True)
        arg, _, counts, covered = brute_coverage(x, mix.means.numpy(), std)
        assert res.assignments.tolist() == arg.tolist()
        assert res.counts == tuple(int(v) for v in counts) and res.modes_covered == covered
    # an explicit std overrides the mixture's
    res = metrics.mode_coverage(x, aniso, std=2.0)
    assert res.counts == tuple(int(v) for v in brute_coverage(x, aniso.means.numpy(), 2.0)[2])


def test_mode_histogram_kl_hand_values_and_errors():
    # p = (1/2, 1/4, 1/4) over K = 4 modes (one empty): 1/2 log 2 + 2 * 1/4 log 1
    assert metrics.mode_histogram_kl([2, 0, 1, 1]) == pytest.approx(0.5 * math.log(2),
                                                                    rel=1e-14)
    assert metrics.mode_histogram_kl(torch.tensor([3.0, 1.0])) == pytest.approx(
        0.75 * math.log(1.5) + 0.25 * math.log(0.5), rel=1e-14)
    assert metrics.mode_histogram_kl([0, 0, 0]) is None
    with pytest.raises(ValueError, match=r"^counts must be non-negative$"):
        metrics.mode_histogram_kl([1, -1])


def test_from_counts_fills_every_field():
    res = metrics.ModeCoverage.from_counts([3.2, 0, 1], num_samples=8, min_count=2)
    assert res.counts == (3, 0, 1)  # rounded to whole samples
    assert (res.modes_covered, res.num_modes, res.num_samples, res.min_count) == (1, 3, 8, 2)
    assert res.high_quality_fraction == 0.5 and math.isnan(res.threshold)
    assert res.kl_to_uniform == pytest.approx(brute_kl([3, 0, 1]), rel=1e-14)
    assert metrics.ModeCoverage.from_counts([2, 2], 4, threshold=3.0).threshold == 3.0
    empty = metrics.ModeCoverage.from_counts([0, 0], num_samples=0)
    assert empty.high_quality_fraction == 0.0 and empty.kl_to_uniform is None
    assert metrics.ModeCoverage.from_counts([1, 1], 3).modes_covered == 2  # min_count 1
    exact = metrics.ModeCoverage.from_counts([2, 3], num_samples=5)
    assert exact.high_quality_fraction == 1.0
    with pytest.raises(ValueError, match=r"^counts sum to 6, more than num_samples=5$"):
        metrics.ModeCoverage.from_counts([3, 3], num_samples=5)
    with pytest.raises(ValueError, match=r"^num_samples must be >= 0, got -1$"):
        metrics.ModeCoverage.from_counts([0], num_samples=-1)


def test_to_dict_has_every_field_but_the_assignments(cloud):
    x, centers = cloud
    res = metrics.mode_coverage(x, centers, std=0.5, return_assignments=True)
    assert res.to_dict() == {
        "modes_covered": res.modes_covered, "num_modes": 6,
        "high_quality_fraction": res.high_quality_fraction,
        "high_quality_count": sum(res.counts), "counts": list(res.counts),
        "kl_to_uniform": res.kl_to_uniform, "num_samples": 400, "threshold": 3.0,
        "min_count": 1,
    }


def test_bad_centres_and_stds_have_exact_messages():
    c = np.zeros((3, 2))
    x = np.zeros((4, 2))
    cases = [
        (dict(centers=c), r"^std is required when centers is an array \(it is read from a "
                          r"mixture\)$"),
        (dict(centers=c, std=[1.0, 2.0]), r"^std must have shape \(3,\) to match centers, got "
                                          r"\(2,\)$"),
        (dict(centers=c, std=np.ones((3, 3))), r"^std must have shape \(3, 2\) to match "
                                               r"centers, got \(3, 3\)$"),
        (dict(centers=c, std=[1.0, 0.0, 1.0]), r"^std must be strictly positive$"),
        (dict(centers=c, std=0.0), r"^std must be"),
        (dict(centers=distributions.two_moons()), r"^centers: this target \(\w+\) has no modes"),
        (dict(centers=np.zeros((3, 3)), std=1.0), r"^samples and centers must have the same "
                                                  r"number of columns, got 2 and 3$"),
        (dict(centers=c, std=1.0, threshold=0.0), r"^threshold must be"),
        (dict(centers=c, std=1.0, min_count=0), r"^min_count must be >= 1, got 0$"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            metrics.mode_coverage(x, **kwargs)


def test_the_threshold_is_exact_in_float64_for_stds_float32_cannot_hold():
    # points at 3 std (1 +- 1e-9): float64 puts each on its side of the threshold, a float32
    # std (0.1 -> 0.10000000149) or a float32 1/std would move some across
    rng = np.random.default_rng(32)
    centers = np.array([[0.0, 0.0], [50.0, 0.0]])
    angles = rng.uniform(0, 2 * np.pi, 40)
    radius = 3 * np.where(np.arange(40) % 2, 1 + 1e-9, 1 - 1e-9)
    for std, s0 in ((0.1, np.array([0.1, 0.1])), ([0.1, 0.7], np.array([0.1, 0.1])),
                    (np.array([[0.1, 0.3], [0.7, 0.9]]), np.array([0.1, 0.3]))):
        x = np.stack([np.cos(angles), np.sin(angles)], 1) * radius[:, None] * s0
        res = metrics.mode_coverage(x, centers, std=std, return_assignments=True)
        _, good, counts, _ = brute_coverage(x, centers, std)
        assert res.counts == tuple(int(v) for v in counts) and 0 < counts[0] < 40
        assert res.high_quality_fraction == good.mean()


def test_a_one_mode_mixture_and_fresh_memory_every_call(monkeypatch):
    mix = distributions.GaussianMixture([[1.0, 2.0]], [0.3])
    x = np.array([[1.0, 2.5], [1.0, 2.85], [2.0, 2.0]])  # 0.5 and 0.85 < 3 x 0.3; 1.0 is not
    assert metrics.mode_coverage(x, mix).counts == (2,)
    # several chunks: each call sees a new size, after the allocator was handed garbage
    monkeypatch.setattr(modes_module, "_CHUNK", 5)
    rng = np.random.default_rng(33)
    centers = rng.uniform(-3, 3, size=(4, 2))
    for n in (23, 17, 31):
        torch.full((n,), 3, dtype=torch.long)  # noqa: B018 - leaves garbage for torch.empty
        torch.ones(n, dtype=torch.bool)  # noqa: B018
        y = rng.normal(size=(n, 2)) * 2
        res = metrics.mode_coverage(y, centers, std=0.8, return_assignments=True)
        arg, _, counts, _ = brute_coverage(y, centers, 0.8)
        assert res.assignments.tolist() == arg.tolist()
        assert res.counts == tuple(int(v) for v in counts)


def test_more_exact_messages():
    c = np.zeros((3, 2))
    cases = [
        (dict(samples=np.zeros(4), centers=c, std=1.0),
         r"^samples must have 2 dimension\(s\), got shape \(4,\)"),
        (dict(samples=np.zeros((4, 2)), centers=np.zeros(3), std=1.0),
         r"^centers must have 2 dimension\(s\), got shape \(3,\)"),
        (dict(samples=np.zeros((4, 2)), centers=c, std=np.ones((3, 2, 1))),
         r"^std must have 0 or 1 or 2 dimension\(s\), got shape \(3, 2, 1\)$"),
        (dict(samples=np.zeros((4, 2)), centers=c, std=[]),
         r"^std must have shape \(3,\) to match centers, got \(0,\)$"),
        (dict(samples=np.zeros((4, 2)), centers=distributions.two_moons()),
         r"^centers: this target \(TwoMoons\) has no modes, so there is nothing to cover; "
         r"mode_coverage needs a Gaussian mixture \(distributions\.ring\(\), "
         r"distributions\.grid\(\) or a GaussianMixture\), or an array of mode centres with "
         r"std$"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            metrics.mode_coverage(**kwargs)
    with pytest.raises(ValueError, match=r"^counts must have 1 dimension\(s\), got shape"):
        metrics.ModeCoverage.from_counts(np.ones((2, 2)), 5)
