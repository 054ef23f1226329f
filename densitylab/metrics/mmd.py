"""Maximum mean discrepancy (Gretton et al., "A Kernel Two-Sample Test", JMLR 2012).

One maths implementation, in the manner of torchmetrics: :func:`_kernel_sums` walks the kernel
matrix block by block and accumulates the three block sums (``K_xx``, ``K_yy``, ``K_xy``) and the
traces in float64; :func:`_estimate` turns sums into an estimator; :func:`mmd`, :func:`mmd_test`
and :func:`densitylab.metrics.kid` only validate and call them.

Memory is ``O((n + m) * block)``: the ``n x m`` matrix is never built (except in
:func:`mmd_test`, which may keep the pooled matrix when it fits ``max_matrix_bytes``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from .._runtime import make_generator, progress
from .._validation import as_samples, check_choice, check_int, check_positive, check_same_dim
from ._blocks import default_block_size
from .kernels import Kernel, make_kernel

__all__ = ["ESTIMATORS", "MMDTestResult", "mmd", "mmd_test"]

ESTIMATORS = ("unbiased", "biased", "linear")


@dataclass(frozen=True)
class KernelSums:
    """Float64 sums of kernel blocks: totals over all pairs and traces of the within-set blocks."""

    xx: torch.Tensor
    yy: torch.Tensor
    xy: torch.Tensor
    trace_xx: torch.Tensor
    trace_yy: torch.Tensor
    n: int
    m: int


def _within_sums(kern: Kernel, left, right, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over all ``(i, j)`` of ``k(x_i, x_j)`` and its trace; uses symmetry (upper blocks x2)."""
    n = left.shape[0]
    total = torch.zeros((), dtype=torch.float64, device=left.device)
    trace = torch.zeros((), dtype=torch.float64, device=left.device)
    for i in range(0, n, block):
        li = left[i : i + block]
        for j in range(i, n, block):
            k = kern.block(li, right[j : j + block], self_pairs=(i == j))
            s = k.sum(1).sum(dtype=torch.float64)
            if i == j:
                total += s
                trace += k.diagonal().sum(dtype=torch.float64)
            else:
                total += 2.0 * s
    return total, trace


def _cross_sum(kern: Kernel, left, right, block: int) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float64, device=left.device)
    for i in range(0, left.shape[0], block):
        li = left[i : i + block]
        for j in range(0, right.shape[0], block):
            # Row sums in the block's dtype (<= block terms each), then float64 accumulation.
            total += kern.block(li, right[j : j + block]).sum(1).sum(dtype=torch.float64)
    return total


def _center(x: torch.Tensor, y: torch.Tensor, kern: Kernel):
    """Shift both sets by the pooled mean (distance kernels are shift invariant): smaller norms
    mean less cancellation in ``|x|^2 + |y|^2 - 2 x.y``."""
    if not kern.is_distance_kernel:
        return x, y
    n, m = x.shape[0], y.shape[0]
    mu = (x.sum(0, dtype=torch.float64) + y.sum(0, dtype=torch.float64)) / (n + m)
    mu = mu.to(x.dtype)
    return x - mu, y - mu


def _kernel_sums(kern: Kernel, x: torch.Tensor, y: torch.Tensor, block: int) -> KernelSums:
    x, y = _center(x, y, kern)
    lx, rx = kern.prepare(x)
    ly, ry = kern.prepare(y)
    xx, txx = _within_sums(kern, lx, rx, block)
    yy, tyy = _within_sums(kern, ly, ry, block)
    xy = _cross_sum(kern, lx, ry, block)
    return KernelSums(xx, yy, xy, txx, tyy, x.shape[0], y.shape[0])


def _estimate(s: KernelSums, estimator: str) -> torch.Tensor:
    n, m = s.n, s.m
    if estimator == "biased":
        return s.xx / n**2 + s.yy / m**2 - 2.0 * s.xy / (n * m)
    within_x = (s.xx - s.trace_xx) / (n * (n - 1))
    within_y = (s.yy - s.trace_yy) / (m * (m - 1))
    return within_x + within_y - 2.0 * s.xy / (n * m)


