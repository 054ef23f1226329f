"""Fidelity and diversity of generated samples in feature space: PRDC, KID, Frechet distance.

These take feature vectors (for images, embeddings from a fixed network; for toy data the points
themselves) and never look at a model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .._runtime import make_generator
from .._validation import as_samples, check_int, check_same_dim
from ._blocks import default_block_size, knn_sqdist_positive, sqdist
from .kernels import make_kernel
from .mmd import _estimate, _kernel_sums

__all__ = ["PRDC", "KID", "prdc", "kid", "frechet_distance"]


def _pair(real, fake, *, min_rows: int = 1, names=("real", "fake")):
    r = as_samples(real, names[0], min_rows=min_rows)
    f = as_samples(fake, names[1], min_rows=min_rows)
    check_same_dim(r, f, names)
    dtype = torch.promote_types(r.dtype, f.dtype)
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    return r.to(dtype), f.to(device=r.device, dtype=dtype)


@dataclass(frozen=True)
class PRDC:
    """Precision, recall, density and coverage (Naeem et al. 2020) with the ``k`` used."""

    precision: float
    recall: float
    density: float
    coverage: float
    k: int

    def to_dict(self) -> dict:
        """Plain-Python dictionary (JSON-ready)."""
        return asdict(self)


def prdc(real, fake, k: int = 5, *, block_size: int | None = None) -> PRDC:
    r"""Precision, recall, density and coverage on k-NN balls (Naeem et al., ICML 2020).

    With :math:`B(r_i, R_i)` the ball around real point :math:`r_i` whose radius :math:`R_i` is
    the distance to its k-th nearest *other* real point (and :math:`F_j` likewise for fakes):

    * precision = fraction of fakes inside some real ball (Kynkaanniemi et al. 2019);
    * recall = fraction of reals inside some fake ball;
    * density = :math:`\frac{1}{kM}\sum_j \#\{i : \|f_j - r_i\| < R_i\}` (expected value 1 when
      fake and real come from one distribution; can exceed 1);
    * coverage = fraction of real balls that contain at least one fake.

    Balls are closed (``<=``) for precision, recall and coverage, so identical sets give 1 even
    with duplicated points (peers that used ``<`` scored duplicates as uncovered). Density keeps
    Naeem et al.'s strict ``<``: the ball then holds the centre and ``k - 1`` neighbours, so
    identical sets give density exactly 1 (a closed ball would give ``(k+1)/k``).

    Duplicates: the radius is the k-th nearest *strictly positive* distance, the rule of
    :func:`densitylab.metrics.kl_knn` (points at one position count as one position). Without
    it, a reference set resampled from a finite data set (each image drawn many times) has
    radius 0 almost everywhere and precision collapses towards 0 for any generator. For
    continuous samples nothing changes.

    Estimator: plug-in counts; biased by the finite-sample radii (see the paper). Cost
    ``O((N + M)^2 d)`` time, ``O(block (N + M))`` memory (blockwise distances, never N x M).

    Arguments:
        real: ``(N, d)``, ``N > k``. fake: ``(M, d)``, ``M > k`` (recall needs fake radii).
        k: neighbours for the radii (5 in the paper).
    """
    k = check_int(k, "k", minimum=1)
    r, f = _pair(real, fake, min_rows=k + 1)
    r = r.to(torch.float64)
    f = f.to(torch.float64)
    n, m = r.shape[0], f.shape[0]
    radius_r = knn_sqdist_positive(r, r, k, "real", block_size=block_size)
    radius_f = knn_sqdist_positive(f, f, k, "fake", block_size=block_size)
    bs = block_size or max(1, default_block_size(r.dtype, r.device) ** 2 // max(n, 1))
    fake_in_real = torch.zeros(m, dtype=torch.bool, device=r.device)
    density_count = torch.zeros((), dtype=torch.float64, device=r.device)
    real_covered = torch.zeros(n, dtype=torch.bool, device=r.device)
    real_in_fake = torch.zeros(n, dtype=torch.bool, device=r.device)
    for start in range(0, m, bs):
        d = sqdist(f[start : start + bs], r)  # (b, N) squared distances fake -> real
        inside = d <= radius_r[None, :]
        fake_in_real[start : start + bs] = inside.any(1)
        density_count += (d < radius_r[None, :]).sum(dtype=torch.float64)
        real_covered |= inside.any(0)
        real_in_fake |= (d <= radius_f[start : start + bs, None]).any(0)
    return PRDC(
        precision=float(fake_in_real.double().mean()),
        recall=float(real_in_fake.double().mean()),
        density=float(density_count / (k * m)),
        coverage=float(real_covered.double().mean()),
        k=k,
    )


@dataclass(frozen=True)
class KID:
    """Kernel inception distance: mean and std of the unbiased MMD^2 over random subsets."""

    mean: float
    std: float
    num_subsets: int
    subset_size: int

    def to_dict(self) -> dict:
        """Plain-Python dictionary (JSON-ready)."""
        return asdict(self)


def kid(
    real_features,
    fake_features,
    num_subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int | None = 0,
) -> KID:
    r"""Kernel inception distance (Binkowski et al., "Demystifying MMD GANs", ICLR 2018).

    The unbiased MMD^2 estimate (U-statistic, Gretton et al. 2012) with the polynomial kernel
    :math:`k(x, y) = (\gamma\, x^\top y + c_0)^{p}` (default ``gamma = 1/d``, ``c0 = 1``,
    ``p = 3``), averaged over ``num_subsets`` pairs of random subsets of ``subset_size`` rows
    drawn without replacement (seeded CPU generator); ``std`` is the population standard
    deviation (``ddof=0``) over subsets, as in the authors' code. Unbiased for each subset;
    cost ``O(num_subsets * subset_size^2 * d)``.

    Raises:
        ValueError: ``subset_size`` larger than either set, or fewer than 2 rows.
    """
    r, f = _pair(real_features, fake_features, min_rows=2, names=("real_features", "fake_features"))
    s = check_int(num_subsets, "num_subsets", minimum=1)
    size = check_int(subset_size, "subset_size", minimum=2)
    if size > min(r.shape[0], f.shape[0]):
        raise ValueError(
            f"subset_size={size} exceeds the number of samples "
            f"(real: {r.shape[0]}, fake: {f.shape[0]}); lower subset_size"
        )
    kern = make_kernel("polynomial", degree=degree, gamma=gamma, coef0=coef0)
    if kern.gamma is None:
        kern = make_kernel("polynomial", degree=degree, gamma=1.0 / r.shape[1], coef0=coef0)
    gen = make_generator(seed, "cpu")
    block = default_block_size(r.dtype, r.device)
    values = []
    for _ in range(s):
        ir = torch.randperm(r.shape[0], generator=gen)[:size].to(r.device)
        jf = torch.randperm(f.shape[0], generator=gen)[:size].to(r.device)
        values.append(_estimate(_kernel_sums(kern, r[ir], f[jf], block), "unbiased"))
    v = torch.stack(values)
    return KID(float(v.mean()), float(v.std(unbiased=False)), s, size)


def frechet_distance(real_features, fake_features) -> float:
    r"""Frechet distance between Gaussian fits of two feature sets (the FID formula).

    .. math:: \|\mu_r - \mu_f\|^2 + \mathrm{tr}\,\Sigma_r + \mathrm{tr}\,\Sigma_f
              - 2\,\mathrm{tr}\big((\Sigma_r \Sigma_f)^{1/2}\big)

    with sample means and covariances (``ddof=1``), in float64 on the inputs' device. The trace
    term is computed stably as the sum of square roots of the (clamped non-negative) eigenvalues
    of the symmetric matrix :math:`\Sigma_r^{1/2} \Sigma_f \Sigma_r^{1/2}`, which has the same
    spectrum as :math:`\Sigma_r \Sigma_f`; no complex parts, no ``sqrtm`` failure on singular
    covariances. Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
    Nash Equilibrium", NeurIPS 2017 (Frechet 1957; Dowson and Landau 1982). Plug-in estimate,
    biased upwards for finite samples (Binkowski et al. 2018); cost ``O(n d^2 + d^3)``.
    Rounding below 0 is clamped to 0.
    """
    r, f = _pair(real_features, fake_features, min_rows=2, names=("real_features", "fake_features"))
    r = r.to(torch.float64)
    f = f.to(torch.float64)
    mu_r, mu_f = r.mean(0), f.mean(0)
    cov_r = torch.cov(r.T).reshape(r.shape[1], r.shape[1])
    cov_f = torch.cov(f.T).reshape(f.shape[1], f.shape[1])
    evals, evecs = torch.linalg.eigh(cov_r)
    sqrt_r = (evecs * evals.clamp_min(0).sqrt()) @ evecs.T
    middle = sqrt_r @ cov_f @ sqrt_r
    middle = 0.5 * (middle + middle.T)
    tr_sqrt = torch.linalg.eigvalsh(middle).clamp_min(0).sqrt().sum()
    value = (mu_r - mu_f).square().sum() + cov_r.trace() + cov_f.trace() - 2.0 * tr_sqrt
    return max(float(value), 0.0)


