"""Is a model too narrow or too wide? Calibration by ranks, on one engine.

For each target point :math:`x_i` and L model samples :math:`y_{i1..iL}`, the rank of a score
of :math:`x_i` among the scores of the :math:`y_{ij}` is uniform on ``{0..L}`` when the model
matches the target (the samples and the point are exchangeable): simulation-based calibration
(Talts et al. 2018), expected coverage (Hermans et al., TMLR 2022) and TARP (Lemos et al., ICML
2023) are this one fact with different scores. :func:`calibration` turns each rank into a
*credibility level* in [0, 1] (randomised over ties, so exactly uniform under the null),
oriented so that a level near 1 means "x lies outside the model's bulk":

* ``"hpd"``: score = the model's log-density; level = the share of samples denser than x (the
  mass of the smallest highest-density region holding x).
* ``"pit"``: per coordinate, u = the share of samples below x; level = ``|2u - 1|`` (the
  smallest central interval holding x), for every coordinate.
* ``"tarp"``: score = distance to a random reference point; f = the share of samples closer to
  the reference than x (TARP's statistic); level = ``|2f - 1|``.

The expected-coverage curve is ``ecp(a) = P(level <= a)``, the diagonal when calibrated,
above it when the model is too wide (over-dispersed: targets sit in its bulk), below when too
narrow (under-dispersed). Definitions, tests and pitfalls: ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.stats import kstest, norm

from .._validation import (
    as_samples,
    as_tensor,
    check_choice,
    check_int,
    check_probability,
    check_same_dim,
)
from ._blocks import knn_sqdist, sqdist

__all__ = ["CalibrationResult", "CALIBRATION_METHODS", "DISPERSIONS", "calibration",
           "draw_sample_sets"]

CALIBRATION_METHODS = ("tarp", "hpd", "pit")
DISPERSIONS = ("over", "under", "calibrated", "miscalibrated")


@dataclass(frozen=True)
class CalibrationResult:
    """Outcome of :func:`calibration`.

    ``alpha``, ``coverage``: the expected-coverage curve ``coverage[k] = P(level <= alpha[k])``;
    ``coverage_low`` / ``coverage_high``: its 5 % / 95 % bootstrap band over target points (empty
    without bootstrap). ``ks_pvalue``: Kolmogorov-Smirnov test of uniform levels (for ``"pit"``
    the smallest per-coordinate p-value times d, Bonferroni). ``area``: the signed area
    ``integral (coverage - alpha) = 1/2 - mean(level)``, positive when over-dispersed;
    ``area_zscore``: ``area`` over its null standard error ``1 / sqrt(12 N)`` (for ``"pit"``
    the mean over coordinates, with the same, conservative, error). ``dispersion``:
    ``"over"`` / ``"under"`` when ``area_zscore`` is beyond the two-sided ``alpha_level``
    quantile; otherwise ``"miscalibrated"`` when ``ks_pvalue <= alpha_level`` (the ranks are not
    uniform, but not in a way the signed area reads: a shift, or a multimodal model under
    ``"tarp"`` / ``"pit"``), else ``"calibrated"``. ``max_deviation``: the largest
    ``|coverage - alpha|``.
    """

    method: str
    alpha: tuple[float, ...]
    coverage: tuple[float, ...]
    coverage_low: tuple[float, ...]
    coverage_high: tuple[float, ...]
    ks_pvalue: float
    area: float
    area_zscore: float
    dispersion: str
    max_deviation: float
    num_points: int
    num_samples: int
    seed: int

    def to_dict(self) -> dict:
        """Plain-Python dictionary (JSON-ready)."""
        return asdict(self)


def draw_sample_sets(y: torch.Tensor, n: int, num_samples: int, seed: int) -> torch.Tensor:
    """Indices ``(n, L)`` into a pool of ``M`` model samples: disjoint sets of L when
    ``M >= n L`` (the sets are then independent), else for each point L consecutive rows of
    one random permutation of the pool from a random offset (cyclically): each set is L
    distinct rows, a uniformly random subset, and sets overlap across points."""
    m = y.shape[0]
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(m, generator=gen)
    if m >= n * num_samples:
        return perm[: n * num_samples].reshape(n, num_samples)
    offset = torch.randint(0, m, (n, 1), generator=gen)
    return perm[(offset + torch.arange(num_samples)[None, :]) % m]


def _levels_from_counts(below: torch.Tensor, ties: torch.Tensor, num_samples: int,
                        gen: torch.Generator) -> np.ndarray:
    """Randomised rank levels ``(below + U (ties + 1)) / (L + 1)``: uniform on [0, 1] under the
    null whatever the ties (a point tied with t samples takes a uniform place among them)."""
    u = torch.rand(below.shape, generator=gen, dtype=torch.float64)
    rank = below.double().cpu() + torch.floor(u * (ties.double().cpu() + 1))
    v = torch.rand(below.shape, generator=gen, dtype=torch.float64)
    return ((rank + v) / (num_samples + 1)).numpy()


def _score_levels(sx: torch.Tensor, sy: torch.Tensor, num_samples: int, gen) -> np.ndarray:
    """Level = share of samples whose score exceeds the point's (ties randomised)."""
    above = (sy > sx[:, None]).sum(1)
    ties = (sy == sx[:, None]).sum(1)
    return _levels_from_counts(above, ties, num_samples, gen)


