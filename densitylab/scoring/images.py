"""Image metrics: KID, Frechet distance and PRDC in digit-classifier features, and the
log-likelihood metric on dequantised images in bits per dimension."""

from __future__ import annotations

from typing import Any

from .. import images
from ._common import needs_images
from .context import EvalContext
from .likelihood import LOG_LIKELIHOOD
from .spec import HIGHER, LOWER, TARGET, MetricSpec, ValueInfo
from .two_sample import PRDC_MEANINGS

__all__ = ["FEATURE_METRICS", "BITS_PER_DIM"]


def _feature_metrics(ctx: EvalContext) -> dict[str, Any]:
    values = images.feature_metrics(ctx.reference, ctx.pixel_images())
    return {**{k: float(v) for k, v in values.items()}, "pixels_clipped": ctx.pixels_clipped()}


def _feature_prdc(name: str, direction: str) -> ValueInfo:
    return ValueInfo(direction, f"{PRDC_MEANINGS[name]}, in digit-classifier features, k = 5 "
                                "(Naeem et al. 2020)", 1.0)


FEATURE_METRICS = MetricSpec(
    "feature_metrics", _feature_metrics, applies=needs_images,
    description="KID, Frechet distance and PRDC on digit-classifier features of the samples "
    "clipped to [0, 1] (with the share of pixel values clipped)",
    values={
        "kid_mean": ValueInfo(
            LOWER, "KID: unbiased polynomial-kernel MMD^2 between digit-classifier features of "
                   "real and generated images, mean over random subsets (Binkowski et al., ICLR "
                   "2018)", sanity="kid", headline=True),
        "kid_std": ValueInfo(None, "standard deviation of KID over those subsets"),
        "frechet_distance": ValueInfo(
            LOWER, "Frechet distance between Gaussians fitted to the classifier features of "
                   "real and generated images (the FID formula, Heusel et al. 2017)",
            sanity="frechet", headline=True),
        "precision": _feature_prdc("precision", HIGHER),
        "recall": _feature_prdc("recall", HIGHER),
        "density": _feature_prdc("density", TARGET),
        "coverage": _feature_prdc("coverage", HIGHER),
        "confidence_real": ValueInfo(
            None, "mean classifier confidence (max softmax probability) on real images"),
        "confidence_fake": ValueInfo(
            HIGHER, "mean classifier confidence (max softmax probability) on generated images"),
        "pixels_clipped": ValueInfo(
            None, "share of the generated pixel values outside [0, 1], clipped to it before the "
                  "classifier reads them"),
    })


def _needs_dequantized_density(ctx: EvalContext, **params: Any) -> str | None:
    if getattr(ctx.target, "levels", None) is None:
        return ("the target is not dequantised (bits per dimension are defined for a density of "
                "dequantised discrete pixels: dequantize = true)")
    return LOG_LIKELIHOOD.applies(ctx, **params)


def _bits_per_dim(ctx: EvalContext, **params: Any) -> dict[str, Any]:
    """The ``log_likelihood`` metric's values on a dequantised image target, with its mean
    held-out log-density (and the variational bound, where there is one) also in bits per
    dimension: ``(-loglik + D log L) / (D log 2)`` for ``L`` pixel levels (Theis et al. 2016)."""
    out = LOG_LIKELIHOOD.fn(ctx, **params)
    dim, levels = int(ctx.reference[0].numel()), int(ctx.target.levels)
    out["bits_per_dim"] = images.bits_per_dim(out["heldout_loglik"], dim, levels)
    if "heldout_elbo" in out:
        out["bits_per_dim_elbo"] = images.bits_per_dim(out["heldout_elbo"], dim, levels)
    out.setdefault("loglik_settings", {})["levels"] = levels
    return out


BITS_PER_DIM = MetricSpec(
    "bits_per_dim", _bits_per_dim, applies=_needs_dequantized_density,
    description="the log_likelihood metric on dequantised images (same parameters and values), "
    "with the mean held-out log-density in bits per dimension, (-loglik + D log L) / (D log 2) "
    "for L pixel levels: an upper bound on the discrete model's code length (Theis et al. 2016)",
    params=LOG_LIKELIHOOD.params,
    values={**LOG_LIKELIHOOD.values,
            "bits_per_dim": ValueInfo(
                LOWER, "mean held-out negative log-likelihood of the dequantised pixels in bits "
                       "per dimension (Theis et al. 2016)"),
            "bits_per_dim_elbo": ValueInfo(LOWER, "the variational bound in bits per dimension")})
