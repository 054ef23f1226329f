"""MMD and its permutation test, checked where mutation testing found the suite blind.

Every truth here is independent of densitylab's code: a dense numpy kernel matrix written from
the definitions, a permutation test recounted by hand from the same torch generator, and exact
values for degenerate inputs. See docs/testing.md ("Mutation testing") for the run that found
these gaps.
"""

from __future__ import annotations

import importlib
import logging
import math

import numpy as np
import pytest
import torch

from densitylab import metrics

# the module (densitylab.metrics.mmd is also the name of the function)
mmd_module = importlib.import_module("densitylab.metrics.mmd")

SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


def brute_kernel(kernel, a, b, bw=1.0, degree=3, gamma=None, coef0=1.0):
    """Dense kernel matrix in float64, from the definitions in densitylab.metrics.kernels."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    if kernel == "rbf":
        return np.exp(-sq / (2 * bw**2))
    if kernel == "multi_rbf":
        return sum(np.exp(-sq / (2 * (bw * s) ** 2)) for s in SCALES)
    if kernel == "imq":
        return 1 / np.sqrt(1 + sq / bw**2)
    if kernel == "laplacian":
        return np.exp(-np.sqrt(sq) / bw)
    g = 1 / a.shape[1] if gamma is None else gamma
    return (g * a @ b.T + coef0) ** degree


def brute_mmd(x, y, estimator="unbiased", kernel="rbf", **kw):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, m = len(x), len(y)
    if estimator == "linear":
        h = min(n, m) // 2

        def k(a, b):
            return np.array([brute_kernel(kernel, a[i:i + 1], b[i:i + 1], **kw)[0, 0]
                             for i in range(h)])

        x1, x2, y1, y2 = x[:h], x[h:2 * h], y[:h], y[h:2 * h]
        return float(np.mean(k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)))
    kxx, kyy, kxy = (brute_kernel(kernel, a, b, **kw) for a, b in ((x, x), (y, y), (x, y)))
    if estimator == "biased":
        return float(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1))
                 + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())


def brute_test(x, y, b, seed, estimator="unbiased", kernel="rbf", **kw):
    """The permutation test recounted: the same torch generator, brute-force statistics."""
    z = np.concatenate([x, y])
    n = len(x)
    gen = torch.Generator().manual_seed(seed)
    obs = brute_mmd(x, y, estimator, kernel, **kw)
    null = []
    for _ in range(b):
        p = torch.randperm(len(z), generator=gen).numpy()
        null.append(brute_mmd(z[p[:n]], z[p[n:]], estimator, kernel, **kw))
    return obs, np.array(null)


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(10)
    return rng.normal(size=(9, 2)), rng.normal(size=(7, 2)) + 0.6


# ---------------------------------------------------------------------------------------------
# mmd_test against the recount: every field of the result, both code paths, every block size
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ["unbiased", "biased", "linear"])
@pytest.mark.parametrize("max_matrix_bytes, block_size", [(None, 1), (None, 2), (None, 5),
                                                          (None, None), (0, 3)])
def test_mmd_test_matches_a_recount_of_every_field(small, estimator, max_matrix_bytes,
                                                   block_size):
    x, y = small
    kwargs = {} if max_matrix_bytes is None else {"max_matrix_bytes": max_matrix_bytes}
    res = metrics.mmd_test(x, y, 40, seed=3, bandwidth=0.8, estimator=estimator,
                           block_size=block_size, progress_bar=False, **kwargs)
    obs, null = brute_test(x, y, 40, 3, estimator, bw=0.8)
    # no permuted statistic within round-off of the observed one: the count is unambiguous
    assert np.abs(null - obs).min() > 1e-9
    assert res.statistic == pytest.approx(obs, rel=1e-10, abs=1e-14)
    assert res.pvalue == (1 + int((null >= obs).sum())) / 41
    assert res.null_mean == pytest.approx(null.mean(), rel=1e-9, abs=1e-14)
    assert res.null_std == pytest.approx(null.std(ddof=1), rel=1e-9, abs=1e-14)
    assert (res.num_permutations, res.estimator, res.kernel) == (40, estimator, "rbf")
    assert res.bandwidth == (0.8,)
    d = res.to_dict()
    assert d["bandwidth"] == [0.8] and isinstance(d["bandwidth"], list)
    assert d["statistic"] == res.statistic and d["pvalue"] == res.pvalue


def test_mmd_test_defaults_are_the_documented_ones(small):
    x, y = small
    res = metrics.mmd_test(x, y, bandwidth=1.0)
    assert res.num_permutations == 500
    assert res == metrics.mmd_test(x, y, 500, seed=0, bandwidth=1.0)
    assert res.estimator == "unbiased" and res.kernel == "rbf"
    # the polynomial kernel's defaults are those of mmd (degree 3, coef0 1, gamma 1/d)
    poly = metrics.mmd_test(x, y, 5, kernel="polynomial")
    assert poly.statistic == pytest.approx(brute_mmd(x, y, kernel="polynomial"), rel=1e-10)
    poly2 = metrics.mmd_test(x, y, 5, kernel="polynomial", degree=2, coef0=0.5, gamma=0.3)
    assert poly2.statistic == pytest.approx(
        brute_mmd(x, y, kernel="polynomial", degree=2, coef0=0.5, gamma=0.3), rel=1e-10)


def test_mmd_test_with_one_permutation_has_zero_null_spread(small):
    x, y = small
    res = metrics.mmd_test(x, y, 1, seed=2, bandwidth=1.0)
    obs, null = brute_test(x, y, 1, 2, bw=1.0)
    assert res.null_std == 0.0 and res.null_mean == pytest.approx(null[0], rel=1e-10)
    assert res.pvalue in (0.5, 1.0) and res.pvalue == (1 + int(null[0] >= obs)) / 2


def test_mmd_test_counts_ties_as_exceeding():
    # every point identical: every relabelling gives the same statistic, so all B permutations
    # tie with the observed one and the p-value (1 + B) / (1 + B) is 1 (never below alpha)
    x = np.ones((5, 2))
    for estimator in ("biased", "unbiased"):
        for max_bytes in (0, 2**20):
            res = metrics.mmd_test(x, x[:4], 20, bandwidth=1.0, estimator=estimator,
                                   max_matrix_bytes=max_bytes, progress_bar=False)
            assert res.pvalue == 1.0 and not res.reject()


def test_mmd_test_without_a_seed_draws_fresh_permutations(small):
    x, y = small
    res = metrics.mmd_test(x, y, 30, seed=None, bandwidth=1.0)
    assert res.statistic == pytest.approx(brute_mmd(x, y, bw=1.0), rel=1e-10)
    assert 1 / 31 <= res.pvalue <= 1


def test_mmd_test_builds_the_pooled_matrix_exactly_when_it_fits(small, monkeypatch):
    x, y = small
    big_n = len(x) + len(y)
    calls = []
    real = mmd_module._pooled_matrix
    monkeypatch.setattr(mmd_module, "_pooled_matrix",
                        lambda *a: calls.append(1) or real(*a))
    metrics.mmd_test(x, y, 5, bandwidth=1.0, max_matrix_bytes=big_n * big_n * 8)
    assert calls == [1]  # (n + m)^2 float64 entries fit exactly
    metrics.mmd_test(x, y, 5, bandwidth=1.0, max_matrix_bytes=big_n * big_n * 8 - 1,
                     progress_bar=False)
    assert calls == [1]  # one byte short: the blockwise path
    metrics.mmd_test(x, y, 5, bandwidth=1.0, estimator="linear")
    assert calls == [1]  # the linear statistic never needs the matrix


def test_mmd_test_logs_its_progress_on_the_blockwise_path(small, caplog):
    x, y = small
    with caplog.at_level(logging.INFO, logger="densitylab"):
        metrics.mmd_test(x, y, 10, bandwidth=1.0, max_matrix_bytes=0)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["mmd_test 1/10", "mmd_test 2/10", "mmd_test 3/10", "mmd_test 4/10",
                     "mmd_test 5/10", "mmd_test 6/10", "mmd_test 7/10", "mmd_test 8/10",
                     "mmd_test 9/10", "mmd_test 10/10"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="densitylab"):
        metrics.mmd_test(x, y, 10, bandwidth=1.0, max_matrix_bytes=0, progress_bar=False)
    assert caplog.records == []


def test_mmd_test_reject_compares_the_pvalue_with_alpha():
    res = mmd_module.MMDTestResult(statistic=0.1, pvalue=0.05, num_permutations=19,
                                   estimator="unbiased", kernel="rbf", bandwidth=(1.0,),
                                   null_mean=0.0, null_std=0.1)
    assert res.reject() and res.reject(0.05) and not res.reject(0.049)
    assert not dataclass_replace(res, pvalue=0.06).reject()
    with pytest.raises(ValueError, match=r"^alpha must be"):
        res.reject(0.0)
    with pytest.raises(TypeError, match=r"^alpha must be a real number"):
        res.reject(None)


def dataclass_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_mmd_test_bad_options_name_the_argument(small):
    x, y = small
    cases = [
        (dict(num_permutations=0), ValueError, r"^num_permutations must be >= 1, got 0$"),
        (dict(max_matrix_bytes=-1), ValueError, r"^max_matrix_bytes must be >= 0, got -1$"),
        (dict(max_matrix_bytes=1.5), TypeError, r"^max_matrix_bytes must be an integer"),
        (dict(seed=1.5), TypeError, r"^seed must be an integer, got float 1.5$"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            metrics.mmd_test(x, y, **{"bandwidth": 1.0, **kwargs})
    # the smallest valid values work
    assert metrics.mmd_test(x, y, 1, bandwidth=1.0, max_matrix_bytes=0).num_permutations == 1


# ---------------------------------------------------------------------------------------------
# mmd: dtypes, tiny samples, options passed through
# ---------------------------------------------------------------------------------------------


def test_mmd_of_one_row_each_is_the_biased_estimate_from_the_definition():
    x, y = np.array([[0.0, 1.0]]), np.array([[1.0, 3.0]])
    # k(x, x) + k(y, y) - 2 k(x, y) with |x - y|^2 = 5
    assert metrics.mmd(x, y, bandwidth=1.0, estimator="biased") == pytest.approx(
        2 - 2 * math.exp(-2.5), rel=1e-12)
    with pytest.raises(ValueError, match=r"^x needs at least 2 sample\(s\), got 1$"):
        metrics.mmd(x, y, bandwidth=1.0)
    with pytest.raises(ValueError, match=r"^y needs at least 2 sample\(s\), got 1$"):
        metrics.mmd(np.zeros((3, 2)), y, bandwidth=1.0, estimator="linear")
    xs, ys = mmd_module.paired_samples(x, y)  # one row each is enough by default
    assert xs.shape == ys.shape == (1, 2)


@pytest.mark.parametrize("dtype_x, dtype_y", [(torch.float32, torch.float64),
                                              (torch.float64, torch.float32),
                                              (torch.float16, torch.float16),
                                              (torch.bfloat16, torch.float16)])
def test_mixed_and_half_precision_inputs_are_computed_in_a_common_float_dtype(dtype_x, dtype_y):
    rng = np.random.default_rng(11)
    # values exactly representable in every dtype involved (multiples of 1/8 below 4)
    x = np.round(rng.normal(size=(12, 2)) * 8) / 8
    y = np.round(rng.normal(size=(10, 2)) * 8) / 8 + 0.5
    xs, ys = mmd_module.paired_samples(torch.tensor(x, dtype=dtype_x),
                                       torch.tensor(y, dtype=dtype_y))
    expected = torch.promote_types(dtype_x, dtype_y)
    if expected in (torch.float16, torch.bfloat16):
        expected = torch.float32
    assert xs.dtype == ys.dtype == expected
    got = metrics.mmd(torch.tensor(x, dtype=dtype_x), torch.tensor(y, dtype=dtype_y),
                      bandwidth=1.0)
    tol = 1e-10 if expected == torch.float64 else 1e-5
    assert got == pytest.approx(brute_mmd(x, y, bw=1.0), rel=tol, abs=tol)


def test_float32_mmd_far_from_the_origin_is_centred_before_the_distance_expansion():
    # |x|^2 + |y|^2 - 2 x.y at |x| ~ 3e4 in float32 loses every digit of a unit distance; the
    # pooled-mean shift (exact in float64 here) keeps it: compare with the unshifted float64 value
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(30, 3)) + 0.7
    offset = np.array([2.0e4, -1.5e4, 1.0e4])
    want = brute_mmd(x, y, bw=1.0)
    for kernel in ("rbf", "imq", "multi_rbf"):
        want = brute_mmd(x, y, kernel=kernel, bw=1.0)
        got = metrics.mmd(torch.tensor(x + offset, dtype=torch.float32),
                          torch.tensor(y + offset, dtype=torch.float32), kernel=kernel,
                          bandwidth=1.0, block_size=16)
        assert got == pytest.approx(want, rel=2e-3, abs=1e-4), kernel
        lin = metrics.mmd(torch.tensor(x + offset, dtype=torch.float32),
                          torch.tensor(y + offset, dtype=torch.float32), kernel=kernel,
                          bandwidth=1.0, estimator="linear")
        assert lin == pytest.approx(brute_mmd(x, y, "linear", kernel, bw=1.0), rel=2e-3,
                                    abs=1e-4), kernel
    res = metrics.mmd_test(torch.tensor(x + offset, dtype=torch.float32),
                           torch.tensor(y + offset, dtype=torch.float32), 5, bandwidth=1.0)
    assert res.statistic == pytest.approx(brute_mmd(x, y, bw=1.0), rel=2e-3, abs=1e-4)


@pytest.mark.parametrize("estimator", ["unbiased", "biased", "linear"])
def test_polynomial_options_reach_the_kernel(small, estimator):
    x, y = small
    got = metrics.mmd(x, y, kernel="polynomial", estimator=estimator, degree=2, gamma=0.5,
                      coef0=0.0)
    assert got == pytest.approx(brute_mmd(x, y, estimator, "polynomial", degree=2, gamma=0.5,
                                          coef0=0.0), rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("kernel", ["rbf", "multi_rbf", "imq", "laplacian", "polynomial"])
def test_block_size_one_and_uneven_blocks_match_the_dense_matrix(small, kernel):
    x, y = small
    bw = None if kernel == "polynomial" else 0.9
    for block in (1, 4):
        for estimator in ("unbiased", "biased"):
            got = metrics.mmd(x, y, kernel=kernel, bandwidth=bw, estimator=estimator,
                              block_size=block)
            assert got == pytest.approx(brute_mmd(x, y, estimator, kernel, bw=0.9), rel=1e-10,
                                        abs=1e-14)


def test_mmd_bad_options_name_the_argument(small):
    x, y = small
    with pytest.raises(ValueError, match=r"^unknown estimator 'u'; expected one of 'unbiased'"):
        metrics.mmd(x, y, bandwidth=1.0, estimator="u")
    with pytest.raises(ValueError, match=r"^block_size must be >= 1, got 0$"):
        metrics.mmd(x, y, bandwidth=1.0, block_size=0)
    with pytest.raises(ValueError, match=r"^x needs at least 1 sample"):
        metrics.mmd(np.zeros((0, 2)), y, bandwidth=1.0, estimator="biased")
    with pytest.raises(ValueError, match=r"^y needs at least 1 sample"):
        metrics.mmd(x, np.zeros((0, 2)), bandwidth=1.0, estimator="biased")


def test_mmd_test_with_two_permutations_reports_their_spread(small):
    x, y = small
    res = metrics.mmd_test(x, y, 2, seed=4, bandwidth=1.0)
    _, null = brute_test(x, y, 2, 4, bw=1.0)
    assert res.null_std == pytest.approx(abs(null[1] - null[0]) / math.sqrt(2), rel=1e-9)
