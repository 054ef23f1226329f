"""The interface every model shares: ``fit``, ``sample``, ``log_prob``, ``save`` and ``load``.

A model is an ``nn.Module`` that owns its networks (``model.networks``, an ``nn.ModuleDict``,
its only submodule) and a JSON-able ``config`` from which the same architecture can be rebuilt;
``save`` writes both, atomically (the file holds ``networks.state_dict()``, as it always has).
A model holds parameters and objectives only: its training step is written once against an
engine (:mod:`densitylab.models.train`), and ``fit`` hands the model to the one
:class:`~densitylab.models.trainer.Trainer`, which runs that step for one seed here and for many
in :mod:`densitylab.models.batched`, and keeps optimisers and fit-specific objectives to itself.

Training (``fit``) guarantees:

* **Seeds.** ``seed`` fixes the initial draw order of every random number used in training (data
  batches, latent noise, Monte Carlo draws). The global torch RNG is forked for the duration of
  ``fit`` and restored afterwards, so training never disturbs the caller's random stream. The
  same seed on CPU gives bit-identical training. Weights are initialised by the constructor
  (``seed=`` there, also without touching the global RNG).
* **Divergence.** A non-finite loss or gradient is detected *before* the optimiser applies it:
  ``fit`` raises :class:`densitylab.TrainingDiverged` naming the (0-based) step and the loss,
  and the model keeps the finite parameters it had before that step.
* **Ctrl-C.** ``KeyboardInterrupt`` during ``fit`` is re-raised (so a suite never records an
  interrupted run as finished) after the model is left usable: weights from the last completed
  step, eval mode, and ``model.history`` holding the partial history with ``interrupted=True``.
* **Devices.** ``device`` is ``"cpu"``, ``"cuda[:i]"`` or ``"auto"``; the model moves there and
  stays there. ``sample`` returns tensors on the model's device (``model.device``).
"""

from __future__ import annotations

import abc
import contextlib
import copy
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .. import __version__
from .._errors import TrainingDiverged
from .._runtime import atomic_torch_save, fused_adam, make_generator, resolve_device
from .._validation import check_int
from ..registry import model_class, register_model_class
from .data import check_data, iter_batches
from .networks import conv_shape_ok
from .train import LR_SCHEDULES, check_finite_step, check_fit_args
from .trainer import History, Trainer

__all__ = ["GenerativeModel", "History", "NoDensityError", "iter_batches", "check_data",
           "LR_SCHEDULES", "check_finite_step", "check_fit_args", "TrainingDiverged"]


class NoDensityError(NotImplementedError):
    """Raised by ``log_prob`` of a model that defines no density (a GAN is an implicit model)."""


def resolve_data_shape(data_dim, data_shape) -> tuple[int, ...]:
    """The shape of one data point from exactly one of ``data_dim`` (flat) and ``data_shape``."""
    if (data_dim is None) == (data_shape is None):
        raise ValueError("give exactly one of data_dim (flat data) and data_shape (e.g. (1, 8, 8))")
    if data_dim is not None:
        return (check_int(data_dim, "data_dim", minimum=1),)
    if isinstance(data_shape, int) or not isinstance(data_shape, Sequence):
        raise TypeError(f"data_shape must be a sequence of ints, got {data_shape!r}")
    if not 1 <= len(data_shape) <= 3:
        raise ValueError(f"data_shape must be (d,) or (C, H, W), got {tuple(data_shape)}")
    return tuple(check_int(s, "data_shape entry", minimum=1) for s in data_shape)


def check_hidden(hidden) -> tuple[int, ...]:
    """Check a sequence of hidden-layer widths (each >= 1) and return it as a tuple."""
    if isinstance(hidden, int) or not isinstance(hidden, Sequence):
        raise TypeError(f"hidden must be a sequence of layer widths, got {hidden!r}")
    return tuple(check_int(h, "hidden layer width", minimum=1) for h in hidden)


