"""The suite's log_likelihood metric puts every family on one axis: flow exact, VAE IWAE,
diffusion probability-flow ODE (with its variational bound), GAN by AIS at a stated sigma."""

from __future__ import annotations

import pytest
import torch

from densitylab import distributions, models
from densitylab.suite import registry
from densitylab.suite.evaluate import EvalContext, evaluate_metrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST_AIS = {"ais_points": 8, "ais_steps": 5, "ais_chains": 2, "num_samples": 16}


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
    res = _score(gan, sigma=0.1)
    assert set(res["values"]) == {"heldout_loglik", "heldout_loglik_median",
                                  "heldout_loglik_stderr", "target_loglik"}
    assert res["details"]["loglik_estimator"] == "AIS, sigma = 0.1"


def test_diffusion_reports_the_ode_likelihood_and_its_variational_bound():
    dif = models.Diffusion(data_dim=2, hidden=(8,), timesteps=10, ode_steps=3, seed=0)
    res = _score(dif)
    assert set(res["values"]) == {"heldout_loglik", "heldout_loglik_median", "heldout_elbo",
                                  "target_loglik"}
    assert res["details"]["loglik_estimator"] == "probability-flow ODE"


def test_median_and_mean_are_those_of_the_per_point_log_densities():
    from densitylab.suite.context import derive_seed

    flow = models.Flow(data_dim=2, seed=0)  # an exact log_prob: the brute-force truth
    res = _score(flow)["values"]
    heldout = distributions.ring().sample(16, seed=derive_seed(0, "heldout"))
    with torch.no_grad():
        logq = flow.log_prob(heldout).double()
    assert res["heldout_loglik"] == pytest.approx(float(logq.mean()), rel=1e-6)
    assert res["heldout_loglik_median"] == pytest.approx(float(logq.median()), rel=1e-6)


def test_bad_sigma_fails_when_the_suite_loads():
    check = registry.get_metric("log_likelihood").check
    defaults = registry.get_metric("log_likelihood").defaults
    with pytest.raises(ValueError, match="sigma"):
        check(**{**defaults, "sigma": -1.0})
    with pytest.raises(TypeError, match="sigma"):
        check(**{**defaults, "sigma": "wide"})
