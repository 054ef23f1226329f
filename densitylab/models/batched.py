"""Many seeds of one model trained as one batched computation, derived from the single model.

A toy protocol trains the same network for 10 seeds. Run one after another, each seed launches
thousands of tiny kernels; batched, the S seeds share every launch.

Nothing here re-implements a network or a loss. The S single models are built (so slice ``s``
is initialised as ``Model(..., seed=seeds[s])``) and their parameters and buffers stacked along
a new leading dimension, in a module tree with the single model's layout
(``batched.networks.state_dict()`` is the stacked single state dicts, key for key, and
:meth:`BatchedModel.unstack` is indexing). Training runs the single model's own training step
(``_step``) on a :class:`~densitylab.models.train.StackedEngine`, which evaluates each of the
model's objectives per seed by ``torch.vmap`` of ``torch.func.functional_call`` on the single
model (the recipe of PyTorch's model ensembling: ``stack_module_state`` + ``vmap``). So any
architecture the single model supports batches: MLPs, conv nets, batch norm (its running
statistics are stacked buffers, updated per seed) and maxout.

Why the seeds do not interact, and why slice ``s`` is the separate run with seed ``seeds[s]``.

* The summed loss ``sum_s L_s`` has gradient ``dL_s / d theta_s`` in slice ``s`` (no parameter
  is shared), and Adam (Kingma and Ba, ICLR 2015) updates each element from its own moments, so
  one Adam over the stacked tensors applies exactly the per-slice update that S separate
  optimisers would. (Pyro's ClippedAdam clamps elementwise, so it batches too.)
* Slice ``s`` draws its data batches and its noise outside vmap from its own generators, seeded
  as ``Model.fit(..., seed=seeds[s])`` seeds them, in the order the single step draws them; on
  CPU a batched fit therefore reproduces S separate fits up to floating-point rounding (the
  tests check 1e-10 in float64), and on any device each slice is distributed as a separate run.
* A seed whose loss or gradient turns non-finite is frozen at its last finite parameters (as
  ``fit`` of a single model keeps them) while the other seeds train on; its history is marked
  ``diverged`` and :attr:`BatchedModel.divergences` names the step and the loss.

The VAE stays a Pyro program: under vmap each seed's loss is read from Pyro traces of its guide
and of its model replayed on it (``VAE.trace_elbo_objective``), the ``Trace_ELBO`` objective for
this reparameterised guide, with the guide's noise given per seed.

Not batched (``ValueError`` naming the option; train those one seed at a time): objectives that
differentiate inside the loss (the GAN's gradient and R1 penalties and unrolled steps), the VAE's
analytic-KL estimator and several particles, and models without an engine training step.

Example:
    >>> from densitylab import distributions, models
    >>> gans = models.BatchedGAN(seeds=[0, 1, 2], data_dim=2, hidden=(16, 16))
    >>> histories = gans.fit(distributions.ring(), steps=5, batch_size=32)
    >>> gans.sample(4, seed=0).shape
    torch.Size([3, 4, 2])
    >>> [type(m).__name__ for m in gans.unstack()]
    ['GAN', 'GAN', 'GAN']
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from .._runtime import make_generator
from .._validation import check_int
from .base import GenerativeModel, History, NetworksModule
from .diffusion import NETWORK_KEY as DIFFUSION_NETWORK_KEY
from .diffusion import Diffusion
from .flow import Flow
from .gan import GAN
from .train import vmap_call
from .trainer import Trainer, check_seeds
from .vae import VAE

__all__ = ["BatchedModel", "BatchedGAN", "BatchedVAE", "BatchedDiffusion", "BatchedFlow",
           "stack_networks",
           "batched_class"]


def stack_networks(nets: Sequence[nn.Module]) -> nn.Module:
    """One module with the layout of ``nets[0]`` whose every parameter and buffer is the stack of
    the S modules' (leading dimension S): ``torch.func.stack_module_state`` kept as a module
    tree, so it saves, loads, moves and casts like the single networks. It is a container of
    state, not callable as a network (see :class:`~densitylab.models.train.StackedEngine`)."""
    out = copy.deepcopy(nets[0])
    params = [dict(n.named_parameters()) for n in nets]
    buffers = [dict(n.named_buffers()) for n in nets]
    with torch.no_grad():
        for name, _ in list(out.named_parameters()):
            owner, attr = _owner(out, name)
            setattr(owner, attr, nn.Parameter(torch.stack([p[name].detach() for p in params])))
        for name, _ in list(out.named_buffers()):
            owner, attr = _owner(out, name)
            setattr(owner, attr, torch.stack([b[name].detach() for b in buffers]))
    return out


def _owner(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, attr = name.rpartition(".")
    return (module.get_submodule(path) if path else module), attr


class BatchedModel(NetworksModule):
    """S seeds of one model class trained together; see the module docstring.

    Subclasses set ``single_class`` and may refuse options in ``_check_supported``.
    """

    single_class: ClassVar[type[GenerativeModel]]
    #: The optional keywords of ``fit`` (as :attr:`GenerativeModel.fit_options`).
    fit_options: ClassVar[frozenset[str]] = frozenset({
        "lr", "seeds", "device", "progress", "num_threads", "lr_schedule", "train_size"})

    def __init__(self, num_seeds: int | None = None, *, seeds: Sequence[int] | None = None,
                 **hyperparameters):
        if "seed" in hyperparameters:
            raise TypeError(f"{type(self).__name__} takes seeds=[...] (one per slice), not seed=")
        super().__init__()
        self.seeds = check_seeds(seeds, num_seeds)
        self._hyperparameters = dict(hyperparameters)
        # The single models validate every argument and give each slice its initial weights.
        singles = [self.single_class(**hyperparameters, seed=s) for s in self.seeds]
        first = singles[0]
        self._config = first.config
        self._config.pop("seed", None)
        self.data_shape = first.data_shape
        self.latent_dim = getattr(first, "latent_dim", None)
        if not self.single_class.batchable():
            self._unsupported("model", self.single_class.__name__,
                              "models whose training step is written against an engine")
        self._check_supported(self._config)
        self.networks = stack_networks([m.networks for m in singles])
        self.eval()
        # The single model whose methods (objectives, sampling) run on each slice's state;
        # not a submodule: its own tensors are never used.
        object.__setattr__(self, "_template", first)
        self.histories: list[History] | None = None
        self.divergences: list[dict[str, float] | None] = [None] * len(self.seeds)

    # ------------------------------------------------------------------ properties
    @property
    def num_seeds(self) -> int:
        """S, the number of stacked models."""
        return len(self.seeds)

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self._hyperparameters.items())
        return f"{type(self).__name__}(seeds={list(self.seeds)}{args})"

    def _unsupported(self, option: str, value, allowed: str) -> None:
        raise ValueError(
            f"{type(self).__name__} does not support {option}={value!r} (supported: {allowed}); "
            f"train such models one seed at a time with models.{self.single_class.__name__}"
        )

    def _check_supported(self, config: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Raise (through :meth:`_unsupported`) for options that cannot run under vmap."""

    # ------------------------------------------------------------------ training
    def fit(self, data, steps: int = 1000, batch_size: int = 256, lr: float | None = None,
            seeds: Sequence[int] | None = None, device=None,
            progress: bool | None = None, num_threads: int | None = None,
            lr_schedule: str = "constant", train_size: int | None = None) -> list[History]:
        """Train all S slices for ``steps`` steps; return one :class:`History` per slice.

        Slice ``s`` sees what ``single.fit(data, steps, batch_size, lr, seed=seeds[s])`` would:
        its own stream of batches (fresh draws when ``data`` is a distribution) and of noise.

        Arguments:
            data: an array/tensor ``(n, *data_shape)`` or a distribution with ``.sample(n, seed)``.
            steps, batch_size, lr: as for the single model (its ``default_lr`` when None).
            seeds: one training seed per slice (default: the initialisation seeds).
            device: ``"cpu"``, ``"cuda"``, ``"auto"`` or None (stay where the model is).
            progress: True/False forces the progress display; None: a bar on a TTY.
            num_threads: torch CPU threads during training (None: leave torch's setting).
            lr_schedule: ``"constant"`` or ``"cosine"``, as for the single model's ``fit``.
            train_size: a fixed training set of this many points per slice, drawn once from
                ``data`` with the slice's seed, as the single model's ``fit`` draws it.

        A slice whose loss or gradient turns non-finite keeps its last finite parameters and
        stops (its history has ``diverged=True``; :attr:`divergences` holds step and loss);
        training stops early only when every slice has. ``KeyboardInterrupt`` is re-raised after
        leaving the model usable, with partial histories marked ``interrupted``.
        """
        if seeds is not None:
            seeds = check_seeds(seeds)
        trainer = Trainer(steps, batch_size, lr, lr_schedule=lr_schedule, train_size=train_size,
                          seeds=seeds, device=device, progress=progress,
                          num_threads=num_threads)
        return trainer.fit(self, data)

    # ------------------------------------------------------------------ sampling
    def _slice_seeds(self, seed) -> list[int | None]:
        """The sampling seed of each slice: ``None`` for all, an int for all, or one per slice."""
        if seed is None:
            return [None] * self.num_seeds
        if isinstance(seed, Sequence) and not isinstance(seed, str):
            if len(seed) != self.num_seeds:
                raise ValueError(f"seed must be an int or {self.num_seeds} ints (one per slice), "
                                 f"got {len(seed)}")
            return [check_int(x, "seed entry", minimum=0) for x in seed]
        return [check_int(seed, "seed", minimum=0)] * self.num_seeds

    def _sample_generators(self, seed) -> list[torch.Generator | None]:
        return [None if s is None else make_generator(s, self.device)
                for s in self._slice_seeds(seed)]

    def sample(self, n: int, seed: int | Sequence[int] | None = None, **options) -> torch.Tensor:
        """Draw ``n`` samples per slice, ``(S, n, *data_shape)``, on :attr:`device`.

        ``seed``: an int seeds every slice alike, so slice ``s`` equals
        ``unstack()[s].sample(n, seed)``; a sequence gives one seed per slice; None uses the
        global RNG. ``options`` are the single model's (the VAE's ``noise``).
        """
        n = check_int(n, "n", minimum=0)
        gens = self._sample_generators(seed)
        template = self._synced_template()
        per_slice = [template._sample_inputs(n, g, **options) for g in gens]
        inputs = [torch.stack(column) for column in zip(*per_slice, strict=True)]
        self.eval()
        template.eval()
        with torch.no_grad():
            return vmap_call(template, self.networks, "_sample_from", *inputs)

    def _synced_template(self) -> GenerativeModel:
        """The template on the batched model's device and dtype, so that it draws its random
        inputs as the single models (unstacked) would."""
        template = self._template
        template.networks.to(device=self.device, dtype=self._dtype())
        return template

    def unstack(self) -> list[GenerativeModel]:
        """The S slices as ordinary single models (``seed=seeds[s]``) on :attr:`device`.

        Each carries its slice's history (``model.history``) when the batched model was fitted.
        """
        state = self.networks.state_dict()
        out = []
        for i, seed in enumerate(self.seeds):
            model = self.single_class(**self._hyperparameters, seed=seed)
            model.networks.to(self._dtype())
            model.networks.load_state_dict({k: v[i].detach().clone() for k, v in state.items()})
            model.to(self.device)
            model.eval()
            if self.histories is not None:
                model.history = self.histories[i]
            out.append(model)
        return out


