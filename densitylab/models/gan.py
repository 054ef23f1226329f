"""A generative adversarial network: an implicit model that samples well but defines no density.

Generator ``G: z -> x`` with ``z ~ N(0, I)`` and discriminator (critic) ``D: x -> logit``
(Goodfellow et al., NeurIPS 2014), trained by Adam steps on the losses of
:mod:`densitylab.losses`, alternating or simultaneous. Options from the literature:

* ``updates``: ``"alternating"`` (the default): ``n_critic`` discriminator steps, each on a
  fresh batch and fresh noise, then a generator step on fresh noise. ``"simultaneous"``: the
  rule of ALI's ``ali_algorithm`` (Dumoulin et al., ICLR 2017), which the PacGAN authors train
  with: one batch, one draw of noise, one forward pass; the discriminator's loss is
  differentiated w.r.t. the discriminator's parameters and the generator's loss w.r.t. the
  generator's, and both Adam steps are applied (needs ``n_critic=1``, ``unrolled_steps=0``).
* ``loss``: minimax, non_saturating, hinge, wasserstein, least_squares (see ``losses``).
* ``gp_weight``: WGAN-GP gradient penalty (Gulrajani et al., NeurIPS 2017); 10 by default with
  ``loss="wasserstein"``, 0 otherwise.
* ``r1_weight``: R1 penalty ``r1_weight / 2 * E||grad D(real)||^2`` (Mescheder et al., ICML 2018).
* ``n_critic``: discriminator steps per generator step (5 in WGAN-GP).
* ``pack``: PacGAN (Lin, Khetan, Fanti, Oh, NeurIPS 2018): the discriminator judges ``pack``
  samples at once, concatenated (along features, or channels for images), which penalises a
  generator whose samples lack diversity; a remedy for mode collapse. ``batch_size`` counts
  single samples, so the discriminator sees ``batch_size / pack`` packed examples per step.
* ``g_norm="batch"``, ``d_activation="maxout"``, ``init_std``: the published 2D architecture of
  PacGAN (Lin et al. 2018, from the authors' code): generator hidden layers that are linear maps
  without bias followed by batch norm and ReLU, a maxout discriminator without batch norm
  (``maxout_pieces`` pieces per unit), weights ``N(0, init_std^2)`` and biases 0. The whole
  published setup is the preset ``models.preset("pacgan2d", pack=m)`` (see
  :mod:`densitylab.models.presets`). Sampling uses the batch norm's population (running)
  statistics (``model.eval()``).
* How the PacGAN authors' code trains that batch norm and packs its data (each off by default,
  each on in the ``pacgan2d`` preset): ``pack_norm="per_slot"`` normalises each pack slot over
  its own ``batch_size / pack`` samples, as the authors' generator runs once per slot
  (``"joint"``: over all ``batch_size`` samples); ``bn_updates="once_per_step"`` moves the
  population statistics once per step (the alternating discriminator step's generator pass
  uses batch statistics without moving them; ``"every_pass"`` lets every training-mode pass move
  them, twice a step when alternating); ``bn_refresh_batches=k`` runs, after every
  ``bn_refresh_every`` steps (an epoch of the authors' 1,000 steps), k more training-mode
  generator passes on fresh noise without gradients, each moving the population statistics by
  the same momentum, as the authors' ``DataStreamMonitoring(..., updates=bn_updates)`` over 50
  batches of the training stream does before each epoch's evaluation; ``packs="fixed"`` builds
  the packed training set once (one bootstrap resample of the training set per slot) and
  shuffles the packed tuples each epoch, instead of regrouping shuffled points each epoch
  (``"regrouped"``; see ``iter_batches``).
* ``unrolled_steps``: unrolled GAN (Metz, Poole, Pfau, Sohl-Dickstein, ICLR 2017): the
  generator's loss is taken against the discriminator after ``k`` further differentiable
  gradient steps on it, and the generator's gradient flows through those steps. Here the inner
  steps are plain gradient descent with step size ``unrolled_lr`` (the paper unrolls Adam); the
  real discriminator is not changed by them.

``log_prob`` raises :class:`~densitylab.models.base.NoDensityError`: a GAN has no tractable
density (its samples usually lie on a low-dimensional manifold), so compare it with sample-based
metrics (``metrics.mmd``, ``metrics.kl_knn``, ``metrics.mode_coverage``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from .. import losses
from .._validation import check_choice, check_int, check_positive
from .base import (
    GenerativeModel,
    NoDensityError,
    check_data,
    check_hidden,
    check_network_shape,
    fused_adam,
    resolve_data_shape,
    seeded_init,
)
from .networks import (
    ACTIVATIONS,
    MLP,
    NORMS,
    ConvDecoder,
    ConvEncoder,
    frozen_batch_stats,
    init_normal_,
)

__all__ = ["GAN", "UPDATES", "PROTOCOL_DEFAULTS"]

#: The update rules of ``GAN(updates=...)``.
UPDATES = ("alternating", "simultaneous")

#: The training-protocol options and their defaults (the behaviour before they existed). A
#: GAN's ``config`` holds one of them only when it differs from its default (the refresh period
#: also whenever there is a refresh pass), so the configs, and the suite run ids hashed from
#: them, of GANs that do not use them are unchanged.
PROTOCOL_DEFAULTS = {"updates": "alternating", "pack_norm": "joint", "bn_updates": "every_pass",
                     "bn_refresh_batches": 0, "bn_refresh_every": 1000, "packs": "regrouped"}


class Generator(nn.Module):
    """``z -> x``: a network followed by the output nonlinearity (sigmoid for pixels in [0, 1])."""

    def __init__(self, net: nn.Module, output: str):
        super().__init__()
        self.net = net
        self.output = output

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(z)
        return torch.sigmoid(out) if self.output == "sigmoid" else out


class Discriminator(nn.Module):
    """Packed samples ``(m, pack * C, ...)`` -> one logit each, shape ``(m,)``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def pack_samples(x: torch.Tensor, pack: int) -> torch.Tensor:
    """PacGAN packing: ``(n, C, ...) -> (n / pack, pack * C, ...)``, consecutive rows grouped."""
    if pack == 1:
        return x
    return x.reshape(x.shape[0] // pack, pack * x.shape[1], *x.shape[2:])


class GAN(GenerativeModel):
    """Generative adversarial network (MLP or DCGAN-style conv nets); see the module docstring.

    Arguments:
        data_dim / data_shape: flat data size, or the shape of one point (e.g. ``(1, 8, 8)``).
        latent_dim: size of the generator's input noise.
        hidden: hidden widths of both MLPs (``g_hidden`` / ``d_hidden`` override each).
        network: ``"mlp"`` or ``"conv"`` (DCGAN-style; images with H, W divisible by 4).
        g_norm: the generator's normalisation: ``"none"`` or ``"batch"`` (MLP: hidden layers
            linear without bias, then ``BatchNorm1d``, then ReLU; conv: DCGAN's batch norm).
            None: ``"none"`` for the MLP, ``"batch"`` for the conv net (as before).
        d_activation: the discriminator's hidden nonlinearity: ``"leaky_relu"`` (slope 0.2),
            another of ``networks.ACTIVATIONS``, or ``"maxout"`` (MLP only).
        maxout_pieces: pieces per maxout unit (``d_activation="maxout"``; 5 in PacGAN).
        init_std: when given, every linear/conv weight is drawn from ``N(0, init_std^2)`` and
            every bias set to 0 (0.02 in DCGAN and PacGAN); None keeps torch's default
            initialisation.
        loss: one of ``losses.GAN_LOSSES``.
        n_critic, gp_weight, r1_weight, pack, unrolled_steps, unrolled_lr: see module docstring.
        updates: ``"alternating"`` or ``"simultaneous"`` (ALI's rule); see module docstring.
        pack_norm, bn_updates, bn_refresh_batches, bn_refresh_every, packs: how the
            generator's batch norm is trained and the packs formed (PacGAN authors' protocol);
            see the module docstring. The batch-norm options need ``g_norm="batch"`` and an MLP.
        betas: Adam's betas for both players ((0.5, 0.999) as in DCGAN).
        output: ``"auto"`` (sigmoid for images, identity for flat data), ``"sigmoid"`` or
            ``"identity"``.
        conv_width: channel width of the conv networks.
        seed: seed of the weight initialisation (None: global RNG).

    Example:
        >>> from densitylab import distributions, models
        >>> gan = models.GAN(data_dim=2, hidden=(32, 32), pack=2, seed=0)
        >>> history = gan.fit(distributions.ring(), steps=20, batch_size=64, seed=0)
        >>> gan.sample(5, seed=0).shape
        torch.Size([5, 2])
    """

    name = "gan"
    has_density = False
    default_lr = 2e-4

    def __init__(self, data_dim: int | None = None, latent_dim: int = 2,
                 hidden: Sequence[int] = (128, 128), *, data_shape: Sequence[int] | None = None,
                 network: str = "mlp", loss: str = "non_saturating", n_critic: int = 1,
                 gp_weight: float | None = None, r1_weight: float = 0.0, pack: int = 1,
                 unrolled_steps: int = 0, unrolled_lr: float | None = None,
                 g_hidden: Sequence[int] | None = None, d_hidden: Sequence[int] | None = None,
                 betas: Sequence[float] = (0.5, 0.999), output: str = "auto",
                 conv_width: int = 32, g_norm: str | None = None,
                 d_activation: str = "leaky_relu", maxout_pieces: int = 5,
                 init_std: float | None = None, updates: str = "alternating",
                 pack_norm: str = "joint", bn_updates: str = "every_pass",
                 bn_refresh_batches: int = 0, bn_refresh_every: int = 1000,
                 packs: str = "regrouped", seed: int | None = None):
        shape = resolve_data_shape(data_dim, data_shape)
        latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        hidden = check_hidden(hidden)
        g_hidden = hidden if g_hidden is None else check_hidden(g_hidden)
        d_hidden = hidden if d_hidden is None else check_hidden(d_hidden)
        check_choice(network, "network", ("mlp", "conv"))
        check_choice(loss, "loss", losses.GAN_LOSSES)
        n_critic = check_int(n_critic, "n_critic", minimum=1)
        if gp_weight is None:
            gp_weight = 10.0 if loss == "wasserstein" else 0.0
        gp_weight = check_positive(gp_weight, "gp_weight", allow_zero=True)
        r1_weight = check_positive(r1_weight, "r1_weight", allow_zero=True)
        pack = check_int(pack, "pack", minimum=1)
        unrolled_steps = check_int(unrolled_steps, "unrolled_steps", minimum=0)
        unrolled_lr = check_positive(unrolled_lr, "unrolled_lr", allow_none=True)
        if isinstance(betas, str) or not isinstance(betas, Sequence) or len(betas) != 2:
            raise TypeError(f"betas must be a pair of floats in [0, 1), got {betas!r}")
        betas = [check_positive(b, "betas entry", allow_zero=True) for b in betas]
        if any(b >= 1 for b in betas):
            raise ValueError(f"betas entries must lie in [0, 1), got {betas}")
        check_choice(output, "output", ("auto", "sigmoid", "identity"))
        if output == "auto":
            output = "sigmoid" if len(shape) == 3 else "identity"
        conv_width = check_int(conv_width, "conv_width", minimum=1)
        if g_norm is None:
            g_norm = "batch" if network == "conv" else "none"
        check_choice(g_norm, "g_norm", NORMS)
        check_choice(d_activation, "d_activation", (*ACTIVATIONS, "maxout"))
        if d_activation == "maxout" and network != "mlp":
            raise ValueError("d_activation='maxout' needs network='mlp' (the conv discriminator "
                             "takes leaky_relu, relu, elu, tanh or softplus)")
        maxout_pieces = check_int(maxout_pieces, "maxout_pieces", minimum=2)
        init_std = check_positive(init_std, "init_std", allow_none=True)
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        check_network_shape(network, shape)
        protocol = _check_protocol(updates, pack_norm, bn_updates, bn_refresh_batches,
                                   bn_refresh_every, packs, n_critic=n_critic,
                                   unrolled_steps=unrolled_steps, g_norm=g_norm, network=network)
        config = {
            "data_shape": list(shape), "latent_dim": latent_dim, "hidden": list(hidden),
            "network": network, "loss": loss, "n_critic": n_critic, "gp_weight": gp_weight,
            "r1_weight": r1_weight, "pack": pack, "unrolled_steps": unrolled_steps,
            "unrolled_lr": unrolled_lr, "g_hidden": list(g_hidden), "d_hidden": list(d_hidden),
            "betas": betas, "output": output, "conv_width": conv_width, "g_norm": g_norm,
            "d_activation": d_activation, "maxout_pieces": maxout_pieces, "init_std": init_std,
            **_protocol_config(protocol),
            "seed": seed,
        }
        super().__init__(config, shape)
        self.latent_dim = latent_dim
        self._protocol = protocol
        packed_shape = (pack * shape[0], *shape[1:])
        with seeded_init(seed):
            if network == "conv":
                g_net = ConvDecoder(latent_dim, shape, width=conv_width,
                                    batch_norm=g_norm == "batch")
                d_net = ConvEncoder(packed_shape, 1, width=conv_width, activation=d_activation)
            else:
                g_net = MLP((latent_dim,), shape, g_hidden, "relu", norm=g_norm,
                            norm_slots=pack if pack_norm == "per_slot" else 1)
                d_net = MLP(packed_shape, (1,), d_hidden, d_activation, pieces=maxout_pieces)
            if init_std is not None:
                init_normal_(g_net, init_std)
                init_normal_(d_net, init_std)
            self.networks["generator"] = Generator(g_net, output)
            self.networks["discriminator"] = Discriminator(d_net)
        self.networks.eval()

    @property
    def generator(self) -> Generator:
        """The generator network ``z -> x``."""
        return self.networks["generator"]

    @property
    def discriminator(self) -> Discriminator:
        """The discriminator (critic) on packed samples."""
        return self.networks["discriminator"]

    def log_prob(self, x, **kwargs) -> torch.Tensor:
        """Not defined: raises :class:`NoDensityError` (a GAN is an implicit model)."""
        raise NoDensityError(
            "a GAN defines no density: it only maps noise to samples, so log_prob(x) does not "
            "exist. Compare it with sample-based metrics instead: metrics.mmd, metrics.kl_knn, "
            "metrics.mode_coverage (check model.has_density first), or, under a Gaussian "
            "observation model of std sigma, metrics.ais_log_likelihood(gan.generator, x, "
            "latent_dim, sigma)"
        )

    def discriminate(self, x) -> torch.Tensor:
        """The discriminator's logits on ``x`` (n rows, grouped by ``pack``): ``(n / pack,)``."""
        x = check_data(x, self.data_shape).to(device=self.device, dtype=self._dtype())
        if x.shape[0] % self._config["pack"]:
            raise ValueError(f"x needs a multiple of pack={self._config['pack']} rows")
        with torch.no_grad():
            return self.discriminator(pack_samples(x, self._config["pack"]))

    # ------------------------------------------------------------------ training
    def _param_groups(self) -> dict[str, nn.Module]:
        return {"discriminator": self.discriminator, "generator": self.generator}

    def _make_optimizer(self, group, params, lr):
        return fused_adam(params, lr=lr, betas=tuple(self._config["betas"]))

    def _check_training(self, batch_size: int) -> None:
        pack = self._config["pack"]
        if batch_size % pack:
            raise ValueError(f"batch_size={batch_size} must be a multiple of pack={pack}")

    def _fixed_packs(self) -> int | None:
        return self._config["pack"] if self._protocol["packs"] == "fixed" else None

    def _fit_objectives(self, lr: float, batch_size: int) -> dict[str, Any]:
        """Unrolled steps without their own ``unrolled_lr`` take the fit's learning rate."""
        if self._config["unrolled_steps"] and self._config["unrolled_lr"] is None:
            return {"g_objective": functools.partial(self.g_objective, fit_lr=lr)}
        return {}

    def _step(self, eng) -> dict[str, Any]:
        """One training step (``updates``), then the batch-norm refresh pass when one is due.
        The noise (and the gradient penalty's mixing weights) is drawn here, outside the
        objectives; alternating steps draw it in the order a single fit has always drawn it."""
        if self._protocol["updates"] == "simultaneous":
            out = self._simultaneous_step(eng)
        else:
            out = self._alternating_step(eng)
        every, batches = self._protocol["bn_refresh_every"], self._protocol["bn_refresh_batches"]
        if batches and (eng.step + 1) % every == 0:
            for _ in range(batches):
                eng.no_grad_call("_sample_from", eng.normal(eng.batch_size, self.latent_dim))
        return out

    def _simultaneous_step(self, eng) -> dict[str, Any]:
        """ALI's rule: one batch, one noise draw, both players updated from one forward pass."""
        bs = eng.batch_size
        real = eng.batch()
        z = eng.normal(bs, self.latent_dim)
        mix = None
        if self._config["gp_weight"] > 0:
            mix = eng.uniform(bs // self._config["pack"], *([1] * len(self.data_shape)))
        d_loss, g_loss = eng.update_each(("discriminator", "generator"), "joint_objective",
                                         real, z, mix)
        return {"d_loss": d_loss, "g_loss": g_loss}

    def _alternating_step(self, eng) -> dict[str, Any]:
        """``n_critic`` discriminator updates (each on a fresh batch and fresh noise), then one
        generator update on fresh noise."""
        cfg = self._config
        bs = eng.batch_size
        d_loss = real = None
        for _ in range(cfg["n_critic"]):
            real = eng.batch()
            z = eng.normal(bs, self.latent_dim)
            mix = None
            if cfg["gp_weight"] > 0:
                mix = eng.uniform(bs // cfg["pack"], *([1] * len(self.data_shape)))
            d_loss = eng.update("discriminator", "d_objective", real, z, mix)
        z = eng.normal(bs, self.latent_dim)
        g_loss = eng.update("generator", "g_objective", z,
                            real if cfg["unrolled_steps"] else None)
        return {"d_loss": d_loss, "g_loss": g_loss}

    def d_objective(self, real: torch.Tensor, z: torch.Tensor,
                    mix: torch.Tensor | None = None) -> torch.Tensor:
        """The discriminator's loss on ``real`` and on ``G(z)`` (no gradient into G), with the
        R1 and gradient penalties when set; ``mix`` holds the gradient penalty's interpolation
        weights (one per packed example). With ``bn_updates="once_per_step"`` this generator
        pass does not move the batch norm's population statistics."""
        frozen = self._protocol["bn_updates"] == "once_per_step"
        with torch.no_grad(), (frozen_batch_stats(self.generator) if frozen
                               else contextlib.nullcontext()):
            fake = self.generator(z)
        return self._d_loss(real, fake, mix)

    def joint_objective(self, real: torch.Tensor, z: torch.Tensor,
                        mix: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(discriminator loss, generator loss)`` from one forward pass: ``G(z)`` once (one
        move of the batch norm's population statistics), its packed logits shared by both
        losses (the losses of the PacGAN authors' ``compute_losses``; the generator loss here
        omits their ``softplus(D(x))`` term, which carries no generator gradient)."""
        cfg = self._config
        fake = self.generator(z)
        fake_logits = self.discriminator(pack_samples(fake, cfg["pack"]))
        d_loss = self._d_loss(real, fake.detach(), mix, fake_logits=fake_logits)
        return d_loss, losses.generator_loss(fake_logits, cfg["loss"])

    def g_objective(self, z: torch.Tensor, real: torch.Tensor | None = None, *,
                    fit_lr: float | None = None) -> torch.Tensor:
        """The generator's loss on ``G(z)`` (against the unrolled discriminator, fitted on
        ``real``, when ``unrolled_steps > 0``; its step size is ``unrolled_lr``, else the fit's
        learning rate ``fit_lr``, else 1e-3)."""
        cfg = self._config
        fake = self.generator(z)
        if cfg["unrolled_steps"]:
            step_size = cfg["unrolled_lr"] or fit_lr or 1e-3
            logits = self._unrolled_logits(real, fake, cfg["unrolled_steps"], step_size)
        else:
            logits = self.discriminator(pack_samples(fake, cfg["pack"]))
        return losses.generator_loss(logits, cfg["loss"])

    def _noise(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=gen, device=self.device,
                           dtype=self._dtype())

    def _d_loss(self, real: torch.Tensor, fake: torch.Tensor, mix: torch.Tensor | None = None,
                fake_logits: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self._config
        d = self.discriminator
        real_p = pack_samples(real, cfg["pack"])
        fake_p = pack_samples(fake, cfg["pack"])
        if cfg["r1_weight"] > 0:
            real_p = real_p.detach().requires_grad_(True)
        real_logits = d(real_p)
        if fake_logits is None:
            fake_logits = d(fake_p)
        loss = losses.discriminator_loss(real_logits, fake_logits, cfg["loss"])
        if cfg["r1_weight"] > 0:
            loss = loss + 0.5 * cfg["r1_weight"] * losses.r1_penalty(real_logits, real_p)
        if cfg["gp_weight"] > 0:
            loss = loss + cfg["gp_weight"] * losses.gradient_penalty(d, real_p, fake_p, eps=mix)
        return loss

    def _unrolled_logits(self, real: torch.Tensor, fake: torch.Tensor, steps: int,
                         step_size: float) -> torch.Tensor:
        """Logits on ``fake`` from D after ``steps`` differentiable descent steps on D's loss."""
        cfg = self._config
        d = self.discriminator
        names = [name for name, _ in d.named_parameters()]
        params = dict(d.named_parameters())
        real_p = pack_samples(real, cfg["pack"])
        fake_p = pack_samples(fake, cfg["pack"])
        for _ in range(steps):
            inner = losses.discriminator_loss(functional_call(d, params, (real_p,)),
                                              functional_call(d, params, (fake_p,)), cfg["loss"])
            grads = torch.autograd.grad(inner, [params[k] for k in names], create_graph=True)
            params = {k: params[k] - step_size * g for k, g in zip(names, grads, strict=True)}
        return functional_call(d, params, (fake_p,))

    def _sample(self, n, gen):
        return self.generator(self._noise(n, gen))

    def _sample_inputs(self, n: int, gen: torch.Generator | None) -> tuple[torch.Tensor, ...]:
        """The random inputs of ``_sample``, drawn from ``gen`` as ``_sample`` draws them."""
        return (self._noise(n, gen),)

    def _sample_from(self, z: torch.Tensor) -> torch.Tensor:
        """``_sample`` given its random inputs (see :meth:`_sample_inputs`)."""
        return self.generator(z)


def _protocol_config(protocol: dict[str, Any]) -> dict[str, Any]:
    """The protocol options a config records: those off their defaults (and the refresh period
    whenever there is a refresh pass)."""
    return {k: v for k, v in protocol.items() if v != PROTOCOL_DEFAULTS[k]
            or (k == "bn_refresh_every" and protocol["bn_refresh_batches"])}


def _check_protocol(updates, pack_norm, bn_updates, bn_refresh_batches, bn_refresh_every, packs,
                    *, n_critic, unrolled_steps, g_norm, network) -> dict[str, Any]:
    """Check the training-protocol options (see the module docstring); return them as a dict."""
    check_choice(updates, "updates", UPDATES)
    check_choice(pack_norm, "pack_norm", ("joint", "per_slot"))
    check_choice(bn_updates, "bn_updates", ("every_pass", "once_per_step"))
    check_choice(packs, "packs", ("regrouped", "fixed"))
    bn_refresh_batches = check_int(bn_refresh_batches, "bn_refresh_batches", minimum=0)
    bn_refresh_every = check_int(bn_refresh_every, "bn_refresh_every", minimum=1)
    if updates == "simultaneous" and (n_critic != 1 or unrolled_steps):
        raise ValueError(f"updates='simultaneous' updates both players from one forward pass, so "
                         f"it needs n_critic=1 and unrolled_steps=0 (got n_critic={n_critic}, "
                         f"unrolled_steps={unrolled_steps}); use updates='alternating'")
    bn_options = {"pack_norm": (pack_norm, "joint"), "bn_updates": (bn_updates, "every_pass"),
                  "bn_refresh_batches": (bn_refresh_batches, 0)}
    set_bn = {name: v for name, (v, default) in bn_options.items() if v != default}
    if set_bn and (g_norm != "batch" or network != "mlp"):
        given = ", ".join(f"{k}={v!r}" for k, v in set_bn.items())
        defaults = ", ".join(f"{k}={bn_options[k][1]!r}" for k in set_bn)
        raise ValueError(f"{given} train the generator's batch norm of an MLP, so they need "
                         f"g_norm='batch' and network='mlp' (got g_norm={g_norm!r}, "
                         f"network={network!r}); for a generator without it set {defaults}")
    return {"updates": updates, "pack_norm": pack_norm, "bn_updates": bn_updates,
            "bn_refresh_batches": bn_refresh_batches, "bn_refresh_every": bn_refresh_every,
            "packs": packs}
