"""Where is a 2D model wrong? The MMD witness function on a grid, with family-wise significance.

The witness of the RBF-kernel MMD between P (target, ``x``) and Q (model, ``y``) is
:math:`w(t) = E_P k(X, t) - E_Q k(Y, t)` (Gretton et al., JMLR 2012, Section 2.3; Lloyd and
Ghahramani, NeurIPS 2015, use it to criticise models): positive where the target has mass the
model lacks (missed modes), negative where the model puts mass the target lacks (leaks).
:func:`witness_map` estimates it on a grid, studentises it per grid point, and marks the points
where it is significant with the family-wise error controlled over the whole grid by a max-T
permutation test (Westfall and Young 1993). Definitions and failure modes: ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .._validation import as_samples, check_int, check_positive, check_probability, check_same_dim
from ._blocks import sqdist
from .kernels import median_bandwidth

__all__ = ["WitnessMap", "witness_map", "select_bandwidth"]

# Candidate bandwidths: the median heuristic times 2^-7 ... 2^1 (17 values); the median
# heuristic itself oversmooths a mixture of narrow modes, hence the wide range below it.
_BANDWIDTH_FACTORS = tuple(2.0 ** (k / 2) for k in range(-14, 3))
# Added to each grid point's variance: where no sample is within a few bandwidths the witness
# and its variance both vanish, and the t-value is set to (nearly) 0 instead of 0/0.
_VARIANCE_FLOOR = 1e-12


@dataclass(frozen=True)
class WitnessMap:
    """Outcome of :func:`witness_map` (arrays are numpy, ``(grid_size, grid_size)`` with
    ``[i, j]`` at ``(grid_x[j], grid_y[i])``, the layout of ``matplotlib``'s ``pcolormesh``).

    ``witness``: the witness on the evaluation half (target minus model kernel means).
    ``tmap``: the witness over its standard error (Welch). ``pvalue``: per grid point, the
    max-T adjusted p-value ``(1 + #{b: max|T_b| >= |t|}) / (1 + B)``. ``significant``:
    ``pvalue <= alpha`` (family-wise error at most ``alpha`` over the grid); ``missing``: the
    significant points where the witness is positive (the target has mass the model lacks: a
    dropped mode), ``excess``: where it is negative (the model puts too much mass: a leak, or
    the modes it kept carrying a dropped mode's weight). ``threshold``: the
    ``1 - alpha`` quantile of the permutation maxima. ``bandwidth``: the RBF bandwidth chosen on
    the selection half; ``candidates`` and ``power_ratios``: the bandwidths tried and their
    studentised MMD² on that half.
    """

    grid_x: np.ndarray
    grid_y: np.ndarray
    witness: np.ndarray
    tmap: np.ndarray
    pvalue: np.ndarray
    significant: np.ndarray
    missing: np.ndarray
    excess: np.ndarray
    threshold: float
    bandwidth: float
    candidates: tuple[float, ...]
    power_ratios: tuple[float, ...]
    alpha: float
    num_permutations: int
    seed: int

    def to_dict(self) -> dict:
        """JSON-ready: scalars, the grid axes and the maps as nested lists."""
        out = {}
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            out[name] = v.tolist() if isinstance(v, np.ndarray) else v
        return out


def _rbf(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    return sqdist(a, b).mul_(-0.5 / bandwidth**2).exp_()


def _power_ratio(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Unbiased MMD² over its estimated standard deviation under the alternative (Sutherland et
    al., ICLR 2017; the variance estimate of Liu et al., ICML 2020, Eq. 5), for equal sizes."""
    n = x.shape[0]
    h = (_rbf(x, x, bandwidth) + _rbf(y, y, bandwidth) - _rbf(x, y, bandwidth)
         - _rbf(y, x, bandwidth))
    off = h - torch.diag(torch.diagonal(h))
    mmd2 = float(off.sum()) / (n * (n - 1))
    row = h.sum(1)
    var = 4.0 / n**3 * float((row**2).sum()) - 4.0 / n**4 * float(h.sum()) ** 2
    return mmd2 / math.sqrt(max(var, 0.0) + 1e-8)


def select_bandwidth(x, y, *, candidates=None, max_points: int = 1000, seed: int = 0):
    """The RBF bandwidth among ``candidates`` that maximises the studentised MMD² of ``x`` and
    ``y`` (an estimate of the test's power; Sutherland et al. 2017); returns ``(best,
    candidates, ratios)``. Default candidates: the median heuristic times ``2^(k/2)``,
    k = -14..2. Both sets are subsampled (seeded) to ``min(n, m, max_points)`` points."""
    xs = as_samples(x, "x", min_rows=2)
    ys = as_samples(y, "y", min_rows=2).to(xs.device, xs.dtype)
    gen = torch.Generator().manual_seed(seed)
    size = min(xs.shape[0], ys.shape[0], max_points)
    xs = xs[torch.randperm(xs.shape[0], generator=gen)[:size].to(xs.device)]
    ys = ys[torch.randperm(ys.shape[0], generator=gen)[:size].to(ys.device)]
    if candidates is None:
        base = median_bandwidth(xs, ys, seed=seed)
        candidates = [base * f for f in _BANDWIDTH_FACTORS]
    cands = tuple(check_positive(b, "candidates") for b in candidates)
    if not cands:
        raise ValueError("candidates must hold at least one bandwidth")
    ratios = tuple(_power_ratio(xs, ys, b) for b in cands)
    return cands[int(np.argmax(ratios))], cands, ratios


def map_grid(pool: torch.Tensor, size: int, padding: float):
    """A ``size`` x ``size`` grid over the bounding box of ``pool`` (2D points), widened by
    ``padding`` of its range on each side: the two axes, and the nodes ``(size², 2)`` in
    ``pcolormesh`` order."""
    low, high = pool.min(0).values, pool.max(0).values
    pad = padding * (high - low).clamp_min(1e-12)
    axes = [torch.linspace(float(low[k] - pad[k]), float(high[k] + pad[k]), size,
                           dtype=torch.float64) for k in range(2)]
    gx, gy = torch.meshgrid(axes[0], axes[1], indexing="xy")
    return axes, torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)


def _tvalues(s1, s2, tot1, tot2, n_x: int, n_y: int) -> torch.Tensor:
    """Welch t of the witness from per-label sums of k and k² (rows: label assignments)."""
    mean_x, mean_y = s1 / n_x, (tot1 - s1) / n_y
    var_x = (s2 / n_x - mean_x**2).clamp_min_(0.0) * (n_x / max(n_x - 1, 1))
    var_y = ((tot2 - s2) / n_y - mean_y**2).clamp_min_(0.0) * (n_y / max(n_y - 1, 1))
    return (mean_x - mean_y) / torch.sqrt(var_x / n_x + var_y / n_y + _VARIANCE_FLOOR)


def witness_map(x, y, seed: int = 0, *, grid_size: int = 64, num_permutations: int = 500,
                alpha: float = 0.05, bandwidth: float | None = None, padding: float = 0.1,
                permutation_batch: int = 50) -> WitnessMap:
    r"""MMD witness of target ``x`` against model ``y`` on a grid, with max-T significance.

    1. Split (seeded): each set is shuffled and halved. On the first halves the RBF bandwidth
       is chosen by maximising the studentised MMD² (:func:`select_bandwidth`, an estimate of the
       test's power: Sutherland et al. ICLR 2017; Liu et al. ICML 2020), not by the median
       heuristic, which oversmooths a mixture of narrow modes. The candidates are the median
       heuristic times ``2^(k/2)``, k = -14..2, that are at least one grid cell wide (a narrower
       kernel falls between the grid points). ``bandwidth`` skips this step.
    2. On the second halves (sizes :math:`n_2`, :math:`m_2`), at each grid point t:
       :math:`w(t) = \frac{1}{n_2}\sum_i k(x_i, t) - \frac{1}{m_2}\sum_j k(y_j, t)` and the
       Welch statistic :math:`T(t) = w(t) / \sqrt{s_x^2(t)/n_2 + s_y^2(t)/m_2}` (variances of
       the kernel values; a floor of 1e-12 keeps T near 0 where no point is near t).
    3. Max-T (Westfall and Young): the pooled second halves are relabelled
       ``num_permutations`` times; each relabelling's :math:`\max_t |T_b(t)|` forms the null
       distribution of the maximum. A grid point is significant when its adjusted p-value
       :math:`(1 + \#\{b: \max|T_b| \ge |T(t)|\}) / (1 + B)` is at most ``alpha``: the chance of
       any false significant point is at most ``alpha`` under P = Q.

    The grid spans the pooled data's bounding box, widened by ``padding`` of its range on each
    side. Cost: the kernel matrix between the pooled second halves and the grid,
    ``(n_2 + m_2) G`` values (G = ``grid_size``²), and two GEMMs of it with the
    ``B x (n_2 + m_2)`` label matrix, in batches of ``permutation_batch`` relabellings; the
    selection step builds four kernel matrices of up to 1,000² per candidate.

    Arguments:
        x: target samples ``(n, 2)``; y: model samples ``(m, 2)``; at least 4 each.
        seed: seeds the split, the subsampling for the selection and the permutations.
        grid_size: grid points per axis. num_permutations: B. alpha: family-wise level.
        bandwidth: a fixed RBF bandwidth (None: chosen on the first halves).
        padding: share of the data's range added on each side of the grid.
    """
    seed = check_int(seed, "seed", minimum=0)
    size = check_int(grid_size, "grid_size", minimum=2)
    perms = check_int(num_permutations, "num_permutations", minimum=1)
    batch = check_int(permutation_batch, "permutation_batch", minimum=1)
    level = check_probability(alpha, "alpha")
    pad = check_positive(padding, "padding", allow_zero=True)
    xs = as_samples(x, "x", min_rows=4)
    ys = as_samples(y, "y", min_rows=4)
    check_same_dim(xs, ys)
    if xs.shape[1] != 2:
        raise ValueError(f"witness_map draws a 2D map: x and y need 2 columns, got "
                         f"{xs.shape[1]}")
    xs = xs.to(torch.float64)
    ys = ys.to(xs.device, torch.float64)
    gen = torch.Generator().manual_seed(seed)
    px = torch.randperm(xs.shape[0], generator=gen).to(xs.device)
    py = torch.randperm(ys.shape[0], generator=gen).to(ys.device)
    hx, hy = xs.shape[0] // 2, ys.shape[0] // 2
    x1, x2 = xs[px[:hx]], xs[px[hx:]]
    y1, y2 = ys[py[:hy]], ys[py[hy:]]
    axes, grid = map_grid(torch.cat([xs, ys]).cpu(), size, pad)
    if bandwidth is None:
        # a kernel narrower than the grid's cells would fall between its points: the map can
        # only show structure at its own resolution
        spacing = max(float(a[1] - a[0]) for a in axes)
        base = median_bandwidth(x1, y1, seed=seed)
        cands = [base * f for f in _BANDWIDTH_FACTORS if base * f >= spacing] or [spacing]
        bw, cands, ratios = select_bandwidth(x1, y1, candidates=cands, seed=seed)
    else:
        bw = check_positive(bandwidth, "bandwidth")
        cands, ratios = (bw,), ()
    grid = grid.to(xs.device)
    pool = torch.cat([x2, y2])
    n_x, n_y = x2.shape[0], y2.shape[0]
    k = _rbf(pool, grid, bw)  # (n_x + n_y, G)
    k2 = k * k
    tot1, tot2 = k.sum(0), k2.sum(0)
    labels = torch.zeros(pool.shape[0], dtype=torch.float64, device=k.device)
    labels[:n_x] = 1.0
    t_obs = _tvalues(labels @ k, labels @ k2, tot1, tot2, n_x, n_y)
    maxima = []
    for start in range(0, perms, batch):
        b = min(batch, perms - start)
        keys = torch.rand(b, pool.shape[0], generator=gen)
        chosen = keys.argsort(dim=1)[:, :n_x].to(k.device)
        a = torch.zeros(b, pool.shape[0], dtype=torch.float64, device=k.device)
        a.scatter_(1, chosen, 1.0)
        maxima.append(_tvalues(a @ k, a @ k2, tot1, tot2, n_x, n_y).abs().amax(1))
    null_max = torch.cat(maxima).cpu().numpy()
    t_abs = t_obs.abs().cpu().numpy()
    pvals = (1.0 + (null_max[None, :] >= t_abs[:, None]).sum(1)) / (1.0 + perms)
    shape = (size, size)
    witness = ((labels @ k) / n_x - (tot1 - labels @ k) / n_y).cpu().numpy().reshape(shape)
    significant = (pvals <= level).reshape(shape)
    return WitnessMap(
        grid_x=axes[0].numpy(), grid_y=axes[1].numpy(), witness=witness,
        tmap=t_obs.cpu().numpy().reshape(shape), pvalue=pvals.reshape(shape),
        significant=significant, missing=significant & (witness > 0),
        excess=significant & (witness < 0),
        threshold=float(np.quantile(null_max, 1.0 - level)), bandwidth=float(bw),
        candidates=tuple(float(c) for c in cands), power_ratios=tuple(float(r) for r in ratios),
        alpha=level, num_permutations=perms, seed=seed)
