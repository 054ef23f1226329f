"""Plain ``nn.Module`` building blocks: MLPs and DCGAN-style conv nets for small images.

Every network accepts any number of leading batch dimensions (Pyro's vectorised particles add
one), so ``net(x)`` with ``x`` of shape ``(..., *in_shape)`` returns ``(..., *out_shape)``.
Networks are ordinary modules built from their arguments, so ``torch.func.stack_module_state``
can batch several copies (several seeds) of one of them.

PacGAN's published 2D architecture (Lin, Khetan, Fanti, Oh, NeurIPS 2018; the authors' Blocks
code) needs two more layer kinds, both options of :class:`MLP`: hidden layers that are a linear
map *without bias* followed by batch normalisation (``norm="batch"``; the normalisation's shift
plays the bias's role) and maxout units (``activation="maxout"``: Goodfellow et al., ICML 2013,
a linear map to ``units * pieces`` outputs, then the maximum over each unit's ``pieces``).
:func:`init_normal_` gives DCGAN's and PacGAN's initialisation, weights ``N(0, std^2)`` and
biases 0.

The conv nets follow DCGAN (Radford, Metz, Chintala, ICLR 2016): strided 4x4 convolutions, batch
normalisation in the generator, LeakyReLU(0.2) in the discriminator. Two stride-2 stages map
H x W to H/4 x W/4, which covers 8x8 digits (2x2) and 28x28 MNIST (7x7); any H and W divisible
by 4 work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ACTIVATIONS", "NORMS", "MLP", "Maxout", "SlotBatchNorm1d", "frozen_batch_stats",
           "ConvEncoder", "ConvDecoder", "conv_shape_ok", "init_normal_"]

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}

#: Normalisations of an MLP's hidden layers: none, or batch norm after a bias-less linear map.
NORMS = ("none", "batch")

#: Batch-norm constants of the authors' PacGAN code (Blocks ``BatchNormalization``: epsilon
#: 1e-4; population statistics updated as ``0.95 old + 0.05 batch``, torch's momentum 0.05).
BATCH_NORM_EPS = 1e-4
BATCH_NORM_MOMENTUM = 0.05


def _flatten_batch(x: torch.Tensor, event_ndim: int) -> tuple[torch.Tensor, torch.Size]:
    batch = x.shape[: x.ndim - event_ndim]
    return x.reshape(-1, *x.shape[x.ndim - event_ndim:]), batch


class Maxout(nn.Module):
    """Maxout layer ``x -> max_k (W_k x + b_k)`` with ``units`` outputs of ``pieces`` pieces each.

    One ``nn.Linear(in_features, units * pieces)`` whose outputs are grouped as ``(units,
    pieces)`` (output ``u * pieces + k`` is piece ``k`` of unit ``u``, as in Blocks'
    ``LinearMaxout``), then the maximum over the pieces (Goodfellow, Warde-Farley, Mirza,
    Courville, Bengio, ICML 2013).
    """

    def __init__(self, in_features: int, units: int, pieces: int):
        super().__init__()
        self.units = units
        self.pieces = pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        return out.reshape(*out.shape[:-1], self.units, self.pieces).amax(dim=-1)


class MLP(nn.Module):
    """Fully connected net ``in_shape -> hidden... -> out_shape`` (flattens in, reshapes out).

    Each hidden layer is ``Linear -> activation``; with ``norm="batch"`` it is ``Linear`` without
    bias ``-> BatchNorm1d -> activation``; with ``activation="maxout"`` it is a :class:`Maxout`
    layer of ``pieces`` pieces. The output layer is always a plain ``Linear`` with bias.
    ``norm_slots=m`` makes the batch norm a :class:`SlotBatchNorm1d` over ``m`` interleaved
    slots (PacGAN's per-slot generator passes).
    """

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int],
                 hidden: Sequence[int] = (128, 128), activation: str = "relu", *,
                 norm: str = "none", pieces: int = 5, norm_slots: int = 1):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.out_shape = tuple(out_shape)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.norm = norm
        layers: list[nn.Module] = []
        width = _prod(self.in_shape)
        for h in hidden:
            if activation == "maxout":
                layers.append(Maxout(width, h, pieces))
                if norm == "batch":
                    layers.append(_batch_norm(h, norm_slots))
            elif norm == "batch":
                layers += [nn.Linear(width, h, bias=False), _batch_norm(h, norm_slots),
                           ACTIVATIONS[activation]()]
            else:
                layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            width = h
        layers.append(nn.Linear(width, _prod(self.out_shape)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[: x.ndim - len(self.in_shape)]
        if self.norm == "batch":  # BatchNorm1d takes (N, C): one batch dimension
            out = self.net(x.reshape(-1, _prod(self.in_shape)))
        else:
            out = self.net(x.reshape(*batch, -1))
        return out.reshape(*batch, *self.out_shape)


def _batch_norm(width: int, slots: int = 1) -> nn.BatchNorm1d:
    return SlotBatchNorm1d(width, eps=BATCH_NORM_EPS, momentum=BATCH_NORM_MOMENTUM, slots=slots)


class SlotBatchNorm1d(nn.BatchNorm1d):
    """``BatchNorm1d`` whose training batch may hold ``slots`` interleaved groups normalised
    separately, with population statistics that can be held still for a pass.

    With ``slots=m`` the rows of an ``(n, C)`` batch are ``n / m`` packed examples of ``m``
    consecutive rows (as PacGAN packs them), and row ``i * m + j`` belongs to slot ``j``. In
    training mode each slot is normalised by its own batch mean and (biased) variance, as when
    the generator runs once per slot on its own ``n / m`` noise vectors (the PacGAN authors'
    ``compute_losses``), and the population statistics move **once**, by ``momentum`` times the
    slot average of the batch statistics (the authors merge the slots' updates the same way,
    ``pacgan_task.py`` ``create_models``). The running variance averages unbiased per-slot
    variances as torch's ``BatchNorm1d`` does (Blocks' ``BatchNormalization`` averages the
    standard deviation ``sqrt(var + eps)``; the two differ by ``O(1 / n)``). ``slots=1`` is
    exactly ``BatchNorm1d`` (same code path). In eval mode the population statistics are used
    whatever ``slots`` is. The state dict is ``BatchNorm1d``'s.

    ``update_running`` (a plain attribute, toggled by :func:`frozen_batch_stats`): when False a
    training-mode pass normalises with batch statistics but leaves the population statistics
    (and ``num_batches_tracked``) as they are.
    """

    def __init__(self, num_features: int, *, slots: int = 1, **kwargs):
        super().__init__(num_features, **kwargs)
        if int(slots) < 1:
            raise ValueError(f"slots must be a positive int, got {slots!r}")
        self.slots = int(slots)
        self.update_running = True

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", slots={self.slots}" if self.slots > 1 else "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or (self.slots == 1 and self.update_running):
            return super().forward(x)
        if self.slots == 1:  # batch statistics, population statistics untouched
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        n, c = x.shape
        m = self.slots
        if n % m or n // m < 2:
            raise ValueError(f"a training batch of {n} rows cannot be split into {m} batch-norm "
                             f"slots of at least 2 rows each")
        xs = x.reshape(n // m, m, c)
        mean = xs.mean(dim=0)
        var = xs.var(dim=0, correction=0)
        out = (xs - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            out = out * self.weight + self.bias
        if self.update_running and self.track_running_stats:
            k = n // m
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.mean(0))
                self.running_var.mul_(1 - self.momentum).add_(
                    self.momentum * (var * (k / (k - 1))).mean(0))
                self.num_batches_tracked.add_(1)
        return out.reshape(n, c)


@contextlib.contextmanager
def frozen_batch_stats(module: nn.Module) -> Iterator[None]:
    """Within this block, training-mode passes of ``module``'s :class:`SlotBatchNorm1d` layers
    use batch statistics but do not move the population statistics."""
    layers = [m for m in module.modules() if isinstance(m, SlotBatchNorm1d)]
    before = [m.update_running for m in layers]
    for m in layers:
        m.update_running = False
    try:
        yield
    finally:
        for m, b in zip(layers, before, strict=True):
            m.update_running = b


def init_normal_(module: nn.Module, std: float) -> nn.Module:
    """Initialise every linear and (transposed) convolution layer of ``module`` in place: weights
    ``N(0, std^2)``, biases 0 (DCGAN's and PacGAN's ``std = 0.02``). Normalisation layers keep
    their own initialisation (scale 1, shift 0). Returns ``module``."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(layer.weight, mean=0.0, std=std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


