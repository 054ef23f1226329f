"""Is a model copying its training set? Three tests, each against a held-out baseline.

* :func:`data_copying`: the C_T test of Meehan, Chaudhuri and Dasgupta, "A Non-Parametric Test
  to Detect Data-Copying in Generative Models", AISTATS 2020.
* :func:`authenticity`: the authenticity of Alaa, van Breugel, Saveliev and van der Schaar,
  "How Faithful is your Synthetic Data?", ICML 2022, with the indexing of ``marcojira/fld``
  (``AuthPct.py``), beside the same statistic on held-out points.
* :func:`nn_distance_ratio`: the ratio of the distances to the nearest and second-nearest
  training points (the memorisation criterion of diffusion-model studies, threshold 1/3), beside
  the held-out baseline, and a one-sided Mann-Whitney test of the nearest-training-point
  distances of generated against held-out points.

All three take the training set ``train`` the model saw, ``held_out`` points of the same
distribution the model never saw, and the model's ``generated`` samples. Under the null
hypothesis "the model does not copy" the generated points relate to ``train`` as held-out
points do; each test compares the two conditionally on ``train`` (so its p-value is valid for
any fixed training set). Definitions, sample sizes and pitfalls: ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.stats import fisher_exact, mannwhitneyu, norm

from .._validation import as_samples, check_choice, check_int, check_positive, check_same_dim
from ._blocks import knn_sqdists

__all__ = ["CopyingResult", "AuthenticityResult", "DistanceRatioResult", "data_copying",
           "authenticity", "nn_distance_ratio"]

ALTERNATIVES = ("less", "greater", "two-sided")


def _check_sets(train, held_out, generated, min_train: int = 1):
    t = as_samples(train, "train", min_rows=min_train)
    h = as_samples(held_out, "held_out", min_rows=1)
    g = as_samples(generated, "generated", min_rows=1)
    check_same_dim(t, h, ("train", "held_out"))
    check_same_dim(t, g, ("train", "generated"))
    dtype = torch.promote_types(torch.promote_types(t.dtype, h.dtype), g.dtype)
    dtype = torch.promote_types(dtype, torch.float64)  # distances of near-copies: float64
    return (t.to(dtype), h.to(t.device, dtype), g.to(t.device, dtype))


def _nearest(queries: torch.Tensor, points: torch.Tensor, k: int = 1, **kw):
    """Euclidean distances (float64 numpy, ``(n_q, k)``) to the ``k`` nearest ``points``."""
    out = knn_sqdists(queries, points, k, **kw)
    if isinstance(out, tuple):
        return out[0].sqrt().cpu().numpy(), out[1].cpu().numpy()
    return out.sqrt().cpu().numpy()


def _pvalue(z: float, alternative: str) -> float:
    if alternative == "less":
        return float(norm.cdf(z))
    if alternative == "greater":
        return float(norm.sf(z))
    return float(2 * norm.sf(abs(z)))


def _mannwhitney_z(a: np.ndarray, b: np.ndarray) -> float:
    """z-score of the Mann-Whitney U of ``a`` against ``b`` (normal approximation with the
    continuity correction towards "a is smaller" and the tie-corrected variance); negative
    when ``a`` tends to be smaller."""
    n1, n2 = len(a), len(b)
    u = float(mannwhitneyu(a, b, alternative="less", method="asymptotic").statistic)
    pooled = np.concatenate([a, b])
    _, counts = np.unique(pooled, return_counts=True)
    n = n1 + n2
    tie = float((counts**3 - counts).sum()) / (n * (n - 1))
    var = n1 * n2 / 12.0 * (n + 1 - tie)
    if var <= 0:  # every distance equal: no evidence either way
        return 0.0
    return (u - n1 * n2 / 2.0 + 0.5) / math.sqrt(var)


@dataclass(frozen=True)
class CopyingResult:
    """Outcome of :func:`data_copying` (the C_T test).

    ``statistic``: C_T, the held-out-mass-weighted mean of the per-cell Mann-Whitney z-scores
    over the cells used; below 0 the generated points lie closer to the training set than held-out
    points do (copying), above 0 farther (underfitting). It is not a z-score: under the null its
    variance is ``sum w^2 / (sum w)^2``. ``zscore``: the Stouffer combination
    ``sum w Z / sqrt(sum w^2)``, standard normal under the null. ``pvalue``: from ``zscore`` for
    ``alternative`` ("less": copying). ``cells_used``: cells holding more than ``tau m``
    generated points (and at least one held-out point); ``cell_z``, ``cell_weight``: per cell
    (cell order of the k-means labels; ``nan`` z for an unused cell); ``generated_fraction``: the
    share of generated points in used cells.
    """

    statistic: float
    zscore: float
    pvalue: float
    alternative: str
    num_cells: int
    cells_used: int
    generated_fraction: float
    tau: float
    cell_z: tuple[float, ...]
    cell_weight: tuple[float, ...]
    cell_generated: tuple[int, ...]
    cell_held_out: tuple[int, ...]
    seed: int

    def reject(self, alpha: float = 0.05) -> bool:
        """True when the test rejects "no copying" at level ``alpha`` (``pvalue <= alpha``)."""
        return self.pvalue <= alpha

    def to_dict(self) -> dict:
        """Plain-Python dictionary (JSON-ready)."""
        return asdict(self)


def kmeans_cells(train: torch.Tensor, num_cells: int, seed: int, *others: torch.Tensor):
    """k-means cells fitted on ``train`` (scikit-learn, seeded): the cell of every row of
    ``train`` and of each further set (nearest centroid)."""
    from sklearn.cluster import KMeans

    t = train.detach().cpu().numpy()
    km = KMeans(n_clusters=num_cells, n_init=3, random_state=seed).fit(t)
    return [km.labels_] + [km.predict(o.detach().cpu().numpy().astype(t.dtype)) for o in others]


def data_copying(train, held_out, generated, seed: int = 0, *, num_cells: int = 10,
                 tau: float | None = None, alternative: str = "less") -> CopyingResult:
    r"""The C_T data-copying test of Meehan, Chaudhuri and Dasgupta (AISTATS 2020).

    The training set is partitioned into ``num_cells`` k-means cells (scikit-learn ``KMeans``,
    seeded); held-out and generated points go to the cell of their nearest centroid. In cell
    :math:`\pi`, :math:`L(x)` is the distance from x to its nearest training point *of that cell*,
    and the Mann-Whitney U of the generated points' L against the held-out points' L gives a
    z-score :math:`Z_\pi` (normal approximation, continuity-corrected, tie-corrected variance).
    With :math:`w_\pi` the held-out fraction in the cell,

    .. math:: C_T = \sum_{\pi \in \Pi_\tau} w_\pi Z_\pi \Big/ \sum_{\pi \in \Pi_\tau} w_\pi

    over the cells :math:`\Pi_\tau` holding more than :math:`\tau m` of the m generated points
    (``tau = 20 / m`` by default: more than 20 points; the paper's choice) and at least one
    held-out point. Cells are counted with ``bincount`` over all k labels, so a cell with no
    generated point (or no held-out point) is simply excluded; the reference code
    (``casey-meehan/data-copying``, ``C_T``) indexes its ``np.unique`` counts by label, which
    misaligns counts and weights (or fails) as soon as a cell holds no generated point, and
    raises when a cell holds no held-out point.

    C_T is not a z-score (under the null its variance is :math:`\sum w^2 / (\sum w)^2 < 1`);
    the p-value comes from the Stouffer combination :math:`\sum w Z / \sqrt{\sum w^2}`, standard
    normal under the null given the training set (the cells' U statistics are independent given
    the cells). ``alternative="less"`` (default) tests for copying (generated points closer to
    the training set), ``"greater"`` for underfitting, ``"two-sided"`` for either.

    Sample sizes: each used cell needs more than 20 generated and some held-out points, so about
    ``num_cells * 50`` of each; the paper uses thousands. Cost: k-means on the training set plus
    per-cell brute-force nearest neighbours, ``O((n + m) |T| d / num_cells)``.

    Arguments:
        train: the model's training set ``(|T|, d)``, at least ``num_cells`` rows.
        held_out: target points the model never saw ``(n, d)``.
        generated: model samples ``(m, d)``.
        seed: seeds k-means.
        num_cells: number of k-means cells (the paper varies it; 10 suits a few thousand points).
        tau: minimum generated fraction for a cell to count (None: ``20 / m``).
        alternative: ``"less"``, ``"greater"`` or ``"two-sided"``.
    """
    seed = check_int(seed, "seed", minimum=0)
    k = check_int(num_cells, "num_cells", minimum=1)
    check_choice(alternative, "alternative", ALTERNATIVES)
    t, h, g = _check_sets(train, held_out, generated, min_train=k)
    m, n = g.shape[0], h.shape[0]
    tau = 20.0 / m if tau is None else check_positive(tau, "tau", allow_zero=True)
    t_cells, h_cells, g_cells = kmeans_cells(t, k, seed, h, g)
    z = np.full(k, np.nan)
    weight = np.bincount(h_cells, minlength=k) / n
    g_counts = np.bincount(g_cells, minlength=k)
    h_counts = np.bincount(h_cells, minlength=k)
    used = (g_counts / m > tau) & (h_counts > 0)
    for c in np.flatnonzero(used):
        points = t[torch.as_tensor(t_cells == c, device=t.device)]
        lg = _nearest(g[torch.as_tensor(g_cells == c, device=g.device)], points)[:, 0]
        lh = _nearest(h[torch.as_tensor(h_cells == c, device=h.device)], points)[:, 0]
        z[c] = _mannwhitney_z(lg, lh)
    if used.any():
        w = weight[used]
        statistic = float(w @ z[used] / w.sum())
        zscore = float(w @ z[used] / math.sqrt(float(w @ w)))
        pvalue = _pvalue(zscore, alternative)
    else:  # no cell has enough generated points: the test says nothing
        statistic = zscore = pvalue = math.nan
    return CopyingResult(
        statistic=statistic, zscore=zscore, pvalue=pvalue, alternative=alternative,
        num_cells=k, cells_used=int(used.sum()),
        generated_fraction=float(g_counts[used].sum() / m), tau=float(tau),
        cell_z=tuple(float(v) for v in z), cell_weight=tuple(float(v) for v in weight),
        cell_generated=tuple(int(v) for v in g_counts),
        cell_held_out=tuple(int(v) for v in h_counts),
        seed=seed)


@dataclass(frozen=True)
class AuthenticityResult:
    """Outcome of :func:`authenticity`.

    ``generated``: the fraction of generated points that are authentic; ``held_out``: the same
    statistic for held-out points (what a model that does not copy scores, about 0.5 on smooth
    data, not 1). ``pvalue``: one-sided Fisher exact test that generated points are authentic
    less often than held-out points (copying).
    """

    generated: float
    held_out: float
    pvalue: float
    num_generated: int
    num_held_out: int

    def to_dict(self) -> dict:
        """Plain-Python dictionary (JSON-ready)."""
        return asdict(self)


def _authentic(train: torch.Tensor, *query_sets: torch.Tensor) -> list[np.ndarray]:
    """A query is authentic when it lies farther from its nearest training point j than j lies
    from its own nearest other training point (Alaa et al. 2022, indices of j, not of the
    query). Only the training points that are some query's nearest need their own neighbour
    distance, so the cost is ``O(q |T|)`` for q queries, not ``O(|T|^2)``."""
    found = [_nearest(q, train, 1, return_index=True) for q in query_sets]
    used = np.unique(np.concatenate([index[:, 0] for _, index in found]))
    rows = torch.as_tensor(used, device=train.device)
    # each used training point against the whole set: the nearest is itself (distance 0, or a
    # duplicate at 0), the second its nearest other point
    own = _nearest(train[rows], train, 2)[:, 1]
    train_nn = np.zeros(train.shape[0])
    train_nn[used] = own
    return [train_nn[index[:, 0]] < dist[:, 0] for dist, index in found]


def authenticity(train, held_out, generated) -> AuthenticityResult:
    r"""Authenticity (Alaa et al., "How Faithful is your Synthetic Data?", ICML 2022).

    For a point y let :math:`j(y)` be its nearest training point and :math:`r_j` the distance
    from training point j to its nearest other training point; y is *authentic* when
    :math:`r_{j(y)} < \|y - x_{j(y)}\|`. Authenticity is the authentic fraction. The original
    code and synthcity's compute ``real_to_real[real_to_synth_args] < real_to_synth`` with
    the arguments taken over the wrong axis, mixing real and synthetic indices (the authors'
    issue 4); here, as in ``marcojira/fld`` ``AuthPct.py``, :math:`r` is indexed by the
    nearest *training* point of each query.

    A model that does not copy does not score 1: held-out points score about 0.5 (a fresh point
    is about as likely as a training point's nearest neighbour to be the closer one), so the
    same statistic on ``held_out`` is always reported beside it. The p-value is the one-sided
    Fisher exact test of fewer authentic generated than held-out points: given the training set
    the indicators are independent draws, identically distributed for the two sets under the null.

    Cost: brute-force nearest neighbours, ``O((n + m) |T| d)`` (the training points' own
    neighbour distances only for those nearest to some query); duplicates in ``train``
    give ``r = 0`` and make every point near them authentic. Needs 2 training points.
    """
    t, h, g = _check_sets(train, held_out, generated, min_train=2)
    auth_g, auth_h = _authentic(t, g, h)
    table = [[int(auth_g.sum()), int((~auth_g).sum())], [int(auth_h.sum()), int((~auth_h).sum())]]
    pvalue = float(fisher_exact(table, alternative="less").pvalue)
    return AuthenticityResult(generated=float(auth_g.mean()), held_out=float(auth_h.mean()),
                              pvalue=pvalue, num_generated=len(auth_g), num_held_out=len(auth_h))


@dataclass(frozen=True)
class DistanceRatioResult:
    """Outcome of :func:`nn_distance_ratio`.

    ``generated_below`` / ``held_out_below``: fractions with d1/d2 below ``threshold`` (for
    locally uniform data in d dimensions ``threshold ** d`` by chance: 11 % at 1/3 in 2D).
    ``ratio_pvalue``: one-sided Mann-Whitney test that generated ratios are smaller than held-out
    ratios. ``pvalue``: one-sided Mann-Whitney test that the generated points' distances to their
    nearest training point are smaller than the held-out points'. Medians of both for reference.
    """

    generated_below: float
    held_out_below: float
    threshold: float
    pvalue: float
    ratio_pvalue: float
    generated_median_distance: float
    held_out_median_distance: float
    generated_median_ratio: float
    held_out_median_ratio: float

    def to_dict(self) -> dict:
        """Plain-Python dictionary (JSON-ready)."""
        return asdict(self)


def distance_ratios(train, queries) -> tuple[np.ndarray, np.ndarray]:
    """``(d1, d1 / d2)`` for each query: distance to the nearest training point and its ratio to
    the distance to the second nearest (0/0 -> 0 for a query on a duplicated training point)."""
    t = as_samples(train, "train", min_rows=2)
    q = as_samples(queries, "queries").to(t.device, t.dtype)
    check_same_dim(t, q, ("train", "queries"))
    d = _nearest(q, t, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(d[:, 1] > 0, d[:, 0] / np.where(d[:, 1] > 0, d[:, 1], 1.0), 0.0)
    return d[:, 0], ratio


def nn_distance_ratio(train, held_out, generated, *, threshold: float = 1.0 / 3.0
                      ) -> DistanceRatioResult:
    r"""Nearest-neighbour distance ratios to the training set, against the held-out baseline.

    For each point, :math:`d_1/d_2` is the ratio of its distances to the nearest and the second
    nearest training point; a generated point with :math:`d_1/d_2 < 1/3` is called a copy in
    diffusion-memorisation studies (e.g. Somepalli et al. CVPR 2023, Carlini et al. USENIX
    Security 2023). The fraction below ``threshold`` means nothing alone: for a homogeneous
    Poisson process in d dimensions :math:`P(d_1/d_2 < r) = r^d` (11 % at 1/3 in 2D), so the
    held-out fraction is reported beside the generated one. ``pvalue``: one-sided Mann-Whitney
    test of :math:`d(\text{generated}, T)` against :math:`d(\text{held-out}, T)` (copies lie
    closer to the training set); ``ratio_pvalue``: the same test on the ratios.

    Cost: brute-force 2-nearest neighbours, ``O((n + m) |T| d)``. Needs 2 training points.
    """
    thr = check_positive(threshold, "threshold")
    t, h, g = _check_sets(train, held_out, generated, min_train=2)
    dg, rg = distance_ratios(t, g)
    dh, rh = distance_ratios(t, h)
    return DistanceRatioResult(
        generated_below=float((rg < thr).mean()), held_out_below=float((rh < thr).mean()),
        threshold=thr,
        pvalue=float(mannwhitneyu(dg, dh, alternative="less").pvalue),
        ratio_pvalue=float(mannwhitneyu(rg, rh, alternative="less").pvalue),
        generated_median_distance=float(np.median(dg)),
        held_out_median_distance=float(np.median(dh)),
        generated_median_ratio=float(np.median(rg)), held_out_median_ratio=float(np.median(rh)))
