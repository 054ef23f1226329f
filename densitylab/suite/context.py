"""What a metric sees of a run (:class:`EvalContext`) and the seeds derived from a run's seed.

Shared by the metric adapters (:mod:`densitylab.suite.metric_adapters`) and run execution
(:mod:`densitylab.suite.evaluate`), so that neither imports the other.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["Model", "SavableModel", "check_model", "EvalContext", "derive_seed", "as_points",
           "draw", "model_log_prob"]


@runtime_checkable
class Model(Protocol):
    """What a suite needs of a model (a built-in family, a reference row or a registered one).

    ``fit(data, steps, batch_size, seed, ...)`` trains on a target (anything with ``sample``)
    and returns its history; ``sample(n, seed=None)`` returns ``n`` points; ``log_prob(x)``
    returns per-point log-densities and is called only when ``has_density`` is true. Optional
    keywords (``lr``, ``lr_schedule``, ``train_size``, ``callback``, a ``seed`` of ``log_prob``)
    are passed only to a model that declares them.
    """

    has_density: bool

    def fit(self, data: Any, steps: int, batch_size: int, seed: int, *args: Any,
            **kwargs: Any) -> Any: ...

    def sample(self, n: int, seed: int | None = None) -> Any: ...

    def log_prob(self, x: Any) -> Any: ...


@runtime_checkable
class SavableModel(Model, Protocol):
    """A :class:`Model` that also describes and saves itself, as every ``densitylab.models``
    family does: ``config()`` is its JSON constructor arguments, ``save(path)`` writes config and
    weights (``type(model).load(path)`` reads them back)."""

    def config(self) -> dict[str, Any]: ...

    def save(self, path: Any) -> Any: ...


def check_model(model: Any, kind: str) -> Model:
    """``model`` itself when it has the members of :class:`Model`; otherwise a TypeError naming
    the model ``kind`` and the members it lacks (raised when a suite is loaded, before any run)."""
    missing = [name for name in ("fit", "sample", "log_prob", "has_density")
               if not hasattr(model, name)]
    if missing:
        raise TypeError(f"model kind {kind!r}: a {type(model).__name__} lacks "
                        f"{', '.join(missing)}; a suite model needs fit, sample, log_prob and "
                        "has_density (densitylab.suite.context.Model)")
    return model


@dataclass
class EvalContext:
    """What a metric sees: the target, the trained model and the evaluation samples."""

    target: Any
    model: Model
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