def _linear_mmd(kern: Kernel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gretton et al. (2012), Lemma 14: mean of h over disjoint pairs ((x1,y1),(x2,y2))."""
    half = min(x.shape[0], y.shape[0]) // 2
    x, y = _center(x, y, kern)
    x1, x2 = x[:half], x[half : 2 * half]
    y1, y2 = y[:half], y[half : 2 * half]

    def pairwise(a, b):  # k(a_i, b_i) for each row i, via the same block code on 1x1 blocks
        la, _ = kern.prepare(a)
        _, rb = kern.prepare(b)
        if kern.name == "laplacian":
            d = (a - b).norm(dim=1)
            return torch.exp(-d / kern.bandwidths[0]).to(torch.float64)
        e = (la * rb).sum(1)
        if kern.name == "polynomial":
            return e.pow(kern.degree).to(torch.float64)
        if kern.name == "rbf":
            return e.clamp_max(0.0).exp().to(torch.float64)
        e = e.clamp_min(0.0)
        if kern.name == "imq":
            return (1.0 + e / kern.bandwidths[0] ** 2).rsqrt().to(torch.float64)
        return sum(torch.exp(e * (-0.5 / bw**2)) for bw in kern.bandwidths).to(torch.float64)

    h = pairwise(x1, x2) + pairwise(y1, y2) - pairwise(x1, y2) - pairwise(x2, y1)
    return h.mean()


def paired_samples(x, y, min_rows: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` and ``y`` checked as two sample sets of one dimension on one device, in their
    common floating dtype (float32 at least)."""
    xs = as_samples(x, "x", min_rows=min_rows)
    ys = as_samples(y, "y", min_rows=min_rows)
    check_same_dim(xs, ys)
    if xs.device != ys.device:
        raise ValueError(f"x and y must be on the same device, got {xs.device} and {ys.device}")
    dtype = torch.promote_types(xs.dtype, ys.dtype)
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32  # half precision cannot hold kernel sums reliably
    return xs.to(dtype), ys.to(dtype)


def _prepare_inputs(x, y, estimator: str):
    est = check_choice(estimator, "estimator", ESTIMATORS)
    xs, ys = paired_samples(x, y, min_rows=1 if est == "biased" else 2)
    return xs, ys, est


def _resolve_kernel(xs, ys, kernel, bandwidth, kernel_options) -> Kernel:
    pool = None
    if bandwidth is None and kernel != "polynomial":
        pool = torch.cat([xs, ys])
    return make_kernel(kernel, pool, bandwidth=bandwidth, **kernel_options)


def _block(block_size, xs) -> int:
    if block_size is None:
        return default_block_size(xs.dtype, xs.device)
    return check_int(block_size, "block_size", minimum=1)


def mmd(
    x,
    y,
    kernel: str = "rbf",
    bandwidth: float | Sequence[float] | None = None,
    estimator: str = "unbiased",
    *,
    block_size: int | None = None,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
) -> float:
    r"""Squared maximum mean discrepancy :math:`\mathrm{MMD}^2_k(P, Q)` from x ~ P and y ~ Q.

    Estimators (Gretton et al., "A Kernel Two-Sample Test", JMLR 2012):

    * ``"unbiased"`` (Eq. 3, U-statistic): excludes the ``i = j`` terms; unbiased, so it can be
      slightly negative when P = Q. Cost ``O((n + m)^2 d)``.
    * ``"biased"`` (Eq. 5, V-statistic): includes them; biased upwards by ``O(1/n)``, never < 0.
    * ``"linear"`` (Lemma 14): mean of ``h`` over ``floor(min(n, m)/2)`` disjoint pairs, extra
      rows ignored; unbiased, ``O(n d)`` time, higher variance.

    Arguments:
        x, y: samples, shapes ``(n, d)`` and ``(m, d)``; numpy arrays or torch tensors, on any
            device (computed where they live). float32 input: kernel blocks in float32, sums in
            float64; float64 input: everything in float64. In float32 the squared distances
            carry round-off relative to the squared norms, which matters when the bandwidth is
            orders of magnitude below the data's spread (mmd(x, x) ~ 1e-5 instead of 0 at a
            ratio of 1/1000): pass float64 input for such bandwidths.
        kernel: ``"rbf"``, ``"multi_rbf"``, ``"imq"``, ``"laplacian"`` or ``"polynomial"`` (see
            :mod:`densitylab.metrics.kernels`).
        bandwidth: positive number (or, for ``"multi_rbf"``, a sequence); None takes the median
            heuristic on the pooled sample (subsampled to 2000 points with a fixed seed).
        estimator: ``"unbiased"``, ``"biased"`` or ``"linear"``.
        block_size: rows per block (default: a block of about 8 MB on CPU).
        degree, gamma, coef0: polynomial-kernel parameters.

    Memory ``O((n + m) * block_size)``: the full kernel matrix is never built.

    Example:
        >>> import torch
        >>> x, y = torch.randn(500, 2), torch.randn(500, 2) + 1.0
        >>> mmd(x, y, bandwidth=1.0) > 0.1
        True
    """
    xs, ys, est = _prepare_inputs(x, y, estimator)
    options = {"degree": degree, "gamma": gamma, "coef0": coef0}
    kern = _resolve_kernel(xs, ys, kernel, bandwidth, options)
    if est == "linear":
        return float(_linear_mmd(kern, xs, ys))
    return float(_estimate(_kernel_sums(kern, xs, ys, _block(block_size, xs)), est))


@dataclass(frozen=True)
class MMDTestResult:
    """Outcome of :func:`mmd_test`: the observed MMD^2, its permutation p-value and the set-up."""

    statistic: float
    pvalue: float
    num_permutations: int
    estimator: str
    kernel: str
    bandwidth: tuple[float, ...]
    null_mean: float
    null_std: float

    def reject(self, alpha: float = 0.05) -> bool:
        """True when the test rejects ``P = Q`` at level ``alpha`` (``pvalue <= alpha``)."""
        return self.pvalue <= check_positive(alpha, "alpha")

    def to_dict(self) -> dict:
        """Plain-Python dictionary (JSON-ready)."""
        d = asdict(self)
        d["bandwidth"] = list(self.bandwidth)
        return d


def _pooled_matrix(kern: Kernel, z: torch.Tensor, block: int) -> torch.Tensor:
    """The full pooled kernel matrix in float64, filled block by block (``(n+m)^2 * 8`` bytes)."""
    z = _center(z, z[:0], kern)[0]
    left, right = kern.prepare(z)
    n = z.shape[0]
    k = torch.empty(n, n, dtype=torch.float64, device=z.device)
    for i in range(0, n, block):
        for j in range(i, n, block):
            b = kern.block(left[i : i + block], right[j : j + block], self_pairs=(i == j))
            k[i : i + block, j : j + block] = b
            if i != j:
                k[j : j + block, i : i + block] = b.T
    return k


def _statistics_from_matrix(k: torch.Tensor, a: torch.Tensor, n: int, m: int, est: str):
    """MMD^2 for each labelling column of ``a`` (1 = in x), from the pooled matrix ``k``.

    With ``r = K 1`` and ``T = 1' K 1``: ``S_xx = a'Ka``, ``S_xy = a'r - S_xx``,
    ``S_yy = T - 2 a'r + S_xx`` -- one GEMM ``K A`` for a whole batch of permutations.
    """
    ka = k @ a
    sxx = (a * ka).sum(0)
    r = k.sum(1)
    total = r.sum()
    ar = a.T @ r
    sxy = ar - sxx
    syy = total - 2.0 * ar + sxx
    if est == "biased":
        return sxx / n**2 + syy / m**2 - 2.0 * sxy / (n * m)
    return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)