class BatchedGAN(BatchedModel):
    """S seeds of :class:`~densitylab.models.GAN` trained as one batched computation.

    ``BatchedGAN(num_seeds=S)`` or ``BatchedGAN(seeds=[...])``, then the keyword arguments of
    ``GAN`` (``data_dim`` / ``data_shape``, ``network``, ``g_norm``, ``d_activation``, ``loss``,
    ``n_critic``, ``pack``, ...): every architecture of the single GAN. Not supported
    (``ValueError``): ``gp_weight > 0`` (so ``loss="wasserstein"`` needs ``gp_weight=0``),
    ``r1_weight > 0`` and ``unrolled_steps > 0``, whose objectives differentiate inside the loss.
    """

    single_class = GAN

    def _check_supported(self, config):
        for option in ("gp_weight", "r1_weight", "unrolled_steps"):
            if config[option]:
                self._unsupported(option, config[option], "0")

    @property
    def generator(self) -> nn.Module:
        """The stacked generators' parameters (layout of ``GAN.generator``, leading dim S)."""
        return self.networks["generator"]

    @property
    def discriminator(self) -> nn.Module:
        """The stacked discriminators' parameters (layout of ``GAN.discriminator``)."""
        return self.networks["discriminator"]


class BatchedVAE(BatchedModel):
    """S seeds of :class:`~densitylab.models.VAE` trained as one batched computation.

    ``BatchedVAE(num_seeds=S)`` or ``BatchedVAE(seeds=[...])``, then the keyword arguments of
    ``VAE`` (MLP, linear or conv networks; Gaussian or Bernoulli likelihood; Adam or
    ClippedAdam). The loss of slice ``s`` is its negative ELBO per data point, the single VAE's
    ``Trace_ELBO`` objective with one particle, read from Pyro traces per seed. ``jit=True`` is
    accepted and changes nothing here: the batched step never compiles the ELBO (it reads the
    traces under ``torch.vmap``), and since the single JIT ELBO draws the same noise, slice
    ``s`` still equals the separate ``VAE(jit=True)`` fit up to rounding. Not supported
    (``ValueError``): ``num_particles > 1``, ``estimator="mean_field"``. Log-densities (IWAE)
    come from the single models of :meth:`unstack`.
    """

    single_class = VAE

    def _check_supported(self, config):
        checks = (("num_particles", (1,)), ("estimator", ("trace",)))
        for option, allowed in checks:
            if config[option] not in allowed:
                self._unsupported(option, config[option], ", ".join(map(repr, allowed)))

    @property
    def encoder(self) -> nn.Module:
        """The stacked guide networks' parameters (layout of ``VAE.encoder``, leading dim S)."""
        return self.networks["encoder"]

    @property
    def decoder(self) -> nn.Module:
        """The stacked decoders' parameters (layout of ``VAE.decoder``, leading dim S)."""
        return self.networks["decoder"]

    def sample(self, n: int, seed: int | Sequence[int] | None = None,
               noise: bool = False) -> torch.Tensor:
        """``(S, n, *data_shape)`` samples: decoder means (``noise=False``) or with the
        likelihood's noise (Gaussian only; for Bernoulli draws use :meth:`unstack`).

        Seeds as in :meth:`BatchedModel.sample`; slice ``s`` equals
        ``unstack()[s].sample(n, seed, noise)`` for an int ``seed``.
        """
        if noise and self._config["likelihood"] != "gaussian":
            raise ValueError("BatchedVAE.sample(noise=True) draws Gaussian noise only; for "
                             "Bernoulli draws sample the models of unstack()")
        return super().sample(n, seed, noise=bool(noise))


