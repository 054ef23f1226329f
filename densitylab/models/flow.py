"""A normalising flow from Pyro's transforms, trained by maximum likelihood: exact ``log_prob``.

``x = A(f_K(... f_1(z)))`` with ``z ~ N(0, I)``, where the ``f_k`` are invertible learned layers
and ``A`` is a fixed affine map to the data's mean and per-dimension std (estimated once, at the
first ``fit``), so the splines' default interval [-3, 3] covers the data whatever its scale.
``log p(x) = log N(f^{-1}(x)) + log |det d f^{-1} / dx|`` is exact, so ``KL(data || model)`` of a
target with a known density can be estimated without bias. Layers (``kind``):

* ``"spline_coupling"``: rational-quadratic neural spline coupling layers (Durkan, Bekasov,
  Murray, Papamakarios, NeurIPS 2019), with the dimensions reversed between layers.
* ``"spline_autoregressive"``: the autoregressive variant of the same paper.
* ``"affine_autoregressive"``: inverse autoregressive flow layers (Kingma et al., NeurIPS 2016),
  here used in the density-estimation direction as in MAF (Papamakarios et al., NeurIPS 2017).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from torch import nn

from .._validation import check_choice, check_int, check_positive
from .base import GenerativeModel, check_data, check_hidden, seeded_init

__all__ = ["Flow"]

_KINDS = ("spline_coupling", "spline_autoregressive", "affine_autoregressive")


class Standardizer(nn.Module):
    """Fixed affine map ``y -> loc + scale * y`` (buffers, so it moves and saves with the model)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("loc", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.register_buffer("fitted", torch.tensor(False))

    def transform(self) -> T.AffineTransform:
        """The affine map as a Pyro transform (event dim 1)."""
        return T.AffineTransform(self.loc, self.scale, event_dim=1)


class Flow(GenerativeModel):
    """Normalising flow on flat data ``(n, data_dim)``, ``data_dim >= 2``; see the module docstring.

    Arguments:
        data_dim: dimension of a data point (at least 2: coupling layers split it).
        num_layers: number of learned invertible layers.
        hidden: hidden widths of each layer's conditioner network.
        kind: ``"spline_coupling"``, ``"spline_autoregressive"`` or ``"affine_autoregressive"``.
        count_bins, bound: spline bins, and half-width of the spline interval (standardised).
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
    default_lr = 5e-3

    def __init__(self, data_dim: int = 2, num_layers: int = 4, hidden: Sequence[int] = (64, 64),
                 *, kind: str = "spline_coupling", count_bins: int = 8, bound: float = 4.0,
                 seed: int | None = None):
        data_dim = check_int(data_dim, "data_dim", minimum=2)
        num_layers = check_int(num_layers, "num_layers", minimum=1)
        hidden = check_hidden(hidden)
        if not hidden:
            raise ValueError("hidden must name at least one layer width")
        check_choice(kind, "kind", _KINDS)
        count_bins = check_int(count_bins, "count_bins", minimum=2)
        bound = check_positive(bound, "bound")
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        config = {"data_dim": data_dim, "num_layers": num_layers, "hidden": list(hidden),
                  "kind": kind, "count_bins": count_bins, "bound": bound, "seed": seed}
        super().__init__(config, (data_dim,))
        with seeded_init(seed):
            layers = []
            for _ in range(num_layers):
                if kind == "spline_coupling":
                    layers.append(T.spline_coupling(data_dim, hidden_dims=list(hidden),
                                                    count_bins=count_bins, bound=bound))
                elif kind == "spline_autoregressive":
                    layers.append(T.spline_autoregressive(data_dim, hidden_dims=list(hidden),
                                                          count_bins=count_bins, bound=bound))
                else:
                    layers.append(T.affine_autoregressive(data_dim, hidden_dims=list(hidden)))
            self.networks["layers"] = nn.ModuleList(layers)
            self.networks["standardizer"] = Standardizer(data_dim)
        self.networks.eval()

    def _transforms(self) -> list:
        dim = self.data_dim
        reverse = T.Permute(torch.arange(dim - 1, -1, -1, device=self.device), dim=-1)
        chain: list = []
        for i, layer in enumerate(self.networks["layers"]):
            if i:
                chain.append(reverse)
            chain.append(layer)
        chain.append(self.networks["standardizer"].transform())
        return chain

    def distribution(self) -> dist.TransformedDistribution:
        """The model as a Pyro ``TransformedDistribution`` on the model's device."""
        dtype = self._dtype()
        base = dist.Normal(torch.zeros(self.data_dim, device=self.device, dtype=dtype),
                           torch.ones(self.data_dim, device=self.device, dtype=dtype)).to_event(1)
        return dist.TransformedDistribution(base, self._transforms())

    def log_prob(self, x, **kwargs) -> torch.Tensor:
        """Exact ``log p(x)`` of each row by the change-of-variables formula, ``(n,)``."""
        x = check_data(x, self.data_shape).to(device=self.device, dtype=self._dtype())
        self.networks.eval()
        with torch.no_grad():
            return self.distribution().log_prob(x)

    # ------------------------------------------------------------------ training
    def _param_groups(self) -> dict[str, nn.Module]:
        return {"flow": self.networks}

    def _fit_standardizer(self, batch: torch.Tensor) -> None:
        std = self.networks["standardizer"]
        if bool(std.fitted):
            return
        scale = batch.std(dim=0) if batch.shape[0] > 1 else torch.ones_like(batch[0])
        std.loc.copy_(batch.mean(dim=0))
        std.scale.copy_(torch.where(scale > 0, scale, torch.ones_like(scale)))
        std.fitted.fill_(True)

    def _step(self, eng) -> dict[str, Any]:
        batch = eng.batch()
        self._fit_standardizer(batch)
        return {"loss": eng.update("flow", "nll_objective", batch)}

    def nll_objective(self, batch: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of ``batch``: the maximum-likelihood objective."""
        return -self.distribution().log_prob(batch).mean()

    def _sample(self, n, gen):
        y = torch.randn(n, self.data_dim, generator=gen, device=self.device, dtype=self._dtype())
        for t in self._transforms():
            y = t(y)
        return y
