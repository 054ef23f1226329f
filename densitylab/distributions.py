"""Toy targets with known structure: Gaussian mixtures (ring, grid) and non-Gaussian 2D shapes.

Every target has ``sample(n, seed=None) -> Tensor (n, dim)`` and ``dim``. Targets with a
closed-form density (``has_density``) also have ``log_prob(x) -> Tensor (n,)``; the others raise
``NotImplementedError`` saying so, rather than returning a guess.

The ring and grid follow the synthetic protocol of VEEGAN (Srivastava et al., NIPS 2017) and
PacGAN (Lin et al., NeurIPS 2018): 8 modes on a circle of radius 1 with std 0.01, and 25 modes
on {-4, -2, 0, 2, 4}^2 with std 0.05.

Example:
    >>> from densitylab import distributions
    >>> p = distributions.ring()
    >>> x = p.sample(1000, seed=0)
    >>> x.shape, p.log_prob(x).shape
    (torch.Size([1000, 2]), torch.Size([1000]))
"""

from __future__ import annotations

import math
from typing import Any

import torch

from . import _registry
from ._runtime import make_generator
from ._validation import as_tensor, check_int, check_positive

__all__ = [
    "Target",
    "GaussianMixture",
    "ring",
    "grid",
    "TwoMoons",
    "Spirals",
    "Checkerboard",
    "two_moons",
    "spirals",
    "checkerboard",
    "make",
    "available",
]


