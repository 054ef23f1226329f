"""PRD curves (Simon et al. 2019) against the analytic curve of two Gaussians,
alpha(lambda) = integral of min(lambda p, q), computed by quadrature."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from densitylab.metrics.prd import prd_curve, prd_from_scores


def _analytic_alpha(lambdas, shift=1.0):
    z = np.linspace(-12, 13, 25_001)
    p, q = norm.pdf(z), norm.pdf(z, loc=shift)
    return np.array([np.trapezoid(np.minimum(lam * p, q), z) for lam in lambdas])


def test_prd_from_the_true_likelihood_ratio_matches_the_analytic_curve():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=10_000), rng.normal(size=10_000) + 1.0
    # the Bayes scores: log p/q = 1/2 - z, decreasing in z
    res = prd_from_scores(0.5 - real, 0.5 - fake, num_angles=201)
    lambdas = np.array(res.lambdas)
    truth = _analytic_alpha(lambdas)
    np.testing.assert_allclose(res.precision, np.clip(truth, 0, 1), atol=0.015)
    inside = (lambdas > 0.2) & (lambdas < 5)
    np.testing.assert_allclose(np.array(res.recall)[inside], (truth / lambdas)[inside], atol=0.02)


@pytest.mark.slow
def test_prd_from_a_cross_fitted_logistic_classifier_is_close_to_the_truth():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(4000, 1)), rng.normal(size=(4000, 1)) + 1.0
    res = prd_curve(real, fake, classifier="logistic", num_angles=101)
    truth = _analytic_alpha(np.array(res.lambdas))
    np.testing.assert_allclose(res.precision, np.clip(truth, 0, 1), atol=0.03)


def test_identical_scores_give_the_diagonal_free_curve_min_lambda_1():
    """P = Q: alpha(lambda) = min(lambda, 1), so precision and recall reach 1 at lambda = 1."""
    s = np.linspace(0, 1, 500)
    res = prd_from_scores(s, s, num_angles=101)
    np.testing.assert_allclose(res.precision, np.minimum(res.lambdas, 1.0), atol=1e-12)
    assert res.f_beta == pytest.approx(1.0) and res.f_beta_inv == pytest.approx(1.0)


def test_prd_bad_input_raises():
    with pytest.raises(ValueError, match="classifier"):
        prd_curve(np.zeros((10, 2)), np.ones((10, 2)), classifier="svm")
    with pytest.raises(ValueError, match="real_scores"):
        prd_from_scores(np.zeros((3, 2)), np.zeros(3))


def test_knn_classifier_recovers_the_prd_summaries_of_a_ring_missing_half_its_modes():
    """Truth: alpha(lambda) = min(lambda / 2, 1), so max F_8 = 0.504 and max F_1/8 = 0.985."""
    import torch

    from densitylab import distributions
    from densitylab.distributions import GaussianMixture

    p = distributions.ring(dtype=torch.float64)
    keep = torch.arange(8) % 2 == 0
    half = GaussianMixture(p.means[keep], p.stds[keep], p.weights[keep], dtype=torch.float64)
    res = prd_curve(p.sample(1000, seed=2), half.sample(1000, seed=1), classifier="knn")
    assert res.f_beta == pytest.approx(0.504, abs=0.05)
    assert res.f_beta_inv == pytest.approx(0.985, abs=0.03)
