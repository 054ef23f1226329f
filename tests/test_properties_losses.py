"""Properties of the GAN losses and ELBO helpers in densitylab.losses, checked with hypothesis.

The truths are analytic: the minimax loss at logits 0 is 2 log 2 (Goodfellow et al., 2014), the
sigmoid's derivative gives the size of each generator gradient, and the monotonicity of each
loss in its logits follows from its formula.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from densitylab import losses, testing

KINDS = ("minimax", "non_saturating", "hinge", "wasserstein", "least_squares")
# kinds whose discriminator loss falls as real logits rise and whose generator loss falls as fake
# logits rise, over the whole real line (least squares only up to its target 1)
MONOTONE_KINDS = ("minimax", "non_saturating", "hinge", "wasserstein")

sizes = st.integers(1, 16)
extreme_logits = testing.logits(max_abs=1e4, requires_grad=True)


def _ulps(value: torch.Tensor, n: int = 8) -> float:
    """A round-off allowance of ``n`` units in the last place of ``value``'s dtype."""
    return n * torch.finfo(value.dtype).eps * max(1.0, abs(float(value)))


def test_gan_loss_kinds_are_the_documented_ones():
    assert tuple(losses.GAN_LOSSES) == KINDS


@given(st.tuples(sizes, sizes), st.sampled_from([torch.float32, torch.float64]))
def test_minimax_discriminator_loss_at_zero_logits_is_2_log_2(shape, dtype):
    real, fake = torch.zeros(shape[0], dtype=dtype), torch.zeros(shape[1], dtype=dtype)
    for kind in ("minimax", "non_saturating"):  # the same discriminator loss
        value = losses.discriminator_loss(real, fake, kind)
        assert value.dtype == dtype and value.shape == ()
        testing.assert_close(value, 2 * math.log(2), rtol=4 * torch.finfo(dtype).eps, name=kind)


@given(testing.logits(max_abs=10.0, dtype=torch.float64),
       testing.logits(max_abs=10.0, dtype=torch.float64))
def test_minimax_discriminator_loss_is_the_naive_cross_entropy_at_moderate_logits(real, fake):
    # -log D(x) - log(1 - D(G(z))) with D = sigmoid, written naively: exact enough for |z| <= 10
    expected = (-torch.log(torch.sigmoid(real))).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    testing.assert_close(losses.discriminator_loss(real, fake, "minimax"), expected, rtol=1e-9)


