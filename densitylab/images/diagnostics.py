"""Classifier-based diagnostics of image samples: stacked-digit mode counts and feature metrics.

The digit classifier (:func:`~densitylab.images.get_classifier`) is the instrument: it labels each
channel of a stacked digit (giving one of 1,000 modes, as in the stacked-MNIST experiments of
Metz et al. 2017, Srivastava et al. 2017 and Lin et al. 2018), its softmax confidence stands in
for the "high-quality" criterion of the 2D protocol, and its penultimate layer is the feature
space for KID (Binkowski et al. 2018), the Frechet distance (Heusel et al. 2017) and
precision / recall / density / coverage (Naeem et al. 2020), in the place Inception features
take for natural images.
"""

from __future__ import annotations

import math

import torch

from .. import metrics
from .._validation import check_int, check_probability
from .classifier import DigitClassifier, check_digit_images, get_classifier
from .data import mode_index

__all__ = ["count_stacked_modes", "classifier_confidence", "features", "feature_metrics"]


def _resolve_classifier(classifier, x: torch.Tensor) -> DigitClassifier:
    if classifier is None:
        return get_classifier(seed=0, device=x.device)
    if not (hasattr(classifier, "predict") and hasattr(classifier, "features")):
        raise TypeError(
            "classifier must be a DigitClassifier (see images.get_classifier) or None, got "
            f"{type(classifier).__name__}"
        )
    return classifier


def _per_channel(x: torch.Tensor) -> torch.Tensor:
    """``(n, C, 8, 8)`` -> ``(n * C, 1, 8, 8)``, channel-major within each sample."""
    return x.reshape(-1, 1, 8, 8)


def _predict(x: torch.Tensor, classifier) -> tuple[torch.Tensor, torch.Tensor]:
    labels, conf = classifier.predict(_per_channel(x))
    c = x.shape[1]
    return labels.reshape(-1, c).cpu(), conf.reshape(-1, c).cpu()


def count_stacked_modes(
    x, classifier=None, threshold: float | None = None, *, min_count: int = 1,
    return_assignments: bool = False,
):
    """Modes covered and mode-histogram KL over the 1,000 digit triples of stacked digits.

    Each of the three channels is labelled by the digit classifier; the triple ``(a, b, c)`` is
    mode ``100 a + 10 b + c``. A mode is covered when at least ``min_count`` counted samples fall
    in it, and ``kl_to_uniform`` is ``KL(p_hat || uniform)`` of the histogram of counted samples
    (:func:`densitylab.metrics.mode_histogram_kl`): the "modes / KL" columns of VEEGAN's Table 2
    (Srivastava et al., NIPS 2017) and PacGAN's stacked-MNIST table (Lin et al., NeurIPS 2018).
    A perfect sampler of ``N`` images has an expected KL of about ``999 / (2 N)`` from sampling
    noise alone (0.019 for ``N = 26,000``), since ``2 N KL`` is approximately chi-square with 999
    degrees of freedom.

    ``threshold=None`` follows the published protocol: every sample is counted, and
    ``high_quality_fraction`` is the classifier's mean max-softmax probability over all channel
    images (:func:`classifier_confidence`), a soft analogue of the 2D high-quality fraction. With
    a ``threshold`` in (0, 1), a sample is high quality, and counted, only when the classifier's
    confidence on each of its three channels is at least ``threshold``, as the 2D protocol counts
    only samples within 3 standard deviations of a mode; ``high_quality_fraction`` is then the
    share of such samples. Cost: one classifier pass over ``3 n`` images.

    Arguments:
        x: stacked images ``(n, 3, 8, 8)`` in [0, 1] (tensor or array, any device).
        classifier: a :class:`DigitClassifier`; None means ``get_classifier(seed=0)`` on x's device.
        threshold: None, or the per-channel confidence needed for a sample to count.
        min_count: samples a mode needs to be covered (1 in the papers).
        return_assignments: also return every sample's mode index (``assignments``).

    Returns:
        :class:`densitylab.metrics.ModeCoverage` with ``num_modes = 1000``.
    """
    t = check_digit_images(x, "x")
    if t.shape[1] != 3:
        raise ValueError(f"x must be stacked digits of shape (n, 3, 8, 8), got {tuple(t.shape)}")
    thr = None if threshold is None else check_probability(threshold, "threshold")
    min_count = check_int(min_count, "min_count", minimum=1)
    clf = _resolve_classifier(classifier, t)
    labels, conf = _predict(t, clf)
    modes = mode_index(labels)
    if thr is None:
        good = torch.ones(len(modes), dtype=torch.bool)
        hq_fraction = float(conf.double().mean())
    else:
        good = (conf >= thr).all(dim=1)
        hq_fraction = float(good.double().mean())
    counts = torch.bincount(modes[good], minlength=1000)
    return metrics.ModeCoverage(
        modes_covered=int((counts >= min_count).sum()),
        num_modes=1000,
        high_quality_fraction=hq_fraction,
        counts=tuple(int(v) for v in counts.tolist()),
        kl_to_uniform=metrics.mode_histogram_kl(counts),
        num_samples=len(modes),
        threshold=math.nan if thr is None else thr,
        min_count=min_count,
        assignments=modes if return_assignments else None,
    )


