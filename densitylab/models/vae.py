"""A variational autoencoder written as a Pyro model/guide pair and trained on the ELBO.

The generative story (Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014; the
layout follows Pyro's ``examples/vae/vae.py``)::

    z ~ Normal(0, I)                       (latent_dim,)
    x | z ~ Normal(decoder(z), s^2 I)      likelihood="gaussian", s learned or fixed
    x | z ~ Bernoulli(sigmoid(decoder(z))) likelihood="bernoulli" (pixels in [0, 1])

and the amortised guide ``q(z | x) = Normal(mu(x), diag(sigma(x)^2))`` from an encoder network.
``log_prob`` is the importance-weighted estimate of Burda, Grosse and Salakhutdinov (ICLR 2016):
a stochastic lower bound on ``log p(x)`` that tightens as ``num_samples`` grows.

With ``network="linear"`` the decoder is ``W z + b`` and the marginal is analytic,
``p(x) = N(x; b, W W^T + s^2 I)`` (probabilistic PCA, Tipping and Bishop 1999), which the tests
use to check the bounds.

Training: the loss is ``Trace_ELBO().differentiable_loss`` of the model and guide (or
``TraceMeanField_ELBO``'s, compiled by the public ``pyro.ops.jit.trace`` when ``jit=True``),
minimised by a torch optimiser over the model's parameters by the one trainer
(:mod:`densitylab.models.trainer`), which builds the loss for each fit and keeps it, inside a
private Pyro parameter store for each fit (``with pyro.get_param_store().scope()``). One call
is not public Pyro API: with ``jit=True`` and the ``"trace"`` estimator the loss comes from
``JitTrace_ELBO.loss_and_surrogate_loss`` (undocumented), because the public
``JitTrace_ELBO.differentiable_loss`` doubles the gradient in pyro-ppl 1.9.

With one particle the guide's reparameterisation noise is drawn by the training step from the
fit's random stream and handed to the guide (the same numbers ``Normal.rsample`` would draw), so
JIT and non-JIT fits, and a seed of a batched fit, draw the same noise.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import JitTrace_ELBO, Trace_ELBO, TraceMeanField_ELBO
from pyro.optim.clipped_adam import ClippedAdam
from torch import nn

from .._validation import check_choice, check_int, check_positive
from ..losses import iwae_bound
from .base import (
    GenerativeModel,
    check_data,
    check_hidden,
    check_network_shape,
    fused_adam,
    resolve_data_shape,
    seeded_init,
)
from .networks import ACTIVATIONS, MLP, ConvDecoder, ConvEncoder

__all__ = ["VAE"]

_MIN_LOG_SCALE = math.log(1e-4)
_MAX_LOG_SCALE = 15.0


class Encoder(nn.Module):
    """Amortised Gaussian guide network: ``x -> (loc, scale)`` of ``q(z | x)``."""

    def __init__(self, net: nn.Module, latent_dim: int):
        super().__init__()
        self.net = net
        self.latent_dim = latent_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, log_scale = self.net(x).split(self.latent_dim, dim=-1)
        return loc, log_scale.clamp(_MIN_LOG_SCALE, _MAX_LOG_SCALE).exp()


class Decoder(nn.Module):
    """``z -> `` Gaussian mean (with an isotropic scale, learned or fixed) or Bernoulli logits."""

    def __init__(self, net: nn.Module, likelihood: str, decoder_scale: str | float):
        super().__init__()
        self.net = net
        self.likelihood = likelihood
        if likelihood == "gaussian":
            if decoder_scale == "learned":
                self.log_scale = nn.Parameter(torch.tensor(math.log(0.1)))
            else:
                self.register_buffer("log_scale", torch.tensor(math.log(float(decoder_scale))))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def scale(self) -> torch.Tensor:
        """The decoder's observation noise std ``s`` (Gaussian likelihood)."""
        return self.log_scale.clamp(_MIN_LOG_SCALE, _MAX_LOG_SCALE).exp()


