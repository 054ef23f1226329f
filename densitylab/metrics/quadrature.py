"""Log-likelihood of a decoder with a latent space of dimension 1 or 2 by quadrature.

A decoder ``g: z -> x`` with a Gaussian observation model defines
``p(x) = int N(x; g(z), s(z)^2 I) N(z; 0, I) dz``. With one or two latent dimensions the integral
can be computed to any accuracy on a grid over the latent plane: the ground truth against which
sampling estimators (IWAE, AIS) are checked on trained models (Wu, Burda, Salakhutdinov and
Grosse, ICLR 2017, check AIS the same way against exact values on small models).

The rule is the midpoint rule on ``[-bound, bound]^k`` (the prior's mass outside is below
``k * 2e-9`` at ``bound = 6``), a tensor product of ``m`` nodes per axis. For an integrand that
is smooth and decays at the edges it converges faster than any power of the node spacing ``h``
(for a Gaussian bump of width ``w`` the relative error is about ``2 exp(-2 pi^2 w^2 / h^2)``),
so once ``h`` resolves the posterior's width ``s / |g'(z)|`` the value is exact to rounding.
Whether that is so is checked, not assumed: ``m`` is doubled until two successive resolutions
agree within ``tolerance`` nats for the point, and points that never agree are flagged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._validation import as_tensor, check_int, check_positive

__all__ = ["QuadratureResult", "quadrature_log_likelihood"]

#: Nodes per axis of one tile (2D: tiles of 32 x 32 nodes; 1D: 1,024 nodes).
_TILE_2D, _TILE_1D = 32, 1024
#: A tile is skipped for a point when its upper bound lies this many nats below the point's
#: current estimate (its share is then below exp(-60) of the total, about 1e-26).
_PRUNE_NATS = 60.0


@dataclass(frozen=True)
class QuadratureResult:
    """Per-point ``log_likelihood`` ``(n,)`` (float64), the change ``error`` ``(n,)`` between
    the last two resolutions of each point (an estimate of the coarser one's error, hence a
    conservative one of the returned value's), ``edge_share`` ``(n,)`` (the fraction of the
    integral on the grid's outer band ``max_i |z_i| > bound - 1``: a share that is not
    negligible means the posterior reaches the edge, and the truncation at ``bound`` may cut
    off mass that no refinement recovers), ``point_converged`` ``(n,)`` (the change and the
    edge share are both within ``tolerance``) and ``point_resolution`` ``(n,)`` (nodes per
    latent axis of the grid the point's value comes from)."""

    log_likelihood: torch.Tensor
    error: torch.Tensor
    edge_share: torch.Tensor
    point_converged: torch.Tensor
    point_resolution: torch.Tensor
    tolerance: float
    bound: float
    sigma: float | None

    @property
    def mean(self) -> float:
        """Mean log-likelihood over the points (nats per point)."""
        return float(self.log_likelihood.mean())

    @property
    def converged(self) -> bool:
        """True when every point's last two resolutions agree within ``tolerance``."""
        return bool(self.point_converged.all())

    @property
    def resolution(self) -> int:
        """Nodes per latent axis of the finest grid used."""
        return int(self.point_resolution.max())

    @property
    def num_unconverged(self) -> int:
        """Number of points whose two finest resolutions differ by more than ``tolerance``."""
        return int((~self.point_converged).sum())

    def to_dict(self) -> dict:
        """Plain-Python dictionary (JSON-ready)."""
        return {"log_likelihood": self.log_likelihood.tolist(), "error": self.error.tolist(),
                "edge_share": self.edge_share.tolist(), "mean": self.mean,
                "converged": self.converged,
                "num_unconverged": self.num_unconverged, "resolution": self.resolution,
                "tolerance": self.tolerance, "bound": self.bound, "sigma": self.sigma}


def check_decoder_inputs(decode, x, latent_dim) -> tuple[torch.Tensor, int]:
    """The checks every decoder likelihood shares (quadrature, AIS): ``decode`` callable, ``x``
    a tensor of shape ``(n, ...)`` with ``n >= 1``, ``latent_dim >= 1``; returns ``(x,
    latent_dim)`` converted."""
    if not callable(decode):
        raise TypeError(f"decode must be a callable from latents to data means (or "
                        f"(mean, scale) pairs), got {type(decode).__name__}")
    x = as_tensor(x, "x")
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"x must have shape (n, ...) with n >= 1, got {tuple(x.shape)}")
    return x, check_int(latent_dim, "latent_dim", minimum=1)


