"""What a metric sees of a run (:class:`EvalContext`) and the seeds derived from a run's seed.

Shared by the metric adapters of this package and run execution (:mod:`densitylab.suite.evaluate`),
so that neither imports the other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch

from ..models.base import iter_batches
from ..registry import declared_options

__all__ = ["EvalContext", "derive_seed", "as_points", "sample_points", "draw", "heldout_target",
           "declared_options", "model_log_prob"]


@dataclass
class EvalContext:
    """What a metric sees: the target, the trained model and the evaluation samples."""

    target: Any
    model: Any  # a densitylab.suite.context.Model
    samples: torch.Tensor  # eval_samples drawn from the model
    reference: torch.Tensor  # a fresh target sample of the same size
    seed: int
    eval_samples: int
    device: torch.device
    #: the size of the fixed training set when the run trains on one (``train.train_size``)
    train_size: int | None = None

    @property
    def is_image(self) -> bool:
        """True for image datasets (samples of shape (n, C, H, W))."""
        return self.samples.ndim > 2

    def pixel_images(self) -> torch.Tensor:
        """The samples as images in [0, 1], what the digit classifier reads: values outside are
        clipped, as generated images are before they are saved or scored (a Gaussian decoder's
        noise, a flow's or a diffusion model's overshoot); :meth:`pixels_clipped` says how many
        were."""
        return self.samples.clamp(0.0, 1.0)

    def pixels_clipped(self) -> float:
        """Share of the samples' values outside [0, 1] (clipped by :meth:`pixel_images`)."""
        return float(((self.samples < 0) | (self.samples > 1)).double().mean())

    def has_fixed_images(self) -> bool:
        """True when the target is a fixed set of images (an image split such as the digits'
        training split) whose every batch is drawn from ``target.fixed_images()``."""
        return callable(getattr(self.target, "fixed_images", None))

    def training_set(self) -> torch.Tensor | None:
        """The fixed training set a ``train_size`` run was fitted on: the first epoch of the
        batches the model families' ``fit(seed=s)`` draws, i.e. ``iter_batches`` with seed
        ``s + 1``, as rows in shuffled order. Without ``train_size``, the images of a target that
        is a fixed set of images (``target.fixed_images()``, e.g. the digits' training split),
        from which every training batch was drawn; else None. A registered model that draws its
        training set otherwise is not covered."""
        if self.train_size is None:
            return self.target.fixed_images() if self.has_fixed_images() else None
        shape = tuple(self.reference.shape[1:])
        batches = iter_batches(self.target, self.train_size, shape, device=torch.device("cpu"),
                               dtype=self.reference.dtype, seed=self.seed + 1,
                               train_size=self.train_size)
        return next(batches)

    def heldout(self, n: int) -> torch.Tensor:
        """``n`` target points never used in training or as the reference sample: the test
        split of an image dataset built from its training split, else fresh draws. The draw
        depends on the run's seed and ``n`` only, so every model of a suite scored with one
        seed, and every estimator of a run, sees the same points."""
        return sample_points(heldout_target(self.target), n, derive_seed(self.seed, "heldout"))

    def validation(self, n: int) -> torch.Tensor:
        """``n`` target points for choosing a metric's own parameter (e.g. the observation noise
        of a GAN's likelihood), drawn independently of :meth:`heldout` so that the choice does
        not flatter the held-out number (the training split for image datasets)."""
        return sample_points(self.target, n, derive_seed(self.seed, "validation"))


def heldout_target(target):
    """The same image dataset on its test split when ``target`` is built from a training split;
    otherwise ``target`` itself (a distribution with fresh samples needs no held-out part)."""
    params = dict(getattr(target, "params", {}) or {})
    if params.get("split") == "train":
        return type(target)(**{**params, "split": "test"})
    return target


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


def sample_points(source, n: int, seed: int, **options) -> torch.Tensor:
    """``n`` points from a target or model, seeded, as a floating tensor; ``options`` are the
    model's ``[[models]] sample`` table (e.g. the VAE's ``noise = true``)."""
    return as_points(source.sample(n, seed=seed, **options))


#: The earlier name of :func:`sample_points`.
draw = sample_points


def model_log_prob(model, x: torch.Tensor, seed: int, **options: Any) -> torch.Tensor:
    """``model.log_prob(x)``, seeded when the model declares ``"seed"`` in its
    ``log_prob_options`` (a random estimate, like the VAE's IWAE bound); ``options`` are passed
    only where the model declares them (e.g. ``num_samples`` for the VAE)."""
    declared = declared_options(model, "log_prob")
    kwargs = {k: v for k, v in options.items() if k in declared}
    if "seed" in declared:
        kwargs["seed"] = derive_seed(seed, "log_prob")
    return model.log_prob(x, **kwargs)
