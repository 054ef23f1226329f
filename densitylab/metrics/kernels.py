"""Kernels for MMD and KID, and the median heuristic for their bandwidth.

All distance kernels use the Euclidean distance ``r = ||x - y||`` and satisfy ``k(x, x) = 1``
per bandwidth:

* ``"rbf"``: ``exp(-r^2 / (2 bw^2))`` (Gaussian), the kernel of Gretton et al. (JMLR 2012).
* ``"multi_rbf"``: the *sum* of RBF kernels over several bandwidths (by default the median
  heuristic times 1/4, 1/2, 1, 2, 4), as in the MMD-GAN literature (Li et al. 2015).
* ``"imq"``: inverse multiquadric ``(1 + r^2 / bw^2)^(-1/2)`` (Gorham and Mackey 2017).
* ``"laplacian"``: ``exp(-r / bw)`` with the Euclidean (not L1) distance.
* ``"polynomial"``: ``(gamma x.y + coef0)^degree``, gamma defaulting to ``1/d``; the kernel of
  KID (Binkowski et al. 2018).

A kernel is evaluated block by block: :meth:`Kernel.prepare` turns a sample set into left and
right factors once, and :meth:`Kernel.block` maps a row block and a column block of those
factors to the kernel values, with the squared distances coming out of a single GEMM on
augmented coordinates ``[x, |x|^2, 1] . [-2y, 1, |y|^2]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .._validation import as_samples, check_choice, check_int, check_positive, check_same_dim

__all__ = ["KERNELS", "Kernel", "make_kernel", "median_bandwidth"]

KERNELS = ("rbf", "multi_rbf", "imq", "laplacian", "polynomial")
DISTANCE_KERNELS = ("rbf", "multi_rbf", "imq", "laplacian")
MULTI_RBF_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
#: ``k(x, y) = -||x - y||``: not positive definite, but its MMD^2 is the energy distance
#: (Sejdinovic et al., Annals of Statistics 2013); used by :func:`energy_distance` only.
ENERGY_KERNEL = "energy"


def median_bandwidth(x, y=None, *, max_samples: int = 2000, seed: int = 0) -> float:
    """The median heuristic: the median Euclidean distance between distinct points of the pool.

    The pool is ``x`` stacked on ``y`` (``y`` optional). Above ``max_samples`` points a uniform
    subsample of ``max_samples`` rows (drawn with a generator seeded by ``seed``, so the result is
    deterministic) stands for the pool. Cost ``O(s^2 d)`` for ``s = min(n + m, max_samples)``.
    Reference: Gretton et al., "A Kernel Two-Sample Test", JMLR 2012 (Section 8).

    Raises:
        ValueError: fewer than two points, or all distances zero (pass ``bandwidth`` instead).
    """
    xs = as_samples(x, "x")
    if y is not None:
        ys = as_samples(y, "y")
        check_same_dim(xs, ys)
        ys = ys.to(device=xs.device, dtype=torch.promote_types(xs.dtype, ys.dtype))
        pool = torch.cat([xs.to(ys.dtype), ys])
    else:
        pool = xs
    max_samples = check_int(max_samples, "max_samples", minimum=2)
    return _median_bandwidth(pool, max_samples=max_samples, seed=seed)


def _median_bandwidth(pool: torch.Tensor, *, max_samples: int = 2000, seed: int = 0) -> float:
    n = pool.shape[0]
    if n < 2:
        raise ValueError("the median heuristic needs two or more points; pass bandwidth explicitly")
    if n > max_samples:
        gen = torch.Generator().manual_seed(int(seed))
        idx = torch.randperm(n, generator=gen)[:max_samples].to(pool.device)
        pool = pool[idx]
    p = pool.to(torch.float64)
    p = p - p.mean(0)
    d = torch.cdist(p, p, compute_mode="donot_use_mm_for_euclid_dist")
    iu = torch.triu_indices(p.shape[0], p.shape[0], offset=1, device=p.device)
    v = d[iu[0], iu[1]]
    half = v.numel() // 2
    if v.numel() % 2:
        med = float(v.kthvalue(half + 1).values)
    else:  # the usual median: the mean of the two middle values (torch.median takes the lower)
        med = 0.5 * float(v.kthvalue(half).values + v.kthvalue(half + 1).values)
    if not med > 0:
        raise ValueError(
            "the median heuristic gave bandwidth 0 (over half the pairs are identical points); "
            "pass bandwidth explicitly"
        )
    return med


@dataclass(frozen=True)
class Kernel:
    """A resolved kernel: its name and numeric parameters (bandwidths already chosen)."""

    name: str
    bandwidths: tuple[float, ...] = ()
    degree: int = 3
    gamma: float | None = None
    coef0: float = 1.0

    @property
    def is_distance_kernel(self) -> bool:
        """True when ``k(x, y)`` depends on ``||x - y||`` only (translation invariant)."""
        return self.name in DISTANCE_KERNELS or self.name == ENERGY_KERNEL

    def diagonal_value(self) -> float | None:
        """``k(x, x)`` when it is the same for every x (distance kernels), else None."""
        if self.name == "multi_rbf":
            return float(len(self.bandwidths))
        if self.name == ENERGY_KERNEL:
            return 0.0
        return 1.0 if self.is_distance_kernel else None

    def prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Left and right factors of one sample set; :meth:`block` combines slices of them."""
        if self.name == "laplacian":
            return x, x
        if self.name == "polynomial":
            gamma = self.gamma if self.gamma is not None else 1.0 / x.shape[1]
            one = torch.ones_like(x[:, :1])
            return torch.cat([gamma * x, self.coef0 * one], 1), torch.cat([x, one], 1)
        sq = (x * x).sum(1, keepdim=True)
        one = torch.ones_like(sq)
        left = torch.cat([x, sq, one], 1)
        if self.name == "rbf":
            # Fold -1/(2 bw^2) into the right factor: the GEMM then yields the exponent directly.
            c = 1.0 / (2.0 * self.bandwidths[0] ** 2)
            return left, torch.cat([2.0 * c * x, -c * one, -c * sq], 1)
        return left, torch.cat([-2.0 * x, one, sq], 1)

    def block(self, left: torch.Tensor, right: torch.Tensor, *, self_pairs: bool = False):
        """Kernel values between a row block (``left``) and a column block (``right``) of factors.

        ``self_pairs``: the two blocks hold the same points in the same order, so the diagonal
        holds ``k(x_i, x_i)``; for distance kernels it is set from distance exactly 0.
        """
        name = self.name
        if name == "laplacian":
            d = torch.cdist(left, right, compute_mode="donot_use_mm_for_euclid_dist")
            if self_pairs:
                d.diagonal().zero_()
            return d.mul_(-1.0 / self.bandwidths[0]).exp_()
        e = left @ right.T
        if name == "polynomial":
            return e.pow_(self.degree)
        if name == "rbf":
            if self_pairs:
                e.diagonal().zero_()
            return e.clamp_max_(0.0).exp_()
        e.clamp_min_(0.0)  # squared distances
        if self_pairs:
            e.diagonal().zero_()
        if name == ENERGY_KERNEL:
            return e.sqrt_().neg_()
        if name == "imq":
            return e.mul_(1.0 / self.bandwidths[0] ** 2).add_(1.0).rsqrt_()
        out = torch.exp(e * (-0.5 / self.bandwidths[0] ** 2))
        for bw in self.bandwidths[1:]:
            out.add_(torch.exp(e * (-0.5 / bw**2)))
        return out


