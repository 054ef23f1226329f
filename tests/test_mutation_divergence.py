"""k-NN KL, k-NN entropy and Monte Carlo KL, checked where mutation testing found the suite blind.

Truths: the estimators' formulas written out from a full numpy distance matrix (the k-th
smallest *strictly positive* distance, as the module docstring defines it), the digamma function
at integers from harmonic numbers (``psi(n) = -gamma + sum_{j<n} 1/j``), exact means of seeded
log-density ratios, the documented error messages, and for the k-d tree's growth loop a bound
on its queries (each round asks for at least twice as many neighbours, so at most
``log2(n) + 1`` queries; a loop that stops growing fails instead of hanging). See
docs/testing.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.spatial
import torch
from scipy.spatial import cKDTree

from densitylab import distributions, metrics
from densitylab.metrics.divergence import _kth_positive_kdtree

EULER_GAMMA = 0.5772156649015329


def digamma_int(n: int) -> float:
    return -EULER_GAMMA + math.fsum(1.0 / j for j in range(1, n))


def kth_positive(d: np.ndarray, k: int) -> np.ndarray:
    """Per row: the k-th smallest strictly positive entry (zeros: coincident points, skipped)."""
    return np.array([np.sort(row[row > 0])[k - 1] for row in d])


def dist(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def brute_kl(x, y, k):
    n, d = x.shape
    rho = kth_positive(dist(x, x), k)
    nu = kth_positive(dist(x, y), k)
    return d * np.mean(np.log(nu / rho)) + math.log(len(y) / (n - 1))


def brute_entropy(x, k):
    n, d = x.shape
    rho = kth_positive(dist(x, x), k)
    log_vd = 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1)
    return digamma_int(n) - digamma_int(k) + log_vd + d * np.mean(np.log(rho))


def with_duplicates(rng, n_distinct, copies, d=2):
    """Distinct points, the first few repeated ``copies`` times (so tree queries must grow)."""
    base = rng.normal(size=(n_distinct, d))
    return np.concatenate([base] + [base[:3]] * copies)


@pytest.fixture
def bounded_tree_queries(monkeypatch):
    """The estimators' k-d trees, each failing the test once its growth loop stops doubling."""
    built = []

    class BoundedQueryTree(cKDTree):
        def __init__(self, data, *args, **kwargs):
            super().__init__(data, *args, **kwargs)
            self.queries = 0
            built.append(self)

        def query(self, x, *args, **kwargs):
            # asking for at least twice as many neighbours each round, n is reached after
            # log2(n) rounds (an endless loop is caught here instead of by a time-out)
            self.queries += 1
            assert self.queries <= math.ceil(math.log2(self.n)) + 1, "tree query not growing"
            return super().query(x, *args, **kwargs)

    monkeypatch.setattr(scipy.spatial, "cKDTree", BoundedQueryTree)
    return built


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("method", ["kdtree", "brute"])
def test_kl_and_entropy_with_many_duplicates_match_the_formula(k, method, bounded_tree_queries):
    rng = np.random.default_rng(20 + k)
    x = with_duplicates(rng, 30, copies=9)  # 3 positions held by 10 points each
    y = np.concatenate([rng.normal(size=(25, 2)) + 0.3, x[:2]])  # y shares 2 positions with x
    xt, yt = torch.tensor(x), torch.tensor(y)
    assert metrics.kl_knn(xt, yt, k=k, method=method) == pytest.approx(brute_kl(x, y, k),
                                                                       rel=1e-9)
    assert metrics.entropy_knn(xt, k=k, method=method) == pytest.approx(brute_entropy(x, k),
                                                                        rel=1e-9)
    assert bool(bounded_tree_queries) == (method == "kdtree")


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_entropy_matches_the_kozachenko_leonenko_formula_from_scratch(d):
    x = np.random.default_rng(d).normal(size=(40, d))
    for k in (1, 4):
        assert metrics.entropy_knn(x, k=k) == pytest.approx(brute_entropy(x, k), rel=1e-10)
    assert metrics.entropy_knn(x) == metrics.entropy_knn(x, k=1)  # the documented default


