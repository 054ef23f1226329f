"""Properties of the Gaussian mixtures in densitylab.distributions, on mixtures drawn by
``densitylab.testing.gaussian_mixtures``; the truth is torch.distributions' own mixture."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from densitylab import testing
from densitylab.distributions import GaussianMixture

mixtures = testing.gaussian_mixtures(max_modes=4, dim=(1, 3), dtype=torch.float64)


def reference_mixture(p: GaussianMixture) -> torch.distributions.Distribution:
    stds = p.stds if p.stds.ndim == 2 else p.stds[:, None].expand_as(p.means)
    components = torch.distributions.Independent(torch.distributions.Normal(p.means, stds), 1)
    return torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=p.weights), components)


@given(testing.gaussian_mixtures(max_modes=4, dim=(1, 3), diagonal=True, dtype=torch.float64)
       | mixtures, st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_mixture_log_prob_matches_torch_distributions(p, n, seed):
    x = p.sample(n, seed=seed)
    assert x.shape == (n, p.dim) and x.dtype == torch.float64
    testing.assert_close(p.log_prob(x), reference_mixture(p).log_prob(x), rtol=1e-10, atol=1e-10,
                         name="log_prob")


@given(mixtures, st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_mixture_sampling_is_reproducible_from_its_seed(p, n, seed):
    assert torch.equal(p.sample(n, seed=seed), p.sample(n, seed=seed))
    x, labels = p.sample_with_labels(n, seed=seed)
    assert torch.equal(x, p.sample(n, seed=seed))
    assert labels.shape == (n,) and int(labels.min()) >= 0 and int(labels.max()) < p.n_modes


def test_mixture_sample_of_size_zero_is_empty():
    p = GaussianMixture([[0.0, 0.0], [1.0, 1.0]], stds=0.5)
    assert p.sample(0, seed=0).shape == (0, 2)