def quadrature_log_likelihood(decode: Callable, x, latent_dim: int = 2,
                              sigma: float | None = None, *, bound: float = 6.0,
                              resolution: int = 128, max_resolution: int | None = None,
                              tolerance: float = 1e-3, batch_size: int = 64,
                              decode_batch: int = 4096) -> QuadratureResult:
    """``log p(x) = log int N(x; g(z), s^2 I) N(z; 0, I) dz`` by a refined midpoint rule.

    Arguments:
        decode: a callable from latents ``(m, latent_dim)`` to data means ``(m, *x.shape[1:])``
            (then ``sigma`` is the observation std), or to a pair ``(mean, scale)`` with
            ``scale`` a scalar, ``(m,)`` or ``(m, *x.shape[1:])`` (a decoder with its own
            variance, e.g. ``lambda z: (vae.decoder(z), vae.decoder.scale())``; then ``sigma``
            must be None).
        x: data ``(n, ...)``.
        latent_dim: 1 or 2.
        sigma: observation std for a decoder that returns means only.
        bound: the grid covers ``[-bound, bound]^latent_dim``.
        resolution: nodes per axis of the first grid (a power of two not below 32 in 2D);
            it is doubled until converged or ``max_resolution`` (default 2,048 in 2D, 2^16
            in 1D) is reached.
        tolerance: a point has converged when its values at two successive resolutions differ
            by at most this many nats.
        batch_size: data points per block; decode_batch: latents per decoder call (4,096:
            a small MLP's activations then stay in cache; benchmarks/perf/likelihood_perf.py
            times it against 65,536).

    The sum over nodes is a log-sum-exp accumulated in float64 block by block (memory
    O(batch_size * tile + grid), never n x grid). Tiles of nodes whose bound (the decoded
    means' bounding box, the smallest scale) puts them more than 60 nats below a point's
    current value are skipped for that point. Cost per resolution ``m``: ``m^latent_dim``
    decoder rows, plus the distances of each point to the nodes of the tiles near it.
    Returns a :class:`QuadratureResult`; a point that has not converged at ``max_resolution``
    is flagged (``point_converged``), never silently passed.
    """
    x, latent_dim = check_decoder_inputs(decode, x, latent_dim)
    if latent_dim > 2:
        raise ValueError(f"latent_dim must be 1 or 2 for quadrature (a grid in more dimensions "
                         f"is too costly; use ais_log_likelihood), got {latent_dim}")
    sigma = check_positive(sigma, "sigma", allow_none=True)
    bound = check_positive(bound, "bound")
    tile = _TILE_2D if latent_dim == 2 else _TILE_1D
    if max_resolution is None:
        max_resolution = 2048 if latent_dim == 2 else 2**16
    resolution = check_int(resolution, "resolution", minimum=tile if latent_dim == 2 else 2)
    max_resolution = check_int(max_resolution, "max_resolution", minimum=2 * resolution)
    tolerance = check_positive(tolerance, "tolerance")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    decode_batch = check_int(decode_batch, "decode_batch", minimum=1)
    if latent_dim == 2 and resolution % tile:
        raise ValueError(f"resolution must be a multiple of {tile} in 2D, got {resolution}")

    n = x.shape[0]
    xf = x.reshape(n, -1).double()
    centre = xf.mean(dim=0)  # centring reduces the round-off of the distance expansion
    xf = xf - centre
    est = torch.full((n,), -math.inf, dtype=torch.float64, device=x.device)
    error = torch.full((n,), math.inf, dtype=torch.float64, device=x.device)
    edge = torch.zeros(n, dtype=torch.float64, device=x.device)
    res_used = torch.zeros(n, dtype=torch.long)
    active = torch.ones(n, dtype=torch.bool, device=x.device)
    m, first = resolution, True
    while True:
        grid = _Grid(decode, latent_dim, m, bound, tile, sigma, x, centre, decode_batch)
        idx = active.nonzero().squeeze(1)
        new, new_edge = grid.log_integral(xf[idx], None if first else est[idx], batch_size)
        edge[idx] = (new_edge - new).exp()
        if not first:
            error[idx] = (new - est[idx]).abs()
        est[idx] = new
        res_used[idx.cpu()] = m
        if not first:
            active[idx[error[idx] <= tolerance]] = False
        first = False
        if not bool(active.any()) or 2 * m > max_resolution:
            break
        m *= 2
    ok = (error <= tolerance) & (edge <= tolerance)
    return QuadratureResult(est, error, edge, ok, res_used, tolerance, bound, sigma)