@pytest.mark.parametrize("method", ["kdtree", "brute"])
def test_too_many_duplicates_name_the_set_and_k(method, bounded_tree_queries):
    rng = np.random.default_rng(3)
    with pytest.raises(ValueError, match=r"^x has fewer than k=1 distinct neighbour positions"):
        metrics.kl_knn(np.ones((10, 2)), rng.normal(size=(10, 2)), method=method)
    with pytest.raises(ValueError, match=r"^x has fewer than k=2 distinct neighbour positions"):
        metrics.entropy_knn(np.concatenate([np.ones((8, 2)), np.zeros((1, 2))]), k=2,
                            method=method)
    # x's first point sits where all three y do: no y at a positive distance from it
    x = np.concatenate([np.ones((1, 2)), rng.normal(size=(5, 2))])
    with pytest.raises(ValueError, match=r"^y has fewer than k=3 distinct neighbour positions"):
        metrics.kl_knn(x, np.ones((3, 2)), k=3, method=method)
    assert bool(bounded_tree_queries) == (method == "kdtree")


def test_sample_size_limits_are_exact_and_name_the_argument():
    x = np.arange(6.0).reshape(3, 2)
    y = np.arange(4.0).reshape(2, 2) + 0.5
    # x needs k + 1 rows, y needs k rows: the smallest valid sets work ...
    assert metrics.kl_knn(x, y, k=2) == pytest.approx(brute_kl(x, y, 2), rel=1e-12)
    assert metrics.entropy_knn(x, k=2) == pytest.approx(brute_entropy(x, 2), rel=1e-12)
    # ... and one row fewer is refused with the argument's name
    with pytest.raises(ValueError, match=r"^x needs at least 3 sample\(s\), got 2$"):
        metrics.kl_knn(x[:2], y, k=2)
    with pytest.raises(ValueError, match=r"^y needs at least 2 sample\(s\), got 1$"):
        metrics.kl_knn(x, y[:1], k=2)
    with pytest.raises(ValueError, match=r"^x needs at least 3 sample\(s\), got 2$"):
        metrics.entropy_knn(x[:2], k=2)
    for fn in (lambda k: metrics.kl_knn(x, y, k=k), lambda k: metrics.entropy_knn(x, k=k)):
        with pytest.raises(ValueError, match=r"^k must be >= 1, got 0$"):
            fn(0)
    with pytest.raises(ValueError, match=r"^unknown method 'ball'; expected one of 'auto'"):
        metrics.entropy_knn(x, method="ball")


@pytest.mark.parametrize("d", [2, 9])  # 9: above the dimension where CUDA input goes brute
def test_the_tree_path_measures_float32_input_in_float64(d):
    # The k-d tree works in float64 whatever it is given, so "kdtree" (and "auto" on the CPU,
    # in any dimension) match the float64 formula; float32 distances would be ~1e-7 off.
    rng = np.random.default_rng(40 + d)
    x = rng.normal(size=(40, d)).astype(np.float32)
    y = (rng.normal(size=(35, d)) + 0.2).astype(np.float32)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    for method in ("auto", "kdtree"):
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        assert metrics.kl_knn(xt, yt, k=2, method=method) == pytest.approx(
            brute_kl(x64, y64, 2), rel=1e-12, abs=1e-14)
        assert metrics.entropy_knn(xt, k=2, method=method) == pytest.approx(
            brute_entropy(x64, 2), rel=1e-12)


