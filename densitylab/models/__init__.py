"""Generative models under one interface: a Pyro VAE (explicit density, ELBO), a GAN (implicit
density), a normalising flow (exact density) and a diffusion model (DDPM; density by the
probability-flow ODE).

Every model is an ``nn.Module`` with a training objective and has ``fit(data, steps,
batch_size, lr, seed, device, callback, progress, lr_schedule, train_size)``, ``sample(n,
seed)``, ``has_density`` (``log_prob`` where True), a JSON-able ``config``, ``save(path)`` and
``load(path)``; see :mod:`densitylab.models.base`. One trainer (:class:`Trainer`,
:mod:`densitylab.models.trainer`) runs every model's step, for one seed or for many at once:
``Trainer(steps, batch_size, ...).fit(model_or_batched, data)`` is what both ``fit`` methods
call, and returns one history per seed.

Settings for the 2D toy protocol (ring, grid), each run 3,000 steps of batch 256 and well under
30 s on one CPU thread (``fit(..., num_threads=1)``):

* ``VAE(data_dim=2, latent_dim=2, hidden=(128, 128), jit=True)``, ``fit(lr=1e-3)``: all 8 ring
  modes (both decoder means and noisy samples).
* ``GAN(data_dim=2, hidden=(128, 128), pack=2)``, ``fit(lr=1e-3, lr_schedule="cosine")``: all 8
  ring modes, about 60% high-quality samples, where the same GAN without packing collapses.

Example:
    >>> from densitylab import models
    >>> models.available()
    ['diffusion', 'flow', 'gan', 'vae']
    >>> vae = models.make("vae", data_dim=2, hidden=[16], seed=0)
    >>> vae.has_density, models.make("gan", data_dim=2).has_density
    (True, False)

Published setups are presets: ``models.preset("pacgan2d", pack=2)`` builds PacGAN's 2D
architecture and ``models.preset_train_defaults("pacgan2d", pack=2)`` gives its ``fit`` options
(:mod:`densitylab.models.presets`).

Many seeds of a GAN, VAE, flow or diffusion model train as one batched computation with
:class:`BatchedGAN`, :class:`BatchedVAE`, :class:`BatchedFlow` or :class:`BatchedDiffusion`
(:mod:`densitylab.models.batched`), derived from the single model by
``torch.func`` (stacked parameters, ``vmap`` of the model's own objectives), so every
architecture batches; ``unstack()`` returns the ordinary single models. A model class of
your own whose training step is written against the engine batches the same way
(``batched_class(MyModel)``).

The model kinds that :func:`make` builds and the classes :func:`load` rebuilds are kept in
:mod:`densitylab.registry`: this package adds its families there, and
``densitylab.registry.register_model("mine", MyModel)`` adds a class of your own.
"""

from __future__ import annotations

from pathlib import Path

from .. import _registry, registry
from .base import GenerativeModel, History, NoDensityError
from .batched import (
    BatchedDiffusion,
    BatchedFlow,
    BatchedGAN,
    BatchedModel,
    BatchedVAE,
    batched_class,
)
from .diffusion import Diffusion
from .flow import Flow
from .gan import GAN
from .presets import PRESETS, Preset, available_presets, preset, preset_train_defaults
from .trainer import Trainer
from .vae import VAE

__all__ = [
    "GenerativeModel", "History", "NoDensityError", "VAE", "GAN", "Flow", "Diffusion",
    "BatchedModel", "BatchedGAN", "BatchedVAE", "BatchedDiffusion", "BatchedFlow",
    "batched_class", "Trainer", "make", "available", "load",
    "PRESETS", "Preset", "preset", "preset_train_defaults", "available_presets",
]

registry.REGISTRY.models.add_builtins(
    registry.Entry(cls.name, cls) for cls in (VAE, GAN, Flow, Diffusion))


def _model_kinds() -> dict[str, type[GenerativeModel]]:
    """The model kinds of the registry that are :class:`GenerativeModel` classes (built-in or
    registered; not the suite's reference rows or plain factories)."""
    return {name: entry.value for name, entry in registry.REGISTRY.models.entries().items()
            if isinstance(entry.value, type) and issubclass(entry.value, GenerativeModel)}


def available() -> list[str]:
    """Names accepted by :func:`make`: the model families and registered model classes."""
    return _registry.names(_model_kinds())


def make(name: str, **hyperparameters) -> GenerativeModel:
    """Build a model by name (``"vae"``, ``"gan"``, ``"flow"``, ``"diffusion"`` or a model
    class registered with ``densitylab.registry.register_model``) with keyword hyperparameters.

    Raises:
        ValueError: unknown name. TypeError: a hyperparameter the model does not take.
    """
    # Only signature errors get the prefix: the models' own argument checks already name the
    # argument and pass through unchanged.
    return _registry.build(
        _model_kinds(), name, hyperparameters, kind="model", signature_errors_only=True
    )


def load(path: str | Path, device="cpu") -> GenerativeModel:
    """Load any model written by ``model.save(path)``, as the class recorded in the file (a
    model family, or any model class defined or registered in this process)."""
    return GenerativeModel.load(path, device=device)