class Target:
    """Base class of a sampleable target distribution on R^dim."""

    name: str = "target"
    has_density: bool = False

    def __init__(self, dim: int, *, dtype: torch.dtype = torch.float32, device="cpu", params=None):
        self.dim = dim
        self.dtype = dtype
        self.device = torch.device(device)
        self.params: dict[str, Any] = dict(params or {})

    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """Draw ``n`` samples as a tensor ``(n, dim)``; ``seed`` makes them reproducible."""
        n = check_int(n, "n", minimum=0)
        gen = make_generator(seed, self.device)
        return self._sample(n, gen)

    def log_prob(self, x) -> torch.Tensor:
        """Log-density at each row of ``x`` (n, dim); raises for targets without a closed form."""
        raise NotImplementedError(
            f"{type(self).__name__} has no closed-form density; use sample-based metrics "
            "(mmd, kl_knn) instead of ones that need log_prob"
        )

    def _sample(self, n: int, gen: torch.Generator | None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _check_points(self, x) -> torch.Tensor:
        t = as_tensor(x, "x", ndim=2, min_rows=0, device=self.device)
        if t.shape[1] != self.dim:
            raise ValueError(
                f"x must have {self.dim} columns for this target, got shape {tuple(t.shape)}"
            )
        return t

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


class GaussianMixture(Target):
    r"""Gaussian mixture :math:`p(x) = \sum_k w_k N(x; \mu_k, \mathrm{diag}(\sigma_k^2))`.

    Arguments:
        means: mode centres, shape ``(K, D)``.
        stds: per-mode standard deviations, shape ``(K,)`` (isotropic) or ``(K, D)`` (diagonal),
            or a single positive number shared by all modes.
        weights: mixture weights ``(K,)``, non-negative, normalised here; uniform when None.
        dtype, device: where the parameters live; samples and log-densities come back there.

    Example:
        >>> g = GaussianMixture([[0.0, 0.0], [3.0, 0.0]], stds=[0.5, 1.0], weights=[0.3, 0.7])
        >>> g.sample(5, seed=0).shape
        torch.Size([5, 2])
    """

    has_density = True
    name = "gaussian_mixture"

    def __init__(self, means, stds, weights=None, *, dtype=torch.float32, device="cpu", name=None):
        means_t = as_tensor(means, "means", ndim=2, dtype=dtype, device=device)
        k, d = means_t.shape
        if isinstance(stds, int | float):
            stds_t = torch.full((k,), check_positive(stds, "stds"), dtype=dtype, device=device)
        else:
            stds_t = as_tensor(stds, "stds", ndim=(0, 1, 2), min_rows=0, dtype=dtype, device=device)
            if stds_t.ndim == 0:
                stds_t = stds_t.expand(k).clone()
        if stds_t.shape not in ((k,), (k, d)):
            raise ValueError(
                f"stds must have shape ({k},) or ({k}, {d}) to match means, "
                f"got {tuple(stds_t.shape)}"
            )
        if not bool((stds_t > 0).all()):
            raise ValueError("stds must be strictly positive")
        if weights is None:
            weights_t = torch.full((k,), 1.0 / k, dtype=dtype, device=device)
        else:
            weights_t = as_tensor(weights, "weights", ndim=1, dtype=dtype, device=device)
            if weights_t.shape != (k,):
                raise ValueError(
                    f"weights must have shape ({k},) to match means, got {tuple(weights_t.shape)}"
                )
            if bool((weights_t < 0).any()) or float(weights_t.sum()) <= 0:
                raise ValueError("weights must be non-negative with a positive sum")
            weights_t = weights_t / weights_t.sum()
        super().__init__(d, dtype=dtype, device=device, params={"n_modes": k})
        if name is not None:
            self.name = name
        self.means = means_t
        self.stds = stds_t
        self.weights = weights_t

    @property
    def n_modes(self) -> int:
        """Number of mixture components K."""
        return self.means.shape[0]

    @property
    def isotropic_std(self) -> float:
        """The common scalar std when all modes share one isotropic std (the protocol's case)."""
        s = self.stds
        if not bool((s == s.reshape(-1)[0]).all()):
            raise ValueError(
                "this mixture has mode-dependent or anisotropic stds; pass std explicitly"
            )
        return float(s.reshape(-1)[0])

    def _diag_stds(self) -> torch.Tensor:
        return self.stds if self.stds.ndim == 2 else self.stds[:, None].expand_as(self.means)

    def _sample(self, n, gen):
        return self._sample_with_labels(n, gen)[0]

    def _sample_with_labels(self, n, gen):
        if n == 0:  # torch.multinomial refuses zero draws
            comp = torch.zeros(0, dtype=torch.long, device=self.device)
        else:
            comp = torch.multinomial(self.weights, n, replacement=True, generator=gen)
        noise = torch.randn(n, self.dim, generator=gen, dtype=self.dtype, device=self.device)
        return self.means[comp] + noise * self._diag_stds()[comp], comp

    def sample_with_labels(
        self, n: int, seed: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` samples and the index of the component each came from."""
        n = check_int(n, "n", minimum=0)
        return self._sample_with_labels(n, make_generator(seed, self.device))

    def log_prob(self, x) -> torch.Tensor:
        """Exact log-density as a logsumexp over components (stable far from all modes)."""
        x = self._check_points(x).to(self.dtype)
        s = self._diag_stds()
        z = (x[:, None, :] - self.means[None]) / s[None]
        log_comp = (
            -0.5 * (z**2).sum(-1)
            - torch.log(s).sum(-1)[None]
            - 0.5 * self.dim * math.log(2 * math.pi)
        )
        return torch.logsumexp(log_comp + torch.log(self.weights)[None], dim=1)

    def to(self, device=None, dtype=None) -> GaussianMixture:
        """A copy of this mixture on another device and/or dtype."""
        dev = self.device if device is None else device
        dt = self.dtype if dtype is None else dtype
        return GaussianMixture(
            self.means, self.stds, self.weights, dtype=dt, device=dev, name=self.name
        )


def ring(n_modes: int = 8, radius: float = 1.0, std: float = 0.01, **kwargs) -> GaussianMixture:
    """Equal mixture of ``n_modes`` isotropic Gaussians with means (r cos 2 pi i/K, r sin 2 pi i/K).

    The angles are ``2 pi i / K`` for ``i = 0..K-1`` (never ``linspace(0, 2 pi, K)``, which
    repeats the first mode and leaves K-1 distinct ones). Defaults are the VEEGAN/PacGAN ring.
    """
    k = check_int(n_modes, "n_modes", minimum=1)
    r = check_positive(radius, "radius")
    check_positive(std, "std")
    angles = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    means = torch.stack([r * torch.cos(angles), r * torch.sin(angles)], dim=1)
    g = GaussianMixture(means, float(std), name="ring", **kwargs)
    g.params = {"n_modes": k, "radius": r, "std": float(std)}
    return g


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05, **kwargs) -> GaussianMixture:
    """Equal mixture of ``side**2`` isotropic Gaussians on a square lattice centred at 0.

    With the defaults the means are {-4, -2, 0, 2, 4}^2 with std 0.05: the VEEGAN/PacGAN grid.
    """
    s = check_int(side, "side", minimum=1)
    h = check_positive(spacing, "spacing")
    check_positive(std, "std")
    axis = (torch.arange(s, dtype=torch.float64) - (s - 1) / 2) * h
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    means = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    g = GaussianMixture(means, float(std), name="grid", **kwargs)
    g.params = {"side": s, "spacing": h, "std": float(std)}
    return g


class TwoMoons(Target):
    """Two interleaved half circles (as scikit-learn's ``make_moons``) plus Gaussian noise.

    The density is a uniform arc convolved with a Gaussian and has no closed form: ``log_prob``
    raises. Upper moon: (cos t, sin t); lower moon: (1 - cos t, 1/2 - sin t), t ~ U(0, pi).
    """

    name = "two_moons"

    def __init__(self, noise: float = 0.05, *, dtype=torch.float32, device="cpu"):
        super().__init__(
            2, dtype=dtype, device=device, params={"noise": check_positive(noise, "noise")}
        )
        self.noise = float(noise)

    def _sample(self, n, gen):
        t = math.pi * torch.rand(n, generator=gen, dtype=self.dtype, device=self.device)
        lower = torch.rand(n, generator=gen, device=self.device) < 0.5
        x = torch.where(lower, 1 - torch.cos(t), torch.cos(t))
        y = torch.where(lower, 0.5 - torch.sin(t), torch.sin(t))
        pts = torch.stack([x, y], dim=1)
        return pts + self.noise * torch.randn(
            n, 2, generator=gen, dtype=self.dtype, device=self.device
        )


class Spirals(Target):
    """Two interleaved Archimedean spiral arms (r proportional to angle) plus Gaussian noise.

    Arm ``j`` is ``r(t) (cos(t + j pi), sin(t + j pi))`` with ``t = turns * 2 pi * sqrt(u)``,
    ``u ~ U(0, 1)``, ``r = t / (turns * 2 pi)`` (so radius <= 1). No closed-form density.
    """

    name = "spirals"

    def __init__(
        self, turns: float = 1.5, noise: float = 0.02, *, dtype=torch.float32, device="cpu"
    ):
        params = {"turns": check_positive(turns, "turns"), "noise": check_positive(noise, "noise")}
        super().__init__(2, dtype=dtype, device=device, params=params)
        self.turns, self.noise = float(turns), float(noise)

    def _sample(self, n, gen):
        t_max = self.turns * 2 * math.pi
        t = t_max * torch.sqrt(torch.rand(n, generator=gen, dtype=self.dtype, device=self.device))
        arm = (torch.rand(n, generator=gen, device=self.device) < 0.5).to(self.dtype)
        r = t / t_max
        pts = torch.stack(
            [r * torch.cos(t + arm * math.pi), r * torch.sin(t + arm * math.pi)], dim=1
        )
        return pts + self.noise * torch.randn(
            n, 2, generator=gen, dtype=self.dtype, device=self.device
        )


class Checkerboard(Target):
    """Uniform on the black squares of a ``side x side`` checkerboard on [-side/2, side/2]^2.

    Square (i, j) (0-based from the lower left) is black when ``i + j`` is even. The density is
    ``1 / n_black`` inside black squares (each of area 1) and 0 elsewhere, so ``log_prob`` is exact:
    ``-log(n_black)`` on black squares and ``-inf`` off the support.
    """

    name = "checkerboard"
    has_density = True

    def __init__(self, side: int = 4, *, dtype=torch.float32, device="cpu"):
        side = check_int(side, "side", minimum=2)
        super().__init__(2, dtype=dtype, device=device, params={"side": side})
        self.side = side
        ij = torch.cartesian_prod(torch.arange(side), torch.arange(side))
        self._black = ij[(ij.sum(1) % 2) == 0].to(self.device)

    def _sample(self, n, gen):
        cell = torch.randint(len(self._black), (n,), generator=gen, device=self.device)
        u = torch.rand(n, 2, generator=gen, dtype=self.dtype, device=self.device)
        return self._black[cell].to(self.dtype) + u - self.side / 2

    def log_prob(self, x) -> torch.Tensor:
        """``-log(n_black)`` inside a black square, ``-inf`` elsewhere."""
        x = self._check_points(x)
        shifted = x + self.side / 2
        inside = ((shifted >= 0) & (shifted < self.side)).all(dim=1)
        cells = torch.floor(shifted).long()
        black = (cells.sum(1) % 2) == 0
        out = torch.full((x.shape[0],), -math.inf, dtype=x.dtype, device=x.device)
        out[inside & black] = -math.log(len(self._black))
        return out


def two_moons(noise: float = 0.05, **kwargs) -> TwoMoons:
    """Two interleaved half circles with Gaussian noise (see :class:`TwoMoons`)."""
    return TwoMoons(noise, **kwargs)


def spirals(turns: float = 1.5, noise: float = 0.02, **kwargs) -> Spirals:
    """Two-arm spiral with Gaussian noise (see :class:`Spirals`)."""
    return Spirals(turns, noise, **kwargs)


def checkerboard(side: int = 4, **kwargs) -> Checkerboard:
    """Uniform on the black squares of a checkerboard (see :class:`Checkerboard`)."""
    return Checkerboard(side, **kwargs)


_FACTORIES = {
    "ring": ring,
    "grid": grid,
    "two_moons": two_moons,
    "spirals": spirals,
    "checkerboard": checkerboard,
}


def available() -> list[str]:
    """Names accepted by :func:`make`."""
    return _registry.names(_FACTORIES)


def make(name: str, **params) -> Target:
    """Build a named 2D target with keyword parameters, e.g. ``make("grid", std=0.05)``.

    Raises:
        ValueError: unknown name. TypeError: a parameter the target does not take.
    """
    return _registry.build(_FACTORIES, name, params, kind="dataset")