def check_network_shape(network: str, shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` when ``network="conv"`` is asked for data it cannot take."""
    if network == "conv" and not conv_shape_ok(shape):
        raise ValueError(
            f"network='conv' needs data_shape (C, H, W) with H, W divisible by 4, got {shape}"
        )


@contextlib.contextmanager
def seeded_init(seed: int | None) -> Iterator[None]:
    """Build weights inside this block: seeded by ``seed`` (None: the global RNG's draws), and
    the caller's global RNG stream is left as it was."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        yield


class NetworksModule(nn.Module):
    """What single and batched models share: an ``nn.Module`` whose ``networks`` (an
    ``nn.ModuleDict``) hold every parameter and buffer, on one device, and a JSON-able
    ``_config`` of hyperparameters (read ``_config`` on hot paths: ``config`` is a copy).
    ``parameters()``, ``train()``/``eval()`` and ``to()`` are ``nn.Module``'s; ``to`` also takes
    ``"auto"`` (CUDA when available)."""

    networks: nn.ModuleDict
    _config: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able hyperparameters (a copy): for a single model, the constructor arguments that
        rebuild its architecture, ``type(m)(**m.config)``; for a batched model, its single
        model's config without the seed."""
        return copy.deepcopy(self._config)

    @property
    def device(self) -> torch.device:
        """Where the parameters live and where ``sample`` returns tensors."""
        for t in self.networks.parameters():
            return t.device
        for t in self.networks.buffers():
            return t.device
        return torch.device("cpu")

    def to(self, *args, **kwargs):
        """``nn.Module.to``; a device may also be ``"auto"`` (CUDA when available). Returns self."""
        if args and isinstance(args[0], str | torch.device):
            args = (resolve_device(args[0]), *args[1:])
        elif isinstance(kwargs.get("device"), str | torch.device):
            kwargs["device"] = resolve_device(kwargs["device"])
        return super().to(*args, **kwargs)

    def _dtype(self) -> torch.dtype:
        return next(self.networks.parameters()).dtype


class GenerativeModel(NetworksModule, abc.ABC):
    """Abstract base of densitylab's models: an ``nn.Module`` with a training objective; see the
    module docstring for ``fit``'s guarantees.

    Subclasses define ``name``, ``has_density``, build ``self.networks`` in ``__init__`` and
    implement ``_sample``, ``_param_groups`` (parameter groups, each with the optimiser
    ``_make_optimizer`` builds) and ``_step(engine)``: the training step written once against an
    engine (:mod:`densitylab.models.train`), which the trainer runs for one seed and, derived
    from this single model, for many seeds as one batched computation.
    """

    name: ClassVar[str] = "model"
    has_density: ClassVar[bool] = False
    #: How ``log_prob`` computes a density (the suite's likelihood metric records both): its
    #: estimator in words, and its kind (``exact``, ``bound in expectation``, ``approximation``).
    log_prob_estimator: ClassVar[str] = "model.log_prob"
    log_prob_kind: ClassVar[str] = "unknown"
    default_lr: ClassVar[float] = 1e-3
    #: The optional keywords of ``fit``, ``sample`` and ``log_prob``, declared so that callers
    #: (the benchmark suite) pass only what a model takes without reading signatures; a
    #: subclass that adds a keyword declares it here too.
    fit_options: ClassVar[frozenset[str]] = frozenset({
        "lr", "device", "callback", "progress", "checkpoint_every", "checkpoint_path",
        "num_threads", "lr_schedule", "train_size"})
    sample_options: ClassVar[frozenset[str]] = frozenset()
    log_prob_options: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        register_model_class(cls)  # for load: densitylab.registry's class table

    def __init__(self, config: dict[str, Any], data_shape: tuple[int, ...]):
        super().__init__()
        self._config = config
        self.data_shape = tuple(int(s) for s in data_shape)
        self.networks = nn.ModuleDict()
        self.history: History | None = None
        self._weights_loaded = False  # set by load: trained weights without a fit here

    # ------------------------------------------------------------------ properties
    @property
    def data_dim(self) -> int:
        """Number of scalars in one data point (``prod(data_shape)``)."""
        return math.prod(self.data_shape)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ training
    def fit(self, data, steps: int = 1000, batch_size: int = 256, lr: float | None = None,
            seed: int | None = None, device=None,
            callback: Callable[[int, dict[str, float], GenerativeModel], bool | None] | None = None,
            progress: bool | None = None, checkpoint_every: int | None = None,
            checkpoint_path: str | Path | None = None,
            num_threads: int | None = None, lr_schedule: str = "constant",
            train_size: int | None = None) -> History:
        """Train for ``steps`` steps on minibatches of ``data``; return a :class:`History`.

        Arguments:
            data: an array/tensor ``(n, *data_shape)``, or a distribution with ``.sample(n, seed)``
                (fresh batches each step; a tuple result uses its first element).
            steps: number of training steps (for a GAN: generator steps).
            batch_size: rows per step.
            lr: learning rate (the model's ``default_lr`` when None).
            seed: makes training reproducible (None: drawn from the global RNG).
            device: ``"cpu"``, ``"cuda"``, ``"auto"`` or None (stay on the current device).
            callback: ``callback(step, losses, model)`` after each step; returning True stops.
            progress: True/False forces the progress display on/off; None: bar on a TTY.
            checkpoint_every, checkpoint_path: save the model atomically every so many steps
                (weights and config, not the optimiser state).
            num_threads: torch CPU threads during training (None: leave torch's setting). Small
                networks train fastest with 1 thread, and several threads on a busy machine can
                be many times slower.
            lr_schedule: ``"constant"`` or ``"cosine"`` (``lr * (1 + cos(pi t / steps)) / 2`` at
                step t; Loshchilov and Hutter, ICLR 2017, without restarts), a
                ``torch.optim.lr_scheduler.LambdaLR``. Annealing sharpens a GAN's samples at the
                end of a short run.
            train_size: with a distribution as ``data``, draw a fixed training set of this many
                points once (seeded from ``seed``) and iterate epochs over it, shuffled each
                epoch, instead of drawing fresh batches each step (None). PacGAN's protocol
                trains on 100,000 points.

        Raises:
            densitylab.TrainingDiverged: a non-finite loss; the model keeps its last finite weights.
            KeyboardInterrupt: re-raised after leaving the model usable (see module docstring).
        """
        trainer = Trainer(steps, batch_size, lr, lr_schedule=lr_schedule, train_size=train_size,
                          seeds=seed, device=device, callback=callback, progress=progress,
                          checkpoint_every=checkpoint_every, checkpoint_path=checkpoint_path,
                          num_threads=num_threads)
        return trainer.fit(self, data)[0]

    def _training_context(self) -> contextlib.AbstractContextManager:
        """A context held for the whole of a fit (the VAE's own Pyro parameter store)."""
        return contextlib.nullcontext()

    # -- the engine interface (see densitylab.models.train)
    def _param_groups(self) -> dict[str, nn.Module]:
        """Parameter groups, each trained by its own optimiser: ``{name: module}``."""
        raise NotImplementedError(f"{type(self).__name__} defines no parameter groups")

    def _make_optimizer(self, group: str, params: list[torch.Tensor],
                        lr: float) -> torch.optim.Optimizer:
        """The optimiser of ``group`` (Adam by default); also used on stacked parameters."""
        return fused_adam(params, lr=lr)

    def _fit_objectives(self, lr: float, batch_size: int) -> dict[str, Callable[..., Any]]:
        """Objectives that depend on the fit's settings, built once per fit and kept by the
        engine (not on the model): ``{name: callable}``, used by ``engine.update(group, name,
        ...)`` in place of the method ``name``. None by default."""
        return {}

    def _step(self, engine) -> dict[str, Any]:
        """One training step written against ``engine``; returns the step's losses."""
        raise NotImplementedError(f"{type(self).__name__} has no engine training step")

    @classmethod
    def batchable(cls) -> bool:
        """True when the model's training step is written against an engine, so many seeds can
        train as one batched computation derived from it."""
        return cls._step is not GenerativeModel._step

    def _fixed_packs(self) -> int | None:
        """The pack size m when training batches come from packs built once (see
        :func:`iter_batches`), None for plain shuffled batches (the default)."""
        return None

    def _check_training(self, batch_size: int) -> None:  # noqa: B027 - optional hook
        """Raise ``ValueError`` for training options the model cannot take (single or batched)."""

    # ------------------------------------------------------------------ sampling / density
    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """Draw ``n`` samples ``(n, *data_shape)`` on ``model.device``; ``seed`` fixes them."""
        return self._sampled(n, seed)

    def _sampled(self, n: int, seed: int | None, **options) -> torch.Tensor:
        """What every ``sample`` does: check ``n``, warn when untrained, then ``_sample(n, gen,
        **options)`` in eval mode without gradients, ``gen`` seeded by ``seed``. A model whose
        ``sample`` takes options checks them and calls this."""
        n = check_int(n, "n", minimum=0)
        self._warn_if_untrained("sample", stacklevel=4)
        gen = make_generator(seed, self.device)
        self.eval()
        with torch.no_grad():
            return self._sample(n, gen, **options)

    def _warn_if_untrained(self, method: str, stacklevel: int = 3) -> None:
        """Warn (``UserWarning``) that ``method`` is used on the random initial weights: the
        model was neither fitted nor loaded. A warning rather than an error, as an untrained
        model's samples are legitimate (a baseline, a shape check); every model family warns
        alike."""
        if self.history is None and not self._weights_loaded:
            warnings.warn(f"{type(self).__name__}.{method} before fit: the networks are untrained "
                          "(their random initial weights); call fit(...) first, or load a "
                          "trained model with models.load(path)", UserWarning,
                          stacklevel=stacklevel)

    @abc.abstractmethod
    def _sample(self, n: int, gen: torch.Generator | None, **options) -> torch.Tensor:
        """Draw samples using ``gen`` (the global RNG when None) and the checked ``options`` of
        the model's ``sample``."""

    def log_prob(self, x, **kwargs) -> torch.Tensor:
        """Log-density of each row of ``x``; :class:`NoDensityError` unless ``has_density``."""
        raise NoDensityError(f"{type(self).__name__} defines no density")

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, Any]:
        """Everything ``save`` writes: class name, config and weights (on CPU)."""
        weights = {k: v.detach().cpu() for k, v in self.networks.state_dict().items()}
        return {"class": type(self).__name__, "config": self.config, "state_dict": weights,
                "densitylab_version": __version__}

    def save(self, path: str | Path) -> Path:
        """Write config and weights to ``path`` atomically (temp file, fsync, rename)."""
        return atomic_torch_save(self.state(), path)

    @classmethod
    def load(cls, path: str | Path, device="cpu") -> GenerativeModel:
        """Rebuild a model saved with ``save`` (on ``device``); checks the saved class matches."""
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
            raise ValueError(f"{path} is not a densitylab model file")
        if cls is not GenerativeModel and payload.get("class") != cls.__name__:
            raise ValueError(
                f"{path} holds a {payload.get('class')}, not a {cls.__name__}; "
                "use models.load(path)"
            )
        return _from_payload(payload, device)


def _from_payload(payload: dict[str, Any], device) -> GenerativeModel:
    model = model_class(payload.get("class"))(**payload["config"])
    model.networks.load_state_dict(payload["state_dict"])
    model._weights_loaded = True
    model.eval()
    return model.to(device)
