"""The adaptive probability-flow solver (Dormand-Prince 5(4), a step per point) and the
per-point check of ``Diffusion.checked_log_prob``: against the closed-form log-density of a
Gaussian target and the ring with their exact noise predictors."""

from __future__ import annotations

import math

import pytest
import torch
from test_models_diffusion import GaussianTruth, RingTruth, _points, _truth

from densitylab import models
from densitylab.models.diffusion import NoiseSchedule, probability_flow_log_prob

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_adaptive_solver_recovers_the_gaussian_log_density_and_tightens_with_the_tolerance():
    truth = GaussianTruth(NoiseSchedule("linear"))
    x = _points(30)
    end = truth.marginal(torch.tensor(1.0, dtype=torch.float64)).log_prob
    errs, steps = [], []
    for tol in (1e-2, 1e-5):
        # with the true end marginal p_1, only the solver's error remains
        est, n_steps = probability_flow_log_prob(truth.eps, x, truth.schedule, solver="dopri5",
                                                 rtol=tol, atol=tol, return_steps=True,
                                                 end_log_prob=end)
        errs.append(float((est - _truth(x)).abs().max()))
        steps.append(float(n_steps.double().mean()))
    # error control is local (per step), so the global error is a few steps' tolerance
    assert errs[1] < 1e-3 and errs[1] < errs[0]
    assert steps[1] > steps[0]


def test_adaptive_solver_recovers_the_ring_log_density_with_the_exact_score():
    truth = RingTruth(NoiseSchedule("linear"))
    x = truth.ring.sample(40, seed=0).double()
    est = probability_flow_log_prob(truth.eps, x, truth.schedule, solver="dopri5")
    assert float((est - truth.ring.log_prob(x).double()).abs().mean()) < 0.02


def test_a_point_that_runs_out_of_steps_is_nan_with_a_warning_not_a_value():
    truth = GaussianTruth(NoiseSchedule("linear"))
    x = _points(3)
    with pytest.warns(RuntimeWarning, match="did not reach"):
        est = probability_flow_log_prob(truth.eps, x, truth.schedule, solver="dopri5",
                                        rtol=1e-9, atol=1e-9, max_steps=3)
    assert bool(torch.isnan(est).all())


def test_checked_log_prob_flags_points_whose_two_tolerances_disagree(monkeypatch):
    dif = models.Diffusion(data_dim=2, hidden=(8,), timesteps=10, seed=0)
    truth = GaussianTruth(dif.schedule)
    monkeypatch.setattr(dif, "predict_noise", lambda x, t: truth.eps(x.double(), t).to(x.dtype))
    x = _points(6).float()
    ok = dif.checked_log_prob(x, rtol=1e-6, loosen=10.0, threshold=0.01)
    assert ok.num_flagged == 0
    # p_1 taken as N(0, I), as a diffusion model does: within 0.01 nats per point (as RK4)
    assert float((ok.log_prob - _truth(x.double())).abs().max()) < 0.01
    # a loose tolerance 10^4 times the tight one and a threshold of 1e-9 nats: every point's
    # two values differ by more than that, so every point is flagged
    strict = dif.checked_log_prob(x, rtol=1e-6, loosen=1e4, threshold=1e-9)
    assert strict.num_flagged == 6
    assert strict.describe()["flagged"] == 6 and math.isfinite(strict.describe()["median_steps"])


def test_bad_solver_arguments_name_the_argument():
    truth = GaussianTruth(NoiseSchedule("linear"))
    with pytest.raises(ValueError, match="solver"):
        probability_flow_log_prob(truth.eps, _points(2), truth.schedule, solver="euler")
    with pytest.raises(ValueError, match="rtol"):
        probability_flow_log_prob(truth.eps, _points(2), truth.schedule, solver="dopri5",
                                  rtol=0.0)