def mmd_test(
    x,
    y,
    num_permutations: int = 500,
    seed: int | None = 0,
    *,
    kernel: str = "rbf",
    bandwidth: float | Sequence[float] | None = None,
    estimator: str = "unbiased",
    block_size: int | None = None,
    max_matrix_bytes: int = 256 * 2**20,
    progress_bar: bool | None = None,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
) -> MMDTestResult:
    r"""Permutation two-sample test of ``P = Q`` with the MMD^2 statistic (Gretton et al. 2012).

    The null distribution is the statistic under ``num_permutations`` (``B``) random relabellings
    of the pooled sample; the p-value is ``(1 + #{perm >= observed}) / (1 + B)``, which is a valid
    (never zero) p-value. The bandwidth is fixed once on the pooled sample (a permutation leaves
    the pool unchanged), so every permutation uses the same kernel.

    Cost: when the pooled ``(n+m) x (n+m)`` float64 kernel matrix fits ``max_matrix_bytes``
    (256 MB: ``n + m <= 5792``) it is built once, blockwise, and each batch of permutations is a
    single GEMM, ``O((n+m)^2 B)`` flops; above that every permutation recomputes the statistic
    blockwise, ``O((n+m)^2 d)`` time and ``O((n+m) block)`` memory each (slow, with progress).
    The ``"linear"`` estimator costs ``O((n+m) d)`` per permutation.

    Arguments:
        x, y, kernel, bandwidth, estimator, block_size, degree, gamma, coef0: as in :func:`mmd`.
        num_permutations: ``B >= 1``.
        seed: seeds the permutations (a CPU ``torch.Generator``): the same seed gives the same
            p-value on any device. None draws fresh permutations.

    Returns:
        :class:`MMDTestResult` with ``statistic``, ``pvalue`` and the null mean and std.
    """
    xs, ys, est = _prepare_inputs(x, y, estimator)
    b = check_int(num_permutations, "num_permutations", minimum=1)
    max_bytes = check_int(max_matrix_bytes, "max_matrix_bytes", minimum=0)
    if seed is not None:
        check_int(seed, "seed")
    options = {"degree": degree, "gamma": gamma, "coef0": coef0}
    kern = _resolve_kernel(xs, ys, kernel, bandwidth, options)
    block = _block(block_size, xs)
    n, m = xs.shape[0], ys.shape[0]
    z = torch.cat([xs, ys])
    big_n = n + m
    gen = make_generator(seed, "cpu")
    perms = (torch.randperm(big_n, generator=gen) for _ in range(b))

    if est != "linear" and big_n * big_n * 8 <= max_bytes:
        k = _pooled_matrix(kern, z, block)
        if est == "unbiased":
            k.diagonal().zero_()
        labels = torch.zeros(big_n, 1, dtype=torch.float64, device=z.device)
        labels[:n] = 1.0
        observed = _statistics_from_matrix(k, labels, n, m, est)[0]
        null = []
        batch = max(1, min(b, 2**24 // big_n))
        it = iter(perms)
        for start in range(0, b, batch):
            cols = min(batch, b - start)
            idx = torch.stack([next(it)[:n] for _ in range(cols)], dim=1).to(z.device)
            a = torch.zeros(big_n, cols, dtype=torch.float64, device=z.device)
            a.scatter_(0, idx, 1.0)
            null.append(_statistics_from_matrix(k, a, n, m, est))
        null_t = torch.cat(null)
    else:

        def statistic(zp: torch.Tensor) -> torch.Tensor:
            xp, yp = zp[:n], zp[n:]
            if est == "linear":
                return _linear_mmd(kern, xp, yp)
            return _estimate(_kernel_sums(kern, xp, yp, block), est)

        observed = statistic(z)
        null_t = torch.stack(
            [
                statistic(z[p.to(z.device)])
                for p in progress(perms, total=b, desc="mmd_test", enabled=progress_bar)
            ]
        )
    exceed = int((null_t >= observed).sum())
    return MMDTestResult(
        statistic=float(observed),
        pvalue=(1 + exceed) / (1 + b),
        num_permutations=b,
        estimator=est,
        kernel=kern.name,
        bandwidth=kern.bandwidths,
        null_mean=float(null_t.mean()),
        null_std=float(null_t.std()) if b > 1 else 0.0,
    )