def make_kernel(
    name: str,
    pool: torch.Tensor | None = None,
    *,
    bandwidth: float | Sequence[float] | None = None,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> Kernel:
    """Validate kernel options and resolve ``bandwidth=None`` by the median heuristic on ``pool``.

    ``bandwidth`` is one positive number, or (``"multi_rbf"`` only) a sequence of them; for
    ``"multi_rbf"`` a single number ``b`` means ``b`` times (1/4, 1/2, 1, 2, 4).
    """
    check_choice(name, "kernel", KERNELS)
    if name == "polynomial":
        degree = check_int(degree, "degree", minimum=1)
        gamma = check_positive(gamma, "gamma", allow_none=True)
        coef0 = check_positive(coef0, "coef0", allow_zero=True)
        return Kernel(name, (), degree=degree, gamma=gamma, coef0=coef0)
    if bandwidth is None:
        if pool is None:  # pragma: no cover - internal misuse
            raise ValueError("bandwidth=None needs the samples for the median heuristic")
        base = _median_bandwidth(pool, seed=seed)
        bws = tuple(base * s for s in MULTI_RBF_SCALES) if name == "multi_rbf" else (base,)
    elif isinstance(bandwidth, Sequence) and not isinstance(bandwidth, str):
        if name != "multi_rbf":
            raise TypeError(f"bandwidth must be one number for kernel {name!r}, got a sequence")
        if len(bandwidth) == 0:
            raise ValueError("bandwidth must be a non-empty sequence of positive numbers")
        bws = tuple(check_positive(b, "bandwidth") for b in bandwidth)
    else:
        b = check_positive(bandwidth, "bandwidth")
        bws = tuple(b * s for s in MULTI_RBF_SCALES) if name == "multi_rbf" else (b,)
    if not all(math.isfinite(b) for b in bws):  # pragma: no cover - guarded above
        raise ValueError("bandwidth must be finite")
    if not all(math.isfinite(0.5 / b / b) for b in bws):
        # 1 / (2 bandwidth^2) overflows: every kernel value between distinct points would be
        # exp(-inf) and the expansion would turn inf * 0 into NaN.
        raise ValueError(
            f"bandwidth {min(bws)!r} is too small: 1 / (2 bandwidth^2) overflows float64; "
            "use a bandwidth above 1e-150 (or rescale the data)"
        )
    return Kernel(name, bws)
