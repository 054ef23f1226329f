"""Metrics: pure functions of samples (numpy arrays or torch tensors on any device).

Two-sample: :func:`mmd`, :func:`mmd_test` (Gretton et al. 2012). Divergences: :func:`kl_knn`
(Wang, Kulkarni and Verdu 2009), :func:`kl_mc`, :func:`entropy_knn` (Kozachenko and Leonenko
1987). Modes: :func:`mode_coverage` (VEEGAN / PacGAN protocol). Fidelity: :func:`prdc`
(Naeem et al. 2020), :func:`kid` (Binkowski et al. 2018), :func:`frechet_distance` (Heusel et
al. 2017). Likelihood of decoder models: :func:`ais_log_likelihood` (Neal 2001; Wu et al.
2017). Definitions and references: ``docs/metrics.md``.
"""

from .divergence import KLEstimate, entropy_knn, kl_knn, kl_mc
from .fidelity import KID, PRDC, frechet_distance, kid, prdc
from .kernels import KERNELS, Kernel, make_kernel, median_bandwidth
from .likelihood import AISResult, ais_log_likelihood
from .mmd import ESTIMATORS, MMDTestResult, mmd, mmd_test
from .modes import ModeCoverage, mode_coverage, mode_histogram_kl

__all__ = [
    "AISResult",
    "ESTIMATORS",
    "KERNELS",
    "KID",
    "KLEstimate",
    "Kernel",
    "MMDTestResult",
    "ModeCoverage",
    "PRDC",
    "ais_log_likelihood",
    "entropy_knn",
    "frechet_distance",
    "kid",
    "kl_knn",
    "kl_mc",
    "make_kernel",
    "median_bandwidth",
    "mmd",
    "mmd_test",
    "mode_coverage",
    "mode_histogram_kl",
    "prdc",
]