class BatchedDiffusion(BatchedModel):
    """S seeds of :class:`~densitylab.models.Diffusion` trained as one batched computation.

    ``BatchedDiffusion(num_seeds=S)`` or ``BatchedDiffusion(seeds=[...])``, then the keyword
    arguments of ``Diffusion`` (MLP or conv noise predictor, every schedule and time sampling).
    Each slice minimises the single model's ``denoising_loss`` on its own batches, training
    times and noise. Samplers and likelihoods are iterative: :meth:`sample` runs each slice's
    single model (slice ``s`` equals ``unstack()[s].sample(n, seed, ...)``), and log-densities
    come from the single models of :meth:`unstack`.
    """

    single_class = Diffusion

    @property
    def noise_predictor(self) -> nn.Module:
        """The stacked noise-prediction networks (layout of ``Diffusion.noise_predictor``)."""
        return self.networks[DIFFUSION_NETWORK_KEY]

    @property
    def eps(self) -> nn.Module:
        """Deprecated name of :attr:`noise_predictor`."""
        warnings.warn("BatchedDiffusion.eps is deprecated; use BatchedDiffusion.noise_predictor",
                      DeprecationWarning, stacklevel=2)
        return self.noise_predictor

    def sample(self, n: int, seed: int | Sequence[int] | None = None, **options) -> torch.Tensor:
        """``(S, n, *data_shape)`` samples, slice by slice (seeds as in
        :meth:`BatchedModel.sample`; ``options`` are ``Diffusion.sample``'s)."""
        n = check_int(n, "n", minimum=0)
        seeds = self._slice_seeds(seed)
        return torch.stack([model.sample(n, s, **options)
                            for model, s in zip(self.unstack(), seeds, strict=True)])


