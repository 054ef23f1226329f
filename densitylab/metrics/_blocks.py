"""Blockwise building blocks shared by the metrics: block sizes, squared distances, k-NN.

Nothing here builds an ``n x m`` matrix: callers walk row blocks of one set against column
blocks of the other, so memory stays ``O((n + m) * block)``.
"""

from __future__ import annotations

import math

import torch

# One block of the kernel/distance matrix is about this many bytes: large enough to keep the
# GEMM efficient, small enough to stay in a CPU's L2 cache (the source of the speed-up over
# materialising the whole matrix). GPUs prefer far larger blocks (fewer kernel launches).
_CPU_BLOCK_BYTES = 2 * 2**20
_CUDA_BLOCK_BYTES = 256 * 2**20


def default_block_size(dtype: torch.dtype, device: torch.device, *, width: int = 1) -> int:
    """Rows per block so that a square block of ``width`` values per entry is a few MB (CPU)."""
    item = torch.finfo(dtype).bits // 8 if dtype.is_floating_point else 8
    budget = _CUDA_BLOCK_BYTES if device.type == "cuda" else _CPU_BLOCK_BYTES
    side = int(math.sqrt(budget / (item * max(1, width))))
    return max(64, side // 64 * 64)


def sqdist_exact(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances from coordinate differences (exactly 0 for equal rows)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").square_()


def sqdist_gemm(a: torch.Tensor, b: torch.Tensor, a_sq=None, b_sq=None) -> torch.Tensor:
    """Squared Euclidean distances as ``|a|^2 + |b|^2 - 2 a.b`` (one GEMM), clamped at 0.

    Fast in any dimension; the cancellation error is about ``eps * (|a|^2 + |b|^2)``, so centre
    the data first when accuracy near zero distance matters.
    """
    a_sq = (a * a).sum(1) if a_sq is None else a_sq
    b_sq = (b * b).sum(1) if b_sq is None else b_sq
    d = torch.addmm(b_sq[None, :], a, b.T, alpha=-2.0)
    d.add_(a_sq[:, None])
    return d.clamp_min_(0.0)


def sqdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distances: exact differences in low dimension, the GEMM form in high dimension."""
    if a.shape[1] <= 16:
        return sqdist_exact(a, b)
    return sqdist_gemm(a, b)


def knn_sqdists(
    queries: torch.Tensor,
    points: torch.Tensor,
    k: int,
    *,
    exclude_self: bool = False,
    positive_only: bool = False,
    block_size: int | None = None,
    return_index: bool = False,
):
    """Squared distances from each query to its ``k`` nearest neighbours in ``points``, sorted
    ascending, shape ``(n_q, k)`` (brute force); with ``return_index`` also their row indices.

    Distances come from coordinate differences, so duplicates are exactly 0.

    ``exclude_self``: queries are ``points`` itself and row ``i`` skips column ``i``.
    ``positive_only``: distances equal to 0 are skipped (duplicates count as one position);
    where fewer than ``k`` positive distances exist for a query, the missing ones are ``inf``.
    Cost ``O(n_q * n_p * d)`` time and ``O(block * n_p)`` memory.
    """
    nq, npts = queries.shape[0], points.shape[0]
    side = default_block_size(queries.dtype, queries.device)
    bs = block_size or max(1, side * side // max(npts, 1))
    out = torch.empty(nq, k, dtype=queries.dtype, device=queries.device)
    index = torch.empty(nq, k, dtype=torch.long, device=queries.device)
    for start in range(0, nq, bs):
        stop = min(start + bs, nq)
        d = sqdist_exact(queries[start:stop], points)
        if exclude_self:
            rows = torch.arange(stop - start, device=d.device)
            d[rows, rows + start] = math.inf
        if positive_only:
            d.masked_fill_(d <= 0, math.inf)
        top = torch.topk(d, k, dim=1, largest=False, sorted=True)
        out[start:stop] = top.values
        index[start:stop] = top.indices
    return (out, index) if return_index else out


def knn_sqdist(
    queries: torch.Tensor,
    points: torch.Tensor,
    k: int,
    *,
    exclude_self: bool = False,
    positive_only: bool = False,
    block_size: int | None = None,
) -> torch.Tensor:
    """Squared distance from each query to its k-th nearest neighbour in ``points`` (brute force);
    the last column of :func:`knn_sqdists` (same options)."""
    return knn_sqdists(queries, points, k, exclude_self=exclude_self,
                       positive_only=positive_only, block_size=block_size)[:, k - 1]


def too_many_duplicates(name: str, k: int) -> ValueError:
    """The error for a set where a point has fewer than ``k`` neighbours at a positive distance."""
    return ValueError(
        f"{name} has fewer than k={k} distinct neighbour positions for some points "
        "(too many duplicates); lower k or remove duplicates"
    )


def knn_sqdist_positive(queries: torch.Tensor, points: torch.Tensor, k: int, name: str, *,
                        block_size: int | None = None) -> torch.Tensor:
    """Squared distance to the k-th nearest point at a strictly positive distance (brute force).

    Points at a query's own position (itself included) are skipped, so duplicates count as one
    position. Raises :func:`too_many_duplicates` (naming ``name``) where fewer than ``k`` remain.
    """
    out = knn_sqdist(queries, points, k, positive_only=True, block_size=block_size)
    if not bool(torch.isfinite(out).all()):
        raise too_many_duplicates(name, k)
    return out
