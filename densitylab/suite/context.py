"""What a metric sees of a run (:class:`EvalContext`) and the seeds derived from a run's seed.

Shared by the metric adapters (:mod:`densitylab.suite.metric_adapters`) and run execution
(:mod:`densitylab.suite.evaluate`), so that neither imports the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["Model", "SavableModel", "check_model", "declared_options", "EvalContext",
           "derive_seed", "as_points", "draw", "heldout_target", "model_log_prob"]


@runtime_checkable
class Model(Protocol):
    """What a suite needs of a model (a built-in family, a reference row or a registered one).

    ``fit(data, steps=, batch_size=, seed=, lr=)`` trains on a target (anything with
    ``sample``) and returns its history; ``sample(n, seed=None)`` returns ``n`` points;
    ``log_prob(x)`` returns per-point log-densities and is called only when ``has_density`` is
    true. ``lr`` is passed only when the suite sets one (or the model has a ``default_lr``).

    Anything more is declared, never guessed from signatures, by three optional class
    attributes, each a collection of keyword names (default: empty, the basic contract above):

    * ``fit_options``: optional keywords of ``fit`` the suite may pass: ``lr_schedule`` (a
      suite may ask for a schedule other than ``"constant"`` only then), ``train_size``,
      ``callback`` (``eval_every``), ``device`` and ``progress``;
    * ``sample_options``: keywords a suite's ``[[models]] sample`` table may set (the VAE's
      ``noise``);
    * ``log_prob_options``: with ``"seed"``, ``log_prob(x, seed=...)`` is a random estimate
      the suite seeds (the VAE's importance-weighted bound).
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
    #: the size of the fixed training set when the run trains on one (``train.train_size``)
    train_size: int | None = None

    @property
    def is_image(self) -> bool:
        """True for image datasets (samples of shape (n, C, H, W))."""
        return self.samples.ndim > 2

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
        from ..models.base import iter_batches

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
        return draw(heldout_target(self.target), n, derive_seed(self.seed, "heldout"))

    def validation(self, n: int) -> torch.Tensor:
        """``n`` target points for choosing a metric's own parameter (e.g. the observation noise
        of a GAN's likelihood), drawn independently of :meth:`heldout` so that the choice does
        not flatter the held-out number (the training split for image datasets)."""
        return draw(self.target, n, derive_seed(self.seed, "validation"))


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


def draw(source, n: int, seed: int, **options) -> torch.Tensor:
    """``n`` points from a target or model, seeded, as a floating tensor; ``options`` are the
    model's ``[[models]] sample`` table (e.g. the VAE's ``noise = true``)."""
    return as_points(source.sample(n, seed=seed, **options))


def declared_options(model: Any, method: str) -> frozenset[str]:
    """The keywords ``model`` declares for ``method`` (``"fit"``, ``"sample"`` or
    ``"log_prob"``) in its ``<method>_options`` attribute; empty when it declares none.

    Raises:
        TypeError: the attribute is not a collection of strings.
    """
    declared = getattr(model, f"{method}_options", ())
    if isinstance(declared, str) or not isinstance(declared, Collection) or not all(
            isinstance(name, str) for name in declared):
        raise TypeError(f"{type(model).__name__}.{method}_options: expected a collection of "
                        f"keyword names, got {declared!r}")
    return frozenset(declared)


def model_log_prob(model, x: torch.Tensor, seed: int, **options: Any) -> torch.Tensor:
    """``model.log_prob(x)``, seeded when the model declares ``"seed"`` in its
    ``log_prob_options`` (a random estimate, like the VAE's IWAE bound); ``options`` are passed
    only where the model declares them (e.g. ``num_samples`` for the VAE)."""
    declared = declared_options(model, "log_prob")
    kwargs = {k: v for k, v in options.items() if k in declared}
    if "seed" in declared:
        kwargs["seed"] = derive_seed(seed, "log_prob")
    return model.log_prob(x, **kwargs)