@pytest.mark.parametrize("k", [1, 3])
def test_the_brute_path_takes_logarithms_in_float64(k):
    # Integer and half-integer points on a line: float32 distances are exact, so only the
    # logarithm can lose precision (float32 logs are ~1e-8 relative off).
    rng = np.random.default_rng(60 + k)
    x = rng.permutation(100)[:30].astype(np.float32).reshape(-1, 1)
    y = (rng.permutation(100)[:25] + 0.5).astype(np.float32).reshape(-1, 1)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    assert metrics.kl_knn(xt, yt, k=k, method="brute") == pytest.approx(
        brute_kl(x64, y64, k), rel=1e-12)
    assert metrics.entropy_knn(xt, k=k, method="brute") == pytest.approx(
        brute_entropy(x64, k), rel=1e-12)


class CountingTree:
    """A k-d tree that counts its queries and fails once there are more than ``limit``."""

    def __init__(self, points, limit):
        self._tree, self.n, self.limit, self.ks = cKDTree(points), len(points), limit, []

    def query(self, queries, k, workers=1):
        self.ks.append(k)
        assert len(self.ks) <= self.limit, f"tree queried {len(self.ks)} times: k={self.ks}"
        return self._tree.query(queries, k=k, workers=workers)


def test_the_tree_query_at_least_doubles_until_it_has_k_positive_distances():
    # 3 positions held by 8 points each among 15 distinct ones (n = 36): a point at a repeated
    # position has 7 zero distances besides its own. Asking for at least twice as many
    # neighbours each round, the loop reaches n after at most log2(n / 2) + 1 queries.
    pts = with_duplicates(np.random.default_rng(11), 15, copies=7)
    limit = math.ceil(math.log2(len(pts) / 2)) + 1
    for k in (1, 3):
        tree = CountingTree(pts, limit)
        got = _kth_positive_kdtree(tree, pts, k, "x", queries_in_tree=True)
        np.testing.assert_allclose(got, kth_positive(dist(pts, pts), k), rtol=1e-12)
        assert tree.ks[0] == k + 1  # the query point itself, then k neighbours


def test_the_tree_query_gives_up_once_it_has_asked_for_all_points():
    # 20 points at one position and one elsewhere: the 20 have one neighbour at a positive
    # distance, not two; after at most log2(n / 3) + 1 queries the loop has asked for all n.
    lone = np.concatenate([np.zeros((20, 2)), np.ones((1, 2))])
    tree = CountingTree(lone, math.ceil(math.log2(len(lone) / 3)) + 1)
    with pytest.raises(ValueError, match=r"^x has fewer than k=2 distinct neighbour positions"):
        _kth_positive_kdtree(tree, lone, 2, "x", queries_in_tree=True)
    assert tree.ks[-1] == len(lone)


# ---------------------------------------------------------------------------------------------
# Monte Carlo KL
# ---------------------------------------------------------------------------------------------


class Density:
    """A minimal exact density: N(mean, 1) per coordinate, with or without ``sample``."""

    def __init__(self, mean, *, sampler=True, dtype=torch.float64, log_prob_override=None):
        self.mean, self.dtype = mean, dtype
        self._override = log_prob_override
        if sampler:
            self.sample = self._sample

    def _sample(self, n):  # no seed argument: kl_mc must not pass one when seed is None
        return torch.randn(n, 2, dtype=self.dtype, generator=torch.Generator().manual_seed(5)) \
            + self.mean

    def log_prob(self, x):
        if self._override is not None:
            return self._override(x)
        return (-0.5 * (x - self.mean) ** 2 - 0.5 * math.log(2 * math.pi)).sum(1).to(self.dtype)


def test_kl_mc_is_the_exact_mean_of_the_log_ratios_in_any_batching():
    p, q = Density(0.0), Density(0.5, sampler=False)  # q needs no sample()
    x = p.sample(10)
    ratios = (p.log_prob(x) - q.log_prob(x)).numpy()
    for batch_size in (1, 3, 10, 65536):
        res = metrics.kl_mc(p, q, 10, batch_size=batch_size)
        assert res.value == pytest.approx(float(np.mean(ratios)), rel=1e-12)
        assert res.stderr == pytest.approx(float(np.std(ratios, ddof=1)) / math.sqrt(10),
                                           rel=1e-12)
        assert res.num_samples == 10
        assert res.to_dict() == {"value": res.value, "stderr": res.stderr, "num_samples": 10}
    # the smallest sample: two draws
    assert metrics.kl_mc(p, q, 2).num_samples == 2


