"""Many seeds of one small model trained as one batched computation.

A toy protocol trains the same small network for 10 seeds. Run one after another, each seed
launches thousands of tiny kernels; stacked, the S seeds become one set of batched matrix
products (``torch.baddbmm``) of the same number of launches, so on a GPU S seeds cost little
more than one.

Layout. Every linear layer holds weights ``(S, out, in)`` and biases ``(S, out)``: the slices of
the ordinary ``nn.Linear`` weights of S separate models, stacked (:class:`BatchedLinear`). The
module tree mirrors the single model's (``generator.net.net.0.weight`` ...), so the batched
state dict is the stacked single state dicts, key for key, and :meth:`unstack` is indexing.

Why the seeds do not interact.

* The summed loss ``sum_s L_s`` has gradient ``dL_s / d theta_s`` in slice ``s`` (no parameter
  is shared), and Adam (Kingma and Ba, ICLR 2015) updates each element from its own moments, so
  one Adam over the stacked tensors applies exactly the per-slice update that S separate
  optimisers would. (Per-tensor gradient-norm clipping, as in Pyro's ``ClippedAdam``, would
  couple the slices; it is not offered.)
* Slice ``s`` is initialised as ``Model(..., seed=seeds[s])`` is: the S single models are built
  and their weights stacked.
* Slice ``s`` draws its data batches and its noise from its own generators, seeded as
  ``Model.fit(..., seed=seeds[s])`` seeds them; on CPU a batched fit therefore reproduces S
  separate fits up to floating-point rounding (the tests check this), and on any device each
  slice is distributed exactly as a separate run.
* A seed whose loss or gradient turns non-finite is frozen at its last finite parameters (as
  ``fit`` of a single model keeps them) while the other seeds train on; its history is marked
  ``diverged`` and :attr:`BatchedModel.divergences` names the step and the loss.

The VAE stays a Pyro program: ``model``/``guide`` with ``pyro.module``, a ``pyro.plate("seeds",
S, dim=-2)`` outside the data plate and ``.to_event(1)``; its per-seed ELBO is read from Pyro
traces of the guide and of the model replayed on it, which is the ``Trace_ELBO`` objective for a
reparameterised guide (Kingma and Welling, ICLR 2014).

Supported: MLP networks on flat data; for the GAN every loss of ``losses.GAN_LOSSES``, ``pack``
(PacGAN) and ``n_critic``; for the VAE the Gaussian likelihood (learned or fixed scale) with
``Trace_ELBO`` and one particle, ``network="mlp"`` or ``"linear"`` (``jit`` accepted, not
compiled). Anything else (conv nets, gradient or R1 penalties, unrolled steps, Bernoulli
likelihood, several particles, the analytic-KL estimator, ClippedAdam) raises ``ValueError``
naming the option: train those as single models.

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

import contextlib
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from .. import losses
from .._runtime import make_generator, torch_threads
from .._runtime import progress as _progress
from .._validation import check_int
from .base import (
    GenerativeModel,
    History,
    NetworksOnDevice,
    check_fit_args,
    cosine_lr,
    iter_batches,
    set_lr,
)
from .gan import GAN, Discriminator, Generator
from .networks import ACTIVATIONS
from .vae import VAE, Decoder, Encoder, trace_log_prob

__all__ = ["BatchedLinear", "BatchedMLP", "BatchedModel", "BatchedGAN", "BatchedVAE"]


class BatchedLinear(nn.Module):
    """S independent linear maps: ``x (S, ..., in) -> x @ W_s^T + b_s``, shape ``(S, ..., out)``.

    ``weight`` is ``(S, out, in)`` and ``bias`` ``(S, out)``: slice ``s`` is an ``nn.Linear``'s
    weight and bias. One ``torch.baddbmm`` computes all S products.
    """

    def __init__(self, num_seeds: int, in_features: int, out_features: int):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(num_seeds, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(num_seeds, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.shape[0]
        flat = x.reshape(s, -1, self.in_features)
        out = torch.baddbmm(self.bias.unsqueeze(1), flat, self.weight.transpose(1, 2))
        return out.reshape(*x.shape[:-1], self.out_features)


class BatchedMLP(nn.Module):
    """S copies of :class:`~densitylab.models.networks.MLP` with the same module names.

    Input ``(S, *batch, *in_shape)``, output ``(S, *batch, *out_shape)``.
    """

    def __init__(self, num_seeds: int, in_shape: Sequence[int], out_shape: Sequence[int],
                 hidden: Sequence[int], activation: str):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.out_shape = tuple(out_shape)
        act = ACTIVATIONS[activation]
        layers: list[nn.Module] = []
        width = math.prod(self.in_shape)
        for h in hidden:
            layers += [BatchedLinear(num_seeds, width, h), act()]
            width = h
        layers.append(BatchedLinear(num_seeds, width, math.prod(self.out_shape)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[: x.ndim - len(self.in_shape)]
        out = self.net(x.reshape(*batch, -1))
        return out.reshape(*batch, *self.out_shape)


def _check_seeds(seeds, num_seeds) -> tuple[int, ...]:
    if (seeds is None) == (num_seeds is None):
        raise ValueError("give exactly one of num_seeds (seeds 0..S-1) and seeds (a list of ints)")
    if seeds is None:
        return tuple(range(check_int(num_seeds, "num_seeds", minimum=1)))
    if isinstance(seeds, int | str) or not isinstance(seeds, Sequence):
        raise TypeError(f"seeds must be a sequence of non-negative ints, got {seeds!r}")
    out = tuple(check_int(s, "seeds entry", minimum=0) for s in seeds)
    if not out:
        raise ValueError("seeds must hold at least one seed")
    if len(set(out)) != len(out):
        raise ValueError(f"seeds must be distinct (equal seeds give identical runs), got {out}")
    return out


class BatchedModel(NetworksOnDevice):
    """S seeds of one model class trained together; see the module docstring.

    Subclasses set ``single_class`` and implement ``_check_supported``, ``_build_networks``,
    ``_start_training``, ``_draw_inputs``, ``_step`` and ``_draw``.
    """

    single_class: ClassVar[type[GenerativeModel]]

    def __init__(self, num_seeds: int | None = None, *, seeds: Sequence[int] | None = None,
                 **hyperparameters):
        if "seed" in hyperparameters:
            raise TypeError(f"{type(self).__name__} takes seeds=[...] (one per slice), not seed=")
        self.seeds = _check_seeds(seeds, num_seeds)
        self._hyperparameters = dict(hyperparameters)
        # The single models validate every argument and give each slice its initial weights.
        singles = [self.single_class(**hyperparameters, seed=s) for s in self.seeds]
        first = singles[0]
        self._config = first.config
        self._config.pop("seed", None)
        self.data_shape = first.data_shape
        self.latent_dim = first.latent_dim
        self._check_supported(self._config)
        self.networks = self._build_networks(len(self.seeds), self._config)
        stacked = {key: torch.stack([m.networks.state_dict()[key] for m in singles])
                   for key in first.networks.state_dict()}
        self.networks.load_state_dict(stacked)
        self.networks.eval()
        self._device = torch.device("cpu")
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
        steps, batch_size, lr, num_threads = check_fit_args(
            steps, batch_size, lr, num_threads, lr_schedule,
            default_lr=self.single_class.default_lr)
        train_seeds = self.seeds if seeds is None else _check_seeds(seeds, None)
        if len(train_seeds) != self.num_seeds:
            raise ValueError(f"seeds must hold {self.num_seeds} seeds (one per slice), "
                             f"got {len(train_seeds)}")
        if device is not None:
            self.to(device)
        dev, dtype, s = self.device, self._dtype(), self.num_seeds
        # Per slice: the batch stream and the noise generator the single model's fit would use.
        # Batches are drawn on the CPU (as a distribution samples them) and moved once, stacked.
        streams = [iter_batches(data, batch_size, self.data_shape, device=torch.device("cpu"),
                                dtype=dtype, seed=seed + 1, train_size=train_size)
                   for seed in train_seeds]
        noise_gens = [make_generator(seed, dev) for seed in train_seeds]
        state = self._start_training(lr, batch_size)
        state["active"] = torch.ones(s, dtype=torch.bool, device=dev)
        self.divergences = [None] * s
        recorded: dict[str, list[torch.Tensor]] = {}
        stopped = [steps] * s
        interrupted = False
        start = time.perf_counter()
        stack = contextlib.ExitStack()
        self.networks.train()
        try:
            stack.enter_context(torch_threads(num_threads))
            desc = f"batched {self.single_class.name} x{s} fit"
            for step in _progress(range(steps), total=steps, desc=desc, enabled=progress):
                state["step"] = step
                if lr_schedule == "cosine":  # the single model's schedule, step for step
                    set_lr(state["optimizers"], cosine_lr(lr, step, steps))
                inputs = self._draw_inputs(streams, noise_gens, batch_size, state)
                step_losses = self._step(state, *inputs)
                for key, value in step_losses.items():
                    recorded.setdefault(key, []).append(value.detach())
                for i, div in enumerate(self.divergences):
                    if div is not None and stopped[i] == steps:
                        stopped[i] = div["step"]
                if all(d is not None for d in self.divergences):
                    break
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            stack.close()
            self.networks.eval()
            seconds = time.perf_counter() - start
            self.histories = self._histories(recorded, stopped, interrupted, seconds)
        return self.histories

    def _histories(self, recorded, stopped, interrupted, seconds) -> list[History]:
        columns = {k: torch.stack(v).cpu().tolist() for k, v in recorded.items() if v}
        out = []
        for i in range(self.num_seeds):
            h = History(interrupted=interrupted, seconds=seconds,
                        diverged=self.divergences[i] is not None)
            for key, rows in columns.items():
                h.losses[key] = [row[i] for row in rows[: stopped[i]]]
            out.append(h)
        return out

    def _guarded_update(self, state: dict[str, Any], loss: torch.Tensor,
                        params: list[nn.Parameter], optimizer: torch.optim.Optimizer) -> None:
        """Apply ``optimizer`` to the slices whose loss and gradients are finite; freeze others.

        ``loss`` is ``(S,)``. One device sync per call (the single model's ``fit`` also reads
        its loss every step). A slice found non-finite is recorded in :attr:`divergences` and
        stays frozen for the rest of the fit.
        """
        s = self.num_seeds
        grads = [p.grad.reshape(s, -1) for p in params if p.grad is not None]
        probe = loss.detach()
        if grads:  # 0 * sum is NaN exactly when a gradient entry is not finite
            probe = probe + 0.0 * torch.cat(grads, dim=1).sum(dim=1)
        active = state["active"]
        newly = active & ~torch.isfinite(probe)
        if bool(newly.any()):  # the one device sync of this update
            for i in newly.nonzero().flatten().tolist():
                self.divergences[i] = {"step": state["step"], "loss": float(loss[i].detach())}
            active &= ~newly
        if all(d is None for d in self.divergences):
            optimizer.step()
            return
        # Some slices are frozen: give them zero gradients and undo the update Adam's moments
        # would still make, so they keep exactly their last finite parameters.
        masks = [active.view(s, *([1] * (p.ndim - 1))) for p in params]
        for p, m in zip(params, masks, strict=True):
            if p.grad is not None:
                p.grad = torch.where(m, p.grad, torch.zeros_like(p.grad))
        before = [p.detach().clone() for p in params]
        optimizer.step()
        with torch.no_grad():
            for p, m, b in zip(params, masks, before, strict=True):
                p.copy_(torch.where(m, p, b))

    def _next_batch(self, streams: list[Iterator[torch.Tensor]]) -> torch.Tensor:
        return torch.stack([next(b) for b in streams]).to(self.device)

    def _noise(self, gens: list[torch.Generator | None], n: int, dim: int) -> torch.Tensor:
        """``(S, n, dim)`` standard normal noise, slice ``s`` from ``gens[s]``."""
        return torch.stack([torch.randn(n, dim, generator=g, device=self.device,
                                        dtype=self._dtype()) for g in gens])

    # ------------------------------------------------------------------ sampling
    def _sample_generators(self, seed) -> list[torch.Generator | None]:
        if seed is None:
            return [None] * self.num_seeds
        if isinstance(seed, Sequence) and not isinstance(seed, str):
            if len(seed) != self.num_seeds:
                raise ValueError(f"seed must be an int or {self.num_seeds} ints (one per slice), "
                                 f"got {len(seed)}")
            return [make_generator(check_int(x, "seed entry", minimum=0), self.device)
                    for x in seed]
        seed = check_int(seed, "seed", minimum=0)
        return [make_generator(seed, self.device) for _ in range(self.num_seeds)]

    def sample(self, n: int, seed: int | Sequence[int] | None = None) -> torch.Tensor:
        """Draw ``n`` samples per slice, ``(S, n, *data_shape)``, on :attr:`device`.

        ``seed``: an int seeds every slice alike, so slice ``s`` equals
        ``unstack()[s].sample(n, seed)``; a sequence gives one seed per slice; None uses the
        global RNG.
        """
        n = check_int(n, "n", minimum=0)
        gens = self._sample_generators(seed)
        self.networks.eval()
        with torch.no_grad():
            return self._draw(n, gens)

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
            model.networks.eval()
            if self.histories is not None:
                model.history = self.histories[i]
            out.append(model)
        return out

    # ------------------------------------------------------------------ subclass hooks
    def _check_supported(self, config: dict[str, Any]) -> None:
        raise NotImplementedError

    def _build_networks(self, num_seeds: int, config: dict[str, Any]) -> nn.ModuleDict:
        raise NotImplementedError

    def _start_training(self, lr: float, batch_size: int) -> dict[str, Any]:
        raise NotImplementedError

    def _draw_inputs(self, streams, gens, batch_size: int, state) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def _step(self, state: dict[str, Any], *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _draw(self, n: int, gens: list[torch.Generator | None]) -> torch.Tensor:
        raise NotImplementedError


def _adam(params: list[nn.Parameter], lr: float, betas, device: torch.device):
    # The fused CUDA kernel computes the same elementwise update in one launch.
    fused = True if device.type == "cuda" else None
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), fused=fused)


class BatchedGAN(BatchedModel):
    """S seeds of :class:`~densitylab.models.GAN` trained as one batched computation.

    ``BatchedGAN(num_seeds=S)`` or ``BatchedGAN(seeds=[...])``, then the keyword arguments of
    ``GAN`` (``data_dim``, ``latent_dim``, ``hidden``, ``loss``, ``n_critic``, ``pack``, ...).
    Each step is the single GAN's: ``n_critic`` discriminator steps, then one generator step,
    with Adam(``betas``) for each player. Not supported (``ValueError``): ``network="conv"``,
    image data, ``gp_weight > 0`` (so ``loss="wasserstein"`` needs ``gp_weight=0``),
    ``r1_weight > 0`` and ``unrolled_steps > 0``. See the module docstring.
    """

    single_class = GAN

    def _check_supported(self, config):
        if config["network"] != "mlp":
            self._unsupported("network", config["network"], "'mlp'")
        if len(config["data_shape"]) != 1:
            self._unsupported("data_shape", tuple(config["data_shape"]), "flat data (data_dim)")
        for option in ("gp_weight", "r1_weight", "unrolled_steps"):
            if config[option]:
                self._unsupported(option, config[option], "0")
        if config["g_norm"] != "none":
            self._unsupported("g_norm", config["g_norm"], "'none'")
        if config["d_activation"] == "maxout":
            self._unsupported("d_activation", "maxout", "an elementwise activation")

    def _build_networks(self, num_seeds, config):
        shape = tuple(config["data_shape"])
        packed = (config["pack"] * shape[0],)
        nets = nn.ModuleDict()
        nets["generator"] = Generator(
            BatchedMLP(num_seeds, (config["latent_dim"],), shape, config["g_hidden"], "relu"),
            config["output"])
        nets["discriminator"] = Discriminator(
            BatchedMLP(num_seeds, packed, (1,), config["d_hidden"], config["d_activation"]))
        return nets

    @property
    def generator(self) -> Generator:
        """The stacked generators ``(S, n, latent) -> (S, n, D)``."""
        return self.networks["generator"]

    @property
    def discriminator(self) -> Discriminator:
        """The stacked discriminators ``(S, m, pack * D) -> (S, m)``."""
        return self.networks["discriminator"]

    def _pack(self, x: torch.Tensor) -> torch.Tensor:
        pack = self._config["pack"]
        return x.reshape(x.shape[0], x.shape[1] // pack, pack * x.shape[2])

    def _start_training(self, lr, batch_size):
        pack = self._config["pack"]
        if batch_size % pack:
            raise ValueError(f"batch_size={batch_size} must be a multiple of pack={pack}")
        kind = self._config["loss"]
        g_params = list(self.generator.parameters())
        d_params = list(self.discriminator.parameters())
        g_opt = _adam(g_params, lr, self._config["betas"], self.device)
        d_opt = _adam(d_params, lr, self._config["betas"], self.device)
        return {
            "g_opt": g_opt, "d_opt": d_opt, "optimizers": [g_opt, d_opt],
            "g_params": g_params, "d_params": d_params,
            # losses.* reduce with a mean; vmap makes them per-slice means, shape (S,).
            "d_loss": torch.vmap(lambda r, f: losses.discriminator_loss(r, f, kind)),
            "g_loss": torch.vmap(lambda f: losses.generator_loss(f, kind)),
        }

    def _draw_inputs(self, streams, gens, batch_size, state):
        # The single GAN's order: per critic step a batch and a noise draw, then the G noise.
        reals, d_noise = [], []
        for _ in range(self._config["n_critic"]):
            reals.append(self._next_batch(streams))
            d_noise.append(self._noise(gens, batch_size, self.latent_dim))
        g_noise = self._noise(gens, batch_size, self.latent_dim)
        return torch.stack(reals), torch.stack(d_noise), g_noise

    def _step(self, state, reals, d_noise, g_noise):
        """One GAN step from explicit inputs: ``reals`` and ``d_noise`` ``(n_critic, S, B, .)``,
        ``g_noise`` ``(S, B, latent)``. Returns per-slice losses ``(S,)``."""
        g, d = self.generator, self.discriminator
        d_loss = None
        for real, z in zip(reals, d_noise, strict=True):
            with torch.no_grad():
                fake = g(z)
            d_loss = state["d_loss"](d(self._pack(real)), d(self._pack(fake)))
            state["d_opt"].zero_grad(set_to_none=True)
            d_loss.sum().backward()
            self._guarded_update(state, d_loss, state["d_params"], state["d_opt"])
        g_loss = state["g_loss"](d(self._pack(g(g_noise))))
        state["g_opt"].zero_grad(set_to_none=True)
        g_loss.sum().backward()
        self._guarded_update(state, g_loss, state["g_params"], state["g_opt"])
        for p in state["d_params"]:  # the generator's backward pass also reached D
            p.grad = None
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}

    def _draw(self, n, gens):
        return self.generator(self._noise(gens, n, self.latent_dim))


class _GivenNoiseNormal(dist.Normal):
    """``Normal(loc, scale)`` whose reparameterised draw is ``loc + eps * scale`` for a given
    ``eps``: the guide's noise comes from each slice's own generator, not the global RNG."""

    def __init__(self, loc, scale, eps, validate_args=None):
        super().__init__(loc, scale, validate_args=validate_args)
        self._eps = eps

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape)
        return _GivenNoiseNormal(self.loc.expand(shape), self.scale.expand(shape),
                                 self._eps.expand(shape))

    def rsample(self, sample_shape=()):
        if tuple(sample_shape):
            raise ValueError("the given noise fixes the draw; sample_shape must be empty")
        return self.loc + self._eps * self.scale


class BatchedVAE(BatchedModel):
    """S seeds of :class:`~densitylab.models.VAE` trained as one batched computation.

    ``BatchedVAE(num_seeds=S)`` or ``BatchedVAE(seeds=[...])``, then the keyword arguments of
    ``VAE``. Pyro model and guide carry a ``seeds`` plate (dim -2) outside the ``data`` plate;
    the loss of slice ``s`` is its negative ELBO per data point, as the single VAE's
    ``Trace_ELBO`` with one particle, optimised by Adam. ``jit`` is accepted and kept in the
    config of the unstacked models, but the batched step itself is not compiled (JIT changes
    speed, not the objective; the single model's JIT tracing draws its noise in another order,
    so with ``jit=True`` slices match separate runs in distribution, not draw for draw).
    Not supported (``ValueError``): ``network="conv"``, image data, ``likelihood="bernoulli"``,
    ``num_particles > 1``, ``estimator="mean_field"``, ``optimizer="clipped_adam"``.
    Log-densities (IWAE) come from the single models of :meth:`unstack`.
    """

    single_class = VAE

    def _check_supported(self, config):
        # jit is accepted: it only compiles the single model's Trace_ELBO, the same objective
        checks = (("network", ("mlp", "linear")), ("likelihood", ("gaussian",)),
                  ("num_particles", (1,)), ("estimator", ("trace",)), ("optimizer", ("adam",)))
        for option, allowed in checks:
            if config[option] not in allowed:
                self._unsupported(option, config[option], ", ".join(map(repr, allowed)))
        if len(config["data_shape"]) != 1:
            self._unsupported("data_shape", tuple(config["data_shape"]), "flat data (data_dim)")

    def _build_networks(self, num_seeds, config):
        shape = tuple(config["data_shape"])
        latent = config["latent_dim"]
        hidden = tuple(config["hidden"]) if config["network"] == "mlp" else ()
        act = config["activation"]
        nets = nn.ModuleDict()
        nets["encoder"] = Encoder(BatchedMLP(num_seeds, shape, (2 * latent,), hidden, act), latent)
        decoder = Decoder(BatchedMLP(num_seeds, (latent,), shape, tuple(reversed(hidden)), act),
                          "gaussian", config["decoder_scale"])
        # one observation scale per slice (the stacked state dict fills in the values)
        if config["decoder_scale"] == "learned":
            decoder.log_scale = nn.Parameter(torch.zeros(num_seeds))
        else:
            decoder.log_scale = torch.zeros(num_seeds)
        nets["decoder"] = decoder
        return nets

    @property
    def encoder(self) -> Encoder:
        """The stacked guide networks ``(S, n, D) -> (loc, scale)`` of shape ``(S, n, latent)``."""
        return self.networks["encoder"]

    @property
    def decoder(self) -> Decoder:
        """The stacked decoders ``(S, n, latent) -> (S, n, D)``; ``scale()`` is ``(S,)``."""
        return self.networks["decoder"]

    def model(self, x: torch.Tensor) -> None:
        """``p(z) p(x | z)`` for every slice; ``x`` is ``(S, n, D)`` (sites ``"z"``, ``"x"``)."""
        pyro.module("decoder", self.decoder)
        s, n = x.shape[:2]
        with pyro.plate("seeds", s, dim=-2), pyro.plate("data", n, dim=-1):
            prior = dist.Normal(x.new_zeros((s, n, self.latent_dim)),
                                x.new_ones((s, n, self.latent_dim)))
            z = pyro.sample("z", prior.to_event(1))
            scale = self.decoder.scale().view(s, 1, 1)
            pyro.sample("x", dist.Normal(self.decoder(z), scale).to_event(1), obs=x)

    def guide(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> None:
        """``q(z | x)`` for every slice; ``eps`` ``(S, n, latent)`` fixes the reparameterised
        draw ``z = loc + eps * scale`` (None: drawn from the global RNG)."""
        pyro.module("encoder", self.encoder)
        s, n = x.shape[:2]
        with pyro.plate("seeds", s, dim=-2), pyro.plate("data", n, dim=-1):
            loc, scale = self.encoder(x)
            q = dist.Normal(loc, scale) if eps is None else _GivenNoiseNormal(loc, scale, eps)
            pyro.sample("z", q.to_event(1))

    def log_weights(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        """``log p(x, z) - log q(z | x)`` summed over the n points of each slice: ``(S,)``.

        ``x`` is ``(S, n, D)``; one draw ``z ~ q`` per point (from ``eps`` when given). Its
        expectation is the ELBO of each slice's batch.
        """
        guide_tr = poutine.trace(self.guide).get_trace(x, eps)
        model_tr = poutine.trace(poutine.replay(self.model, trace=guide_tr)).get_trace(x)
        # each site summed over the data plate: (S,) per trace
        return trace_log_prob(model_tr, sum_dim=-1) - trace_log_prob(guide_tr, sum_dim=-1)

    def _start_training(self, lr, batch_size):
        params = list(self.networks.parameters())
        opt = _adam(params, lr, (0.9, 0.999), self.device)
        return {"opt": opt, "optimizers": [opt], "params": params, "batch_size": batch_size}

    def _draw_inputs(self, streams, gens, batch_size, state):
        return self._next_batch(streams), self._noise(gens, batch_size, self.latent_dim)

    def _step(self, state, x, eps):
        """One SVI step from explicit inputs ``x`` ``(S, B, D)`` and guide noise ``eps``
        ``(S, B, latent)``. Returns the per-slice loss (negative ELBO per point) ``(S,)``."""
        # A private, empty param store, as the single VAE's fit uses: nothing shared by name.
        # Inputs were checked at the boundary; a NaN arising in training must reach the
        # divergence guard as a non-finite loss, not trip a distribution's argument check.
        with pyro.get_param_store().scope(), pyro.validation_enabled(False), \
                warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Encountered NaN", category=UserWarning)
            loss = -self.log_weights(x, eps) / x.shape[1]
        state["opt"].zero_grad(set_to_none=True)
        loss.sum().backward()
        self._guarded_update(state, loss, state["params"], state["opt"])
        return {"loss": loss.detach()}

    def sample(self, n: int, seed: int | Sequence[int] | None = None,
               noise: bool = False) -> torch.Tensor:
        """``(S, n, D)`` samples: decoder means (``noise=False``) or with the Gaussian noise.

        Seeds as in :meth:`BatchedModel.sample`; slice ``s`` equals
        ``unstack()[s].sample(n, seed, noise)`` for an int ``seed``.
        """
        n = check_int(n, "n", minimum=0)
        gens = self._sample_generators(seed)
        self.networks.eval()
        with torch.no_grad():
            return self._draw(n, gens, bool(noise))

    def _draw(self, n, gens, noise: bool = False):
        # per slice, the single VAE's order: z first, then the observation noise
        z, eps = [], []
        for g in gens:
            z.append(torch.randn(n, self.latent_dim, generator=g, device=self.device,
                                 dtype=self._dtype()))
            if noise:
                eps.append(torch.randn(n, *self.data_shape, generator=g, device=self.device,
                                       dtype=self._dtype()))
        out = self.decoder(torch.stack(z))
        if noise:
            out = out + self.decoder.scale().view(-1, 1, 1) * torch.stack(eps)
        return out


BATCHED: dict[str, type[BatchedModel]] = {"gan": BatchedGAN, "vae": BatchedVAE}


def batched_class(kind: str) -> type[BatchedModel] | None:
    """The batched class training many seeds of model ``kind`` at once, or None if there is none."""
    return BATCHED.get(kind)

