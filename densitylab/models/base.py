"""The interface every model shares: ``fit``, ``sample``, ``log_prob``, ``save`` and ``load``.

A model is an ``nn.Module`` that owns its networks (``model.networks``, an ``nn.ModuleDict``,
its only submodule) and a JSON-able ``config`` from which the same architecture can be rebuilt;
``save`` writes both, atomically (the file holds ``networks.state_dict()``, as it always has).
Its training step is written once against an engine (:mod:`densitylab.models.train`), which
``fit`` runs for one seed and :mod:`densitylab.models.batched` for many.

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
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .. import __version__
from .._errors import TrainingDiverged
from .._runtime import atomic_torch_save, make_generator, resolve_device, torch_threads
from .._validation import as_tensor, check_int
from .networks import conv_shape_ok
from .train import (
    LR_SCHEDULES,
    NonFinite,
    SingleEngine,
    check_finite_step,
    check_fit_args,
    lr_schedulers,
    run_steps,
)

__all__ = ["GenerativeModel", "History", "NoDensityError", "iter_batches", "LR_SCHEDULES",
           "check_finite_step", "check_fit_args"]

#: Kept under its old name for model code written against it (``raise _NonFinite(loss)``).
_NonFinite = NonFinite


class NoDensityError(NotImplementedError):
    """Raised by ``log_prob`` of a model that defines no density (a GAN is an implicit model)."""


@dataclass
class History:
    """Per-step training losses of one ``fit`` call.

    ``losses[name][i]`` is loss ``name`` at step ``i`` (0-based). ``interrupted`` is True when
    Ctrl-C stopped training; ``diverged`` when a non-finite loss did; ``stopped_early`` when the
    callback asked to stop. ``seconds`` is the wall time of the loop.
    """

    losses: dict[str, list[float]] = field(default_factory=dict)
    interrupted: bool = False
    diverged: bool = False
    stopped_early: bool = False
    seconds: float = 0.0

    def append(self, step_losses: dict[str, float]) -> None:
        """Record the losses of one step."""
        for key, value in step_losses.items():
            self.losses.setdefault(key, []).append(value)

    @property
    def steps(self) -> int:
        """Number of completed steps."""
        return max((len(v) for v in self.losses.values()), default=0)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, key: str) -> list[float]:
        return self.losses[key]

    def mean(self, key: str, first: int | None = None, last: int | None = None) -> float:
        """Mean of loss ``key`` over its ``first`` or ``last`` k steps (all steps by default)."""
        values = self.losses[key]
        if first is not None:
            values = values[:first]
        elif last is not None:
            values = values[-last:]
        return math.fsum(values) / max(len(values), 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the history."""
        return {
            "losses": {k: list(v) for k, v in self.losses.items()},
            "steps": self.steps,
            "interrupted": self.interrupted,
            "diverged": self.diverged,
            "stopped_early": self.stopped_early,
            "seconds": self.seconds,
        }


def iter_batches(data, batch_size: int, data_shape: tuple[int, ...], *, device: torch.device,
                 dtype: torch.dtype, seed: int | None, train_size: int | None = None,
                 fixed_packs: int | None = None) -> Iterator[torch.Tensor]:
    """Endless stream of ``(batch_size, *data_shape)`` training batches on ``device``.

    ``data`` is an array or tensor ``(n, *data_shape)`` (shuffled each epoch, last partial batch
    dropped so every batch has the same shape) or an object with ``.sample(n, seed)`` (a fresh
    batch per step; when it returns a tuple, such as ``(images, labels)``, the first element is
    used). Batches from a sampler are not checked for finiteness: a non-finite batch surfaces as a
    non-finite loss, which ``fit`` turns into ``TrainingDiverged``.

    ``train_size=N`` (a sampler only) draws a fixed training set of N points once, with the seed
    that the first fresh batch would have had, and then iterates epochs over it as over a data
    tensor (shuffled each epoch by the same generator), as the published protocols train on a
    finite sample.

    ``fixed_packs=m`` (a fixed set: ``train_size`` or a data tensor) builds PacGAN's packed
    training set once, as the authors' ``GaussianPackingMixture`` does (Lin et al., NeurIPS
    2018, ``pacgan/datasets.py``): for each of the m slots one bootstrap resample (n indices
    drawn with replacement) of the n points, so example i is the tuple of the m slots' i-th
    points; the n tuples stay fixed for the whole fit and are shuffled each epoch. A batch is
    ``batch_size / m`` tuples, flattened to ``batch_size`` rows with each tuple's m points
    consecutive (the rows ``pack_samples`` groups), so an epoch is ``n m / batch_size`` steps.
    With fresh batches from a sampler every point is already an independent draw and
    ``fixed_packs`` changes nothing.
    """
    gen = make_generator(seed, "cpu") if seed is not None else torch.Generator()
    if seed is None:
        gen.seed()
    is_sampler = hasattr(data, "sample") and callable(data.sample)
    if train_size is not None:
        train_size = check_int(train_size, "train_size", minimum=1)
        if not is_sampler:
            raise ValueError(
                "train_size draws a fixed training set from a distribution (an object with "
                ".sample(n, seed)); data is already a fixed set of rows, so leave train_size out"
            )
        set_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        x = _draw(data, train_size, data_shape, set_seed).to(device=device, dtype=dtype)
    elif is_sampler:
        return _sampler_batches(data, batch_size, data_shape, device, dtype, gen)
    else:
        x = check_data(data, data_shape, "data").to(device=device, dtype=dtype)
    if batch_size > x.shape[0]:
        what = "train_size" if train_size is not None else "the rows of data"
        raise ValueError(
            f"batch_size={batch_size} exceeds the {x.shape[0]} points of {what}; lower batch_size"
        )
    if fixed_packs is not None:
        return _packed_batches(x, batch_size, check_int(fixed_packs, "fixed_packs", minimum=1),
                               gen)
    return _tensor_batches(x, batch_size, gen)


