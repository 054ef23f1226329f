"""Metrics: pure functions of samples (numpy arrays or torch tensors on any device).

Two-sample: :func:`mmd`, :func:`mmd_test` (Gretton et al. 2012). Divergences: :func:`kl_knn`
(Wang, Kulkarni and Verdu 2009), :func:`kl_mc`, :func:`entropy_knn` (Kozachenko and Leonenko
1987). Modes: :func:`mode_coverage` (VEEGAN / PacGAN protocol). Fidelity: :func:`prdc`
(Naeem et al. 2020), :func:`kid` (Binkowski et al. 2018), :func:`frechet_distance` (Heusel et
al. 2017). Likelihood of decoder models: :func:`ais_log_likelihood` (Neal 2001; Wu et al.
2017) and, for latents of dimension <= 2, :func:`quadrature_log_likelihood` (the truth).
Classifier test: :func:`c2st` (Lopez-Paz and Oquab 2017). Transport and energy:
:func:`sliced_wasserstein` (Bonneel et al. 2015), :func:`energy_distance` (Szekely and Rizzo
2013). Diagnostics: :func:`data_copying` (Meehan et al. 2020), :func:`authenticity` (Alaa
et al. 2022) and :func:`nn_distance_ratio` (copying of the training set); :func:`calibration`
(ranks: TARP, HPD, PIT); :func:`witness_map` and :func:`c2st_map` (where a 2D model is
wrong); :func:`prd_curve` (Simon et al. 2019). Definitions and references:
``docs/metrics.md``; the sanity battery every metric is run through:
:mod:`densitylab.metrics.sanity`.
"""

from .c2st import CLASSIFIERS, C2STMap, C2STResult, c2st, c2st_map
from .calibration import CALIBRATION_METHODS, CalibrationResult, calibration
from .copying import (
    AuthenticityResult,
    CopyingResult,
    DistanceRatioResult,
    authenticity,
    data_copying,
    nn_distance_ratio,
)
from .divergence import KLEstimate, entropy_knn, kl_knn, kl_mc
from .fidelity import KID, PRDC, frechet_distance, kid, prdc
from .kernels import KERNELS, Kernel, make_kernel, median_bandwidth
from .likelihood import AISResult, SigmaSelection, ais_log_likelihood, select_sigma
from .mmd import ESTIMATORS, MMDTestResult, mmd, mmd_test
from .modes import ModeCoverage, mode_coverage, mode_histogram_kl
from .prd import PRDCurve, prd_curve, prd_from_scores
from .quadrature import QuadratureResult, quadrature_log_likelihood
from .transport import energy_distance, sliced_wasserstein
from .witness import WitnessMap, witness_map

__all__ = [
    "AISResult",
    "AuthenticityResult",
    "C2STMap",
    "C2STResult",
    "CALIBRATION_METHODS",
    "CalibrationResult",
    "CopyingResult",
    "CLASSIFIERS",
    "DistanceRatioResult",
    "ESTIMATORS",
    "KERNELS",
    "KID",
    "KLEstimate",
    "Kernel",
    "MMDTestResult",
    "ModeCoverage",
    "PRDC",
    "PRDCurve",
    "QuadratureResult",
    "SigmaSelection",
    "WitnessMap",
    "ais_log_likelihood",
    "authenticity",
    "c2st",
    "c2st_map",
    "calibration",
    "data_copying",
    "energy_distance",
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
    "nn_distance_ratio",
    "prd_curve",
    "prd_from_scores",
    "prdc",
    "quadrature_log_likelihood",
    "select_sigma",
    "sliced_wasserstein",
    "witness_map",
]
