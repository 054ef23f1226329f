"""What a metric sees of a run (:class:`EvalContext`) and the seeds derived from a run's seed.

Shared by the metric adapters (:mod:`densitylab.suite.metric_adapters`) and run execution
(:mod:`densitylab.suite.evaluate`), so that neither imports the other.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["EvalContext", "derive_seed", "as_points", "draw", "model_log_prob"]


@dataclass
class EvalContext:
    """What a metric sees: the target, the trained model and the evaluation samples."""

    target: Any
    model: Any
    samples: torch.Tensor  # eval_samples drawn from the model
    reference: torch.Tensor  # a fresh target sample of the same size
    seed: int
    eval_samples: int
    device: torch.device

    @property
    def is_image(self) -> bool:
        """True for image datasets (samples of shape (n, C, H, W))."""
        return self.samples.ndim > 2

    def heldout(self, n: int) -> torch.Tensor:
        """``n`` target points never used in training or as the reference sample."""
        return draw(self.target, n, derive_seed(self.seed, "heldout"))


def derive_seed(seed: int, purpose: str) -> int:
    """A seed for one purpose of a run (``"sample"``, ``"reference"``...), stable across runs."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF



def as_points(x) -> torch.Tensor:
    """A floating tensor of points from a sample: a tensor/array, or ``(images, labels)`` from a
    labelled image target (the labels are dropped)."""
    if isinstance(x, tuple | list):
        x = x[0]
    t = torch.as_tensor(x)
    return t if t.is_floating_point() else t.float()


def draw(source, n: int, seed: int, **options) -> torch.Tensor:
    """``n`` points from a target or model, seeded, as a floating tensor; ``options`` are the
    model's ``[[models]] sample`` table (e.g. the VAE's ``noise = true``)."""
    return as_points(source.sample(n, seed=seed, **options))


def model_log_prob(model, x: torch.Tensor, seed: int) -> torch.Tensor:
    """``model.log_prob(x)``, seeded when the estimate is random (the VAE's IWAE bound)."""
    if "seed" in inspect.signature(model.log_prob).parameters:
        return model.log_prob(x, seed=derive_seed(seed, "log_prob"))
    return model.log_prob(x)
