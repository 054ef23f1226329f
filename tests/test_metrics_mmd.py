"""MMD against an independent brute-force numpy computation; the permutation test's calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from densitylab import metrics


def _brute_kernel(kernel, a, b, bws, degree=3, gamma=None, coef0=1.0):
    """Full kernel matrix in numpy float64, written from the definitions."""
    diff = a[:, None, :] - b[None, :, :]
    sq = (diff**2).sum(-1)
    if kernel == "rbf":
        return np.exp(-sq / (2 * bws[0] ** 2))
    if kernel == "multi_rbf":
        return sum(np.exp(-sq / (2 * bw**2)) for bw in bws)
    if kernel == "imq":
        return 1.0 / np.sqrt(1.0 + sq / bws[0] ** 2)
    if kernel == "laplacian":
        return np.exp(-np.sqrt(sq) / bws[0])
    g = 1.0 / a.shape[1] if gamma is None else gamma
    return (g * a @ b.T + coef0) ** degree


def _brute_mmd(kernel, x, y, estimator, bws):
    n, m = len(x), len(y)
    if estimator == "linear":
        h = n_pairs = min(n, m) // 2
        x1, x2, y1, y2 = x[:h], x[h : 2 * h], y[:h], y[h : 2 * h]

        def k(a, b):
            return np.array([_brute_kernel(kernel, a[i : i + 1], b[i : i + 1], bws)[0, 0]
                             for i in range(n_pairs)])

        return float(np.mean(k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)))
    kxx = _brute_kernel(kernel, x, x, bws)
    kyy = _brute_kernel(kernel, y, y, bws)
    kxy = _brute_kernel(kernel, x, y, bws)
    if estimator == "biased":
        return kxx.mean() + kyy.mean() - 2 * kxy.mean()
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1))
            + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())


@pytest.fixture(scope="module")
def xy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(131, 3))
    y = rng.normal(size=(97, 3)) * 1.3 + 0.4
    return x, y


@pytest.mark.parametrize("kernel", ["rbf", "multi_rbf", "imq", "laplacian", "polynomial"])
@pytest.mark.parametrize("estimator", ["unbiased", "biased", "linear"])
@pytest.mark.parametrize("block_size", [None, 17, 64])
def test_mmd_matches_brute_force(xy, kernel, estimator, block_size):
    x, y = xy
    bw = None if kernel == "polynomial" else 1.7
    bws = [1.7 * s for s in (0.25, 0.5, 1, 2, 4)] if kernel == "multi_rbf" else [1.7]
    got = metrics.mmd(x, y, kernel=kernel, bandwidth=bw, estimator=estimator, block_size=block_size)
    want = _brute_mmd(kernel, x, y, estimator, bws)
    assert got == pytest.approx(want, rel=1e-10, abs=1e-14)


def test_mmd_median_heuristic_matches_numpy(xy):
    x, y = xy
    pool = np.concatenate([x, y])
    d = np.sqrt(((pool[:, None] - pool[None]) ** 2).sum(-1))
    med = np.median(d[np.triu_indices(len(pool), 1)])
    assert metrics.median_bandwidth(x, y) == pytest.approx(med, rel=1e-12)
    got = metrics.mmd(x, y)  # bandwidth=None -> the median heuristic
    assert got == pytest.approx(_brute_mmd("rbf", x, y, "unbiased", [med]), rel=1e-10)


def test_median_bandwidth_subsample_is_deterministic():
    x = np.random.default_rng(1).normal(size=(3000, 2))
    a = metrics.median_bandwidth(x, max_samples=500, seed=3)
    assert a == metrics.median_bandwidth(x, max_samples=500, seed=3)
    assert a == pytest.approx(metrics.median_bandwidth(x, max_samples=3000), rel=0.05)


def test_mmd_multi_rbf_explicit_bandwidths(xy):
    x, y = xy
    got = metrics.mmd(x, y, kernel="multi_rbf", bandwidth=[0.5, 3.0], block_size=40)
    assert got == pytest.approx(_brute_mmd("multi_rbf", x, y, "unbiased", [0.5, 3.0]), rel=1e-10)


def test_mmd_float32_close_to_float64_and_torch_input(xy):
    x, y = xy
    ref = metrics.mmd(x, y, bandwidth=1.0)
    got32 = metrics.mmd(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32),
                        bandwidth=1.0, block_size=50)
    assert got32 == pytest.approx(ref, rel=1e-4)


def test_mmd_identical_sets():
    x = np.random.default_rng(2).normal(size=(50, 2))
    assert metrics.mmd(x, x, bandwidth=1.0, estimator="biased") == pytest.approx(0.0, abs=1e-14)
    # With y = x the U-statistic is 2 (S - n(n-1)) / (n^2 (n-1)) < 0, S the off-diagonal sum.
    assert metrics.mmd(x, x, bandwidth=1.0) < 0


def test_mmd_test_pvalue_reproducible_and_in_range():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(60, 2)), rng.normal(size=(70, 2))
    a = metrics.mmd_test(x, y, num_permutations=99, seed=5)
    b = metrics.mmd_test(x, y, num_permutations=99, seed=5)
    assert a == b
    assert 0 < a.pvalue <= 1
    assert a.statistic == pytest.approx(metrics.mmd(x, y), rel=1e-10)
    assert set(a.to_dict()) >= {"statistic", "pvalue", "num_permutations", "bandwidth"}


@pytest.mark.parametrize("estimator", ["unbiased", "biased", "linear"])
def test_mmd_test_matrix_and_blockwise_paths_agree(estimator):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(40, 2)), rng.normal(size=(35, 2)) + 0.3
    fast = metrics.mmd_test(x, y, 50, seed=1, estimator=estimator)
    slow = metrics.mmd_test(x, y, 50, seed=1, estimator=estimator, max_matrix_bytes=0,
                            progress_bar=False)
    assert fast.pvalue == slow.pvalue
    assert fast.statistic == pytest.approx(slow.statistic, rel=1e-9, abs=1e-14)


def test_mmd_test_pvalue_is_exact_permutation_count():
    """Recount the p-value from independently computed permuted statistics."""
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(12, 2)), rng.normal(size=(9, 2)) + 0.5
    res = metrics.mmd_test(x, y, 30, seed=11, bandwidth=1.0)
    z = np.concatenate([x, y])
    gen = torch.Generator().manual_seed(11)
    obs = _brute_mmd("rbf", x, y, "unbiased", [1.0])
    exceed = 0
    for _ in range(30):
        p = torch.randperm(21, generator=gen).numpy()
        exceed += _brute_mmd("rbf", z[p[:12]], z[p[12:]], "unbiased", [1.0]) >= obs - 1e-12
    assert res.pvalue == pytest.approx((1 + exceed) / 31)


def test_mmd_test_false_positive_rate_and_power():
    alpha, reps = 0.05, 100
    rejections, power = 0, 0
    for seed in range(reps):
        rng = np.random.default_rng(100 + seed)
        x, y = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
        rejections += metrics.mmd_test(x, y, 99, seed=seed).pvalue <= alpha
    # Binomial(100, 0.05): P(X > 12) < 0.002; a valid test can also be conservative.
    assert rejections <= 12
    for seed in range(20):
        rng = np.random.default_rng(500 + seed)
        x, y = rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + 1.0
        power += metrics.mmd_test(x, y, 99, seed=seed).pvalue <= alpha
    assert power >= 18


@pytest.mark.parametrize(
    ("kwargs", "exc", "word"),
    [
        ({"kernel": "gauss"}, ValueError, "kernel"),
        ({"estimator": "fast"}, ValueError, "estimator"),
        ({"bandwidth": 0.0}, ValueError, "bandwidth"),
        ({"bandwidth": -1.0}, ValueError, "bandwidth"),
        ({"bandwidth": "1"}, TypeError, "bandwidth"),
        ({"bandwidth": [1.0, 2.0]}, TypeError, "bandwidth"),
        ({"block_size": 0}, ValueError, "block_size"),
    ],
)
def test_mmd_bad_options(kwargs, exc, word):
    x = np.zeros((5, 2)) + np.arange(5)[:, None]
    with pytest.raises(exc, match=word):
        metrics.mmd(x, x + 1, **kwargs)


def test_mmd_bad_arrays():
    good = np.random.default_rng(0).normal(size=(10, 2))
    bad = good.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="x"):
        metrics.mmd(bad, good)
    with pytest.raises(ValueError, match="y"):
        metrics.mmd(good, np.where(np.isnan(bad), np.inf, bad))
    with pytest.raises(ValueError, match="dimension"):
        metrics.mmd(good[:, 0], good)
    with pytest.raises(ValueError, match="feature"):
        metrics.mmd(good, np.zeros((10, 3)))
    with pytest.raises(ValueError, match="y"):
        metrics.mmd(good, good[:1])  # unbiased needs >= 2 samples
    with pytest.raises(ValueError, match="x"):
        metrics.mmd(np.zeros((0, 2)), good, estimator="biased")
    with pytest.raises(ValueError, match="bandwidth"):
        metrics.mmd(np.zeros((10, 2)), np.zeros((10, 2)))  # median heuristic gives 0
    with pytest.raises(ValueError, match="num_permutations"):
        metrics.mmd_test(good, good, num_permutations=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mmd_on_cuda_matches_cpu(xy):
    x, y = xy
    xc, yc = torch.tensor(x, device="cuda"), torch.tensor(y, device="cuda")
    assert metrics.mmd(xc, yc, bandwidth=1.0) == pytest.approx(metrics.mmd(x, y, bandwidth=1.0),
                                                               rel=1e-10)
    res_gpu = metrics.mmd_test(xc, yc, 50, seed=0)
    assert res_gpu.pvalue == metrics.mmd_test(x, y, 50, seed=0).pvalue