def _central(levels: np.ndarray) -> np.ndarray:
    return np.abs(2.0 * levels - 1.0)


def _tarp_levels(x, sets, box_low, box_high, gen) -> np.ndarray:
    n, d = x.shape
    u = torch.rand(n, d, generator=gen, dtype=torch.float64).to(x.device, x.dtype)
    ref = box_low + u * (box_high - box_low)
    dx = (x - ref).square().sum(-1)
    dy = (sets - ref[:, None, :]).square().sum(-1)
    # TARP's f: the share of samples closer to the reference than x (smaller distance)
    return _score_levels(-dx, -dy, sets.shape[1], gen)


def calibration(x, y, method: str = "tarp", seed: int = 0, *, log_prob: Callable | None = None,
                num_samples: int | None = None, num_levels: int = 101, num_bootstrap: int = 200,
                alpha_level: float = 0.01) -> CalibrationResult:
    r"""Expected coverage of a model's samples for target points: calibration by ranks.

    Methods (see the module docstring for the levels): ``"tarp"`` (Lemos, Coogan, Hezaveh and
    Perreault-Levasseur, ICML 2023: needs samples only; one reference per point drawn uniformly
    in the bounding box of the model's samples, which is independent of x, so the ranks stay
    exactly uniform under the null; the ``tarp`` package draws them in the unit cube whatever
    the data), ``"hpd"`` (Hermans et al., TMLR 2022; needs ``log_prob``, the model's
    log-density: exact for flows, the probability-flow ODE for diffusion, IWAE for a VAE, a KDE
    for a GAN), ``"pit"`` (probability integral transform per coordinate, Talts et al. 2018).

    Shapes. ``y`` is either ``(N, L, d)``, a set of L model samples for each of the N target
    points (a conditional model's posterior draws), or ``(M, d)``, a pool of samples of an
    unconditional model from which each point gets L = ``num_samples`` of its own
    (:func:`draw_sample_sets`: disjoint sets when ``M >= N L``, so every rank is independent;
    otherwise overlapping sets, which correlate the ranks and make ``ks_pvalue`` approximate).

    Uniformity: ``ks_pvalue`` is a KS test of the levels against U(0, 1) (sbi's ``check_tarp``
    instead compares the coverage curve with its grid of levels, which is not a test of
    uniform ranks). Bootstrap: ``num_bootstrap`` resamplings of the target points' levels (the
    inputs are never modified; the ``tarp`` package's bootstrap shuffles its inputs in place)
    give a 90 % band of the curve.

    Dispersion: the signed area between the curve and the diagonal is ``1/2 - mean(level)``.
    Its null standard error is ``1 / sqrt(12 N)`` (exact for independent ranks); beyond the
    two-sided ``alpha_level`` quantile the model is called over- (area > 0) or under-dispersed;
    a model whose levels fail the KS test at ``alpha_level`` without a significant area is
    ``"miscalibrated"``, and only one that passes both is ``"calibrated"``.
    For ``"tarp"`` and ``"pit"`` the levels are central (``|2f - 1|``), so that a too-narrow
    model (ranks piled at both ends) falls below the diagonal, as sbi's area over levels
    1/2..1 does. With several separated modes only ``"hpd"`` reads the width of each mode: a
    distance or coordinate rank of a point in one mode moves only within that mode's band of
    ranks, and the central level then averages out (``docs/metrics.md``, measured).

    Cost: ``O(N L d)`` time and memory (``O(N L)`` scores), plus ``log_prob`` on the N points and
    the samples.

    Arguments:
        x: target points ``(N, d)``. y: model samples ``(N, L, d)`` or a pool ``(M, d)``.
        method: ``"tarp"``, ``"hpd"`` or ``"pit"``. seed: seeds sample sets, references, tie
            randomisation and the bootstrap.
        log_prob: for ``"hpd"``: a callable ``(n, d) -> (n,)`` log-densities of the model, or
            ``"kde"`` for a model without one (a GAN): a Gaussian KDE fitted to up to 2,000
            rows of the pool that the sample sets then do not use (:class:`GaussianKDE`).
        num_samples: L for a pool (default ``min(M // N, 1000)``, at least 1).
        num_levels: points of the coverage curve on [0, 1]. num_bootstrap: 0 for no band.
        alpha_level: level of the dispersion call.
    """
    meth = check_choice(method, "method", CALIBRATION_METHODS)
    seed = check_int(seed, "seed", minimum=0)
    grid_n = check_int(num_levels, "num_levels", minimum=2)
    boots = check_int(num_bootstrap, "num_bootstrap", minimum=0)
    level = check_probability(alpha_level, "alpha_level")
    xs = as_samples(x, "x", min_rows=2)
    ys = as_tensor(y, "y", ndim=(2, 3))
    if ys.shape[-1] != xs.shape[1]:
        raise ValueError(f"x and y must have the same number of features, got {xs.shape[1]} "
                         f"and {ys.shape[-1]}")
    dtype = torch.promote_types(xs.dtype, ys.dtype)
    xs, ys = xs.to(dtype), ys.to(xs.device, dtype)
    n, d = xs.shape
    if ys.ndim == 3:
        if ys.shape[0] != n:
            raise ValueError(f"y of shape (N, L, d) needs N = {n} sample sets (one per row of x)"
                             f", got {ys.shape[0]}")
        if num_samples is not None:
            raise ValueError("num_samples applies to a pool y of shape (M, d); y already holds "
                             f"{ys.shape[1]} samples per point")
        sets = ys
        pool, index = None, None
    else:
        check_same_dim(xs, ys)
        if meth == "hpd" and isinstance(log_prob, str):
            check_choice(log_prob, "log_prob", ("kde",))
            # the KDE is fitted on rows the sample sets never use: its score is then a fixed
            # function independent of x and of the sets, so the ranks stay exactly uniform
            head = min(KDE_MAX_POINTS, ys.shape[0] // 2)
            perm = torch.randperm(ys.shape[0], generator=torch.Generator().manual_seed(seed + 2))
            log_prob = GaussianKDE.fit(ys[perm[:head].to(ys.device)], seed=seed)
            ys = ys[perm[head:].to(ys.device)]
        default = max(1, min(ys.shape[0] // n, 1000))
        big_l = default if num_samples is None else check_int(
            num_samples, "num_samples", minimum=1, maximum=ys.shape[0])
        pool = ys
        index = draw_sample_sets(ys, n, big_l, seed).to(ys.device)
        sets = ys[index]
    big_l = sets.shape[1]
    gen = torch.Generator().manual_seed(seed + 1)

    if meth == "hpd":
        if isinstance(log_prob, str):
            raise ValueError("log_prob='kde' needs a pool y of shape (M, d), not sample sets")
        if not callable(log_prob):
            raise TypeError("method='hpd' needs log_prob, a callable (n, d) -> (n,) giving the "
                            "model's log-density, or 'kde' (a density fitted to the samples)")
        sx = _log_density(log_prob, xs, n, "x")
        if pool is not None:  # the pool's densities once, then gathered
            sy = _log_density(log_prob, pool, pool.shape[0], "y")[index.cpu()]
        else:
            sy = _log_density(log_prob, sets.reshape(-1, d), n * big_l, "y").reshape(n, big_l)
        levels = _score_levels(sx, sy, big_l, gen)[:, None]
    elif meth == "pit":
        below = (sets < xs[:, None, :]).sum(1)
        ties = (sets == xs[:, None, :]).sum(1)
        levels = _central(_levels_from_counts(below, ties, big_l, gen))
    else:
        flat = sets.reshape(-1, d)
        low, high = flat.min(0).values, flat.max(0).values
        levels = _central(_tarp_levels(xs, sets, low, high, gen))[:, None]
    return _summarise(meth, levels, grid_n, boots, level, big_l, seed)


#: Pool rows the ``log_prob="kde"`` score is fitted on (at most half of the pool).
KDE_MAX_POINTS = 2000


@dataclass(frozen=True)
class GaussianKDE:
    """An isotropic Gaussian kernel density estimate: ``log q(z) = logsumexp_j(-|z - c_j|^2 /
    (2 h^2)) - log n - (d/2) log(2 pi h^2)``, evaluated blockwise."""

    centres: torch.Tensor
    bandwidth: float

    @classmethod
    def fit(cls, points: torch.Tensor, seed: int = 0) -> GaussianKDE:
        """A KDE of ``points`` whose bandwidth maximises the likelihood of a held-out half
        among ``s * 2^(k/2)``, k = -2..10, s the median nearest-neighbour distance of the
        fitting half (likelihood cross-validation; the normal reference rule oversmooths
        separated narrow modes)."""
        pts = points.to(torch.float64)
        perm = torch.randperm(pts.shape[0], generator=torch.Generator().manual_seed(seed))
        half = pts.shape[0] // 2
        fit, held = pts[perm[:half].to(pts.device)], pts[perm[half:].to(pts.device)]
        nn = knn_sqdist(fit, fit, 1, exclude_self=True).sqrt()
        scale = float(nn[nn > 0].median()) if bool((nn > 0).any()) else 1.0
        best = max((scale * 2 ** (k / 2) for k in range(-2, 11)),
                   key=lambda h: float(cls(fit, h)(held).mean()))
        return cls(pts, best)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        z = torch.as_tensor(z).to(self.centres.device, torch.float64)
        n, d = self.centres.shape
        const = math.log(n) + 0.5 * d * math.log(2 * math.pi * self.bandwidth**2)
        out = [torch.logsumexp(sqdist(block, self.centres) * (-0.5 / self.bandwidth**2), 1)
               for block in z.split(4096)]
        return torch.cat(out) - const


def _log_density(log_prob: Callable, points: torch.Tensor, n: int, name: str) -> torch.Tensor:
    with torch.no_grad():
        out = torch.as_tensor(log_prob(points)).detach().to("cpu", torch.float64).reshape(-1)
    if out.shape[0] != n:
        raise ValueError(f"log_prob returned {out.shape[0]} values for {n} points of {name}")
    if bool(torch.isnan(out).any()):
        raise ValueError(f"log_prob returned NaN for some points of {name}")
    return out


def _summarise(method: str, levels: np.ndarray, grid_n: int, boots: int, level: float,
               big_l: int, seed: int) -> CalibrationResult:
    """Curve, KS p-value, signed area and dispersion call from levels ``(N, c)`` (c columns:
    coordinates for PIT, else 1)."""
    n, cols = levels.shape
    alpha = np.linspace(0.0, 1.0, grid_n)

    def curve(lv: np.ndarray) -> np.ndarray:
        return (lv.reshape(-1)[:, None] <= alpha[None, :]).mean(0)

    cov = curve(levels)
    low = high = np.array([])
    if boots:
        rng = np.random.default_rng(seed)
        draws = np.stack([curve(levels[rng.integers(0, n, n)]) for _ in range(boots)])
        low, high = np.quantile(draws, 0.05, axis=0), np.quantile(draws, 0.95, axis=0)
    ks = min(1.0, cols * min(float(kstest(levels[:, j], "uniform").pvalue) for j in range(cols)))
    area = float(0.5 - levels.mean())
    # the coordinates' levels of one point are dependent: the z-score of their mean is bounded
    # by the worst case (fully dependent), which is the single-column standard error
    z = area / (1.0 / math.sqrt(12.0 * n))
    crit = float(norm.isf(level / 2))
    dispersion = ("over" if z > crit else "under" if z < -crit
                  else "miscalibrated" if ks <= level else "calibrated")
    return CalibrationResult(
        method=method, alpha=tuple(alpha.tolist()), coverage=tuple(cov.tolist()),
        coverage_low=tuple(np.asarray(low).tolist()),
        coverage_high=tuple(np.asarray(high).tolist()),
        ks_pvalue=ks, area=area, area_zscore=float(z), dispersion=dispersion,
        max_deviation=float(np.abs(cov - alpha).max()), num_points=n, num_samples=big_l,
        seed=seed)