def classifier_confidence(x, classifier=None) -> float:
    """Mean max-softmax probability of the digit classifier over all images and channels.

    The image analogue of the high-quality fraction: close to 1 when every image looks clearly
    like one digit, near 0.1 for images the classifier cannot tell apart from noise. Like the
    Inception Score (Salimans et al. 2016), it rewards sharp, recognisable samples and says
    nothing about diversity.

    Arguments:
        x: images ``(n, C, 8, 8)`` in [0, 1]; each channel is scored as a digit.
        classifier: a :class:`DigitClassifier`; None means ``get_classifier(seed=0)``.
    """
    t = check_digit_images(x, "x")
    clf = _resolve_classifier(classifier, t)
    _, conf = _predict(t, clf)
    return float(conf.double().mean())


@torch.no_grad()
def features(x, classifier=None, *, batch_size: int = 4096) -> torch.Tensor:
    """Penultimate-layer classifier features of images ``(n, C, 8, 8)``: ``(n, C * F)`` float64.

    Each channel is embedded separately and the ``C`` embeddings are concatenated, so stacked
    digits get a feature vector three times as long as single digits.
    """
    t = check_digit_images(x, "x")
    clf = _resolve_classifier(classifier, t)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    flat = _per_channel(t)
    parts = [f.double().cpu() for f in clf._batched(clf.features, flat, batch_size)]
    feats = torch.cat(parts) if parts else torch.empty(0, clf.num_features, dtype=torch.float64)
    return feats.reshape(t.shape[0], -1)


def _subsample(x: torch.Tensor, cap: int | None, seed: int) -> torch.Tensor:
    if cap is None or len(x) <= cap:
        return x
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return x[perm[:cap]]


def feature_metrics(
    real, fake, *, classifier=None, k: int = 5, kid_subsets: int = 100,
    kid_subset_size: int = 1000, prdc_samples: int | None = 10_000, seed: int = 0,
) -> dict[str, float]:
    """Sample-quality and diversity metrics of ``fake`` against ``real`` in classifier features.

    Both sets are embedded with :func:`features`; then

    - ``kid_mean``, ``kid_std``: the unbiased polynomial-kernel MMD^2 ``(x.y / d + 1)^3``
      averaged over ``kid_subsets`` random subsets of ``min(kid_subset_size, n_real, n_fake)``
      points (KID, Binkowski et al., ICLR 2018), via :func:`densitylab.metrics.kid`;
    - ``frechet_distance``: the Frechet distance between Gaussians fitted to the two feature sets
      (FID's formula, Heusel et al. 2017), via :func:`densitylab.metrics.frechet_distance`;
    - ``precision``, ``recall``, ``density``, ``coverage`` with ``k`` nearest neighbours
      (Naeem et al., ICML 2020), via :func:`densitylab.metrics.prdc`, on at most
      ``prdc_samples`` points of each set (a seeded random subset): their cost grows as the
      square of the sample size, and their k-NN radii shrink with it, so a fixed size also keeps
      values comparable between evaluations of different sizes;
    - ``confidence_real``, ``confidence_fake``: :func:`classifier_confidence` of each set.

    Arguments:
        real, fake: images ``(n, C, 8, 8)`` in [0, 1] with the same ``C``; at least ``k + 1``
            real images and 2 of each for KID.
        classifier: a :class:`DigitClassifier`; None means ``get_classifier(seed=0)``.
        k: neighbours for PRDC. prdc_samples: PRDC's sample cap (None: use every point).
        kid_subsets, kid_subset_size: KID's subsets. seed: the KID subsets and PRDC subsets.

    Returns:
        ``{name: float}`` with the keys listed above.
    """
    r = check_digit_images(real, "real")
    f = check_digit_images(fake, "fake")
    if r.shape[1] != f.shape[1]:
        raise ValueError(
            "real and fake must have the same number of channels, got "
            f"{r.shape[1]} and {f.shape[1]}"
        )
    clf = _resolve_classifier(classifier, r)
    subset = min(check_int(kid_subset_size, "kid_subset_size", minimum=2), len(r), len(f))
    k = check_int(k, "k", minimum=1)
    if prdc_samples is not None:
        prdc_samples = check_int(prdc_samples, "prdc_samples", minimum=k + 1)
    seed = check_int(seed, "seed", minimum=0)
    fr, ff = features(r, clf), features(f, clf)
    kid = metrics.kid(fr, ff, num_subsets=kid_subsets, subset_size=subset, seed=seed)
    pr = metrics.prdc(
        _subsample(fr, prdc_samples, seed), _subsample(ff, prdc_samples, seed + 1), k=k
    )
    return {
        "kid_mean": float(kid.mean),
        "kid_std": float(kid.std),
        "frechet_distance": float(metrics.frechet_distance(fr, ff)),
        "precision": float(pr.precision),
        "recall": float(pr.recall),
        "density": float(pr.density),
        "coverage": float(pr.coverage),
        "confidence_real": classifier_confidence(r, clf),
        "confidence_fake": classifier_confidence(f, clf),
    }
