"""The testing kit itself: strategies stay within their documented bounds, and the assertion
helpers accept lawful functions and reject broken ones with a message that says why."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from densitylab import losses, metrics, testing
from densitylab.distributions import GaussianMixture

# --------------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------------


@given(testing.point_clouds(min_n=3, max_n=12, min_dim=2, max_dim=3, scale=(0.5, 4.0)))
def test_point_clouds_stay_in_bounds(x):
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float64
    n, d = x.shape
    assert 3 <= n <= 12 and 2 <= d <= 3
    assert bool(torch.isfinite(x).all())
    assert float(x.abs().max()) <= 4.0


@given(testing.point_clouds(max_n=8, scale=(1.0, 1.0)))
def test_point_clouds_nonzero_coordinates_are_not_tiny(x):
    nonzero = x[x != 0].abs()
    assert nonzero.numel() == 0 or float(nonzero.min()) >= 1e-6


@given(testing.point_clouds(max_n=8, dtype=torch.float32, as_numpy=True))
def test_point_clouds_numpy_float32(x):
    assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 2
    assert np.isfinite(x).all()


@given(testing.logits(max_abs=1e4, dtype=torch.float16))
def test_logits_in_half_precision_are_exact_and_bounded(z):
    assert z.dtype == torch.float16 and float(z.abs().max()) <= 1e4
    assert bool(torch.isfinite(z).all())


@given(testing.point_clouds(min_n=2, max_n=20, max_dim=2, scale=(1e-3, 1e3), distinct_rows=True))
def test_point_clouds_distinct_rows_are_separated(x):
    # brute force over all pairs: the documented minimum separation is s / 1024 >= lo / 1024
    dist = torch.cdist(x, x)
    off_diagonal = dist[~torch.eye(len(x), dtype=torch.bool)]
    assert float(off_diagonal.min()) >= 1e-3 / 1024 * (1 - 1e-12)


def test_point_clouds_can_produce_duplicate_rows():
    # the default strategy must reach repeated rows: laws have to hold on them too
    x = find(testing.point_clouds(min_n=2, max_n=4), lambda c: len(torch.unique(c, dim=0)) < len(c),
             settings=settings(database=None, max_examples=500))
    assert len(torch.unique(x, dim=0)) < len(x)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
@pytest.mark.parametrize("bad", [dict(min_n=0), dict(min_n=5, max_n=4), dict(scale=(0.0, 1.0)),
                                 dict(scale=(2.0, 1.0)), dict(max_dim=0)])
def test_point_clouds_reject_bad_bounds(bad):
    with pytest.raises(InvalidArgument):
        testing.point_clouds(**bad).example()


@given(testing.gaussian_mixtures(min_modes=2, max_modes=4, dim=(1, 3), mean_bound=3.0,
                                 std_range=(0.2, 1.0), min_weight=0.1))
def test_gaussian_mixtures_are_valid_and_bounded(p):
    assert isinstance(p, GaussianMixture)
    assert 2 <= p.n_modes <= 4 and 1 <= p.dim <= 3
    assert float(p.means.abs().max()) <= 3.0
    assert 0.2 - 1e-6 <= float(p.stds.min()) and float(p.stds.max()) <= 1.0 + 1e-6
    assert math.isclose(float(p.weights.sum()), 1.0, rel_tol=1e-5)
    assert float(p.weights.max() / p.weights.min()) <= 1 / 0.1 * (1 + 1e-5)
    corner = torch.full((1, p.dim), 3.0)
    testing.assert_finite(p.log_prob(torch.cat([p.sample(20, seed=0), corner, -corner])),
                          "log_prob")


@given(testing.gaussian_mixtures(dim=2, diagonal=True, dtype=torch.float64))
def test_gaussian_mixtures_diagonal(p):
    assert p.stds.shape == (p.n_modes, 2) and p.means.dtype == torch.float64


@given(testing.logits(max_abs=1e4))
def test_logits_are_bounded_and_finite(z):
    assert z.dtype == torch.float32 and z.ndim == 1 and 1 <= len(z) <= 16
    assert bool(torch.isfinite(z).all()) and float(z.abs().max()) <= 1e4


@pytest.mark.parametrize("extreme", [1e4, -1e4])
def test_logits_reach_the_extremes(extreme):
    z = find(testing.logits(max_abs=1e4), lambda z: bool((z == extreme).any()),
             settings=settings(database=None, max_examples=500))
    assert bool((z == extreme).any())


@given(testing.logits(shape=(2, 3), dtype=torch.float64, requires_grad=True))
def test_logits_shape_and_grad(z):
    assert z.shape == (2, 3) and z.dtype == torch.float64 and z.requires_grad and z.is_leaf


@given(testing.sample_pairs(min_n=2, max_n=10, max_dim=3))
def test_sample_pairs_share_the_feature_dimension(pair):
    x, y = pair
    assert x.shape[1] == y.shape[1] and 2 <= len(x) <= 10 and 2 <= len(y) <= 10


@given(testing.sample_pairs(max_n=10, same_size=True, distinct_rows=True, as_numpy=True))
def test_sample_pairs_same_size_distinct(pair):
    x, y = pair
    assert isinstance(x, np.ndarray) and x.shape == y.shape
    both = np.concatenate([x, y])
    assert len(np.unique(both, axis=0)) == len(both)


@given(testing.sample_pairs(min_n=5, max_n=10, same_distribution=True, scale=(1.0, 1.0)))
def test_sample_pairs_same_distribution_are_mixture_samples(pair):
    x, y = pair
    # the target's means lie in [-5, 5] and stds are at most 2: a point beyond 5 + 12 * 2 from
    # the origin in every coordinate would be a 12-sigma event
    assert float(torch.cat([x, y]).abs().max()) < 5 + 12 * 2
    assert len(torch.unique(torch.cat([x, y]), dim=0)) == len(x) + len(y)


@given(st.integers(1, 5).flatmap(testing.orthogonal_matrices))
def test_orthogonal_matrices_are_orthogonal(q):
    eye = torch.eye(q.shape[0], dtype=q.dtype)
    testing.assert_close(q.T @ q, eye, atol=1e-12)


@given(testing.affine_maps(3, max_condition=5.0, scale=(0.5, 2.0), shift_bound=1.0))
def test_affine_maps_are_well_conditioned(ab):
    a, b = ab
    sv = torch.linalg.svdvals(a)
    assert float(sv.max() / sv.min()) <= 5.0 * (1 + 1e-9)
    assert 0.5 * (1 - 1e-9) <= float(sv.min()) and float(sv.max()) <= 2.0 * 5.0 * (1 + 1e-9)
    assert b.shape == (3,) and float(b.abs().max()) <= 1.0


# --------------------------------------------------------------------------------------------
# assertion helpers: accept the lawful, reject the broken with a message naming the law
# --------------------------------------------------------------------------------------------

X = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
Y = torch.tensor([[3.0, 1.0], [2.0, 2.0]], dtype=torch.float64)


def mean_gap(x, y):
    return float(((x.mean(0) - y.mean(0)) ** 2).sum())


def test_assert_finite():
    testing.assert_finite(torch.ones(3), "ok")
    testing.assert_finite({"a": 1.0, "b": [np.zeros(2), torch.zeros(1)]}, "nested")
    with pytest.raises(AssertionError, match=r"loss has 1 non-finite value\(s\) out of 3.*\(1,\)"):
        testing.assert_finite(torch.tensor([0.0, math.nan, 1.0]), "loss")
    with pytest.raises(AssertionError, match=r"stats\['b'\]"):
        testing.assert_finite({"a": 1.0, "b": math.inf}, "stats")
    # a result object is checked through to_dict(); None marks a value undefined by design
    empty = metrics.mode_coverage(torch.full((3, 2), 50.0), torch.zeros(1, 2), std=1.0)
    assert empty.kl_to_uniform is None
    testing.assert_finite(empty, "coverage")
    with pytest.raises(AssertionError, match=r"prdc\['density'\]"):
        testing.assert_finite(metrics.PRDC(1.0, 1.0, math.nan, 1.0, k=5), "prdc")


def test_assert_close():
    testing.assert_close(torch.tensor([1.0, 2.0]), [1.0, 2.0 + 1e-9], rtol=1e-6)
    with pytest.raises(AssertionError, match="not within"):
        testing.assert_close(1.0, 1.1, rtol=1e-3)


def test_assert_divergence_laws_accepts_a_divergence():
    assert testing.assert_divergence_laws(mean_gap, X, Y) == pytest.approx(
        (1 / 3 - 2.5) ** 2 + (2 / 3 - 1.5) ** 2)


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (lambda x, y: -1.0, "< 0"),
        (lambda x, y: 1.0, r"divergence\(x, x\) = 1.0, expected 0"),
        (lambda x, y: math.nan, "not finite"),
        (lambda x, y: torch.ones(2), "scalar"),
    ],
)
def test_assert_divergence_laws_rejects_broken(broken, message):
    with pytest.raises(AssertionError, match=message):
        testing.assert_divergence_laws(broken, X, Y)


def test_assert_symmetric():
    testing.assert_symmetric(mean_gap, X, Y)
    with pytest.raises(AssertionError, match="not symmetric"):
        testing.assert_symmetric(lambda x, y: float(x.mean() - y.mean()), X, Y)


def test_assert_permutation_invariant():
    testing.assert_permutation_invariant(mean_gap, X, Y)
    testing.assert_permutation_invariant(lambda x: float(x.var(0).sum()), X.numpy())
    first_row = torch.arange(40.0).reshape(20, 2)
    with pytest.raises(AssertionError, match="not permutation invariant"):
        testing.assert_permutation_invariant(lambda x, y: float(x[0].sum()), first_row, Y)


def test_assert_invariant():
    shift = lambda z: z + 7.0  # noqa: E731
    testing.assert_invariant(lambda x, y: float(torch.cdist(x, y).sum()), shift, X, Y,
                             name="translation")
    with pytest.raises(AssertionError, match="not invariant under translation"):
        testing.assert_invariant(lambda x, y: float(x.sum()), shift, X, Y, name="translation")


# --------------------------------------------------------------------------------------------
# profiles and documentation examples
# --------------------------------------------------------------------------------------------


def test_register_profiles_reads_the_environment(monkeypatch):
    monkeypatch.delenv(testing.PROFILE_ENV_VAR, raising=False)
    assert testing.register_profiles(load=False) == "ci"
    ci = settings.get_profile("ci")
    assert ci.derandomize and ci.deadline is None and ci.print_blob and ci.database is None
    assert 25 <= ci.max_examples <= 50
    monkeypatch.setenv(testing.PROFILE_ENV_VAR, "thorough")
    assert testing.register_profiles(load=False) == "thorough"
    assert settings.get_profile("thorough").max_examples >= 500
    monkeypatch.setenv(testing.PROFILE_ENV_VAR, "no-such-profile")
    with pytest.raises(ValueError, match="DENSITYLAB_HYPOTHESIS_PROFILE='no-such-profile'"):
        testing.register_profiles(load=False)


def test_docstring_examples_run():
    result = doctest.testmod(testing, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 10 and result.failed == 0


def test_loss_law_docstring_examples_run():
    from densitylab import _loss_laws

    result = doctest.testmod(_loss_laws, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2 and result.failed == 0


# --------------------------------------------------------------------------------------------
# loss laws: the library's five GAN losses pass; known bugs are caught by the law they break
# --------------------------------------------------------------------------------------------

# the options each of densitylab.losses' generator losses needs (see the laws' docstrings)
GENERATOR_OPTIONS = {"minimax": dict(saturating=True), "non_saturating": {}, "hinge": {},
                     "wasserstein": {}, "least_squares": dict(target=1.0)}
OPTIMUM = {"minimax": "cross_entropy", "non_saturating": "cross_entropy", "hinge": "hinge",
           "wasserstein": "wasserstein", "least_squares": "least_squares"}


def test_every_library_loss_has_its_law_options():
    assert set(GENERATOR_OPTIONS) == set(OPTIMUM) == set(losses.GAN_LOSSES)
    assert set(OPTIMUM.values()) == set(testing.OPTIMA)


@pytest.mark.parametrize("kind", losses.GAN_LOSSES)
def test_the_gan_loss_laws_accept_the_library_losses(kind):
    testing.assert_generator_loss_laws(lambda f: losses.generator_loss(f, kind),
                                       **GENERATOR_OPTIONS[kind])
    testing.assert_discriminator_loss_laws(lambda r, f: losses.discriminator_loss(r, f, kind),
                                           optimum=OPTIMUM[kind])


def wrong_sign_generator(f):
    """The non-saturating loss with the sign inside flipped: it pushes the fake logits down."""
    return F.softplus(f).mean()


def clamped_log_generator(f):
    """-log D(G(z)) written with a clamp against log(0): its gradient is 0 below logit -16."""
    return -torch.log(torch.sigmoid(f).clamp(min=1e-7)).mean()


def wrong_axis_generator(f):
    """Reduces the last axis only: on (n, 1) logits from a network it returns n values."""
    return F.softplus(-f).mean(dim=-1)


def summed_generator(f):
    return F.softplus(-f).sum()


def batch_coupled_generator(f):
    """A softmax over the batch instead of a sigmoid per logit: examples compete."""
    return -torch.log_softmax(f.reshape(-1), dim=0).mean()


@pytest.mark.parametrize("broken, law", [
    (wrong_sign_generator, "gradient sign"),
    (clamped_log_generator, "no saturation"),
    (wrong_axis_generator, "mean over the batch"),
    (summed_generator, "mean over the batch"),
    (batch_coupled_generator, "mean over the batch"),
    (lambda f: -torch.log(torch.sigmoid(f)).mean(), "finite at extreme logits"),
    (lambda f: F.softplus(-f.detach()).mean() + 0 * f.sum(), "gradient sign"),
    # a step up at logit 5 has zero gradient everywhere, but raising a logit past it costs
    (lambda f: (F.softplus(-f) + (f > 5).to(f.dtype)).mean(), "monotone in the logits"),
])
def test_the_generator_loss_laws_reject_broken_losses(broken, law):
    with pytest.raises(AssertionError, match=f"law '{law}' failed"):
        testing.assert_generator_loss_laws(broken)


def test_the_generator_laws_say_by_how_much():
    with pytest.raises(AssertionError, match=r"d loss / d fake_logits = \+0\.03125 at logit 0"):
        testing.assert_generator_loss_laws(wrong_sign_generator)  # sigmoid(0) / 16 logits
    # the minimax loss saturates where the discriminator rejects: only with saturating=True
    with pytest.raises(AssertionError, match="law 'no saturation' failed.* gradient is 0"):
        testing.assert_generator_loss_laws(lambda f: losses.generator_loss(f, "minimax"))
    # least squares pulls logits above its target 1 back down: only with target=1
    with pytest.raises(AssertionError, match="law 'gradient sign' failed"):
        testing.assert_generator_loss_laws(lambda f: losses.generator_loss(f, "least_squares"))


def _bce(r, f):
    return losses.discriminator_loss(r, f, "minimax")


@pytest.mark.parametrize("broken, optimum, law", [
    (lambda r, f: _bce(f, r), "cross_entropy", "gradient sign"),  # real and fake swapped
    (lambda r, f: F.softplus(-r).sum() + F.softplus(f).sum(), "cross_entropy",
     "mean over the batch"),
    (lambda r, f: -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean(),
     "cross_entropy", "finite at extreme logits"),
    (lambda r, f: 2 * _bce(r, f), "cross_entropy", "optimal discriminator"),
    (lambda r, f: F.softplus(-r).mean() + F.softplus(f + 1).mean(), "cross_entropy",
     "optimal discriminator"),  # a shifted optimum
    (lambda r, f: F.relu(0.5 - r).mean() + F.relu(0.5 + f).mean(), "hinge",
     "optimal discriminator"),  # margin 1/2 instead of 1
    (lambda r, f: 0.5 * ((r - 1) ** 2).mean() + 0.5 * ((f + 1) ** 2).mean(), "least_squares",
     "gradient sign"),  # fake target -1 instead of 0
    (lambda r, f: f.mean() - 2 * r.mean(), "wasserstein", "optimal discriminator"),
])
def test_the_discriminator_loss_laws_reject_broken_losses(broken, optimum, law):
    with pytest.raises(AssertionError, match=f"law '{law}' failed"):
        testing.assert_discriminator_loss_laws(broken, optimum=optimum)


def _brute_force_minimum(loss, counts_p, counts_q):
    """Minimise a separable population loss one support point at a time: a grid of step 0.025
    on [-6, 6], then one of step 5e-4 around its best point."""

    def value(logits):
        real = [v for v, c in zip(logits, counts_p, strict=True) for _ in range(c)]
        fake = [v for v, c in zip(logits, counts_q, strict=True) for _ in range(c)]
        return float(loss(torch.tensor(real, dtype=torch.float64),
                          torch.tensor(fake, dtype=torch.float64)))

    best = [0.0] * len(counts_p)
    for k in range(len(best)):
        for grid in (np.linspace(-6, 6, 481), None):
            if grid is None:
                grid = best[k] + np.linspace(-0.05, 0.05, 201)
            values = [value(best[:k] + [z] + best[k + 1:]) for z in grid]
            best[k] = float(grid[int(np.argmin(values))])
    return value(best)


@pytest.mark.parametrize("kind", ["minimax", "hinge", "least_squares"])
def test_the_optimal_discriminator_values_match_a_brute_force_minimum(kind):
    cp, cq = (6, 3, 2, 1), (1, 2, 3, 6)

    def loss(r, f):
        return losses.discriminator_loss(r, f, kind)

    claimed = testing.assert_optimal_discriminator(loss, OPTIMUM[kind], counts_p=cp, counts_q=cq)
    found = _brute_force_minimum(loss, cp, cq)
    # a grid step of 5e-4 in each logit: the losses rise quadratically away from a smooth
    # minimum, and the hinge's kink at +-1 lies on the coarse grid
    assert claimed <= found + 1e-12
    assert found - claimed < 1e-4


def test_the_optimal_discriminator_values_match_scipy():
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import wasserstein_distance

    p, q = np.array([6, 3, 2, 1]) / 12, np.array([1, 2, 3, 6]) / 12
    ce = testing.assert_optimal_discriminator(_bce)
    testing.assert_close(ce, math.log(4) - 2 * jensenshannon(p, q) ** 2, rtol=1e-12)
    w = testing.assert_optimal_discriminator(
        lambda r, f: losses.discriminator_loss(r, f, "wasserstein"), "wasserstein")
    support = np.arange(4.0)
    testing.assert_close(w, -wasserstein_distance(support, support, p, q), rtol=1e-12)
    tv = 0.5 * np.abs(p - q).sum()
    hinge = testing.assert_optimal_discriminator(
        lambda r, f: losses.discriminator_loss(r, f, "hinge"), "hinge")
    testing.assert_close(hinge, 2 - 2 * tv, rtol=1e-12)


def test_the_optimal_discriminator_law_rejects_bad_arguments():
    with pytest.raises(ValueError, match="optimum"):
        testing.assert_optimal_discriminator(_bce, "kl")
    with pytest.raises(ValueError, match="counts_p and counts_q"):
        testing.assert_optimal_discriminator(_bce, counts_p=(1, 0), counts_q=(1, 1))


# --------------------------------------------------------------------------------------------
# variational laws on the linear-Gaussian model
# --------------------------------------------------------------------------------------------


def reference_elbo(log_joint, guide, x, num_samples):
    z = guide.rsample((num_samples,))
    return (log_joint(x, z) - guide.log_prob(z)).mean(0)


def reference_iwae(log_joint, guide, x, num_samples):
    z = guide.rsample((num_samples,))
    return losses.iwae_bound(log_joint(x, z) - guide.log_prob(z), dim=0)


def test_the_linear_gaussian_model_is_exact():
    # brute force: log p(x) = log integral p(x, z) dz by quadrature over a 1-D latent
    model = testing.linear_gaussian_model(data_dim=2, latent_dim=1, n=2, s=0.7, seed=3)
    z = torch.linspace(-12, 12, 4801, dtype=torch.float64)[:, None, None].expand(-1, 2, 1)
    log_joint = model.log_joint(model.x, z)
    quad = torch.logsumexp(log_joint, dim=0) + math.log(24 / 4800)
    testing.assert_close(model.log_marginal(), quad, rtol=1e-9)
    # the posterior is p(x, z) / p(x): its log-density differs from log p(x, z) by log p(x)
    post = model.posterior()
    zz = torch.randn(5, 2, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    testing.assert_close(model.log_joint(model.x, zz) - post.log_prob(zz),
                         model.log_marginal().expand(5, 2), rtol=1e-10)


def test_the_elbo_laws_accept_the_reference_elbo():
    testing.assert_elbo_laws(reference_elbo, replicates=500)


@pytest.mark.parametrize("broken, law", [
    (lambda lj, q, x, k: reference_elbo(lj, q, x, k) + 0.1, "ELBO exact at the true posterior"),
    (lambda lj, q, x, k: lj(x, q.rsample((k,))).mean(0), "ELBO exact at the true posterior"),
    (lambda lj, q, x, k: reference_elbo(lj, q, x, k).sum(), "ELBO exact at the true posterior"),
])
def test_the_elbo_laws_reject_broken_estimators(broken, law):
    with pytest.raises(AssertionError, match=f"law '{law}' failed"):
        testing.assert_elbo_laws(broken, replicates=500)


def test_the_elbo_law_sees_a_bound_above_the_log_likelihood():
    def detached_guide_mean(lj, q, x, k):  # log q evaluated at the guide's mean, not at z
        z = q.rsample((k,))
        return (lj(x, z) - q.log_prob(q.mean.expand_as(z))).mean(0)

    with pytest.raises(AssertionError, match="law 'ELBO .*' failed"):
        testing.assert_elbo_laws(detached_guide_mean, replicates=500)


def test_the_iwae_laws_accept_the_library_bound_and_reject_broken_ones():
    means = testing.assert_iwae_monotone(reference_iwae, replicates=300)
    assert means == sorted(means)
    with pytest.raises(AssertionError, match="law 'IWAE tightens' failed"):
        testing.assert_iwae_monotone(reference_elbo, replicates=300)  # a mean, not log-mean-exp

    def log_sum_exp(lj, q, x, k):  # without the - log K
        z = q.rsample((k,))
        return torch.logsumexp(lj(x, z) - q.log_prob(z), dim=0)

    with pytest.raises(AssertionError, match="law 'IWAE below log p\\(x\\)' failed"):
        testing.assert_iwae_monotone(log_sum_exp, replicates=300)
    with pytest.raises(ValueError, match="ks"):
        testing.assert_iwae_monotone(reference_iwae, ks=(5, 2))
