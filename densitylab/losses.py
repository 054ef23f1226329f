"""GAN losses and ELBO helpers as plain, numerically stable functions of tensors.

Sign conventions: every function returns a quantity to be **minimised**.

Discriminator losses take raw logits (unbounded critic outputs), never probabilities, and use
``softplus`` forms, so they stay finite for logits as large as 1e4 in float32:

==================  ===============================================  ==============================
kind                discriminator loss                               generator loss
==================  ===============================================  ==============================
``minimax``         ``softplus(-r).mean() + softplus(f).mean()``     ``-softplus(f).mean()``
``non_saturating``  same as minimax                                  ``softplus(-f).mean()``
``hinge``           ``relu(1 - r).mean() + relu(1 + f).mean()``      ``-f.mean()``
``wasserstein``     ``f.mean() - r.mean()``                          ``-f.mean()``
``least_squares``   ``((r - 1)**2).mean()/2 + (f**2).mean()/2``      ``((f - 1)**2).mean()/2``
==================  ===============================================  ==============================

(``r`` = logits on real data, ``f`` = logits on generated data.) ``softplus(-r)`` is
``-log sigmoid(r)`` and ``softplus(f)`` is ``-log(1 - sigmoid(f))``, so the minimax
discriminator loss is the sum of the two mean binary cross-entropies and equals ``2 log 2`` at
logits 0 (Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014). The minimax generator
minimises ``E[log(1 - D(G(z)))]`` (it saturates when D rejects the fakes); the non-saturating one
minimises ``-E[log D(G(z))]`` (same paper, Sec. 3). Hinge: Lim and Ye 2017 / Miyato et al. 2018.
Wasserstein: the critic maximises ``E[D(real)] - E[D(fake)]`` (Arjovsky et al., ICML 2017), so
its loss is ``mean(fake) - mean(real)``. Least squares: Mao et al., ICCV 2017 (targets a=0,
b=c=1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ._validation import check_choice

__all__ = [
    "GAN_LOSSES",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "r1_penalty",
    "gaussian_kl",
    "iwae_bound",
]

GAN_LOSSES = ("minimax", "non_saturating", "hinge", "wasserstein", "least_squares")


def _logits(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of logits, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} must not be empty")
    return x


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       kind: str = "minimax") -> torch.Tensor:
    """The discriminator's (critic's) loss to minimise, from logits on real and generated data.

    See the module docstring for the formula of each ``kind`` and its paper. Returns a scalar.

    Example:
        >>> import torch
        >>> z = torch.zeros(4)
        >>> round(float(discriminator_loss(z, z, "minimax")), 6) == round(2 * math.log(2), 6)
        True
    """
    check_choice(kind, "kind", GAN_LOSSES)
    r = _logits(real_logits, "real_logits")
    f = _logits(fake_logits, "fake_logits")
    if kind in ("minimax", "non_saturating"):
        return F.softplus(-r).mean() + F.softplus(f).mean()
    if kind == "hinge":
        return F.relu(1 - r).mean() + F.relu(1 + f).mean()
    if kind == "wasserstein":
        return f.mean() - r.mean()
    return 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """The generator's loss to minimise, from the discriminator's logits on generated data.

    ``minimax`` is the saturating ``E[log(1 - D(G(z)))]``; ``non_saturating`` is
    ``-E[log D(G(z))]``; ``hinge`` and ``wasserstein`` are ``-E[D(G(z))]``; ``least_squares`` is
    ``E[(D(G(z)) - 1)^2] / 2``. Returns a scalar.
    """
    check_choice(kind, "kind", GAN_LOSSES)
    f = _logits(fake_logits, "fake_logits")
    if kind == "minimax":
        return -F.softplus(f).mean()
    if kind == "non_saturating":
        return F.softplus(-f).mean()
    if kind in ("hinge", "wasserstein"):
        return -f.mean()
    return 0.5 * ((f - 1) ** 2).mean()


def _per_example_grad_sq_norm(outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    return grad.reshape(grad.shape[0], -1).pow(2).sum(dim=1)


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, *, target: float = 1.0,
                     generator: torch.Generator | None = None,
                     eps: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP penalty ``E[(||grad critic(x_hat)|| - target)^2]`` (Gulrajani et al., NeurIPS 2017).

    ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U(0, 1)`` per row, drawn from
    ``generator`` (the global RNG when None), or the given ``eps`` of shape
    ``(n, 1, ..., 1)`` (drawn by the caller, e.g. outside a ``torch.vmap``). The graph is kept
    (``create_graph=True``) so the penalty can be backpropagated into the critic. Multiply by
    the usual weight (10 in the paper) yourself. ``real`` and ``fake`` must have the same shape
    ``(n, ...)``.
    """
    if real.shape != fake.shape:
        raise ValueError(
            "real and fake must have the same shape, got "
            f"{tuple(real.shape)} and {tuple(fake.shape)}"
        )
    eps_shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    if eps is None:
        eps = torch.rand(eps_shape, generator=generator, dtype=real.dtype, device=real.device)
    elif tuple(eps.shape) != eps_shape:
        raise ValueError(f"eps must have shape {eps_shape}, got {tuple(eps.shape)}")
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    sq = _per_example_grad_sq_norm(critic(x_hat), x_hat)
    # sqrt has an infinite derivative at 0; the tiny shift keeps the gradient finite there.
    return ((sq + 1e-12).sqrt() - target).pow(2).mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 penalty ``E_real[||grad_x D(x)||_2^2]`` (Mescheder, Geiger, Nowozin, ICML 2018).

    ``real`` must have ``requires_grad=True`` and ``real_logits`` must have been computed from it.
    The paper's regulariser is ``gamma / 2`` times this value; the factor is left to the caller.
    """
    if not real.requires_grad:
        raise ValueError(
            "real must have requires_grad=True before the discriminator is applied to it "
            "(call real.requires_grad_(True) first)"
        )
    return _per_example_grad_sq_norm(real_logits, real).mean()


def gaussian_kl(loc: torch.Tensor, scale: torch.Tensor | None = None, *,
                log_scale: torch.Tensor | None = None) -> torch.Tensor:
    """``KL(N(loc, diag(scale^2)) || N(0, I))``, summed over the last dim (Kingma and Welling 2014).

    ``0.5 * sum(loc^2 + scale^2 - 1 - 2 log scale)``. Give exactly one of ``scale`` and
    ``log_scale`` (the latter is the stable choice when an encoder outputs log-scales).
    Returns a tensor with the last dimension reduced.
    """
    if (scale is None) == (log_scale is None):
        raise ValueError("give exactly one of scale and log_scale")
    if log_scale is None:
        log_scale = torch.log(scale)
        var = scale**2
    else:
        var = torch.exp(2 * log_scale)
    return 0.5 * (loc**2 + var - 1 - 2 * log_scale).sum(dim=-1)


def iwae_bound(log_weights: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Importance-weighted bound ``log (1/K) sum_k exp(log_weights_k)`` (Burda et al., 2016).

    ``log_weights = log p(x, z_k) - log q(z_k | x)`` for ``K`` draws ``z_k ~ q(z | x)``. With K = 1
    this is the ELBO; its expectation increases with K and tends to ``log p(x)``. K is the size of
    ``dim``.
    """
    k = log_weights.shape[dim]
    if k < 1:
        raise ValueError("log_weights needs at least one sample along dim")
    return torch.logsumexp(log_weights, dim=dim) - math.log(k)
