"""A normalising flow of zuko's transforms, trained by maximum likelihood: exact ``log_prob``.

``x = A(f_K(... f_1(z)))`` with ``z ~ N(0, I)``, where the ``f_k`` are invertible learned layers
and ``A`` is a fixed affine map to the data's mean and per-dimension std (estimated once, from
the first training batch), so the splines' interval ``[-bound, bound]`` covers the data whatever
its scale. ``log p(x) = log N(f^{-1}(x)) + log |det d f^{-1} / dx|`` is exact, so
``KL(data || model)`` of a target with a known density can be estimated without bias. Each layer
is zuko's masked autoregressive transformation (``zuko.flows.MaskedAutoregressiveTransform``,
the layer of ``zuko.flows.NSF`` / ``MAF``), the feature order reversed between layers
(``kind``):

* ``"spline_coupling"``: rational-quadratic neural spline coupling layers (Durkan, Bekasov,
  Murray, Papamakarios, NeurIPS 2019): two passes, the second half of the features conditioned
  on the first (zuko's ``passes=2``; the first half gets an unconditional spline).
* ``"spline_autoregressive"``: the autoregressive variant of the same paper (zuko's ``NSF``).
* ``"affine_autoregressive"``: affine autoregressive layers in the density-estimation direction,
  MAF (Papamakarios, Pavlakou, Murray, NeurIPS 2017).

For 2D data the three share one structure: the first feature transformed unconditionally, the
second conditioned on the first. The density is evaluated in the data-to-noise direction, one
pass of each conditioner; sampling inverts the layers (one pass per autoregressive step).

Images (``data_shape=(C, H, W)``) are flattened to ``C H W`` features in row-major order and the
flow is fitted to them directly, in pixel space (no logit transform; the standardising map
scales each pixel). Its density is a density on ``R^(C H W)``, so it is fitted to images
dequantised with uniform noise (``images.Digits(dequantize=True)``) and read in bits per
dimension by ``images.bits_per_dim`` (Theis, van den Oord and Bethge, ICLR 2016; Dinh et al.,
"Density estimation using Real NVP", ICLR 2017).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.distributions import Distribution

_VALIDATE_ARGS = Distribution._validate_args
from zuko.flows.autoregressive import MaskedAutoregressiveTransform  # noqa: E402
from zuko.transforms import MonotonicAffineTransform, MonotonicRQSTransform  # noqa: E402

# Importing zuko turns torch.distributions' argument checks off for the whole process; this
# module uses no zuko distribution, so the caller's setting is put back.
Distribution._validate_args = _VALIDATE_ARGS

from .._validation import check_choice, check_int, check_positive  # noqa: E402
from .base import (  # noqa: E402
    GenerativeModel,
    check_data,
    check_hidden,
    fused_adam,
    resolve_data_shape,
    seeded_init,
)

__all__ = ["Flow"]

_KINDS = ("spline_coupling", "spline_autoregressive", "affine_autoregressive")
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class Standardizer(nn.Module):
    """Fixed affine map ``y -> loc + scale * y`` (buffers, so it moves and saves with the model)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("loc", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit_once(self, batch: torch.Tensor) -> None:
        """Set ``loc``/``scale`` to ``batch``'s mean and std the first time (then keep them).

        Written without a data-dependent branch, so that it runs per seed under ``torch.vmap``.
        """
        scale = batch.std(dim=0) if batch.shape[0] > 1 else torch.ones_like(batch[0])
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        self.loc.copy_(torch.where(self.fitted, self.loc, batch.mean(dim=0)))
        self.scale.copy_(torch.where(self.fitted, self.scale, scale))
        self.fitted.fill_(True)


def _layer(kind: str, data_dim: int, hidden: tuple[int, ...], count_bins: int, bound: float,
           slope: float, reverse: bool) -> MaskedAutoregressiveTransform:
    order = torch.arange(data_dim)
    if reverse:
        order = torch.flipud(order)
    if kind == "affine_autoregressive":
        univariate, shapes = partial(MonotonicAffineTransform, slope=slope), ((), ())
    else:
        univariate = partial(MonotonicRQSTransform, bound=bound, slope=slope)
        shapes = ((count_bins,), (count_bins,), (count_bins - 1,))
    return MaskedAutoregressiveTransform(
        data_dim, passes=2 if kind == "spline_coupling" else None, order=order,
        univariate=univariate, shapes=shapes, hidden_features=hidden)


class Flow(GenerativeModel):
    """Normalising flow on flat data ``(n, data_dim)``, ``data_dim >= 2``, or on images ``(n, C,
    H, W)`` flattened; see the module docstring.

    Arguments:
        data_dim: dimension of a data point (at least 2: coupling layers split it); 2 when
            neither it nor ``data_shape`` is given.
        data_shape: or the shape of one data point, e.g. ``(1, 8, 8)``; the flow acts on its
            ``prod(data_shape)`` values flattened.
        num_layers: number of learned invertible layers.
        hidden: hidden widths of each layer's conditioner network.
        kind: ``"spline_coupling"``, ``"spline_autoregressive"`` or ``"affine_autoregressive"``.
        count_bins, bound: spline bins, and half-width of the spline interval (standardised
            units; the map is the identity outside it).
        slope: minimum slope of each layer's univariate map (zuko's ``slope``), which keeps it
            strictly increasing and so invertible.
        seed: seed of the weight initialisation (None: global RNG).

    Example:
        >>> from densitylab import distributions, models
        >>> flow = models.Flow(data_dim=2, num_layers=2, hidden=(16,), seed=0)
        >>> history = flow.fit(distributions.two_moons(), steps=10, batch_size=64, seed=0)
        >>> flow.log_prob(flow.sample(3, seed=0)).shape
        torch.Size([3])
    """

    name = "flow"
    has_density = True
    log_prob_estimator, log_prob_kind = "exact", "exact"
    default_lr = 5e-3

    def __init__(self, data_dim: int | None = None, num_layers: int = 4,
                 hidden: Sequence[int] = (64, 64), *, data_shape: Sequence[int] | None = None,
                 kind: str = "spline_coupling", count_bins: int = 8, bound: float = 4.0,
                 slope: float = 1e-3, seed: int | None = None):
        if data_dim is None and data_shape is None:
            data_dim = 2
        shape = resolve_data_shape(data_dim, data_shape)
        flat = check_int(math.prod(shape), "data_dim" if data_shape is None else
                         "prod(data_shape)", minimum=2)
        num_layers = check_int(num_layers, "num_layers", minimum=1)
        hidden = check_hidden(hidden)
        if not hidden:
            raise ValueError("hidden must name at least one layer width")
        check_choice(kind, "kind", _KINDS)
        count_bins = check_int(count_bins, "count_bins", minimum=2)
        bound = check_positive(bound, "bound")
        slope = check_positive(slope, "slope")
        if slope >= 1:
            raise ValueError(f"slope must be below 1 (a minimum slope), got {slope}")
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        config = {"data_dim": flat if data_shape is None else None, "num_layers": num_layers,
                  "hidden": list(hidden), "kind": kind, "count_bins": count_bins,
                  "bound": bound, "slope": slope, "seed": seed}
        if data_shape is not None:  # only then, so that the configs of flat flows stay as they were
            config["data_shape"] = list(shape)
        super().__init__(config, shape)
        with seeded_init(seed):
            self.networks["layers"] = nn.ModuleList(
                _layer(kind, flat, hidden, count_bins, bound, slope, reverse=bool(i % 2))
                for i in range(num_layers))
            self.networks["standardizer"] = Standardizer(flat)
        self.networks.eval()

    def log_prob(self, x, **kwargs) -> torch.Tensor:
        """Exact ``log p(x)`` of each row by the change-of-variables formula, ``(n,)``."""
        x = check_data(x, self.data_shape).to(device=self.device, dtype=self._dtype())
        self.networks.eval()
        with torch.no_grad():
            return self._log_prob(x)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(*x.shape[:x.ndim - len(self.data_shape)], self.data_dim)
        std = self.networks["standardizer"]
        y = (x - std.loc) / std.scale
        ladj = -std.scale.log().sum()
        for layer in self.networks["layers"]:
            y, layer_ladj = layer().call_and_ladj(y)
            ladj = ladj + layer_ladj
        return ladj - 0.5 * y.square().sum(-1) - self.data_dim * _LOG_SQRT_2PI

    # ------------------------------------------------------------------ training
    def _param_groups(self) -> dict[str, nn.Module]:
        return {"flow": self.networks}

    def _make_optimizer(self, group: str, params: list[torch.Tensor],
                        lr: float) -> torch.optim.Optimizer:
        return fused_adam(params, lr=lr)

    def _step(self, eng) -> dict[str, Any]:
        return {"loss": eng.update("flow", "nll_objective", eng.batch())}

    def nll_objective(self, batch: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of ``batch``: the maximum-likelihood objective.

        The first batch a model sees also fixes its standardising map (see the module docstring).
        """
        self.networks["standardizer"].fit_once(batch.reshape(batch.shape[0], self.data_dim))
        return -self._log_prob(batch).mean()

    def _sample(self, n, gen):
        return self._sample_from(*self._sample_inputs(n, gen))

    def _sample_inputs(self, n: int, gen: torch.Generator | None) -> tuple[torch.Tensor, ...]:
        """The base noise ``z ~ N(0, I)`` that :meth:`_sample_from` maps to ``n`` samples."""
        return (torch.randn(n, self.data_dim, generator=gen, device=self.device,
                            dtype=self._dtype()),)

    def _sample_from(self, z: torch.Tensor) -> torch.Tensor:
        """``_sample`` given its random inputs: the layers inverted in reverse order."""
        y = z
        for layer in reversed(self.networks["layers"]):
            y = layer().inv(y)
        std = self.networks["standardizer"]
        x = std.loc + std.scale * y
        return x.reshape(*x.shape[:-1], *self.data_shape)