def test_kl_mc_accumulates_float32_log_densities_in_float64():
    p = Density(0.0, dtype=torch.float32)
    q = Density(0.25, sampler=False, dtype=torch.float32)
    x = p.sample(4001)
    r = p.log_prob(x).double() - q.log_prob(x).double()
    res = metrics.kl_mc(p, q, 4001, batch_size=1000)  # a short last batch too
    assert res.value == pytest.approx(float(r.mean()), rel=1e-13)


def test_kl_mc_reports_an_infinite_divergence_and_refuses_nan():
    p = Density(0.0)
    q_zero = Density(0.0, sampler=False,
                     log_prob_override=lambda x: torch.where(x[:, 0] > 0, -math.inf, 0.0))
    res = metrics.kl_mc(p, q_zero, 20, batch_size=7)
    assert res.value == math.inf and res.stderr == math.inf and res.num_samples == 20
    q_nan = Density(0.0, sampler=False,
                    log_prob_override=lambda x: torch.where(x[:, 0] > 0, math.nan, 0.0))
    with pytest.raises(ValueError, match=r"^log p - log q is NaN for some samples \(log_prob "
                                         r"returned NaN, or -inf for p\)$"):
        metrics.kl_mc(p, q_nan, 20, batch_size=7)


def test_kl_mc_checks_its_arguments_with_named_messages():
    p = Density(0.0)
    with pytest.raises(TypeError, match=r"^p must have a callable \.sample\(\.\.\.\)"):
        metrics.kl_mc(Density(0.0, sampler=False), p, 10)
    with pytest.raises(TypeError, match=r"^q must have a callable \.log_prob\(\.\.\.\)"):
        metrics.kl_mc(p, object(), 10)
    with pytest.raises(TypeError, match=r"^q has no closed-form density; use kl_knn"):
        metrics.kl_mc(p, distributions.two_moons(), 10)
    with pytest.raises(ValueError, match=r"^num_samples must be >= 2, got 1$"):
        metrics.kl_mc(p, p, 1)
    with pytest.raises(ValueError, match=r"^batch_size must be >= 1, got 0$"):
        metrics.kl_mc(p, p, 10, batch_size=0)
    # an object without a has_density attribute is taken to have one
    assert not hasattr(p, "has_density")
    assert metrics.kl_mc(p, p, 10, batch_size=4).value == 0.0


class Uniform:
    """Uniform density on ``[0, 1]^2`` whose ``log_prob`` is one 0-dim float64 tensor (0.0)."""

    def sample(self, n):
        return torch.rand(n, 2, dtype=torch.float32, generator=torch.Generator().manual_seed(6))

    def log_prob(self, x):
        return torch.tensor(0.0, dtype=torch.float64)


def test_kl_mc_stays_in_float64_when_one_log_density_is_a_broadcast_constant():
    # torch keeps a float32 vector's dtype against a 0-dim float64 tensor, so each side must
    # be converted to float64 before the subtraction; a float32 mean is ~1e-7 relative off.
    gauss = Density(0.3, dtype=torch.float32)
    lp32 = gauss.log_prob(gauss.sample(3001)).numpy().astype(np.float64)
    res = metrics.kl_mc(gauss, Uniform(), 3001, batch_size=1000)
    assert res.value == pytest.approx(float(np.mean(lp32)), rel=1e-12)
    uniform = Uniform()
    lq32 = gauss.log_prob(uniform.sample(3001)).numpy().astype(np.float64)
    res = metrics.kl_mc(uniform, gauss, 3001, batch_size=1000)
    assert res.value == pytest.approx(float(np.mean(-lq32)), rel=1e-12)