@given(testing.logits(dtype=torch.float64), testing.logits(dtype=torch.float64))
def test_minimax_discriminator_loss_is_the_binary_cross_entropy_at_any_logit(real, fake):
    # torch's stable BCE-with-logits: real rows labelled 1, fake rows labelled 0
    expected = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + (
        F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    testing.assert_close(losses.discriminator_loss(real, fake, "minimax"), expected, rtol=1e-12,
                         atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@given(real=extreme_logits, fake=extreme_logits)
def test_every_loss_and_gradient_is_finite_for_extreme_logits(kind, real, fake):
    d_loss = losses.discriminator_loss(real, fake, kind)
    g_loss = losses.generator_loss(fake, kind)
    testing.assert_finite(d_loss, f"discriminator_loss[{kind}]")
    testing.assert_finite(g_loss, f"generator_loss[{kind}]")
    d_real, d_fake = torch.autograd.grad(d_loss, (real, fake))
    (g_fake,) = torch.autograd.grad(g_loss, (fake,))
    testing.assert_finite(d_real, f"d discriminator_loss[{kind}] / d real_logits")
    testing.assert_finite(d_fake, f"d discriminator_loss[{kind}] / d fake_logits")
    testing.assert_finite(g_fake, f"d generator_loss[{kind}] / d fake_logits")


@given(st.builds(lambda v: torch.tensor(v, requires_grad=True),
                st.lists(st.floats(-1e4, -30.0, width=32), min_size=1, max_size=16)))
def test_non_saturating_gradient_survives_where_the_minimax_one_vanishes(fake):
    # When the discriminator confidently rejects the fakes (logits <= -30), d/df of the
    # saturating loss -softplus(f) is -sigmoid(f)/n, below e^-30/n; the non-saturating
    # softplus(-f) has -sigmoid(-f)/n, of size >= 1/(2n) for every f <= 0 (Goodfellow et al.).
    n = fake.numel()
    (g_minimax,) = torch.autograd.grad(losses.generator_loss(fake, "minimax"), (fake,))
    (g_ns,) = torch.autograd.grad(losses.generator_loss(fake, "non_saturating"), (fake,))
    assert float(g_minimax.abs().max()) * n <= math.exp(-30) * (1 + 1e-5)
    # negative: a gradient step raises the fake logits, towards fooling the discriminator
    assert float(g_ns.max()) * n <= -0.5


def _raise(z: torch.Tensor, delta: torch.Tensor, cap: float | None) -> torch.Tensor:
    """``z + delta`` (delta >= 0), clipped to 1e4; entries are only raised up to ``cap``."""
    raised = torch.clamp(z + delta, max=1e4)
    if cap is not None:
        raised = torch.where(z < cap, torch.minimum(raised, torch.full_like(z, cap)), z)
    return raised


nonneg_steps = st.floats(0.0, 1e4, width=32)


@pytest.mark.parametrize("kind", KINDS)
@given(real=testing.logits(), fake=testing.logits(), data=st.data())
def test_raising_real_logits_never_raises_the_discriminator_loss(kind, real, fake, data):
    delta = torch.tensor(data.draw(st.lists(nonneg_steps, min_size=len(real),
                                            max_size=len(real))))
    cap = 1.0 if kind == "least_squares" else None  # (r - 1)^2 falls only up to r = 1
    before = losses.discriminator_loss(real, fake, kind)
    after = losses.discriminator_loss(_raise(real, delta, cap), fake, kind)
    assert float(after) <= float(before) + _ulps(before), (kind, float(before), float(after))


@pytest.mark.parametrize("kind", KINDS)
@given(real=testing.logits(), fake=testing.logits(), data=st.data())
def test_raising_fake_logits_never_lowers_the_discriminator_loss(kind, real, fake, data):
    delta = torch.tensor(data.draw(st.lists(nonneg_steps, min_size=len(fake),
                                            max_size=len(fake))))
    # f^2 rises with f only from 0 on: raise only non-negative fake logits for least squares
    if kind == "least_squares":
        delta = torch.where(fake >= 0, delta, torch.zeros_like(delta))
    before = losses.discriminator_loss(real, fake, kind)
    after = losses.discriminator_loss(real, _raise(fake, delta, None), kind)
    assert float(after) >= float(before) - _ulps(before), (kind, float(before), float(after))


@pytest.mark.parametrize("kind", KINDS)
@given(fake=testing.logits(), data=st.data())
def test_raising_fake_logits_never_raises_the_generator_loss(kind, fake, data):
    delta = torch.tensor(data.draw(st.lists(nonneg_steps, min_size=len(fake),
                                            max_size=len(fake))))
    cap = 1.0 if kind == "least_squares" else None
    before = losses.generator_loss(fake, kind)
    after = losses.generator_loss(_raise(fake, delta, cap), kind)
    assert float(after) <= float(before) + _ulps(before), (kind, float(before), float(after))


@given(testing.logits(dtype=torch.float64), testing.logits(dtype=torch.float64),
       st.floats(-100.0, 100.0))
def test_wasserstein_critic_loss_ignores_a_shared_shift_and_is_mean_fake_minus_mean_real(
    real, fake, c
):
    value = losses.discriminator_loss(real, fake, "wasserstein")
    testing.assert_close(value, fake.mean() - real.mean(), rtol=1e-12, atol=1e-9)
    shifted = losses.discriminator_loss(real + c, fake + c, "wasserstein")
    scale = 1 + float(real.abs().max() + fake.abs().max())
    testing.assert_close(shifted, value, atol=1e-9 * scale)


@given(testing.logits(), testing.logits())
def test_hinge_loss_is_zero_once_both_margins_hold_and_positive_otherwise(real, fake):
    value = float(losses.discriminator_loss(real, fake, "hinge"))
    margins_hold = bool((real >= 1).all()) and bool((fake <= -1).all())
    assert value >= 0
    assert (value == 0) == margins_hold


# ---------------------------------------------------------------------------------------------
# penalties on a linear critic D(x) = x @ w + b, whose input gradient is w everywhere
# ---------------------------------------------------------------------------------------------

weights = st.integers(1, 4).flatmap(
    lambda d: st.lists(st.floats(-10, 10), min_size=d, max_size=d)
).map(lambda w: torch.tensor(w, dtype=torch.float64))


@given(weights, st.integers(1, 8), st.integers(0, 2**16))
def test_penalties_on_a_linear_critic_match_the_closed_form(w, n, seed):
    gen = torch.Generator().manual_seed(seed)
    real = torch.randn(n, len(w), generator=gen, dtype=torch.float64)
    fake = torch.randn(n, len(w), generator=gen, dtype=torch.float64)

    def critic(x):
        return x @ w + 0.5

    gp = losses.gradient_penalty(critic, real, fake, generator=gen)
    # the norm is taken as sqrt(|g|^2 + 1e-12) (a documented shift that keeps the gradient finite
    # at g = 0); it moves the norm by at most 1e-6, so the penalty by at most 2e-6 (|w| + 1)
    slack = 2e-6 * (float(w.norm()) + 1) + 1e-12
    testing.assert_close(gp, (float(w.norm()) - 1.0) ** 2, rtol=1e-9, atol=slack, name="gp")
    real = real.requires_grad_(True)
    r1 = losses.r1_penalty(critic(real), real)
    testing.assert_close(r1, float((w**2).sum()), rtol=1e-12, name="r1")


# ---------------------------------------------------------------------------------------------
# ELBO helpers
# ---------------------------------------------------------------------------------------------

locs = st.integers(1, 4).flatmap(
    lambda d: st.tuples(st.lists(st.floats(-5, 5), min_size=d, max_size=d),
                        st.lists(st.floats(-3, 3), min_size=d, max_size=d))
)


@given(locs)
def test_gaussian_kl_matches_torch_distributions_and_both_parametrisations(loc_logscale):
    loc = torch.tensor(loc_logscale[0], dtype=torch.float64)
    log_scale = torch.tensor(loc_logscale[1], dtype=torch.float64)
    q = torch.distributions.Normal(loc, log_scale.exp())
    p = torch.distributions.Normal(torch.zeros_like(loc), torch.ones_like(loc))
    expected = torch.distributions.kl_divergence(q, p).sum()
    testing.assert_close(losses.gaussian_kl(loc, log_scale=log_scale), expected, rtol=1e-10,
                         atol=1e-12)
    testing.assert_close(losses.gaussian_kl(loc, log_scale.exp()), expected, rtol=1e-10,
                         atol=1e-12)
    assert float(losses.gaussian_kl(torch.zeros_like(loc), torch.ones_like(loc))) == 0.0


log_weight_sets = st.integers(1, 12).flatmap(
    lambda k: st.lists(st.floats(-1e4, 1e4), min_size=k, max_size=k)
).map(lambda v: torch.tensor(v, dtype=torch.float64))


@given(log_weight_sets, st.floats(-1e3, 1e3))
def test_iwae_bound_lies_between_the_mean_and_the_max_and_shifts_with_the_weights(lw, c):
    value = float(losses.iwae_bound(lw))
    k = len(lw)
    # log-mean-exp: Jensen puts it above the mean (the ELBO term) and it is at most the max
    assert float(lw.mean()) - 1e-9 * (1 + float(lw.abs().max())) <= value
    assert value <= float(lw.max()) + 1e-12
    assert value >= float(lw.max()) - math.log(k) - 1e-9
    testing.assert_close(losses.iwae_bound(lw + c), value + c, rtol=1e-12, atol=1e-9)
    if k == 1:
        assert value == float(lw[0])


# ---------------------------------------------------------------------------------------------
# the gradient penalty where the critic's gradient depends on the point: a quadratic critic
# D(x) = |x|^2 / 2 has gradient x, so the penalty is mean (|x_hat| - 1)^2, with x_hat the
# interpolate eps * real + (1 - eps) * fake computed here by hand
# ---------------------------------------------------------------------------------------------


def _quadratic_critic(x):
    return 0.5 * (x**2).reshape(x.shape[0], -1).sum(1)


@given(st.integers(1, 6), st.integers(1, 3), st.integers(0, 2**16))
def test_gradient_penalty_of_a_quadratic_critic_uses_the_interpolates(n, d, seed):
    gen = torch.Generator().manual_seed(seed)
    real = torch.randn(n, d, generator=gen, dtype=torch.float64)
    fake = torch.randn(n, d, generator=gen, dtype=torch.float64) + 3.0
    eps = torch.rand(n, 1, generator=gen, dtype=torch.float64)
    x_hat = [[e * r + (1 - e) * f for r, f in zip(rr, ff, strict=True)]
             for e, rr, ff in zip(eps[:, 0].tolist(), real.tolist(), fake.tolist(), strict=True)]
    expected = sum((math.sqrt(sum(v * v for v in row) + 1e-12) - 1) ** 2 for row in x_hat) / n
    gp = losses.gradient_penalty(_quadratic_critic, real, fake, eps=eps)
    testing.assert_close(gp, expected, rtol=1e-10, name="gradient penalty")
    # with target t the penalty is mean (|x_hat| - t)^2
    gp2 = losses.gradient_penalty(_quadratic_critic, real, fake, eps=eps, target=2.0)
    expected2 = sum((math.sqrt(sum(v * v for v in row) + 1e-12) - 2) ** 2 for row in x_hat) / n
    testing.assert_close(gp2, expected2, rtol=1e-10, name="gradient penalty, target 2")


def test_gradient_penalty_draws_eps_from_the_generator_in_the_data_dtype():
    real = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fake = real + 2.0
    drawn = losses.gradient_penalty(_quadratic_critic, real, fake,
                                    generator=torch.Generator().manual_seed(7))
    # the same uniforms, drawn by hand from a generator with the same seed, in float64
    eps = torch.rand(5, 1, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    by_hand = losses.gradient_penalty(_quadratic_critic, real, fake, eps=eps)
    assert drawn.item() == by_hand.item()
    # images: one eps per row, broadcast over the other axes
    real4 = real.reshape(5, 2, 1, 1).expand(5, 2, 2, 1)
    drawn4 = losses.gradient_penalty(_quadratic_critic, real4, real4 + 1.0,
                                     generator=torch.Generator().manual_seed(7))
    eps4 = eps.reshape(5, 1, 1, 1)
    testing.assert_close(drawn4, losses.gradient_penalty(_quadratic_critic, real4, real4 + 1.0,
                                                         eps=eps4), rtol=0.0)


def test_gradient_penalty_checks_the_shapes_of_its_inputs():
    real, fake = torch.zeros(3, 2), torch.ones(3, 2)
    with pytest.raises(ValueError, match=r"^real and fake must have the same shape, got "
                                         r"\(3, 2\) and \(2, 2\)$"):
        losses.gradient_penalty(_quadratic_critic, real, fake[:2])
    with pytest.raises(ValueError, match=r"^eps must have shape \(3, 1\), got \(3,\)$"):
        losses.gradient_penalty(_quadratic_critic, real, fake, eps=torch.rand(3))
    # the right shape is accepted
    losses.gradient_penalty(_quadratic_critic, real, fake, eps=torch.rand(3, 1))


def test_bad_input_messages_name_the_argument_and_the_fix():
    with pytest.raises(ValueError, match=r"^unknown kind 'wgan'; expected one of 'minimax'"):
        losses.discriminator_loss(torch.zeros(1), torch.zeros(1), "wgan")
    with pytest.raises(ValueError, match=r"^unknown kind 'wgan'; expected one of 'minimax'"):
        losses.generator_loss(torch.zeros(1), "wgan")
    with pytest.raises(TypeError, match=r"^real_logits must be a torch.Tensor of logits, "
                                        r"got list$"):
        losses.discriminator_loss([0.0], torch.zeros(1))
    with pytest.raises(TypeError, match=r"^fake_logits must be a torch.Tensor of logits, "
                                        r"got list$"):
        losses.discriminator_loss(torch.zeros(1), [0.0])
    with pytest.raises(TypeError, match=r"^fake_logits must be a floating tensor, got dtype"):
        losses.generator_loss(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"^fake_logits must not be empty$"):
        losses.discriminator_loss(torch.zeros(1), torch.zeros(0))
    with pytest.raises(ValueError, match=r"^real_logits must not be empty$"):
        losses.discriminator_loss(torch.zeros(0), torch.zeros(1))
    with pytest.raises(ValueError, match=r"^real must have requires_grad=True before the "
                                         r"discriminator is applied to it \(call "
                                         r"real\.requires_grad_\(True\) first\)$"):
        losses.r1_penalty(torch.zeros(2), torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"^give exactly one of scale and log_scale$"):
        losses.gaussian_kl(torch.zeros(2))
    with pytest.raises(ValueError, match=r"^log_weights needs at least one sample along dim$"):
        losses.iwae_bound(torch.zeros(0, 3))
