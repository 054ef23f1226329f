"""Reference rows: what a perfect model and pure noise score under the suite's own protocol.

Unless ``[suite] references = false``, a suite runs two reference "models" on every dataset with
its seeds, sample size and metrics, recorded like runs (model kind ``oracle`` or ``noise``) and
shown first in every table and figure, so that a reader can place a model between the two:

* ``oracle``: fresh samples of the target; for an image dataset built from a training split
  (``split = "train"``), held-out images: the same dataset on its test split.
* ``noise``: uniform over the bounding box of :data:`BOX_SAMPLES` seeded target samples, padded
  by :data:`BOX_PADDING` of its width on each side; for an image dataset, the oracle's held-out
  images with the pixels of each image shuffled (same intensities, no structure).

``fit`` only looks at the target; there is no training.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .._runtime import make_generator
from .context import as_points
from .context import heldout_target as _heldout_target

__all__ = ["REFERENCE_KINDS", "OracleReference", "NoiseReference", "make_reference",
           "is_reference", "reference_models", "BOX_SAMPLES", "BOX_PADDING"]

#: Model kinds of the reference rows, in the order they are shown.
REFERENCE_KINDS = ("oracle", "noise")
#: Target samples whose bounding box the ``noise`` reference fills.
BOX_SAMPLES = 10_000
#: Padding of that box on each side, as a share of its width.
BOX_PADDING = 0.10


def is_reference(record_or_kind: dict[str, Any] | str | None) -> bool:
    """True for a reference model kind, or a run record / config whose model is one."""
    if isinstance(record_or_kind, dict):
        cfg = record_or_kind.get("config", record_or_kind)
        record_or_kind = (cfg.get("model") or {}).get("kind")
    return record_or_kind in REFERENCE_KINDS


class _Reference:
    """A 'model' that is fitted by looking at the target; subclasses say what it samples."""

    has_density = False
    #: a reference's density (the target's own, or the uniform box) is exact
    log_prob_kind = "exact"
    #: ``fit`` accepts (and ignores) every training option a suite may set.
    fit_options = frozenset({"lr_schedule", "train_size", "callback", "progress"})

    def __init__(self, data_dim: int | None = None, data_shape: tuple[int, ...] | None = None,
                 seed: int | None = None):
        self.data_shape = (data_dim,) if data_dim is not None else tuple(data_shape or ())
        self.seed = seed
        self.target = None
        self.config: dict[str, Any] = {}

    def fit(self, target, steps: int = 0, batch_size: int = 0, seed: int | None = None,
            lr: float | None = None, progress: bool = False, **_: Any) -> dict[str, list]:
        """Remember the target (no training); returns an empty history."""
        self.target = target
        return {}

    def _fitted(self):
        if self.target is None:
            raise RuntimeError(f"{type(self).__name__}.fit(target) must be called before use")
        return self.target


class OracleReference(_Reference):
    """Fresh samples of the target (held-out real images for image datasets)."""

    def fit(self, target, *args: Any, **kwargs: Any) -> dict[str, list]:
        """Remember the target, or its held-out split for images built from a training split."""
        super().fit(target, *args, **kwargs)
        self.target = _heldout_target(target)
        self.has_density = bool(getattr(self.target, "has_density", False))
        return {}

    def sample(self, n: int, seed: int | None = None):
        """``n`` samples of the (held-out) target."""
        return self._fitted().sample(n, seed=seed)

    def log_prob(self, x) -> torch.Tensor:
        """The target's own log-density."""
        return self._fitted().log_prob(x)


class NoiseReference(_Reference):
    """Uniform over the target's padded bounding box; for images, pixel-shuffled real images."""

    def fit(self, target, *args: Any, seed: int | None = None, **kwargs: Any) -> dict[str, list]:
        """Remember the target and the box of ``BOX_SAMPLES`` target samples drawn with ``seed``
        (images: the held-out split whose images are shuffled)."""
        super().fit(target, *args, **kwargs)
        self.images = len(self.data_shape) > 1
        if self.images:
            self.target = _heldout_target(target)
            return {}
        pts = as_points(target.sample(BOX_SAMPLES, seed=seed)).double()
        lo, hi = pts.min(0).values, pts.max(0).values
        pad = BOX_PADDING * (hi - lo)
        self.low, self.high = lo - pad, hi + pad
        self.has_density = True
        return {}

    @property
    def log_volume(self) -> float:
        """Log of the box's volume (the uniform density is its negative inside the box)."""
        return float(torch.log(self.high - self.low).sum())

    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """``n`` uniform points in the box, or ``n`` held-out images with shuffled pixels."""
        target = self._fitted()
        gen = make_generator(seed)
        if self.images:
            x = as_points(target.sample(n, seed=seed)).cpu()
            flat = x.reshape(n, -1)
            order = torch.rand(flat.shape, generator=gen).argsort(dim=1)
            return torch.gather(flat, 1, order).reshape(x.shape)
        u = torch.rand(n, self.low.numel(), generator=gen, dtype=torch.float64)
        return (self.low + u * (self.high - self.low)).float()

    def log_prob(self, x) -> torch.Tensor:
        """``-log(volume)`` inside the box, ``-inf`` outside."""
        if self.images or not self.has_density:
            raise NotImplementedError("pixel-shuffled images have no density")
        x = torch.as_tensor(x).double().cpu()
        inside = ((x >= self.low) & (x <= self.high)).all(dim=1)
        out = torch.full((x.shape[0],), -math.inf, dtype=torch.float64)
        out[inside] = -self.log_volume
        return out


_CLASSES = {"oracle": OracleReference, "noise": NoiseReference}


def make_reference(kind: str, **kwargs: Any) -> _Reference:
    """The reference 'model' ``kind`` (``"oracle"`` or ``"noise"``), not yet fitted."""
    if kind not in _CLASSES:
        raise ValueError(f"kind: expected one of {', '.join(REFERENCE_KINDS)}, got {kind!r}")
    return _CLASSES[kind](**kwargs)


def reference_models(models: list[dict[str, Any]], train: dict[str, Any]) -> list[dict[str, Any]]:
    """The suite's model entries for the reference rows, to put before the real ``models``.

    Raises ValueError when a model of the suite already uses a reference name.
    """
    taken = {m["label"] for m in models} & set(REFERENCE_KINDS)
    if taken:
        raise ValueError(f"models: the names {', '.join(sorted(taken))} are the suite's "
                         "reference rows; rename the model, or set references = false in "
                         "[suite]")
    return [{"label": kind, "kind": kind, "params": {}, "train": dict(train),
             "key": f"references.{kind}"} for kind in REFERENCE_KINDS]
