"""Mode counts: mode coverage on a Gaussian mixture (the VEEGAN / PacGAN protocol) and the
classifier-based count over the 1,000 digit triples of stacked digits."""

from __future__ import annotations

from typing import Any

import torch

from .. import images, metrics
from ..metrics.modes import HIGH_QUALITY_STDS
from ._common import needs_mixture, needs_stacked
from .constraints import Integer, NoneValue, Positive, Probability
from .context import EvalContext
from .spec import HIGHER, LOWER, MetricSpec, Param, ValueInfo

__all__ = ["MODE_COVERAGE", "STACKED_MODES"]

_NUM_MODES = ValueInfo(None, "number of modes of the target (a constant of the dataset)")


def _coverage_values(mc) -> dict[str, Any]:
    out = {
        "modes_covered": float(mc.modes_covered),
        "num_modes": float(mc.num_modes),
        "high_quality_fraction": float(mc.high_quality_fraction),
        "counts": [int(c) for c in torch.as_tensor(mc.counts).reshape(-1).tolist()],
    }
    if mc.kl_to_uniform is None:  # no high-quality sample: the histogram KL is undefined
        out["kl_modes_note"] = "undefined: no high-quality sample"
    else:
        out["kl_modes"] = float(mc.kl_to_uniform)
    return out


def _mode_coverage(ctx: EvalContext, threshold: float, min_count: int) -> dict[str, Any]:
    mc = metrics.mode_coverage(ctx.samples, ctx.target, threshold=threshold, min_count=min_count)
    return _coverage_values(mc)


MODE_COVERAGE = MetricSpec(
    "mode_coverage", _mode_coverage, applies=needs_mixture,
    description="modes covered, high-quality fraction and KL of the mode histogram to uniform "
    "(VEEGAN / PacGAN protocol)",
    params=(Param.of(metrics.mode_coverage, "threshold", (Positive(),),
                     "a sample is high-quality within this many stds of its nearest mode"),
            Param.of(metrics.mode_coverage, "min_count", (Integer(minimum=1),),
                     "high-quality samples a mode needs to count as covered")),
    values={
        "modes_covered": ValueInfo(
            HIGHER, lambda p: f"mixture components with at least {int(p.get('min_count', 1))} "
                              "high-quality sample(s)",
            ideal=None, sanity="modes_covered_fraction", headline=True),  # battery: a fraction
        "num_modes": _NUM_MODES,
        "high_quality_fraction": ValueInfo(
            HIGHER, lambda p: "share of samples within "
                              f"{float(p.get('threshold', HIGH_QUALITY_STDS)):g} standard "
                              "deviations (of the target's component std) of their nearest mode "
                              "centre",
            ideal=None, sanity="high_quality_fraction", headline=True),  # depends on threshold
        "kl_modes": ValueInfo(
            LOWER, "KL of the high-quality samples' mode histogram to uniform (PacGAN's reverse "
                   "KL): 0 when every mode gets its share, log K when all fall on one mode",
            sanity="kl_modes", headline=True),
    })


def _stacked_modes(ctx: EvalContext, threshold: float | None, min_count: int) -> dict[str, Any]:
    mc = images.count_stacked_modes(ctx.pixel_images(), threshold=threshold, min_count=min_count)
    return _coverage_values(mc)


def _counted(params: dict[str, Any]) -> str:
    threshold = params.get("threshold")
    if threshold is None:
        return "every sample counts, as in the stacked-MNIST protocol"
    return (f"a sample counts when each of its three channels is classified with confidence >= "
            f"{float(threshold):g}")


def _stacked_quality(params: dict[str, Any]) -> str:
    threshold = params.get("threshold")
    if threshold is None:
        return ("mean classifier confidence (max softmax probability) over the three channel "
                "images of every sample: a soft analogue of the 2D high-quality fraction, not a "
                "share of samples")
    return (f"share of samples whose three channels are each classified with confidence >= "
            f"{float(threshold):g}")


STACKED_MODES = MetricSpec(
    "stacked_modes", _stacked_modes, applies=needs_stacked,
    description="classifier-based mode count over the 1,000 digit triples (VEEGAN / PacGAN "
    "stacked-MNIST protocol); threshold: per-channel confidence a sample needs to count (none: "
    "every sample)",
    params=(Param("threshold", None, (Probability(), NoneValue()),
                  "per-channel confidence a sample needs to count; None: every sample"),
            Param("min_count", 1, (Integer(minimum=1),),
                  "counted samples a triple needs to count as covered")),
    values={
        "modes_covered": ValueInfo(
            HIGHER, lambda p: f"digit triples (of 1,000) with at least "
                              f"{int(p.get('min_count', 1))} counted sample(s), each channel "
                              f"labelled by the digit classifier; {_counted(p)}",
            headline=True),
        "num_modes": _NUM_MODES,
        "high_quality_fraction": ValueInfo(HIGHER, _stacked_quality, headline=True),
        "kl_modes": ValueInfo(
            LOWER, "KL of the counted samples' histogram over the 1,000 triples to uniform (the "
                   "VEEGAN / PacGAN stacked-MNIST KL); sampling noise alone gives about "
                   "999 / (2 N) for N samples", 0.0, headline=True),
    })