class BatchedFlow(BatchedModel):
    """S seeds of :class:`~densitylab.models.Flow` trained as one batched computation.

    ``BatchedFlow(num_seeds=S)`` or ``BatchedFlow(seeds=[...])``, then the keyword arguments of
    ``Flow`` (every ``kind``). Each slice minimises the single flow's ``nll_objective`` on its
    own batches, zuko's layers evaluated per seed under ``torch.vmap``; its standardising map is
    fixed from its own first batch, as the single flow's is. :meth:`sample` inverts the stacked
    layers per seed (slice ``s`` equals ``unstack()[s].sample(n, seed)`` for an int ``seed``);
    exact log-densities come from the single models of :meth:`unstack`.
    """

    single_class = Flow

    @property
    def layers(self) -> nn.Module:
        """The stacked flow layers (layout of ``Flow.networks["layers"]``, leading dim S)."""
        return self.networks["layers"]


#: The batched classes written out for the model families (named, with their own docs and
#: checks); any other batchable class gets one derived by :func:`batched_class`.
_NAMED_BATCHED: dict[type[GenerativeModel], type[BatchedModel]] = {
    GAN: BatchedGAN, VAE: BatchedVAE, Diffusion: BatchedDiffusion, Flow: BatchedFlow}


#: The classes :func:`batched_class` derived, one per model class (so each is stable).
_DERIVED_BATCHED: dict[type[GenerativeModel], type[BatchedModel]] = {}


