"""Metrics against the run's own data: copying of the fixed training set, and calibration of
held-out target points among the model's samples."""

from __future__ import annotations

from typing import Any

from .. import metrics
from ._common import flat, needs_training_set
from .constraints import Choice, Integer
from .context import EvalContext, derive_seed, model_log_prob, sample_points
from .spec import HIGHER, LOWER, TARGET, MetricSpec, Param, ValueInfo

__all__ = ["DATA_COPYING", "CALIBRATION"]


def _data_copying(ctx: EvalContext, num_cells: int, held_out: int) -> dict[str, Any]:
    """C_T, authenticity and nearest-neighbour ratios of the model's samples against the run's
    training set, each beside held-out target points (``held_out``: how many; 0 = eval_samples)."""
    train = flat(ctx.training_set()).to(ctx.device)
    held = flat(ctx.heldout(held_out or ctx.eval_samples)).to(ctx.device)
    gen = flat(ctx.samples)
    ct = metrics.data_copying(train, held, gen, seed=derive_seed(ctx.seed, "data_copying"),
                              num_cells=num_cells)
    auth = metrics.authenticity(train, held, gen)
    ratio = metrics.nn_distance_ratio(train, held, gen)
    out = {"data_copying": ct.statistic, "data_copying_zscore": ct.zscore,
           "data_copying_pvalue": ct.pvalue, "data_copying_cells": float(ct.cells_used),
           "authenticity": auth.generated, "authenticity_heldout": auth.held_out,
           "authenticity_pvalue": auth.pvalue, "nn_ratio_below": ratio.generated_below,
           "nn_ratio_below_heldout": ratio.held_out_below,
           "nn_distance_pvalue": ratio.pvalue}
    if not ctx.is_image:
        # C_T against a fresh target set of the training set's size: a model whose modes are
        # too narrow is closer to any such set than fresh points are (C_T < 0 here too), a
        # copier only to its own training set (docs/metrics.md, "Data copying")
        fresh = flat(sample_points(ctx.target, train.shape[0],
                                   derive_seed(ctx.seed, "fresh_set")))
        control = metrics.data_copying(fresh.to(ctx.device), held, gen,
                                       seed=derive_seed(ctx.seed, "data_copying"),
                                       num_cells=num_cells)
        out["data_copying_fresh_set"] = control.statistic
        out["data_copying_fresh_set_pvalue"] = control.pvalue
    return out


DATA_COPYING = MetricSpec(
    "data_copying", _data_copying, applies=needs_training_set,
    description="copying of the fixed training set: C_T (Meehan et al. 2020; < 0 and a small "
    "p-value mean copying), authenticity (Alaa et al. 2022) and the share of nearest-neighbour "
    "distance ratios below 1/3, each beside held-out points",
    params=(Param.of(metrics.data_copying, "num_cells", (Integer(minimum=1),),
                     "cells of the C_T partition"),
            Param("held_out", 0, (Integer(minimum=0),), "held-out points; 0: eval_samples")),
    values={
        "data_copying": ValueInfo(
            TARGET, "C_T of the model's samples against the training set (Meehan et al. 2020): "
                    "0 as fresh target points, < 0 copying, > 0 underfitting", 0.0),
        "data_copying_zscore": ValueInfo(None, "the C_T statistic as a z-score"),
        "data_copying_pvalue": ValueInfo(None, "one-sided p-value of C_T < 0 (copying)"),
        "data_copying_cells": ValueInfo(None, "cells of the partition C_T used"),
        "data_copying_fresh_set": ValueInfo(
            TARGET, "C_T against a fresh target set of the training set's size: < 0 here too "
                    "means modes too narrow, not copying", 0.0),
        "data_copying_fresh_set_pvalue": ValueInfo(None, "p-value of that control C_T"),
        "authenticity": ValueInfo(
            HIGHER, "share of generated points farther from their nearest training point than "
                    "that point is from its own nearest neighbour (Alaa et al. 2022)"),
        "authenticity_heldout": ValueInfo(None, "the same share for held-out target points"),
        "authenticity_pvalue": ValueInfo(None, "p-value of the generated share below the "
                                               "held-out one"),
        "nn_ratio_below": ValueInfo(
            LOWER, "share of generated points whose nearest-neighbour distance ratio to the "
                   "training set is below 1/3 (near copies)"),
        "nn_ratio_below_heldout": ValueInfo(None, "the same share for held-out target points"),
        "nn_distance_pvalue": ValueInfo(None, "p-value of the generated share above the "
                                              "held-out one"),
    })


def _calibration(ctx: EvalContext, method: str, num_points: int) -> dict[str, Any]:
    """Calibration ranks of ``num_points`` held-out target points among the model's samples
    (L = eval_samples // num_points each, disjoint sets); HPD scores by the model's log_prob,
    or by a KDE of some of its samples for a model without a density (a GAN)."""
    x = flat(ctx.heldout(num_points)).to(ctx.device)
    y = flat(ctx.samples)
    log_prob: Any = None
    if method == "hpd" and not getattr(ctx.model, "has_density", False):
        log_prob = "kde"
    elif method == "hpd":
        def log_prob(z):
            return model_log_prob(ctx.model, z, ctx.seed)
    res = metrics.calibration(x, y, method=method, seed=derive_seed(ctx.seed, "calibration"),
                              log_prob=log_prob)
    return {"calibration_area": res.area, "calibration_area_zscore": res.area_zscore,
            "calibration_ks_pvalue": res.ks_pvalue,
            "calibration_max_deviation": res.max_deviation, "calibration_dispersion":
            res.dispersion, "calibration_samples_per_point": float(res.num_samples)}


CALIBRATION = MetricSpec(
    "calibration", _calibration,
    description="calibration by ranks of held-out points among the model's samples (tarp, hpd: "
    "by the model's density or a KDE of its samples, or pit): signed coverage area (> 0 "
    "over-dispersed), KS p-value, dispersion call",
    min_samples=lambda method, num_points: num_points,
    params=(Param.of(metrics.calibration, "method", (Choice(metrics.CALIBRATION_METHODS),)),
            Param("num_points", 100, (Integer(minimum=2),), "held-out points ranked")),
    values={
        "calibration_area": ValueInfo(
            TARGET, "signed area between the coverage curve and the diagonal: 0 calibrated, "
                    "> 0 over-dispersed, < 0 under-dispersed", 0.0),
        "calibration_area_zscore": ValueInfo(None, "that area as a z-score"),
        "calibration_ks_pvalue": ValueInfo(None, "KS p-value of the ranks against uniform"),
        "calibration_max_deviation": ValueInfo(
            LOWER, "largest distance of the coverage curve from the diagonal", 0.0),
        "calibration_samples_per_point": ValueInfo(None, "model samples each held-out point "
                                                         "is ranked among"),
    })
