"""The suite's log_likelihood metric puts every family on one axis: flow exact, VAE IWAE,
diffusion probability-flow ODE (with its variational bound), GAN by AIS at a stated sigma."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from densitylab import distributions, metrics, models
from densitylab.suite import registry
from densitylab.suite.context import derive_seed
from densitylab.suite.evaluate import EvalContext, evaluate_metrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST_AIS = {"ais_points": 8, "ais_steps": 5, "ais_chains": 2, "num_samples": 16,
            "ode_rtol": 1e-3}


def _score(model, **params):
    target = distributions.ring()
    ctx = EvalContext(target=target, model=model, samples=target.sample(16, seed=0),
                      reference=target.sample(16, seed=1), seed=0, eval_samples=16,
                      device=torch.device("cpu"))
    defaults = registry.get_metric("log_likelihood").defaults
    return evaluate_metrics(ctx, [{"name": "log_likelihood",
                                   "params": {**defaults, **FAST_AIS, **params}}])["log_likelihood"]


def test_gan_is_skipped_without_sigma_and_scored_by_ais_with_it():
    gan = models.GAN(data_dim=2, hidden=(8,), seed=0)
    assert "sigma" in _score(gan)["skipped"]
    res = _score(gan, sigma=0.1, estimator="ais")
    assert set(res["values"]) == {"heldout_loglik", "heldout_loglik_median",
                                  "heldout_loglik_trimmed", "heldout_loglik_ais",
                                  "heldout_loglik_stderr", "target_loglik",
                                  "perfect_generator_loglik"}
    assert res["details"]["loglik_estimator"] == "AIS, sigma = 0.1"
    assert res["details"]["loglik_kind"] == "bound in expectation"


def test_a_gan_with_a_2d_latent_is_scored_by_quadrature_on_the_same_points_as_ais():
    gan = models.GAN(data_dim=2, hidden=(8,), seed=0)
    res = _score(gan, sigma=0.1, estimator="both", ais_points=0)
    values, details = res["values"], res["details"]
    assert details["loglik_kind"] == "quadrature"
    assert values["heldout_loglik"] == values["heldout_loglik_quadrature"]
    assert details["loglik_settings"]["ais_points"] == details["loglik_settings"][
        "heldout_points"] == 16
    # the truth by quadrature, recomputed on the held-out points the metric drew (this
    # untrained generator explains some ring points only from beyond the grid: flagged)
    heldout = distributions.ring().sample(16, seed=derive_seed(0, "heldout"))
    truth = metrics.quadrature_log_likelihood(gan.generator, heldout, 2, 0.1)
    assert values["heldout_loglik"] == pytest.approx(truth.mean, abs=1e-9)
    assert values["heldout_loglik_flagged"] == truth.num_unconverged
    # AIS (a stochastic lower bound, 5 steps here) lies below it on these points
    assert values["heldout_loglik_ais"] < values["heldout_loglik"] + 3 * values[
        "heldout_loglik_stderr"]


def test_validated_sigma_maximises_the_validation_likelihood_and_the_cap_is_computed():
    gan = models.GAN(data_dim=2, hidden=(8,), seed=0)
    grid = [0.2, 0.5, 1.0]
    res = _score(gan, sigma="validated", sigma_grid=grid, validation_points=32)
    chosen = res["details"]["sigma_selection"]
    assert chosen["sigmas"] == grid and chosen["estimator"] == "quadrature"
    lls = chosen["log_likelihoods"]
    assert chosen["sigma"] == grid[lls.index(max(lls))]
    assert res["details"]["loglik_settings"]["sigma"] == chosen["sigma"]
    # the validation points are not the held-out points
    val = distributions.ring().sample(32, seed=derive_seed(0, "validation"))
    again = metrics.quadrature_log_likelihood(gan.generator, val, 2, chosen["sigma"])
    assert max(lls) == pytest.approx(again.mean, abs=1e-9)
    # the cap: a generator whose outputs follow the ring exactly, scored at that sigma; the
    # ring smoothed by N(0, sigma^2 I) is the mixture with variances std^2 + sigma^2
    ring = distributions.ring()
    x = ring.sample(16, seed=derive_seed(0, "heldout")).double().numpy()
    v = ring.stds.double().numpy() ** 2 + chosen["sigma"] ** 2
    mu = ring.means.double().numpy()
    d2 = ((x[:, None, :] - mu[None]) ** 2).sum(-1)
    dens = (ring.weights.double().numpy() * np.exp(-0.5 * d2 / v) / (2 * np.pi * v)).sum(1)
    assert res["values"]["perfect_generator_loglik"] == pytest.approx(
        float(np.log(dens).mean()), abs=1e-9)


def test_diffusion_reports_the_ode_likelihood_and_its_variational_bound():
    dif = models.Diffusion(data_dim=2, hidden=(8,), timesteps=10, ode_steps=3, seed=0)
    res = _score(dif)
    assert set(res["values"]) == {"heldout_loglik", "heldout_loglik_median",
                                  "heldout_loglik_trimmed", "heldout_loglik_flagged",
                                  "heldout_elbo", "target_loglik"}
    assert res["details"]["loglik_estimator"] == "probability-flow ODE"
    assert res["details"]["loglik_check"]["solver"] == "dopri5"


def test_every_model_of_a_seed_sees_the_same_heldout_points():
    target = distributions.ring()
    points = [EvalContext(target=target, model=m, samples=target.sample(4, seed=0),
                  reference=target.sample(4, seed=1), seed=3, eval_samples=4,
                  device=torch.device("cpu")).heldout(50)
              for m in (models.Flow(data_dim=2, seed=0), models.GAN(data_dim=2, seed=1))]
    assert torch.equal(points[0], points[1])


def test_median_and_mean_are_those_of_the_per_point_log_densities():
    flow = models.Flow(data_dim=2, seed=0)  # an exact log_prob: the brute-force truth
    res = _score(flow, num_samples=200)["values"]
    heldout = distributions.ring().sample(200, seed=derive_seed(0, "heldout"))
    with torch.no_grad():
        logq = flow.log_prob(heldout).double()
    assert res["heldout_loglik"] == pytest.approx(float(logq.mean()), rel=1e-6)
    assert res["heldout_loglik_median"] == pytest.approx(float(logq.median()), rel=1e-6)
    # 1 % dropped at each end: the 2 lowest and the 2 highest of 200
    trimmed = float(logq.sort().values[2:198].mean())
    assert res["heldout_loglik_trimmed"] == pytest.approx(trimmed, rel=1e-6)


def test_bad_sigma_fails_when_the_suite_loads():
    check = registry.get_metric("log_likelihood").check
    defaults = registry.get_metric("log_likelihood").defaults
    with pytest.raises(ValueError, match="sigma"):
        check(**{**defaults, "sigma": -1.0})
    with pytest.raises(TypeError, match="sigma"):
        check(**{**defaults, "sigma": "wide"})


@pytest.mark.parametrize("key, value, error", [
    ("estimator", "exact", ValueError), ("sigma_grid", [], TypeError),
    ("sigma_grid", [0.1, -1.0], ValueError), ("validation_points", 0, ValueError),
    ("ais_points", -1, ValueError),
])
def test_bad_likelihood_options_fail_when_the_suite_loads(key, value, error):
    check = registry.get_metric("log_likelihood").check
    defaults = registry.get_metric("log_likelihood").defaults
    with pytest.raises(error, match=key):
        check(**{**defaults, key: value})
