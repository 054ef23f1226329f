"""Unit checks of densitylab.losses against values computed by hand from each formula."""

from __future__ import annotations

import math

import pytest
import torch

from densitylab import losses


def _t(*values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype)


def sp(v: float) -> float:
    """softplus(v) = log(1 + e^v), written directly."""
    return math.log1p(math.exp(v))


@pytest.mark.parametrize("kind", ["minimax", "non_saturating"])
def test_bce_discriminator_loss_hand_values(kind):
    at_zero = losses.discriminator_loss(_t(0.0), _t(0.0), kind)
    assert float(at_zero) == pytest.approx(2 * math.log(2))
    # mean of -log sigmoid(r) plus mean of -log(1 - sigmoid(f)): softplus(-r) and softplus(f)
    value = losses.discriminator_loss(_t(2.0, -1.0), _t(-1.0, 0.5, 3.0), kind)
    expected = (sp(-2.0) + sp(1.0)) / 2 + (sp(-1.0) + sp(0.5) + sp(3.0)) / 3
    assert float(value) == pytest.approx(expected, rel=1e-12)


def test_generator_losses_hand_values():
    f = _t(0.0, 2.0)
    assert float(losses.generator_loss(f, "non_saturating")) == pytest.approx((sp(0) + sp(-2)) / 2)
    assert float(losses.generator_loss(f, "minimax")) == pytest.approx(-(sp(0) + sp(2)) / 2)
    assert float(losses.generator_loss(f, "hinge")) == pytest.approx(-1.0)
    assert float(losses.generator_loss(f, "wasserstein")) == pytest.approx(-1.0)
    assert float(losses.generator_loss(f, "least_squares")) == pytest.approx((1 + 1) / 2 / 2)


def test_hinge_wasserstein_least_squares_discriminator_hand_values():
    r, f = _t(0.5, 2.0), _t(-2.0, 0.0)
    # hinge: mean(relu(1 - r)) = (0.5 + 0) / 2; mean(relu(1 + f)) = (0 + 1) / 2
    assert float(losses.discriminator_loss(r, f, "hinge")) == pytest.approx(0.75)
    # wasserstein: mean(f) - mean(r) = -1 - 1.25
    assert float(losses.discriminator_loss(r, f, "wasserstein")) == pytest.approx(-2.25)
    # least squares: ((0.5-1)^2 + (2-1)^2)/2/2 + ((-2)^2 + 0)/2/2 = 0.3125 + 1
    assert float(losses.discriminator_loss(r, f, "least_squares")) == pytest.approx(1.3125)


@pytest.mark.parametrize("kind", losses.GAN_LOSSES)
def test_losses_finite_and_exact_at_extreme_logits(kind):
    big = _t(1e4, -1e4, dtype=torch.float32).requires_grad_(True)
    d = losses.discriminator_loss(big, big.flip(0), kind)
    g = losses.generator_loss(big, kind)
    d.backward()
    assert torch.isfinite(d) and torch.isfinite(g) and torch.isfinite(big.grad).all()
    if kind in ("minimax", "non_saturating"):
        # real=(1e4, -1e4), fake=(-1e4, 1e4): each term is 0 or 1e4 (softplus(1e4) = 1e4)
        assert float(d.detach()) == pytest.approx(1e4)


def test_gradient_penalty_of_a_linear_critic_is_exact():
    w = _t(3.0, 4.0)  # ||w|| = 5, so the penalty is (5 - 1)^2 wherever x_hat lies

    def critic(x):
        return x @ w

    real, fake = torch.randn(7, 2, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)
    assert float(losses.gradient_penalty(critic, real, fake)) == pytest.approx(16.0, rel=1e-9)
    with pytest.raises(ValueError, match="same shape"):
        losses.gradient_penalty(critic, real, fake[:3])


def test_gradient_penalty_is_differentiable_in_the_critic_weights():
    w = _t(3.0, 4.0).requires_grad_(True)
    gp = losses.gradient_penalty(lambda x: x @ w, torch.ones(4, 2, dtype=torch.float64),
                                 torch.zeros(4, 2, dtype=torch.float64))
    (grad,) = torch.autograd.grad(gp, w)
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    torch.testing.assert_close(grad, 2 * 4 * w.detach() / 5)


def test_r1_penalty_of_a_quadratic_discriminator():
    # D(x) = ||x||^2 / 2 has gradient x, so R1 = mean ||x||^2
    x = _t(1.0, 2.0, 3.0, 4.0).reshape(2, 2).requires_grad_(True)
    logits = 0.5 * (x**2).sum(1)
    assert float(losses.r1_penalty(logits, x).detach()) == pytest.approx((1 + 4 + 9 + 16) / 2)
    with pytest.raises(ValueError, match="requires_grad"):
        losses.r1_penalty(logits.detach(), x.detach())


def test_gaussian_kl_matches_torch_distributions():
    loc = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    scale = torch.rand(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 0.1
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(loc, scale), torch.distributions.Normal(0.0, 1.0)
    ).sum(-1)
    torch.testing.assert_close(losses.gaussian_kl(loc, scale), expected)
    torch.testing.assert_close(losses.gaussian_kl(loc, log_scale=scale.log()), expected)
    assert float(losses.gaussian_kl(torch.zeros(1, 4), torch.ones(1, 4))) == 0.0
    with pytest.raises(ValueError, match="exactly one"):
        losses.gaussian_kl(loc)
    with pytest.raises(ValueError, match="exactly one"):
        losses.gaussian_kl(loc, scale, log_scale=scale.log())


def test_iwae_bound_is_log_mean_exp():
    lw = _t(-1.0, -2.0, -3.0, 0.5).reshape(4, 1)
    expected = math.log((math.exp(-1) + math.exp(-2) + math.exp(-3) + math.exp(0.5)) / 4)
    assert float(losses.iwae_bound(lw, dim=0)) == pytest.approx(expected)
    # stable where exp would overflow: constant log-weights give back the constant
    assert float(losses.iwae_bound(torch.full((10,), 1e4), dim=0)) == pytest.approx(1e4)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="kind"):
        losses.discriminator_loss(_t(0.0), _t(0.0), "wgan")
    with pytest.raises(TypeError, match="real_logits"):
        losses.discriminator_loss([0.0], _t(0.0))
    with pytest.raises(TypeError, match="fake_logits"):
        losses.generator_loss(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="empty"):
        losses.generator_loss(torch.zeros(0))
