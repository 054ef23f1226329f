"""Named model setups from the literature: architecture plus the training options published with it.

A preset is a model class, the constructor keywords of the published architecture and the
``fit`` options of the published protocol. Use it three ways:

* ``models.preset("pacgan2d", pack=2)`` builds the model (keywords override the preset's, key by
  key; the data's shape defaults to the preset's ``data_dim``);
* ``models.preset_train_defaults("pacgan2d", pack=2)`` gives the published ``fit`` options for
  that model (``lr``, ``batch_size``, ``train_size``, ``steps``), to pass to ``fit`` or to fill a
  suite's ``[train]`` table;
* ``models.PRESETS["pacgan2d"]`` is the :class:`Preset` itself: ``.kind`` (the ``models.make``
  name), ``.model`` (constructor keywords, without the data shape) and ``.train``.

A suite's ``[[models]]`` table with ``preset = "pacgan2d"`` means ``kind = preset.kind`` and
``params = {**preset.model, **params}``, with ``preset_train_defaults(name, **params)`` under the
suite's own ``[train]`` keys.

Example:
    >>> from densitylab import models
    >>> gan = models.preset("pacgan2d", pack=2, seed=0)
    >>> gan.config["d_activation"], gan.config["pack"]
    ('maxout', 2)
    >>> models.preset_train_defaults("pacgan2d", pack=2)["batch_size"]
    200
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..registry import REGISTRY, Entry
from .base import GenerativeModel
from .gan import GAN

__all__ = ["Preset", "PRESETS", "preset", "preset_train_defaults", "available_presets"]


@dataclass(frozen=True)
class Preset:
    """A published setup: ``cls(**model)`` trained with ``fit(**train)``.

    Attributes:
        cls: the model class.
        model: constructor keywords, without the data's shape (``data_dim``/``data_shape``),
            which comes from the data set.
        train: ``fit`` options of the published protocol for the preset's own ``model``.
        data_dim: the flat data size the setup was published for (used by :func:`preset` when
            neither ``data_dim`` nor ``data_shape`` is given).
        reference: where the setup comes from.
        train_for: optional function of the resolved model keywords returning the ``fit`` options
            that depend on them (e.g. the batch size of a packed discriminator).
    """

    cls: type[GenerativeModel]
    model: Mapping[str, Any]
    train: Mapping[str, Any]
    data_dim: int | None = None
    reference: str = ""
    train_for: Callable[[dict[str, Any]], dict[str, Any]] | None = field(default=None,
                                                                           repr=False)

    @property
    def kind(self) -> str:
        """The name ``models.make`` and suites use for the model class (``"gan"``)."""
        return self.cls.name

    def model_kwargs(self, **overrides) -> dict[str, Any]:
        """The preset's constructor keywords with ``overrides`` applied key by key."""
        kwargs = {**copy.deepcopy(dict(self.model)), **overrides}
        if "data_dim" not in kwargs and "data_shape" not in kwargs and self.data_dim is not None:
            kwargs["data_dim"] = self.data_dim
        return kwargs

    def train_defaults(self, **model_overrides) -> dict[str, Any]:
        """The published ``fit`` options for the model built with ``model_overrides``."""
        out = copy.deepcopy(dict(self.train))
        if self.train_for is not None:
            out.update(self.train_for(self.model_kwargs(**model_overrides)))
        return out


#: Packed examples per step in PacGAN's 2D experiments (``batch_size`` 100 in the authors'
#: config, each example ``pack`` samples); ``fit``'s ``batch_size`` counts single samples.
PACGAN2D_PACKED_BATCH = 100


def _pacgan2d_train(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"batch_size": PACGAN2D_PACKED_BATCH * int(kwargs.get("pack", 1))}


_PACGAN2D_REFERENCE = (
    "Lin, Khetan, Fanti, Oh, 'PacGAN', NeurIPS 2018, Table 1; the authors' code "
    "(github.com/fjxmlzn/PacGAN) synthetic_data_experiments/2DRing_GAN&PacGAN and "
    "2DGrid_GAN&PacGAN config.py and pacgan_task.py, PacGAN/pacgan/bricks.py, datasets.py, "
    "streams.py, and ALI's ali_algorithm")

