"""Uniform dequantisation of discrete pixels and likelihoods in bits per dimension.

A continuous density ``p`` on ``R^D`` says nothing directly about images whose pixels take
``L`` discrete levels: it can put unbounded density on the levels themselves. The convention of
the flow literature (Theis, van den Oord and Bethge, "A note on the evaluation of generative
models", ICLR 2016; Uria et al. 2013; Dinh et al., "Density estimation using Real NVP", ICLR
2017) is to fit the model to the *dequantised* pixels

    y = (k + u) / L,      k in {0, ..., L - 1} the pixel's level,  u ~ U(0, 1),

so that each level owns the bin ``[k / L, (k + 1) / L)`` of width ``1 / L`` and ``y`` lies in
``[0, 1)``; 8-bit images use ``L = 256``. For any density ``p`` the discrete model
``P(k) = int_bin p(y) dy`` then satisfies, by Jensen's inequality,

    log P(k) >= E_u[log p(y)] - D log L,

and its negative in bits per dimension, ``(-E_u[log p(y)] + D log L) / (D log 2)``, bounds the
discrete model's code length from above. A model that is uniform on ``[0, 1)^D`` scores
``log2 L`` bits per dimension (4.09 for the ``L = 17`` levels of scikit-learn's digits).
"""

from __future__ import annotations

import math

import torch

from .._validation import check_int

__all__ = ["DIGIT_LEVELS", "dequantize", "bits_per_dim"]

#: Levels of a scikit-learn digit pixel: counts 0..16 of set pixels in a 4x4 block.
DIGIT_LEVELS = 17


def dequantize(x: torch.Tensor, levels: int, generator: torch.Generator | None = None
               ) -> torch.Tensor:
    """``(k + u) / levels`` for pixels ``x = k / (levels - 1)`` in [0, 1], ``u ~ U(0, 1)`` per
    pixel drawn from ``generator``: each level ``k`` spread uniformly over its bin
    ``[k / levels, (k + 1) / levels)`` (see the module docstring).

    Raises:
        ValueError: ``levels`` below 2.
    """
    levels = check_int(levels, "levels", minimum=2)
    k = torch.round(x * (levels - 1))
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (k + u) / levels


def bits_per_dim(log_likelihood: float, dim: int, levels: int) -> float:
    """Bits per dimension of a mean log-density ``log_likelihood`` (nats, per image) of
    dequantised data (:func:`dequantize` with ``levels``) in ``dim`` dimensions:
    ``(-log_likelihood + dim log levels) / (dim log 2)``, an upper bound on the discrete
    model's code length per pixel when ``log_likelihood`` is ``E_u[log p(y)]`` or a lower bound
    on it (Theis et al., ICLR 2016).

    Example:
        >>> round(bits_per_dim(0.0, 64, 17), 4)   # uniform on [0, 1)^64: log2(17)
        4.0875
    """
    dim = check_int(dim, "dim", minimum=1)
    levels = check_int(levels, "levels", minimum=2)
    value = float(log_likelihood)
    if math.isnan(value):
        raise ValueError("log_likelihood must be a number, got nan")
    return (-value + dim * math.log(levels)) / (dim * math.log(2.0))
