"""Targets with a known defect, shared by the tests of the discrepancy maps."""

from __future__ import annotations

import torch

from densitylab import distributions
from densitylab.distributions import GaussianMixture


def ring_without(*dropped: int) -> tuple[GaussianMixture, GaussianMixture]:
    """The ring of 8 (float64) and a model of it that drops the modes ``dropped``: the kept
    modes keep their means and stds and share the whole weight equally."""
    p = distributions.ring(dtype=torch.float64)
    keep = torch.ones(len(p.means), dtype=torch.bool)
    keep[list(dropped)] = False
    return p, GaussianMixture(p.means[keep], p.stds[keep], p.weights[keep], dtype=torch.float64)