#: PacGAN's 2D setup as the authors' code trains it (docs/comparative-analysis.md, "The pacgan2d
#: preset beside the authors' code", gives the line each setting comes from).
_PACGAN2D_MODEL = {
    "latent_dim": 2, "g_hidden": [400] * 4, "d_hidden": [200] * 3, "g_norm": "batch",
    "d_activation": "maxout", "maxout_pieces": 5, "pack": 1, "betas": [0.8, 0.999],
    "init_std": 0.02, "loss": "non_saturating",
    # the authors' training loop: ALI's simultaneous rule; batch norm per pack slot, its
    # population statistics moved once a step and by 50 more batches before each epoch's
    # evaluation (an epoch is 1,000 steps); packed tuples built once and shuffled each epoch
    "updates": "simultaneous", "pack_norm": "per_slot", "bn_updates": "once_per_step",
    "bn_refresh_batches": 50, "bn_refresh_every": 1000, "packs": "fixed",
}

#: 400 epochs of 1,000 steps: the authors' 100,000 packed examples in batches of 100 (each
#: example a tuple of pack points, one bootstrap resample of the 100,000 points per slot).
_PACGAN2D_TRAIN = {"lr": 1e-4, "batch_size": PACGAN2D_PACKED_BATCH, "train_size": 100_000,
                   "steps": 400_000, "lr_schedule": "constant"}

PRESETS: dict[str, Preset] = {
    "pacgan2d": Preset(
        cls=GAN, model=_PACGAN2D_MODEL, train=_PACGAN2D_TRAIN, data_dim=2,
        reference=_PACGAN2D_REFERENCE, train_for=_pacgan2d_train,
    ),
    # The same architecture, data and batch-norm protocol with alternating updates (a
    # discriminator step, then a generator step on fresh noise): the one difference from
    # pacgan2d, so the two update rules compare on equal terms.
    "pacgan2d_alternating": Preset(
        cls=GAN, model={**_PACGAN2D_MODEL, "updates": "alternating"}, train=_PACGAN2D_TRAIN,
        data_dim=2, reference=_PACGAN2D_REFERENCE + " (with alternating updates instead)",
        train_for=_pacgan2d_train,
    ),
}


REGISTRY.presets.add_builtins(Entry(name, p) for name, p in PRESETS.items())


def _presets() -> dict[str, Preset]:
    """The presets of the registry that are :class:`Preset` s (not a suite's kind-and-params
    registrations)."""
    return {name: entry.value for name, entry in REGISTRY.presets.entries().items()
            if isinstance(entry.value, Preset)}


def available_presets() -> list[str]:
    """Names accepted by :func:`preset` and :func:`preset_train_defaults`."""
    return sorted(_presets())


def _get(name: str) -> Preset:
    presets = _presets()
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; expected one of "
                         f"{', '.join(map(repr, sorted(presets)))}")
    return presets[name]


def preset(name: str, **overrides) -> GenerativeModel:
    """Build the model of preset ``name``; ``overrides`` replace the preset's keywords one by one.

    ``pacgan2d`` is PacGAN's published 2D setup (Lin et al., NeurIPS 2018) as the authors' code
    trains it: ``GAN(data_dim=2, latent_dim=2, g_hidden=(400,) * 4, d_hidden=(200,) * 3,
    g_norm="batch", d_activation="maxout", maxout_pieces=5, pack=1, betas=(0.8, 0.999),
    init_std=0.02, updates="simultaneous", pack_norm="per_slot", bn_updates="once_per_step",
    bn_refresh_batches=50, bn_refresh_every=1000, packs="fixed")``; set ``pack=m`` for
    PacGAN-m. Train it with ``fit(data, **preset_train_defaults("pacgan2d", pack=m))`` (lr 1e-4,
    100 packed examples a step, a fixed set of 100,000 points, 400,000 steps) or a shorter
    ``steps``. ``pacgan2d_alternating`` differs only by ``updates="alternating"``. The settings
    densitylab used before (alternating, joint batch norm moved twice a step, packs regrouped
    each epoch) are ``pacgan2d`` with ``updates="alternating", pack_norm="joint",
    bn_updates="every_pass", bn_refresh_batches=0, packs="regrouped"``.

    Raises:
        ValueError: unknown preset; TypeError/ValueError from the model's own checks.
    """
    p = _get(name)
    return p.cls(**p.model_kwargs(**overrides))


def preset_train_defaults(name: str, **model_overrides) -> dict[str, Any]:
    """The published ``fit`` options of preset ``name`` for the model built with
    ``model_overrides`` (for ``pacgan2d``: ``{"lr": 1e-4, "batch_size": 100 * pack,
    "train_size": 100000, "steps": 400000, "lr_schedule": "constant"}``)."""
    return _get(name).train_defaults(**model_overrides)
