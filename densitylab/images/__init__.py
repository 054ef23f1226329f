"""Image targets and classifier-based diagnostics of image samples.

Targets (see :mod:`.data`): :func:`load_digits` (scikit-learn's 8x8 digits in [0, 1]),
:class:`Digits`, :class:`StackedDigits` (three digits as channels: 1,000 modes, the stacked-MNIST
protocol on digits), :func:`load_idx` / :func:`idx_dataset` for MNIST-format files already on
disk, and :func:`synthetic_blobs` / :class:`Blobs` for fast tests. ``dequantize=True`` spreads
the digits' 17 pixel levels over their bins (:func:`dequantize`), the data on which a density's
:func:`bits_per_dim` is defined.

Diagnostics (see :mod:`.classifier`, :mod:`.diagnostics`): a small CNN digit classifier trained
reproducibly and cached (:func:`get_classifier`), stacked-digit mode counts
(:func:`count_stacked_modes`), :func:`classifier_confidence`, and KID / Frechet distance / PRDC in
the classifier's feature space (:func:`feature_metrics`).

Example:
    >>> from densitylab import images
    >>> x, labels = images.StackedDigits("test").sample(4, seed=0)
    >>> tuple(x.shape), tuple(labels.shape)
    ((4, 3, 8, 8), (4, 3))
"""

from .classifier import ARCHITECTURE, DigitClassifier, cache_dir, get_classifier, train_classifier
from .data import (
    Blobs,
    Digits,
    ImageSet,
    StackedDigits,
    available,
    idx_dataset,
    load_digits,
    load_idx,
    make,
    mode_index,
    synthetic_blobs,
)
from .dequantize import DIGIT_LEVELS, bits_per_dim, dequantize
from .diagnostics import classifier_confidence, count_stacked_modes, feature_metrics, features

__all__ = [
    "load_digits",
    "ImageSet",
    "Digits",
    "StackedDigits",
    "load_idx",
    "idx_dataset",
    "synthetic_blobs",
    "Blobs",
    "mode_index",
    "available",
    "make",
    "ARCHITECTURE",
    "DigitClassifier",
    "get_classifier",
    "train_classifier",
    "cache_dir",
    "count_stacked_modes",
    "classifier_confidence",
    "features",
    "feature_metrics",
    "DIGIT_LEVELS",
    "dequantize",
    "bits_per_dim",
]
