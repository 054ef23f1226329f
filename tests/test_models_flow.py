"""The normalising flow: an exact, normalised density; maximum likelihood fits a known target."""

from __future__ import annotations

import math

import pytest
import torch

import densitylab
from densitylab import distributions, models

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _grid_mass(flow, half_width=7.0, points=161):
    """Riemann sum of exp(log p) over a square: the total probability the flow puts there."""
    axis = torch.linspace(-half_width, half_width, points)
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    cell = (axis[1] - axis[0]) ** 2
    return float(flow.log_prob(pts).exp().sum() * cell)


def test_affine_flow_density_integrates_to_one_on_a_grid():
    flow = models.Flow(data_dim=2, num_layers=2, hidden=(16,), kind="affine_autoregressive",
                       seed=0)
    flow.fit(distributions.two_moons(noise=0.3), steps=15, batch_size=128, seed=0,
             progress=False)
    assert _grid_mass(flow) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("kind", ["spline_coupling", "spline_autoregressive"])
def test_spline_flow_density_integrates_to_one_by_importance_sampling(kind):
    # E_{x ~ g}[q(x) / g(x)] = integral of q = 1 for a wide Gaussian g; unbiased, so the check
    # holds to a few standard errors (splines can be steep, which a coarse grid misses)
    flow = models.Flow(data_dim=2, num_layers=2, hidden=(16,), kind=kind, seed=0)
    flow.fit(distributions.two_moons(noise=0.3), steps=10, batch_size=128, seed=0,
             progress=False)
    g = torch.distributions.Normal(torch.zeros(2), torch.full((2,), 2.5))
    x = g.sample((100_000,))
    ratio = (flow.log_prob(x) - g.log_prob(x).sum(1)).exp().double()
    standard_error = float(ratio.std()) / math.sqrt(len(ratio))
    assert abs(float(ratio.mean()) - 1.0) < max(4 * standard_error, 1e-3)
    assert standard_error < 0.02  # the check has teeth: a 10% normalisation error would show


def test_maximum_likelihood_drives_the_exact_kl_to_zero():
    # KL(p || q) = E_p[log p - log q] needs an exact log q: the flow has one, the target too.
    # A correlated Gaussian lies in the affine autoregressive family, so the KL can reach ~0.
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]])
    target = torch.distributions.MultivariateNormal(torch.tensor([1.0, -2.0]), cov)

    class Target:
        def sample(self, n, seed=None):
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                return target.sample((n,))

    x_eval = target.sample((2000,))
    flow = models.Flow(data_dim=2, num_layers=2, hidden=(16,), kind="affine_autoregressive",
                       seed=0)
    flow.fit(Target(), steps=5, batch_size=256, seed=0, progress=False)
    kl_early = float((target.log_prob(x_eval) - flow.log_prob(x_eval)).mean())
    flow.fit(Target(), steps=150, batch_size=256, lr=1e-2, seed=1, progress=False)
    kl = float((target.log_prob(x_eval) - flow.log_prob(x_eval)).mean())
    assert kl_early > 0.2 and abs(kl) < 0.03


def test_samples_follow_the_model_density():
    # samples of a Gaussian-target flow have the target's mean and covariance
    target = distributions.GaussianMixture([[2.0, -1.0]], [[0.5, 2.0]])
    flow = models.Flow(data_dim=2, num_layers=1, hidden=(8,), kind="affine_autoregressive",
                       seed=0)
    flow.fit(target, steps=60, batch_size=256, seed=0, progress=False)
    s = flow.sample(4000, seed=0)
    torch.testing.assert_close(s.mean(0), torch.tensor([2.0, -1.0]), atol=0.15, rtol=0)
    torch.testing.assert_close(s.std(0), torch.tensor([0.5, 2.0]), atol=0.15, rtol=0.1)


def test_seed_determinism_and_save_load(tmp_path):
    runs = []
    for _ in range(2):
        flow = models.Flow(data_dim=2, num_layers=2, hidden=(8,), seed=0)
        h = flow.fit(distributions.ring(std=0.1), steps=4, batch_size=32, seed=2, progress=False)
        runs.append((h["loss"], flow.sample(10, seed=1)))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    path = flow.save(tmp_path / "flow.pt")
    loaded = models.load(path)
    x = distributions.ring().sample(16, seed=0)
    assert isinstance(loaded, models.Flow)
    assert torch.equal(loaded.log_prob(x), flow.log_prob(x))  # standardiser buffers included
    assert torch.equal(loaded.sample(10, seed=1), flow.sample(10, seed=1))


def test_divergence_and_bad_arguments():
    class Poisoned:
        def sample(self, n, seed=None):
            return torch.full((n, 2), float("inf"))

    flow = models.Flow(data_dim=2, num_layers=1, hidden=(8,), seed=0)
    flow.networks["standardizer"].fitted.fill_(True)  # keep the poisoned batch out of it
    with pytest.raises(densitylab.TrainingDiverged) as info:
        flow.fit(Poisoned(), steps=3, batch_size=8, progress=False)
    assert info.value.step == 0 and not math.isfinite(info.value.loss)
    assert all(torch.isfinite(p).all() for p in flow.parameters())
    with pytest.raises(ValueError, match="data_dim"):
        models.Flow(data_dim=1)
    with pytest.raises(ValueError, match="kind"):
        models.Flow(data_dim=2, kind="realnvp")
    with pytest.raises(ValueError, match="shape"):
        flow.log_prob(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="slope"):
        models.Flow(data_dim=2, slope=1.5)


def test_importing_the_flow_leaves_torch_argument_checks_on():
    # zuko's import switches torch.distributions' argument checks off process-wide; the flow
    # module imports zuko and puts the setting back (on by default, as Python runs with
    # __debug__), so a bad parameter still raises here
    import zuko  # noqa: F401

    import densitylab.models.flow  # noqa: F401

    assert torch.distributions.Distribution._validate_args is __debug__
    if __debug__:
        with pytest.raises(ValueError, match="scale"):
            torch.distributions.Normal(0.0, -1.0)


def test_the_standardiser_is_fitted_from_the_first_batch_only():
    # the first batch's mean and std, and a second fit keeps them
    data = distributions.GaussianMixture([[3.0, -2.0]], [[0.5, 4.0]]).sample(512, seed=0)
    flow = models.Flow(data_dim=2, num_layers=1, hidden=(8,), seed=0)
    flow.fit(data, steps=1, batch_size=512, seed=0, progress=False)
    std = flow.networks["standardizer"]
    torch.testing.assert_close(std.loc, data.mean(0))
    torch.testing.assert_close(std.scale, data.std(0))
    flow.fit(data[:64] + 100.0, steps=2, batch_size=32, seed=1, progress=False)
    torch.testing.assert_close(std.loc, data.mean(0))
