"""Image targets: scikit-learn's 8x8 digits, stacked digits (1,000 modes), local IDX files, blobs.

Every target is a :class:`~densitylab.distributions.Target` whose ``sample(n, seed)`` returns
images of shape ``(n, *data_shape)`` with values in [0, 1]; ``dim`` is the number of pixels.
:class:`StackedDigits` returns ``(images, labels)`` because its labels define its 1,000 modes.

Nothing is downloaded: the digits ship with scikit-learn, and :func:`load_idx` reads MNIST-format
files that are already on disk.
"""

from __future__ import annotations

import gzip
import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .. import _registry
from .._runtime import make_generator
from .._validation import as_tensor, check_choice, check_int, check_positive
from ..distributions import Target
from .dequantize import DIGIT_LEVELS
from .dequantize import dequantize as _dequantize

__all__ = [
    "load_digits",
    "ImageSet",
    "Digits",
    "StackedDigits",
    "load_idx",
    "idx_dataset",
    "synthetic_blobs",
    "Blobs",
    "mode_index",
    "available",
    "make",
]

DIGITS_SHAPE = (1, 8, 8)
_TEST_FRACTION = 0.25


@lru_cache(maxsize=8)
def _digits_split(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = _sk_load_digits()
    # The digits are counts of set pixels in 4x4 blocks of a 32x32 bitmap: integers 0..16.
    x = (bunch.images.astype(np.float32) / 16.0).reshape(-1, *DIGITS_SHAPE)
    y = bunch.target.astype(np.int64)
    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(
        idx, test_size=_TEST_FRACTION, stratify=y, random_state=seed
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    return {
        "train": (x[train_idx], y[train_idx]),
        "test": (x[test_idx], y[test_idx]),
        "all": (x, y),
    }


def load_digits(split: str = "train", seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 handwritten digits (1,797 images, UCI optdigits test set) in [0, 1].

    Pixel values 0..16 are divided by 16. The train/test split is stratified by class, 75% / 25%
    (1,347 / 450 images), and fixed by ``seed``; ``split="all"`` returns every image in the
    original order.

    Returns:
        ``(X, y)``: ``X`` float32 ``(n, 1, 8, 8)``, ``y`` int64 labels 0..9 of shape ``(n,)``.

    Example:
        >>> X, y = load_digits("test")
        >>> tuple(X.shape), int(y.max())
        ((450, 1, 8, 8), 9)
    """
    check_choice(split, "split", ("train", "test", "all"))
    seed = check_int(seed, "seed", minimum=0)
    x, y = _digits_split(seed)[split]
    return torch.from_numpy(x.copy()), torch.from_numpy(y.copy())


class ImageSet(Target):
    """The empirical distribution of a fixed set of images: ``sample`` draws with replacement.

    Arguments:
        images: array ``(n, C, H, W)`` with values in [0, 1].
        labels: optional integer labels ``(n,)``, kept for class-conditional use.
        name: a short name used in tables.
    """

    name = "images"
    #: pixel levels of a dequantised target (its samples spread each level over its bin), else None
    levels: int | None = None

    def __init__(self, images, labels=None, *, name: str | None = None, device="cpu", params=None):
        x = as_tensor(images, "images", ndim=4, dtype=torch.float32, device=device)
        _check_unit_range(x, "images")
        super().__init__(int(math.prod(x.shape[1:])), device=device, params=params)
        self.images = x
        self.labels = None if labels is None else _check_labels(labels, len(x), device)
        if name is not None:
            self.name = name

    @property
    def data_shape(self) -> tuple[int, ...]:
        """Shape of one image, ``(C, H, W)``."""
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)

    def fixed_images(self) -> torch.Tensor:
        """The images every sample is drawn from, ``(n, C, H, W)``, in the space of the samples:
        for a dequantised target each pixel at the centre of its level's bin, ``(k + 1/2) / L``
        (the training set against which memorisation is measured)."""
        if self.levels is None:
            return self.images
        return (torch.round(self.images * (self.levels - 1)) + 0.5) / self.levels

    def _sample(self, n, gen):
        idx = torch.randint(len(self.images), (n,), generator=gen, device=self.device)
        return self.images[idx]

    def sample_with_labels(self, n: int, seed: int | None = None):
        """Like :meth:`sample`, also returning the labels of the drawn images."""
        if self.labels is None:
            raise ValueError(f"{self.name} has no labels; pass labels= when building it")
        n = check_int(n, "n", minimum=0)
        gen = make_generator(seed, self.device)
        idx = torch.randint(len(self.images), (n,), generator=gen, device=self.device)
        return self.images[idx], self.labels[idx]


class Digits(ImageSet):
    """The 8x8 digits of one split as a target: ``sample(n, seed)`` -> ``(n, 1, 8, 8)``.

    ``dequantize=True`` returns each drawn image's 17 pixel levels ``k`` as ``(k + u) / 17``
    with fresh ``u ~ U(0, 1)`` per pixel and draw (bins of width 1/17 in [0, 1); see
    :mod:`densitylab.images.dequantize`): the data a continuous density is fitted to and scored
    on in bits per dimension. ``levels`` is then 17, else None.
    """

    name = "digits"

    def __init__(self, split: str = "train", seed: int = 0, *, dequantize: bool = False,
                 device="cpu"):
        x, y = load_digits(split, seed)
        params = {"split": split, "seed": seed, **({"dequantize": True} if dequantize else {})}
        super().__init__(x, y, device=device, params=params)
        self.levels = DIGIT_LEVELS if dequantize else None

    def _sample(self, n, gen):
        x = super()._sample(n, gen)
        return x if self.levels is None else _dequantize(x, self.levels, gen)


def mode_index(labels) -> torch.Tensor:
    """Mode of a stacked-digit label triple ``(a, b, c)``: ``100 a + 10 b + c`` (0..999)."""
    t = torch.as_tensor(labels)
    if t.ndim != 2 or t.shape[1] != 3:
        raise ValueError(f"labels must have shape (n, 3), got {tuple(t.shape)}")
    t = t.long()
    return 100 * t[:, 0] + 10 * t[:, 1] + t[:, 2]


class StackedDigits(Target):
    """Three independent digits stacked as channels: 1,000 modes, one per label triple.

    This is the stacked-MNIST protocol (Metz et al., "Unrolled GANs", ICLR 2017; Srivastava et al.,
    "VEEGAN", NIPS 2017) built from the 8x8 digits: each channel is an independent image of the
    split, and the triple of labels ``(a, b, c)`` is mode ``100 a + 10 b + c``.

    With ``balanced=True`` (the default) each channel's class is drawn uniformly from 0..9 and then
    an image of that class uniformly, so the 1,000 modes are exactly equiprobable and the KL of a
    perfect sampler's mode histogram to uniform is 0 up to sampling noise. ``balanced=False`` draws
    images uniformly, as the original protocol does, inheriting the split's small class imbalance.

    ``sample(n, seed=0)`` returns ``(X, labels)``: ``X`` float32 ``(n, 3, 8, 8)`` in [0, 1] and
    ``labels`` int64 ``(n, 3)``. ``dequantize=True`` spreads each pixel's level uniformly over
    its bin, as :class:`Digits` does (``levels`` 17, else None).
    """

    name = "stacked_digits"
    num_modes = 1000

    def __init__(self, split: str = "train", seed: int = 0, *, balanced: bool = True,
                 dequantize: bool = False, device="cpu"):
        x, y = load_digits(split, seed)
        params = {"split": split, "seed": seed, "balanced": bool(balanced),
                  **({"dequantize": True} if dequantize else {})}
        super().__init__(3 * 64, device=device, params=params)
        self.levels = DIGIT_LEVELS if dequantize else None
        self.images = x.to(self.device)
        self.labels = y.to(self.device)
        self.balanced = bool(balanced)
        order = torch.argsort(self.labels, stable=True)
        counts = torch.bincount(self.labels, minlength=10)
        self._by_class = order
        self._class_start = torch.cumsum(counts, 0) - counts
        self._class_count = counts

    @property
    def data_shape(self) -> tuple[int, int, int]:
        """Shape of one stacked image, ``(3, 8, 8)``."""
        return (3, 8, 8)

    def sample(self, n: int, seed: int | None = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` stacked images and their label triples (reproducible for a given ``seed``)."""
        n = check_int(n, "n", minimum=0)
        gen = make_generator(seed, self.device)
        return self._sample(n, gen)

    def _sample(self, n, gen):
        if self.balanced:
            cls = torch.randint(10, (n, 3), generator=gen, device=self.device)
            u = torch.rand(n, 3, generator=gen, device=self.device)
            within = (u * self._class_count[cls]).long().clamp_max(self._class_count[cls] - 1)
            idx = self._by_class[self._class_start[cls] + within]
        else:
            idx = torch.randint(len(self.images), (n, 3), generator=gen, device=self.device)
        x = self.images[idx.reshape(-1), 0].reshape(n, 3, 8, 8)
        if self.levels is not None:
            x = _dequantize(x, self.levels, gen)
        return x, self.labels[idx]


def _check_unit_range(x: torch.Tensor, name: str) -> None:
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError(
            f"{name} must have values in [0, 1], got range [{float(x.min()):.4g}, "
            f"{float(x.max()):.4g}]; scale them first (e.g. divide 8-bit images by 255)"
        )


def _check_labels(labels, n: int, device) -> torch.Tensor:
    t = torch.as_tensor(labels, device=device)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"labels must be integers, got dtype {t.dtype}")
    if t.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match images, got {tuple(t.shape)}")
    return t.long()


# ----------------------------------------------------------------------------------------------
# IDX files (the MNIST distribution format, http://yann.lecun.com/exdb/mnist/)

_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def load_idx(path: str | os.PathLike, *, kind: str = "auto") -> torch.Tensor:
    """Read an MNIST-format IDX file (plain or gzipped) that is already on disk.

    The format is a 4-byte magic number ``00 00 <type> <ndim>``, ``ndim`` big-endian uint32
    sizes, then the values in row-major order. A 3-dimensional file holds images ``(n, H, W)``,
    returned as float32 ``(n, 1, H, W)`` in [0, 1] (unsigned bytes divided by 255, other integer
    types must lie in 0..255, float files must already lie in [0, 1]); a 1-dimensional file holds
    labels, returned as int64 ``(n,)``. Gzip is detected from the content, not the file name.

    Arguments:
        path: the file.
        kind: ``"images"``, ``"labels"`` or ``"auto"`` (decided by the number of dimensions).

    Raises:
        FileNotFoundError: no such file (nothing is downloaded).
        ValueError: bad magic number, unknown type code, a size that does not match the data,
            the wrong number of dimensions for ``kind``, or values out of range.
    """
    check_choice(kind, "kind", ("auto", "images", "labels"))
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {str(path)!r} does not exist (nothing is downloaded)")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: looks gzipped but cannot be decompressed: {err}") from err
    arr = _parse_idx(raw, str(path))
    if kind == "auto":
        if arr.ndim not in (1, 3):
            raise ValueError(
                f"{path}: IDX data of shape {arr.shape} is neither labels (1 dimension) nor "
                "images (3 dimensions: n, height, width)"
            )
        kind = "labels" if arr.ndim == 1 else "images"
    if kind == "labels":
        return _idx_labels(arr, path)
    return _idx_images(arr, path)


def _parse_idx(raw: bytes, where: str) -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{where}: not an IDX file (magic number must start with two zero bytes, got "
            f"{raw[:4].hex() or 'an empty file'})"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(
            f"{where}: unknown IDX type code 0x{code:02x}; expected one of "
            + ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)
        )
    if ndim < 1:
        raise ValueError(f"{where}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{where}: truncated IDX header ({len(raw)} bytes for {ndim} dimensions)")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{where}: header declares shape {shape} ({expected} bytes of data) but the file holds "
            f"{len(raw) - header} bytes; the file is truncated or the header is wrong"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _idx_labels(arr: np.ndarray, path: Path) -> torch.Tensor:
    if arr.ndim != 1:
        raise ValueError(f"{path}: labels must be 1-dimensional, got IDX shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{path}: labels must be integers, got IDX type {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{path}: labels must be non-negative, got minimum {int(arr.min())}")
    return torch.from_numpy(arr.astype(np.int64))


def _idx_images(arr: np.ndarray, path: Path) -> torch.Tensor:
    if arr.ndim != 3:
        raise ValueError(
            f"{path}: images must be 3-dimensional (n, height, width), got IDX shape {arr.shape}"
        )
    if arr.dtype == np.dtype(">u1"):
        x = arr.astype(np.float32) / 255.0
    elif arr.dtype.kind == "i":
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 255:
            raise ValueError(
                f"{path}: integer image values must lie in 0..255, got range [{lo}, {hi}]"
            )
        x = arr.astype(np.float32) / 255.0
    else:
        x = arr.astype(np.float32)
        if x.size and not np.isfinite(x).all():
            raise ValueError(f"{path}: float images contain NaN or infinite values")
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{path}: float image values must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]"
            )
    return torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1)