class _Grid:
    """The decoded nodes of one resolution, arranged in tiles, with each tile's bounds."""

    def __init__(self, decode, k, m, bound, tile, sigma, x, centre, decode_batch):
        h = 2 * bound / m
        axis = -bound + h * (torch.arange(m, dtype=torch.float64) + 0.5)
        if k == 1:
            z = axis[:, None]
        else:
            z = torch.cartesian_prod(axis, axis)  # row-major: z[i * m + j] = (axis_i, axis_j)
            t = m // tile  # reorder so that each tile's nodes are contiguous
            z = z.reshape(t, tile, t, tile, 2).permute(0, 2, 1, 3, 4).reshape(-1, 2)
        per_tile = tile**k if k == 2 else math.gcd(m, tile)
        log_w = k * math.log(h) - 0.5 * (z**2).sum(1) - 0.5 * k * math.log(2 * math.pi)
        on_edge = z.abs().max(1).values > bound - 1
        means, scales = _decode_all(decode, z, sigma, x, decode_batch)
        means = means - centre
        d = means.shape[1]
        inv_var = scales.pow(-2).expand(-1, d) if scales.shape[1] == 1 else scales.pow(-2)
        # log N(x; mu, diag s^2) = -0.5 [x^2, x, 1] . [1/s^2, -2 mu/s^2, sum mu^2/s^2]
        #                          - sum log s - d/2 log 2 pi
        self.node_feat = torch.cat([inv_var, -2 * means * inv_var,
                                    (means**2 * inv_var).sum(1, keepdim=True)], dim=1)
        log_s = scales.log()
        sum_log_s = log_s.sum(1) if scales.shape[1] == d else d * log_s[:, 0]
        self.node_const = log_w - sum_log_s - 0.5 * d * math.log(2 * math.pi)
        # each node counts in the whole sum and, on the outer band, in the band's sum
        self.sum_weights = torch.stack([torch.ones_like(log_w), on_edge.double()], dim=1)
        nt = means.shape[0] // per_tile
        self.per_tile, self.num_tiles = per_tile, nt
        tm = means.reshape(nt, per_tile, d)
        self.lo, self.hi = tm.min(1).values, tm.max(1).values
        ts = scales.reshape(nt, per_tile, -1)
        self.tile_log_w = torch.logsumexp(log_w.reshape(nt, per_tile), dim=1)
        self.tile_min_s = ts.min(1).values.min(1).values
        self.tile_max_s = ts.max(1).values.max(1).values
        self.d = d

    def upper_bounds(self, xb: torch.Tensor) -> torch.Tensor:
        """``(b, tiles)``: an upper bound on the log of each tile's share of each point's
        integral (the tile's prior mass times the largest density a node of it can give)."""
        gap = ((self.lo[None] - xb[:, None]).clamp(min=0)
               + (xb[:, None] - self.hi[None]).clamp(min=0))
        dist2 = (gap**2).sum(-1)
        return (self.tile_log_w - self.d * self.tile_min_s.log()
                - 0.5 * self.d * math.log(2 * math.pi) - 0.5 * dist2 / self.tile_max_s**2)

    def log_integral(self, xf: torch.Tensor, previous: torch.Tensor | None,
                     batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """log of the integral of each point, and log of the part on the grid's outer band."""
        n = xf.shape[0]
        out = torch.empty(n, dtype=torch.float64, device=xf.device)
        out_edge = torch.empty_like(out)
        if previous is None:  # first (coarse) grid: every node for every point
            for s in range(0, n, batch_size):
                out[s:s + batch_size], out_edge[s:s + batch_size] = self._sum(
                    xf[s:s + batch_size], None)
            return out, out_edge
        # points sorted by their most likely tile, so that a block needs few tiles
        ub_rows, best = [], []
        for s in range(0, n, batch_size):
            ub = self.upper_bounds(xf[s:s + batch_size])
            ub_rows.append(ub)
            best.append(ub.argmax(1))
        ub_all, order = torch.cat(ub_rows), torch.cat(best).argsort()
        # the threshold never exceeds the largest bound, so no point is left without a tile
        thresh = torch.minimum(previous, ub_all.max(1).values) - _PRUNE_NATS
        for s in range(0, n, batch_size):
            rows = order[s:s + batch_size]
            keep = (ub_all[rows] >= thresh[rows, None]).any(0).nonzero().squeeze(1)
            out[rows], out_edge[rows] = self._sum(xf[rows], keep)
        return out, out_edge

    def _sum(self, xb: torch.Tensor, tiles: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """log sum over the nodes (of ``tiles``, None: all) of w N(x; mu, s^2), per point, and
        the same sum over the outer band's nodes only.

        One pass per chunk of nodes: the log terms, their largest value per point, then the
        shifted exponentials summed over all nodes and over the band's by one matrix product
        (a log-sum-exp per sum took twice the passes). Chunks hold about 2^17 terms, small
        enough to stay in cache."""
        feats = torch.cat([xb**2, xb, torch.ones_like(xb[:, :1])], dim=1)
        if tiles is None:
            node_idx = None
            total = self.node_feat.shape[0]
        else:
            node_idx = (tiles[:, None] * self.per_tile
                        + torch.arange(self.per_tile, device=tiles.device)).reshape(-1)
            total = node_idx.numel()
        chunk = max(self.per_tile, 2**17 // max(xb.shape[0], 1))
        maxima, sums = [], []
        for s in range(0, total, chunk):
            sel = slice(s, s + chunk) if node_idx is None else node_idx[s:s + chunk]
            log_terms = ((feats @ self.node_feat[sel].T).clamp_(min=0).mul_(-0.5)
                         .add_(self.node_const[sel]))
            top = log_terms.max(dim=1, keepdim=True).values
            sums.append(log_terms.sub_(top).exp_() @ self.sum_weights[sel])
            maxima.append(top)
        tops = torch.cat(maxima, dim=1)  # (b, chunks)
        top = tops.max(dim=1, keepdim=True).values
        total_sums = (torch.stack(sums, dim=1) * (tops - top).exp()[..., None]).sum(dim=1)
        out = total_sums.log() + top
        return out[:, 0], out[:, 1]


def _decode_all(decode, z, sigma, x, decode_batch):
    """Decoded means ``(M, d)`` and scales ``(M, 1)`` or ``(M, d)``, float64, from ``decode`` in
    chunks (no gradients)."""
    dtype = x.dtype if x.is_floating_point() else torch.float32
    means, scales = [], []
    d = x[0].numel()
    with torch.no_grad():
        for s in range(0, z.shape[0], decode_batch):
            zb = z[s:s + decode_batch].to(device=x.device, dtype=dtype)
            out = decode(zb)
            if isinstance(out, tuple | list):
                if sigma is not None:
                    raise ValueError("sigma must be None when decode returns (mean, scale)")
                if len(out) != 2:
                    raise ValueError(f"decode must return a mean or a (mean, scale) pair, got "
                                     f"{len(out)} values")
                mean, scale = out
            else:
                if sigma is None:
                    raise ValueError("sigma is required when decode returns means only (or "
                                     "return (mean, scale) from decode)")
                mean, scale = out, sigma
            b = zb.shape[0]
            mean = torch.as_tensor(mean).reshape(b, -1).double()
            if mean.shape[1] != d:
                raise ValueError(f"decode returned {mean.shape[1]} values per latent, expected "
                                 f"{d} (the size of a data point)")
            scale = torch.as_tensor(scale, dtype=torch.float64, device=mean.device)
            if scale.numel() == 1:
                scale = scale.reshape(1, 1).expand(b, 1)
            elif scale.numel() == b:
                scale = scale.reshape(b, 1)
            else:
                scale = scale.reshape(b, -1)
                if scale.shape[1] != d:
                    raise ValueError(f"decode's scale must be a scalar, (m,) or (m, {d}); got "
                                     f"{scale.shape[1]} values per latent")
            if not bool((scale > 0).all()) or not bool(torch.isfinite(mean).all()):
                raise ValueError("decode returned a non-finite mean or a scale that is not > 0")
            means.append(mean)
            scales.append(scale)
    return torch.cat(means), torch.cat(scales)
