"""Helpers the metric adapters share: flattening samples, and the applicability tests a
:class:`~densitylab.scoring.spec.MetricSpec` names in ``applies``."""

from __future__ import annotations

from typing import Any

import torch

from .context import EvalContext

__all__ = ["flat", "needs_mixture", "needs_model_density", "needs_both_densities",
           "needs_images", "needs_stacked", "needs_training_set"]


def flat(x: torch.Tensor) -> torch.Tensor:
    """``x`` with one row per point (images flattened)."""
    return x.reshape(x.shape[0], -1)


def needs_mixture(ctx: EvalContext, **_: Any) -> str | None:
    """None when the target is a Gaussian mixture (mode centres known), else why not."""
    if not hasattr(ctx.target, "means") or not hasattr(ctx.target, "stds"):
        return "the target is not a Gaussian mixture (mode centres unknown)"
    return None


def needs_model_density(ctx: EvalContext, **_: Any) -> str | None:
    """None when the model has a tractable density, else why not."""
    if not getattr(ctx.model, "has_density", False):
        return f"{type(ctx.model).__name__} has no tractable density"
    return None


def needs_both_densities(ctx: EvalContext, **_: Any) -> str | None:
    """None when the target and the model both have a density, else why not."""
    if not getattr(ctx.target, "has_density", False):
        return "the target has no closed-form density"
    return needs_model_density(ctx)


def needs_images(ctx: EvalContext, **_: Any) -> str | None:
    """None for an image dataset, else why not."""
    return None if ctx.is_image else "not an image dataset"


def needs_stacked(ctx: EvalContext, **_: Any) -> str | None:
    """None for stacked digits (three channels), else why not."""
    if not ctx.is_image or ctx.samples.shape[1] != 3:
        return "not a stacked-digits dataset (3 channels)"
    return None


def needs_training_set(ctx: EvalContext, **_: Any) -> str | None:
    """None when the run trained on a fixed training set, else why not."""
    if ctx.train_size is None and not ctx.has_fixed_images():
        return "the run has no fixed training set (set train.train_size)"
    return None