def _draw(data, n: int, data_shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """``n`` points from the sampler ``data`` (first element of a tuple), shape-checked."""
    out = data.sample(n, seed=seed)
    if isinstance(out, tuple | list):
        out = out[0]
    batch = as_tensor(out, "data.sample(...)", allow_nonfinite=True)
    if tuple(batch.shape) != (n, *data_shape):
        raise ValueError(
            f"data.sample({n}) returned shape {tuple(batch.shape)}; the model "
            f"expects ({n}, {', '.join(map(str, data_shape))})"
        )
    return batch


def _sampler_batches(data, batch_size, data_shape, device, dtype, gen) -> Iterator[torch.Tensor]:
    while True:
        batch_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        yield _draw(data, batch_size, data_shape, batch_seed).to(device=device, dtype=dtype)


def _tensor_batches(x: torch.Tensor, batch_size: int, gen) -> Iterator[torch.Tensor]:
    n = x.shape[0]
    while True:
        perm = torch.randperm(n, generator=gen).to(x.device)
        for start in range(0, n - batch_size + 1, batch_size):
            yield x[perm[start:start + batch_size]]


def _packed_batches(x: torch.Tensor, batch_size: int, pack: int,
                    gen) -> Iterator[torch.Tensor]:
    if batch_size % pack:
        raise ValueError(f"batch_size={batch_size} must be a multiple of the pack size {pack}")
    n = x.shape[0]
    slots = torch.randint(0, n, (pack, n), generator=gen).to(x.device)  # one resample per slot
    tuples = x[slots.T]  # (n, pack, *data_shape): fixed for the whole fit
    per_batch = batch_size // pack
    while True:
        perm = torch.randperm(n, generator=gen).to(x.device)
        for start in range(0, n - per_batch + 1, per_batch):
            yield tuples[perm[start:start + per_batch]].reshape(batch_size, *x.shape[1:])


def check_data(x, data_shape: tuple[int, ...], name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a finite array ``(n, *data_shape)`` and return it as a tensor."""
    t = as_tensor(x, name, ndim=len(data_shape) + 1)
    if tuple(t.shape[1:]) != tuple(data_shape):
        raise ValueError(
            f"{name} must have shape (n, {', '.join(map(str, data_shape))}) for this model, got "
            f"{tuple(t.shape)}"
        )
    return t


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


class NetworksOnDevice(nn.Module):
    """What single and batched models share: an ``nn.Module`` whose ``networks`` (an
    ``nn.ModuleDict``) hold every parameter and buffer, on one device, and a JSON-able
    ``_config`` of hyperparameters. ``parameters()``, ``train()``/``eval()`` and ``to()`` are
    ``nn.Module``'s; ``to`` also takes ``"auto"`` (CUDA when available)."""

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


#: Every model class by class name, for ``load`` (filled as the classes are defined).
MODEL_CLASSES: dict[str, type[GenerativeModel]] = {}


class GenerativeModel(NetworksOnDevice, abc.ABC):
    """Abstract base of densitylab's models: an ``nn.Module`` with a training objective; see the
    module docstring for ``fit``'s guarantees.

    Subclasses define ``name``, ``has_density``, build ``self.networks`` in ``__init__`` and
    implement ``_sample``, and either

    * ``_param_groups`` (parameter groups, each with the optimiser ``_make_optimizer`` builds)
      and ``_step(engine)``: the training step written once against an engine
      (:mod:`densitylab.models.train`); such a model also trains many seeds as one batched
      computation, derived from this single model; or
    * ``_start_training(lr, batch_size) -> state`` and ``_train_step(state, batches) -> losses``
      (raising ``NonFinite`` before updating on a non-finite loss), with ``state["optimizers"]``
      the torch optimisers that learning-rate schedules drive.
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
        MODEL_CLASSES.setdefault(cls.__name__, cls)

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
        steps, batch_size, lr, num_threads = check_fit_args(
            steps, batch_size, lr, num_threads, lr_schedule, default_lr=self.default_lr)
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        if checkpoint_every is not None:
            checkpoint_every = check_int(checkpoint_every, "checkpoint_every", minimum=1)
            if checkpoint_path is None:
                raise ValueError("checkpoint_every needs checkpoint_path")
        if device is not None:
            self.to(device)
        dev = self.device
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)))
        batches = iter_batches(data, batch_size, self.data_shape, device=dev,
                               dtype=self._dtype(), seed=seed + 1, train_size=train_size,
                               fixed_packs=self._fixed_packs())
        history = History()
        self.history = history
        fork_devices = [dev] if dev.type == "cuda" else []

        def after_step(step: int, losses: dict[str, float]) -> bool:
            history.append(losses)
            if checkpoint_every and (step + 1) % checkpoint_every == 0:
                self.save(checkpoint_path)
            if callback is not None and callback(step, losses, self):
                history.stopped_early = True
                return True
            return False

        start = time.perf_counter()
        step = 0

        def one_step(t: int) -> dict[str, float]:
            nonlocal step
            step = t
            if isinstance(state, SingleEngine):
                state.step = t
            return self._train_step(state, batches)

        with torch.random.fork_rng(devices=fork_devices), torch_threads(num_threads), \
                self._training_context():
            torch.manual_seed(seed)
            state = self._start_training(lr, batch_size)
            schedulers = ([] if lr_schedule == "constant" else
                          lr_schedulers(self._optimizers(state), lr_schedule, steps))
            self.train()
            try:
                run_steps(one_step, steps, desc=f"{self.name} fit", progress=progress,
                          schedulers=schedulers, after_step=after_step)
            except NonFinite as err:
                history.diverged = True
                raise TrainingDiverged(step, err.loss) from None
            except KeyboardInterrupt:
                history.interrupted = True
                raise
            finally:
                self.eval()
                self._end_training(state)
                history.seconds = time.perf_counter() - start
        return history

    def _training_context(self) -> contextlib.AbstractContextManager:
        """A context held for the whole of ``fit`` (the VAE's own Pyro parameter store)."""
        return contextlib.nullcontext()

    # -- the engine interface (see densitylab.models.train)
    def _param_groups(self) -> dict[str, nn.Module]:
        """Parameter groups, each trained by its own optimiser: ``{name: module}``."""
        raise NotImplementedError(f"{type(self).__name__} defines no parameter groups")

    def _make_optimizer(self, group: str, params: list[torch.Tensor],
                        lr: float) -> torch.optim.Optimizer:
        """The optimiser of ``group`` (Adam by default); also used on stacked parameters."""
        return torch.optim.Adam(params, lr=lr)

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

    # -- the hooks fit calls; engine models get them from _step
    def _start_training(self, lr: float, batch_size: int) -> Any:
        """Build optimisers (and anything else a fit needs); the result is passed to each step."""
        self._check_training(batch_size)
        return SingleEngine(self, lr, batch_size)

    def _train_step(self, state: Any, batches: Iterator[torch.Tensor]) -> dict[str, float]:
        """One training step; raise ``NonFinite`` *before* updating on a non-finite loss."""
        state.batches = batches
        return self._step(state)

    def _end_training(self, state: Any) -> None:  # noqa: B027 - optional hook
        """Release what ``_start_training`` built (optional)."""

    def _optimizers(self, state: Any) -> list[torch.optim.Optimizer]:
        """The torch optimisers a fit uses (for learning-rate schedules)."""
        if isinstance(state, SingleEngine):
            return list(state.optimizers.values())
        return list(state["optimizers"])

    # ------------------------------------------------------------------ sampling / density
    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """Draw ``n`` samples ``(n, *data_shape)`` on ``model.device``; ``seed`` fixes them."""
        n = check_int(n, "n", minimum=0)
        self._warn_if_untrained("sample")
        gen = make_generator(seed, self.device)
        self.eval()
        with torch.no_grad():
            return self._sample(n, gen)

    def _warn_if_untrained(self, method: str) -> None:
        """Warn (``UserWarning``) that ``method`` is used on the random initial weights: the
        model was neither fitted nor loaded. A warning rather than an error, as an untrained
        model's samples are legitimate (a baseline, a shape check); every model family warns
        alike."""
        if self.history is None and not self._weights_loaded:
            warnings.warn(f"{type(self).__name__}.{method} before fit: the networks are untrained "
                          "(their random initial weights); call fit(...) first, or load a "
                          "trained model with models.load(path)", UserWarning, stacklevel=3)

    @abc.abstractmethod
    def _sample(self, n: int, gen: torch.Generator | None) -> torch.Tensor:
        """Draw samples using ``gen`` (the global RNG when None)."""

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
    cls_name = payload.get("class")
    if cls_name not in MODEL_CLASSES:
        raise ValueError(f"unknown model class {cls_name!r} in file")
    model = MODEL_CLASSES[cls_name](**payload["config"])
    model.networks.load_state_dict(payload["state_dict"])
    model._weights_loaded = True
    model.eval()
    return model.to(device)