class VAE(GenerativeModel):
    """Variational autoencoder: Pyro ``model``/``guide``, ELBO training, IWAE ``log_prob``.

    Arguments:
        data_dim: size of a flat data point (2 for the toy targets); or give ``data_shape``.
        data_shape: shape of one data point, e.g. ``(1, 8, 8)`` for images ``(n, C, H, W)``.
        latent_dim: size of z.
        hidden: widths of the MLP hidden layers (encoder and decoder alike).
        network: ``"mlp"``, ``"conv"`` (images; H and W divisible by 4) or ``"linear"``
            (linear encoder and decoder: probabilistic PCA with an amortised guide).
        likelihood: ``"gaussian"`` (continuous data) or ``"bernoulli"`` (pixels in [0, 1]).
        decoder_scale: ``"learned"`` (one isotropic std, a parameter) or a fixed positive std.
        activation: hidden-layer nonlinearity (relu, leaky_relu, elu, tanh, softplus).
        jit: train with the ELBO compiled by Pyro's JIT (``JitTrace_ELBO``, or
            ``pyro.ops.jit.trace`` of ``TraceMeanField_ELBO``) instead of ``Trace_ELBO``.
        num_particles: ELBO samples per data point per step (vectorised).
        estimator: ``"trace"`` (Monte Carlo KL, Trace_ELBO) or ``"mean_field"`` (analytic KL,
            TraceMeanField_ELBO).
        optimizer: ``"adam"`` (one multi-tensor torch Adam) or ``"clipped_adam"`` (Pyro's
            ClippedAdam, a torch optimiser: each gradient entry clipped to ``clip_norm``).
        conv_width: channel width of the conv networks.
        seed: seed of the weight initialisation (None: global RNG).

    ``fit`` records ``history["loss"]``: the negative ELBO per data point of each minibatch (the
    ELBO is scaled by ``1 / batch_size`` so that learning rates do not depend on the batch).
    On the 2D toy targets, ``VAE(data_dim=2, latent_dim=2, hidden=(128, 128), jit=True)`` with
    ``fit(steps=3000, batch_size=256, lr=1e-3)`` covers all 8 ring modes.

    Example:
        >>> from densitylab import distributions, models
        >>> vae = models.VAE(data_dim=2, latent_dim=2, hidden=(32, 32), seed=0)
        >>> history = vae.fit(distributions.ring(), steps=20, batch_size=64, seed=0)
        >>> vae.sample(5, seed=0).shape
        torch.Size([5, 2])
    """

    name = "vae"
    has_density = True
    log_prob_estimator, log_prob_kind = "IWAE bound", "bound in expectation"
    default_lr = 1e-3
    sample_options = frozenset({"noise"})
    log_prob_options = frozenset({"num_samples", "seed"})

    def __init__(self, data_dim: int | None = None, latent_dim: int = 2,
                 hidden: Sequence[int] = (128, 128), *, data_shape: Sequence[int] | None = None,
                 network: str = "mlp", likelihood: str = "gaussian",
                 decoder_scale: str | float = "learned", activation: str = "relu",
                 jit: bool = False, num_particles: int = 1, estimator: str = "trace",
                 optimizer: str = "adam", clip_norm: float = 10.0, conv_width: int = 32,
                 seed: int | None = None):
        shape = resolve_data_shape(data_dim, data_shape)
        latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        hidden = check_hidden(hidden)
        check_choice(network, "network", ("mlp", "conv", "linear"))
        check_choice(likelihood, "likelihood", ("gaussian", "bernoulli"))
        if decoder_scale != "learned":
            if isinstance(decoder_scale, str):
                raise ValueError(
                    f"decoder_scale must be 'learned' or a positive number, got {decoder_scale!r}"
                )
            decoder_scale = check_positive(decoder_scale, "decoder_scale")
        check_choice(activation, "activation", tuple(ACTIVATIONS))
        if not isinstance(jit, bool):
            raise TypeError(f"jit must be a bool, got {type(jit).__name__}")
        num_particles = check_int(num_particles, "num_particles", minimum=1)
        check_choice(estimator, "estimator", ("trace", "mean_field"))
        check_choice(optimizer, "optimizer", ("adam", "clipped_adam"))
        clip_norm = check_positive(clip_norm, "clip_norm")
        conv_width = check_int(conv_width, "conv_width", minimum=1)
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        check_network_shape(network, shape)
        config = {
            "data_shape": list(shape), "latent_dim": latent_dim, "hidden": list(hidden),
            "network": network, "likelihood": likelihood, "decoder_scale": decoder_scale,
            "activation": activation, "jit": jit, "num_particles": num_particles,
            "estimator": estimator, "optimizer": optimizer, "clip_norm": clip_norm,
            "conv_width": conv_width, "seed": seed,
        }
        super().__init__(config, shape)
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        with seeded_init(seed):
            enc_net, dec_net = self._build_networks(network, shape, latent_dim, hidden,
                                                    activation, conv_width)
            self.networks["encoder"] = Encoder(enc_net, latent_dim)
            self.networks["decoder"] = Decoder(dec_net, likelihood, decoder_scale)
        self.networks.eval()

    @staticmethod
    def _build_networks(network, shape, latent_dim, hidden, activation, width):
        if network == "linear":
            return MLP(shape, (2 * latent_dim,), hidden=()), MLP((latent_dim,), shape, hidden=())
        if network == "conv":
            return (ConvEncoder(shape, 2 * latent_dim, width=width),
                    ConvDecoder(latent_dim, shape, width=width))
        return (MLP(shape, (2 * latent_dim,), hidden, activation),
                MLP((latent_dim,), shape, tuple(reversed(hidden)), activation))

    @property
    def encoder(self) -> Encoder:
        """The guide's network ``x -> (loc, scale)``."""
        return self.networks["encoder"]

    @property
    def decoder(self) -> Decoder:
        """The likelihood's network ``z -> mean`` (Gaussian) or ``z -> logits`` (Bernoulli)."""
        return self.networks["decoder"]

    # ------------------------------------------------------------------ the Pyro program
    def _likelihood(self, out: torch.Tensor) -> dist.Distribution:
        event_dims = len(self.data_shape)
        if self.likelihood == "bernoulli":
            # validate_args=False admits grey levels in [0, 1], as Pyro's VAE example does.
            return dist.Bernoulli(logits=out, validate_args=False).to_event(event_dims)
        return dist.Normal(out, self.decoder.scale()).to_event(event_dims)

    def model(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> None:
        """The generative story ``p(z) p(x | z)`` with ``x`` observed (sites ``"z"``, ``"x"``).

        ``eps`` is the guide's argument (the model takes it so both share one signature)."""
        pyro.module("decoder", self.decoder)
        n = x.shape[0]
        with pyro.plate("data", n):
            prior = dist.Normal(x.new_zeros((n, self.latent_dim)), x.new_ones((n, self.latent_dim)))
            z = pyro.sample("z", prior.to_event(1))
            pyro.sample("x", self._likelihood(self.decoder(z)), obs=x)

    def guide(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> None:
        """The amortised posterior ``q(z | x)`` (site ``"z"``).

        ``eps`` ``(n, latent_dim)``, when given, is the standard normal noise of the
        reparameterised draw ``z = loc + scale * eps`` (drawn by the caller from the fit's
        random stream, exactly as ``Normal.rsample`` would draw it); None: Pyro draws it."""
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encoder(x)
            q = dist.Normal(loc, scale) if eps is None else GivenNoiseNormal(loc, scale, eps)
            pyro.sample("z", q.to_event(1))

    # ------------------------------------------------------------------ training
    def _param_groups(self) -> dict[str, nn.Module]:
        return {"vae": self.networks}

    def _make_optimizer(self, group, params, lr):
        if self._config["optimizer"] == "clipped_adam":  # Pyro's ClippedAdam, a torch optimiser
            return ClippedAdam(params, lr=lr, clip_norm=self._config["clip_norm"])
        return fused_adam(params, lr=lr)

    @contextlib.contextmanager
    def _training_context(self) -> Iterator[None]:
        """A private, empty Pyro parameter store for the fit, so nothing is shared by name with
        other models; argument validation off (inputs were checked at the boundary, and a NaN
        arising in training must reach the divergence guard, not trip a distribution's check)."""
        with pyro.get_param_store().scope(), pyro.validation_enabled(False), \
                warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Encountered NaN", category=UserWarning)
            # jit=True is Pyro's JitTrace_ELBO, built on torch.jit.trace, which torch now flags
            warnings.filterwarnings("ignore", message=".*torch.jit.trace.*is deprecated",
                                    category=DeprecationWarning)
            # stacked parameters seen through torch.vmap do not enter the param store
            warnings.filterwarnings("ignore", message=".*was not registered in the param store",
                                    category=UserWarning)
            yield

    def _given_noise(self) -> bool:
        # One particle: the guide's noise is drawn by the step (so a batched fit can draw it
        # per seed); several vectorised particles: Pyro draws them.
        return self._config["num_particles"] == 1

    def _fit_objectives(self, lr: float, batch_size: int) -> dict[str, Callable[..., Any]]:
        """The ELBO loss of this fit (its Pyro ELBO object lives in the engine that runs it)."""
        return {"elbo_objective": self._build_elbo_loss(batch_size)}

    def _build_elbo_loss(self, batch_size: int) -> Callable[..., torch.Tensor]:
        """``loss(x, eps)``: Pyro's differentiable negative ELBO per data point (the model and
        guide scaled by ``1 / batch_size``, so that learning rates do not depend on the batch)."""
        cfg = self._config
        particles = cfg["num_particles"]
        kwargs: dict[str, Any] = {"num_particles": particles, "max_plate_nesting": 1,
                                  "vectorize_particles": particles > 1}
        scale = 1.0 / batch_size
        model = poutine.scale(self.model, scale)
        guide = poutine.scale(self.guide, scale)
        if cfg["estimator"] == "mean_field":
            elbo = TraceMeanField_ELBO(**kwargs)
            if cfg["jit"]:  # Pyro's public JIT, compiled once per fit, around the same loss
                compiled = pyro.ops.jit.trace(
                    lambda *args: elbo.differentiable_loss(model, guide, *args),
                    ignore_warnings=True)
                return lambda x, eps: compiled(x) if eps is None else compiled(x, eps)
        elif cfg["jit"]:
            jit_elbo = JitTrace_ELBO(ignore_jit_warnings=True, **kwargs)

            def jit_loss(x, eps):
                # JitTrace_ELBO.differentiable_loss adds the surrogate's gradient to that of the
                # (differentiable) loss, doubling it (pyro-ppl 1.9); take the value of the loss
                # and the gradient of the surrogate from the compiled pair instead.
                args = (x,) if eps is None else (x, eps)
                loss, surrogate = jit_elbo.loss_and_surrogate_loss(model, guide, *args)
                return surrogate + (loss - surrogate).detach()

            return jit_loss
        else:
            elbo = Trace_ELBO(**kwargs)
        return lambda x, eps: elbo.differentiable_loss(model, guide, x, eps)

    def _step(self, eng) -> dict[str, Any]:
        x = eng.batch()
        eps = eng.normal(eng.batch_size, self.latent_dim) if self._given_noise() else None
        # "elbo_objective": the loss of _build_elbo_loss, built for each fit and kept by the
        # engine; a batched fit evaluates trace_elbo_objective per seed instead.
        return {"loss": eng.update("vae", "elbo_objective", x, eps)}

    def trace_elbo_objective(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The same negative ELBO per data point, read from Pyro traces of the guide and of the
        model replayed on it: ``-(log p(x, z) - log q(z | x)) / n`` for the reparameterised draw
        given by ``eps`` (``Trace_ELBO``'s objective for this guide, with no ``.item()``, so it
        runs under ``torch.vmap`` for batched seeds)."""
        guide_tr = poutine.trace(self.guide).get_trace(x, eps)
        model_tr = poutine.trace(poutine.replay(self.model, trace=guide_tr)).get_trace(x, eps)
        return -(trace_log_prob(model_tr) - trace_log_prob(guide_tr)).sum() / x.shape[0]

    #: Objectives a batched fit evaluates through a vmappable equivalent.
    _vmap_objectives = {"elbo_objective": "trace_elbo_objective"}

    # ------------------------------------------------------------------ evaluation
    def log_weights(self, x, num_samples: int = 1, seed: int | None = None,
                    chunk_size: int = 16384) -> torch.Tensor:
        """Importance log-weights ``log p(x, z_k) - log q(z_k | x)``, shape ``(num_samples, n)``.

        ``z_k ~ q(z | x)`` are drawn by running the guide; ``log p(x, z)`` by replaying the model
        on the guide's trace. ``seed`` makes the draws reproducible without touching the global RNG.
        """
        x = check_data(x, self.data_shape).to(device=self.device, dtype=self._dtype())
        k = check_int(num_samples, "num_samples", minimum=1)
        n = x.shape[0]
        rows = max(1, chunk_size // k)
        out = []
        fork = [self.device] if self.device.type == "cuda" else []
        self.networks.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=fork), \
                pyro.get_param_store().scope():
            if seed is not None:
                torch.manual_seed(check_int(seed, "seed", minimum=0))
            for start in range(0, n, rows):
                xb = x[start:start + rows]
                m = xb.shape[0]
                xr = xb.expand(k, *xb.shape).reshape(k * m, *self.data_shape)
                guide_tr = poutine.trace(self.guide).get_trace(xr)
                model_tr = poutine.trace(poutine.replay(self.model, trace=guide_tr)).get_trace(xr)
                lw = trace_log_prob(model_tr) - trace_log_prob(guide_tr)
                out.append(lw.reshape(k, m))
        return torch.cat(out, dim=1) if out else x.new_zeros((k, 0))

    def elbo(self, x, num_samples: int = 1, seed: int | None = None) -> torch.Tensor:
        """Monte Carlo ELBO of each row of ``x``: the mean of ``num_samples`` log-weights, ``(n,)``.

        ``ELBO(x) = E_q[log p(x, z) - log q(z | x)] <= log p(x)`` (Kingma and Welling 2014).
        """
        return self.log_weights(x, num_samples, seed).mean(dim=0)

    def log_prob(self, x, num_samples: int = 100, seed: int | None = None) -> torch.Tensor:
        """IWAE estimate of ``log p(x)`` for each row, ``(n,)`` (Burda et al., ICLR 2016).

        ``log (1/K) sum_k p(x, z_k) / q(z_k | x)`` with ``K = num_samples`` draws from the guide.
        Its expectation is a lower bound on ``log p(x)`` that increases with K (K = 1 is the
        ELBO) and converges to ``log p(x)``; for finite K it underestimates.
        """
        return iwae_bound(self.log_weights(x, num_samples, seed), dim=0)

    def sample(self, n: int, seed: int | None = None, noise: bool = False) -> torch.Tensor:
        """Draw ``n`` samples ``(n, *data_shape)`` on ``model.device`` from ``z ~ N(0, I)``.

        ``noise=False`` returns the decoder means (sigmoid probabilities for Bernoulli): smooth,
        the typical "blurry" VAE picture. ``noise=True`` adds the likelihood's noise (Gaussian
        with the decoder std, or Bernoulli draws): true samples of the model's ``p(x)``.
        """
        return self._sampled(n, seed, noise=bool(noise))

    def _sample(self, n, gen, noise: bool = False):
        return self._draw(n, gen, noise)

    def _draw(self, n: int, gen: torch.Generator | None, noise: bool) -> torch.Tensor:
        return self._sample_from(*self._sample_inputs(n, gen, noise))

    def _sample_inputs(self, n: int, gen: torch.Generator | None,
                       noise: bool = False) -> tuple[torch.Tensor, ...]:
        """The random inputs of a draw, from ``gen``: ``z``, then the Gaussian noise
        (``noise=True``; Bernoulli draws happen in :meth:`_sample_from`, so a batched model
        supports them only without noise)."""
        z = torch.randn(n, self.latent_dim, generator=gen, device=self.device, dtype=self._dtype())
        if noise and self.likelihood == "gaussian":
            eps = torch.randn(n, *self.data_shape, generator=gen, device=self.device,
                              dtype=self._dtype())
            return z, eps
        if noise:
            return z, gen
        return (z,)

    def _sample_from(self, z: torch.Tensor, eps=None) -> torch.Tensor:
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            probs = torch.sigmoid(out)
            return torch.bernoulli(probs, generator=eps) if eps is not None else probs
        if eps is not None:
            return out + self.decoder.scale() * eps
        return out


class GivenNoiseNormal(dist.Normal):
    """``Normal(loc, scale)`` whose reparameterised draw is ``loc + scale * eps`` for a given
    standard normal ``eps``: the guide's noise comes from the caller's random stream (for a
    single fit the fit's own, for batched seeds each seed's), not from inside the guide."""

    def __init__(self, loc, scale, eps, validate_args=None):
        super().__init__(loc, scale, validate_args=validate_args)
        self.eps = eps

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape)
        return GivenNoiseNormal(self.loc.expand(shape), self.scale.expand(shape),
                                self.eps.expand(shape))

    def rsample(self, sample_shape=()):
        if tuple(sample_shape):
            raise ValueError("the given noise fixes the draw; sample_shape must be empty")
        return self.loc + self.eps * self.scale


def trace_log_prob(trace, sum_dim: int | None = None) -> torch.Tensor:
    """Sum of the log-densities of a Pyro trace's sample sites, each first summed over
    ``sum_dim`` when given (the batched VAE sums each site over its data plate)."""
    trace.compute_log_prob()
    total = 0.0
    for site in trace.nodes.values():
        if site["type"] == "sample":
            log_prob = site["log_prob"]
            total = total + (log_prob if sum_dim is None else log_prob.sum(dim=sum_dim))
    return total