class ConvEncoder(nn.Module):
    """Images ``(..., C, H, W)`` -> ``(..., out_features)``: two strided 4x4 convs + linear.

    With ``activation="leaky_relu"`` this is the DCGAN discriminator body (no batch norm, so that
    WGAN-GP and R1 penalties, which need per-example gradients, stay valid).
    """

    def __init__(self, in_shape: Sequence[int], out_features: int, width: int = 32,
                 activation: str = "leaky_relu"):
        super().__init__()
        c, h, w = in_shape
        if not conv_shape_ok(in_shape):
            raise ValueError(f"conv nets need (C, H, W) with H, W divisible by 4, got {in_shape}")
        self.in_shape = (c, h, w)
        act = ACTIVATIONS[activation]
        self.body = nn.Sequential(
            nn.Conv2d(c, width, 4, 2, 1), act(),
            nn.Conv2d(width, 2 * width, 4, 2, 1), act(),
            nn.Flatten(),
            nn.Linear(2 * width * (h // 4) * (w // 4), out_features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat, batch = _flatten_batch(x, 3)
        out = self.body(flat)
        return out.reshape(*batch, out.shape[-1])


class ConvDecoder(nn.Module):
    """Codes ``(..., in_features)`` -> images ``(..., C, H, W)``: linear + two 4x4 transposed convs.

    The DCGAN generator layout (batch norm and ReLU between layers when ``batch_norm=True``).
    Outputs are unbounded (logits or means); apply a sigmoid outside when pixels lie in [0, 1].
    """

    def __init__(self, in_features: int, out_shape: Sequence[int], width: int = 32,
                 batch_norm: bool = False):
        super().__init__()
        c, h, w = out_shape
        if not conv_shape_ok(out_shape):
            raise ValueError(f"conv nets need (C, H, W) with H, W divisible by 4, got {out_shape}")
        self.out_shape = (c, h, w)
        self.in_features = in_features
        self._start = (2 * width, h // 4, w // 4)

        def norm(ch: int) -> nn.Module:
            return nn.BatchNorm2d(ch) if batch_norm else nn.Identity()

        self.fc = nn.Sequential(nn.Linear(in_features, _prod(self._start)), nn.ReLU())
        self.body = nn.Sequential(
            norm(2 * width),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), norm(width), nn.ReLU(),
            nn.ConvTranspose2d(width, c, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        flat, batch = _flatten_batch(z, 1)
        out = self.body(self.fc(flat).reshape(-1, *self._start))
        return out.reshape(*batch, *self.out_shape)


def conv_shape_ok(shape: Sequence[int]) -> bool:
    """True when ``shape`` is ``(C, H, W)`` with H and W divisible by 4 (as the conv nets need)."""
    return len(shape) == 3 and shape[1] % 4 == 0 and shape[2] % 4 == 0 and min(shape) > 0


def _prod(shape: Sequence[int]) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out