def batched_class(model: type | str) -> type[BatchedModel] | None:
    """The class training many seeds of the model class ``model`` as one computation: the
    named class of a model family (``BatchedGAN`` for ``GAN``), else one derived from the class
    itself when its training step is written against an engine (``model.batchable()``); None
    for anything else. A string names a family's kind (``"gan"``); the suite's
    ``batched_model_class(kind)`` covers registered kinds too.
    """
    if isinstance(model, str):
        return {cls.name: b for cls, b in _NAMED_BATCHED.items()}.get(model)
    if not (isinstance(model, type) and issubclass(model, GenerativeModel)) \
            or not model.batchable():
        return None
    if model in _NAMED_BATCHED:
        return _NAMED_BATCHED[model]
    if model not in _DERIVED_BATCHED:
        # a subclass of a family keeps the family's batched checks and sampling
        base = next((_NAMED_BATCHED[c] for c in model.__mro__ if c in _NAMED_BATCHED),
                    BatchedModel)
        _DERIVED_BATCHED[model] = type(f"Batched{model.__name__}", (base,), {
            "single_class": model, "__module__": model.__module__,
            "__doc__": f"S seeds of {model.__name__} trained as one batched computation, "
                       "derived from its engine training step (see BatchedModel)."})
    return _DERIVED_BATCHED[model]