def idx_dataset(images_path, labels_path=None, *, name: str = "idx", device="cpu") -> ImageSet:
    """An :class:`ImageSet` from local IDX files (e.g. MNIST's ``train-images-idx3-ubyte.gz``)."""
    x = load_idx(images_path, kind="images")
    y = None
    if labels_path is not None:
        y = load_idx(labels_path, kind="labels")
        if len(y) != len(x):
            raise ValueError(
                f"labels_path holds {len(y)} labels but images_path holds {len(x)} images"
            )
    return ImageSet(x, y, name=name, device=device, params={"images_path": str(images_path)})


# ----------------------------------------------------------------------------------------------
# Synthetic images for fast tests


def synthetic_blobs(
    n: int, *, num_classes: int = 4, size: int = 8, blob_std: float = 1.0, noise: float = 0.05,
    seed: int | None = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Small labelled images of one Gaussian bump each: class ``c`` puts it at its own position.

    Class centres lie on a circle of radius ``size / 4`` around the image centre; each image jitters
    its centre by up to half a pixel, adds ``noise`` Gaussian pixel noise and is clipped to [0, 1].
    Cheap to make, clearly multi-modal, and learnable in a few steps: a stand-in for real data in
    fast tests.

    Returns:
        ``(X, y)``: float32 ``(n, 1, size, size)`` in [0, 1] and int64 labels ``(n,)``.
    """
    n = check_int(n, "n", minimum=0)
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    size = check_int(size, "size", minimum=2)
    blob_std = check_positive(blob_std, "blob_std")
    noise = check_positive(noise, "noise", allow_zero=True)
    gen = make_generator(seed)
    y = torch.randint(num_classes, (n,), generator=gen)
    angle = 2 * math.pi * y.double() / num_classes
    c = (size - 1) / 2
    centre = torch.stack([c + size / 4 * torch.cos(angle), c + size / 4 * torch.sin(angle)], 1)
    centre = centre + torch.rand(n, 2, generator=gen, dtype=torch.float64) - 0.5
    grid = torch.arange(size, dtype=torch.float64)
    dr = grid[None, :, None] - centre[:, 0, None, None]
    dc = grid[None, None, :] - centre[:, 1, None, None]
    img = torch.exp(-(dr**2 + dc**2) / (2 * blob_std**2))
    img = img + noise * torch.randn(img.shape, generator=gen, dtype=torch.float64)
    return img.clamp(0, 1).float().unsqueeze(1), y


class Blobs(ImageSet):
    """A fixed set of :func:`synthetic_blobs` images as a target (for fast tests and demos)."""

    name = "blobs"

    def __init__(self, n: int = 512, *, num_classes: int = 4, size: int = 8, seed: int = 0,
                 device="cpu"):
        x, y = synthetic_blobs(n, num_classes=num_classes, size=size, seed=seed)
        super().__init__(
            x, y, device=device,
            params={"n": n, "num_classes": num_classes, "size": size, "seed": seed},
        )


_FACTORIES = {"digits": Digits, "stacked_digits": StackedDigits, "blobs": Blobs}


def available() -> list[str]:
    """Names accepted by :func:`make`."""
    return _registry.names(_FACTORIES)


def make(name: str, **params) -> Target:
    """Build an image target by name (``digits``, ``stacked_digits``, ``blobs``) with ``params``.

    Raises:
        ValueError: unknown name. TypeError: a parameter the target does not take.
    """
    return _registry.build(_FACTORIES, name, params, kind="image dataset")
