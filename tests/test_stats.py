"""Statistics across seeds, each checked against an independent truth: brute-force enumeration,
scipy's own implementations, analytic values, and coverage / error rates over synthetic repeats
with a known answer."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from densitylab import stats


def _brute_two_sided(a, b):
    """Exact permutation p-value by enumerating index subsets directly (no shared code)."""
    pooled = list(a) + list(b)
    obs = abs(np.mean(a) - np.mean(b))
    hits = total = 0
    for idx in itertools.combinations(range(len(pooled)), len(a)):
        ga = [pooled[i] for i in idx]
        gb = [pooled[i] for i in range(len(pooled)) if i not in idx]
        hits += abs(np.mean(ga) - np.mean(gb)) >= obs - 1e-12
        total += 1
    return hits / total


def test_exact_permutation_matches_brute_force_and_scipy():
    a, b = [8.0, 8.0, 7.0, 8.0, 1.0], [8.0, 6.0, 5.0, 4.0, 8.0, 3.0]
    res = stats.permutation_test(a, b)
    assert res.exact and res.relabellings == math.comb(11, 5)
    assert res.difference == pytest.approx(np.mean(a) - np.mean(b))
    assert res.pvalue == pytest.approx(_brute_two_sided(a, b), abs=1e-12)
    ref = sps.permutation_test((a, b), lambda x, y: np.mean(x) - np.mean(y),
                               permutation_type="independent", alternative="two-sided",
                               n_resamples=np.inf)
    assert res.pvalue == pytest.approx(ref.pvalue, abs=1e-12)


def test_monte_carlo_pvalue_agrees_with_exact_and_is_never_zero():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.0, 1.0, 10), rng.normal(0.8, 1.0, 10)
    exact = stats.permutation_test(a, b)  # all 184,756 relabellings (the default bound)
    mc = stats.permutation_test(a, b, max_exact=0, num_resamples=20_000, seed=1)
    assert exact.exact and not mc.exact
    se = math.sqrt(exact.pvalue * (1 - exact.pvalue) / 20_000)
    assert abs(mc.pvalue - exact.pvalue) < 4 * se + 1e-4
    far = stats.permutation_test(np.arange(11.0), np.arange(10.0) + 100, num_resamples=999)
    assert not far.exact and far.relabellings == 999  # C(21, 11) = 352,716 > 200,000
    assert far.pvalue == pytest.approx(1 / 1000)  # the +1 correction: never 0


def test_identical_groups_give_p_one_and_clear_differences_p_below_001():
    same = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0]
    assert stats.permutation_test(same, same).pvalue == 1.0
    assert stats.permutation_test(same[:4], same[:4]).pvalue == 1.0  # exact path
    rng = np.random.default_rng(0)
    clear = stats.permutation_test(rng.normal(0, 1, 10), rng.normal(5, 1, 10))
    assert clear.pvalue < 0.01
    assert stats.permutation_test([2.0] * 5, [2.0] * 5).pvalue == 1.0  # no spread at all


def test_permutation_false_positive_rate_and_power():
    rng = np.random.default_rng(2026)
    null_a, null_b = rng.normal(0, 1, (400, 10)), rng.normal(0, 1, (400, 10))
    _, p_null, exact = stats.permutation_pvalues(null_a, null_b, max_exact=0,
                                                 num_resamples=2000, seed=1)
    assert not exact
    rate = float(np.mean(p_null <= 0.05))
    assert 0.03 <= rate <= 0.07, rate
    alt_a, alt_b = rng.normal(0, 1, (400, 10)), rng.normal(1.5, 1, (400, 10))
    _, p_alt, _ = stats.permutation_pvalues(alt_a, alt_b, max_exact=0, num_resamples=2000,
                                            seed=2)
    power = float(np.mean(p_alt <= 0.05))
    # the two-sample t-test's power here is 0.89; the permutation test is close to it
    t_power = 1 - sps.nct.cdf(sps.t.ppf(0.975, 18), 18, 1.5 * math.sqrt(5)) \
        + sps.nct.cdf(-sps.t.ppf(0.975, 18), 18, 1.5 * math.sqrt(5))
    assert power >= 0.8 and abs(power - t_power) < 0.06, (power, t_power)


def _coverage(repeats: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    data = rng.normal(2.0, 3.0, (repeats, 10))
    return float(np.mean([(iv := stats.bootstrap_interval(row, seed=i)).low <= 2.0 <= iv.high
                          for i, row in enumerate(data)]))


def test_bootstrap_interval_covers_a_known_mean():
    # 200 repeats of 10 seeds: binomial noise alone is +-1.6 points around the true coverage
    covered = _coverage(200, seed=0)
    assert 0.93 <= covered <= 0.99, covered
    # skewed, split outcomes (a seed trains: 8 modes, or collapses: 1 mode, P = 0.2)
    rng = np.random.default_rng(1)
    split = np.where(rng.random((200, 10)) < 0.2, 1.0, 8.0)
    covered = np.mean([(iv := stats.bootstrap_interval(r, seed=i)).low <= 6.6 <= iv.high
                       for i, r in enumerate(split)])
    assert covered >= 0.85, covered  # discrete, skewed: a bootstrap's known weak spot


@pytest.mark.slow
def test_bootstrap_interval_coverage_is_nominal_over_many_repeats():
    covered = _coverage(4000, seed=11)  # +-0.35 points of binomial noise
    assert abs(covered - 0.95) < 0.012, covered  # the plain percentile interval gives ~0.91


def test_bootstrap_interval_large_n_is_the_normal_interval_and_is_seeded():
    x = np.random.default_rng(1).exponential(1.0, 400)
    iv = stats.bootstrap_interval(x, seed=0)
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)
    assert iv.low == pytest.approx(x.mean() - half, abs=0.15 * half)
    assert iv.high == pytest.approx(x.mean() + half, abs=0.15 * half)
    assert iv == stats.bootstrap_interval(x, seed=0)
    assert iv != stats.bootstrap_interval(x, seed=1)
    assert math.isnan(stats.bootstrap_interval([1.0]).low)
    assert stats.bootstrap_interval([4.0, 4.0, 4.0]) == stats.Interval(4.0, 4.0, 0.95, 3)


def test_effect_sizes_against_their_formulas():
    a, b = np.array([1.0, 2.0, 4.0, 7.0]), np.array([0.0, 1.0, 1.0])
    sp = math.sqrt((3 * a.var(ddof=1) + 2 * b.var(ddof=1)) / 5)
    assert stats.hedges_g(a, b) == pytest.approx((a.mean() - b.mean()) / sp * (1 - 3 / 19))
    pairs = [int(x > y) - int(x < y) for x in a for y in b]
    assert stats.cliffs_delta(a, b) == pytest.approx(sum(pairs) / len(pairs))
    assert stats.hedges_g([1.0, 1.0], [1.0, 1.0]) == 0.0
    assert stats.hedges_g([2.0, 2.0], [1.0, 1.0]) == math.inf


def test_holm_against_a_hand_worked_family_and_fisher_against_the_hypergeometric():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, 1*0.04, running max
    assert stats.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([]).size == 0
    # 0 of 10 against 2 of 10: one-sided P = C(10,2)/C(20,2)... two-sided doubles here
    one_sided = math.comb(10, 0) * math.comb(10, 2) / math.comb(20, 2)
    assert one_sided == pytest.approx(0.2368, abs=1e-4)
    assert stats.fisher_failures(0, 10, 2, 10) == pytest.approx(2 * one_sided)
    assert stats.fisher_failures(3, 10, 3, 10) == pytest.approx(1.0)


@pytest.mark.parametrize("call, match", [
    (lambda: stats.bootstrap_interval([1.0, math.nan]), "finite"),
    (lambda: stats.bootstrap_interval([[1.0, 2.0]]), "1-D"),
    (lambda: stats.bootstrap_interval("abc"), "sequence"),
    (lambda: stats.bootstrap_interval([1.0, 2.0], level=1.5), "level"),
    (lambda: stats.permutation_test([], [1.0]), "at least 1"),
    (lambda: stats.hedges_g([1.0], [1.0, 2.0]), "at least 2"),
    (lambda: stats.holm([0.5, 1.2]), r"\[0, 1\]"),
    (lambda: stats.fisher_failures(3, 2, 0, 1), "at most n_a"),
    (lambda: stats.fisher_failures(0, 0, 0, 1), "n_a"),
    (lambda: stats.fisher_power(5, 5, 1.2, 0.0), "rate_a"),
    (lambda: stats.t_test_power(1, 5, 1.0), "n_a"),
    (lambda: stats.bootstrap_difference([1.0, math.inf], [1.0]), "finite"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# ---------------------------------------------------------------- exact p-values up to 200,000


@pytest.mark.parametrize("n_a, n_b, seed", [(1, 1, 0), (2, 2, 1), (3, 3, 2), (3, 5, 3),
                                            (4, 4, 4), (5, 6, 5), (6, 6, 6)])
def test_exact_pvalue_is_the_brute_force_one_on_small_cases(n_a, n_b, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, n_a).astype(float)  # small integers: many ties
    b = rng.integers(1, 5, n_b).astype(float)
    res = stats.permutation_test(a, b)
    assert res.exact and res.relabellings == math.comb(n_a + n_b, n_a)
    assert res.pvalue == pytest.approx(_brute_two_sided(a, b), abs=1e-12)


def test_ten_against_ten_is_exact_and_equals_scipys_full_enumeration():
    rng = np.random.default_rng(7)
    a, b = rng.normal(0, 1, 10), rng.normal(0.7, 1, 10)
    res = stats.permutation_test(a, b)
    assert stats.MAX_EXACT == 200_000
    assert res.exact and res.relabellings == 184_756
    # an independent enumeration: every 20-bit mask with ten bits set is one relabelling
    masks = np.arange(1 << 20, dtype=np.uint32)
    bits = ((masks[:, None] >> np.arange(20, dtype=np.uint32)) & 1).astype(bool)
    bits = bits[bits.sum(axis=1) == 10]
    assert len(bits) == 184_756
    pooled = np.concatenate([a, b])
    sums = bits @ pooled
    diffs = np.abs(sums / 10 - (pooled.sum() - sums) / 10)
    expected = np.mean(diffs >= abs(a.mean() - b.mean()) - 1e-12)
    assert res.pvalue == pytest.approx(expected, abs=1e-12)
    # many rows at once, chunked: each row is its own exact test
    rows_a, rows_b = rng.normal(0, 1, (3, 10)), rng.normal(0.5, 1, (3, 10))
    _, p, exact = stats.permutation_pvalues(rows_a, rows_b)
    assert exact
    for r in range(3):
        assert p[r] == pytest.approx(stats.permutation_test(rows_a[r], rows_b[r]).pvalue)


def test_a_known_case_the_most_extreme_split_of_ten_against_ten():
    # every value of a above every value of b: only that labelling and its mirror are as
    # extreme, p = 2 / C(20, 10)
    res = stats.permutation_test(np.arange(10.0) + 10, np.arange(10.0))
    assert res.pvalue == pytest.approx(2 / 184_756)
    assert stats.min_permutation_pvalue(10, 10) == pytest.approx(2 / 184_756)
    assert stats.min_permutation_pvalue(2, 2) == pytest.approx(1 / 3)  # 2 / C(4, 2)
    assert stats.min_permutation_pvalue(3, 3) == pytest.approx(0.1)  # 2 / 20
    assert stats.min_permutation_pvalue(3, 4) == pytest.approx(1 / 35)
    # beyond 200,000 relabellings the Monte Carlo floor 1 / (num_resamples + 1)
    assert stats.min_permutation_pvalue(11, 11) == pytest.approx(1 / 10_001)
    extreme = stats.permutation_test(np.arange(3.0) + 10, np.arange(4.0))
    assert extreme.pvalue == pytest.approx(stats.min_permutation_pvalue(3, 4))


def test_bootstrap_difference_covers_a_known_difference_and_is_seeded():
    rng = np.random.default_rng(5)
    hits = 0
    for i in range(200):
        a, b = rng.normal(1.0, 2.0, 10), rng.normal(0.0, 1.0, 10)
        iv = stats.bootstrap_difference(a, b, seed=i)
        hits += iv.low <= 1.0 <= iv.high
    assert 0.91 <= hits / 200 <= 0.99, hits  # +-1.6 points of binomial noise around 0.95
    a, b = [1.0, 2.0, 3.0], [0.0, 0.5, 0.7, 1.0]
    assert stats.bootstrap_difference(a, b) == stats.bootstrap_difference(a, b)
    assert stats.bootstrap_difference(a, b, seed=1) != stats.bootstrap_difference(a, b)
    assert stats.bootstrap_difference([2.0, 2.0], [1.0, 1.0]) == stats.Interval(1.0, 1.0, 0.95, 4)
    assert math.isnan(stats.bootstrap_difference([1.0], [1.0, 2.0]).low)


# ---------------------------------------------------------------- power


def test_t_test_power_is_cohens_table_and_the_simulated_rate():
    # Cohen (1988) Table 2.4.1: d = 1, two-sided alpha 0.05: 17 per group give 0.80
    assert stats.t_test_power(17, 17, 1.0) == pytest.approx(0.807, abs=0.002)
    assert stats.t_test_power(16, 16, 1.0) < 0.8
    rng = np.random.default_rng(11)
    a, b = rng.normal(1.0, 1.0, (4000, 8)), rng.normal(0.0, 1.0, (4000, 8))
    rate = float(np.mean(sps.ttest_ind(a, b, axis=1).pvalue <= 0.05))
    assert rate == pytest.approx(stats.t_test_power(8, 8, 1.0), abs=0.025)
    assert stats.t_test_power(5, 5, 0.0) == pytest.approx(0.05)


def test_fisher_power_is_exact_by_enumeration_and_matches_simulation():
    # brute force: every (k_a, k_b) with scipy's Fisher test and the binomial probabilities
    n_a, n_b, ra, rb = 6, 5, 0.6, 0.1
    brute = sum(sps.binom.pmf(ka, n_a, ra) * sps.binom.pmf(kb, n_b, rb)
                for ka in range(n_a + 1) for kb in range(n_b + 1)
                if stats.fisher_failures(ka, n_a, kb, n_b) <= 0.05)
    assert stats.fisher_power(n_a, n_b, ra, rb) == pytest.approx(brute, abs=1e-12)
    # 20 % against 0 % failures: 10 seeds a side have about 3 % power, 39 are the first with 80 %
    assert stats.fisher_power(10, 10, 0.2, 0.0) == pytest.approx(0.0328, abs=1e-4)
    assert stats.fisher_power(38, 38, 0.2, 0.0) < 0.8 <= stats.fisher_power(39, 39, 0.2, 0.0)
    rng = np.random.default_rng(3)
    ka, kb = rng.binomial(20, 0.5, 3000), rng.binomial(20, 0.1, 3000)
    p = {t: sps.fisher_exact([[t[0], 20 - t[0]], [t[1], 20 - t[1]]])[1]
         for t in set(zip(ka.tolist(), kb.tolist(), strict=True))}
    rate = np.mean([p[t] <= 0.05 for t in zip(ka.tolist(), kb.tolist(), strict=True)])
    assert rate == pytest.approx(stats.fisher_power(20, 20, 0.5, 0.1), abs=0.03)
    # the smallest Fisher p: all of one group fail, none of the other
    assert stats.min_fisher_pvalue(3, 3) == pytest.approx(0.1)
    assert stats.min_fisher_pvalue(10, 10) == pytest.approx(stats.fisher_failures(10, 10, 0, 10))
