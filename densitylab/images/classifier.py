"""A small CNN digit classifier, trained reproducibly on the 8x8 digits and cached on disk.

The classifier is the measuring instrument of the image diagnostics: its labels give the mode of a
stacked digit, its softmax confidence plays the part of the "high-quality" criterion, and its
penultimate layer is the feature space for KID, the Frechet distance and precision/recall. The
same seed gives the same weights, so scores from different runs and machines are comparable.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .. import __version__
from .._runtime import atomic_torch_save, logger, resolve_device, torch_threads
from .._validation import as_tensor, check_int
from .data import load_digits

__all__ = ["DigitClassifier", "get_classifier", "train_classifier", "cache_dir", "ARCHITECTURE"]

# Changing anything here changes the checksum and so the cache key: stale weights are never reused.
ARCHITECTURE = {
    "conv1": 16,
    "conv2": 32,
    "features": 64,
    "num_classes": 10,
    "epochs": 30,
    "batch_size": 64,
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "max_shift": 1,
}
# One thread: the batches are tiny, so more threads mostly add synchronisation (and on a busy
# machine spin-waiting), and a fixed count keeps the float reductions, hence the weights, fixed.
_TRAIN_THREADS = 1
_memo: dict[tuple, DigitClassifier] = {}


class DigitClassifier(nn.Module):
    """Two 3x3 conv layers and two linear layers for ``(n, 1, 8, 8)`` digit images in [0, 1].

    ``conv(1->c1) - ReLU - conv(c1->c2) - ReLU - maxpool 2 - linear(16 c2 -> F) - ReLU -
    linear(F -> 10)``; :meth:`features` returns the ``F``-dimensional penultimate activations.
    """

    def __init__(self, config: dict | None = None):
        super().__init__()
        cfg = dict(ARCHITECTURE if config is None else config)
        self.config = cfg
        self.conv1 = nn.Conv2d(1, cfg["conv1"], 3, padding=1)
        self.conv2 = nn.Conv2d(cfg["conv1"], cfg["conv2"], 3, padding=1)
        self.fc1 = nn.Linear(cfg["conv2"] * 16, cfg["features"])
        self.fc2 = nn.Linear(cfg["features"], cfg["num_classes"])

    @property
    def num_features(self) -> int:
        """Width of the penultimate layer."""
        return int(self.config["features"])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations, ``(n, F)``, for images ``(n, 1, 8, 8)``."""
        h = F.relu(self.conv1(x))
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, ``(n, 10)``."""
        return self.fc2(self.features(x))

    @torch.no_grad()
    def predict(self, x, batch_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted labels and their softmax probabilities for images ``(n, 1, 8, 8)``."""
        labels, conf = [], []
        for logits in self._batched(self.forward, x, batch_size):
            p, lab = torch.softmax(logits.double(), 1).max(1)
            labels.append(lab)
            conf.append(p)
        return torch.cat(labels), torch.cat(conf)

    @torch.no_grad()
    def accuracy(self, x, y) -> float:
        """Fraction of images whose predicted label equals ``y``."""
        labels, _ = self.predict(x)
        return float((labels.cpu() == torch.as_tensor(y).cpu()).double().mean())

    def _batched(self, fn, x, batch_size):
        was_training = self.training
        self.eval()
        dev = next(self.parameters()).device
        try:
            for start in range(0, len(x), batch_size):
                yield fn(x[start : start + batch_size].to(dev, torch.float32))
        finally:
            self.train(was_training)


def _random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by an integer offset in [-max_shift, max_shift]^2, filling with 0."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]
    rows = rows.expand(n, 1, h, w + 2 * max_shift)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, 1, h, w)
    return out.gather(3, cols)


def train_classifier(seed: int = 0, *, config: dict | None = None) -> DigitClassifier:
    """Train a :class:`DigitClassifier` on the digits train split (seed-deterministic, CPU).

    Adam with weight decay and a cosine learning-rate schedule, random +-1 pixel shifts as
    augmentation. Everything random comes from generators seeded by ``seed`` and training runs
    on a fixed number of CPU threads, so the same seed gives the same weights.
    """
    seed = check_int(seed, "seed", minimum=0)
    cfg = dict(ARCHITECTURE if config is None else config)
    x, y = load_digits("train")
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]), torch_threads(_TRAIN_THREADS):
        torch.manual_seed(seed)  # nn layer initialisation draws from the global generator
        model = DigitClassifier(cfg)
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        steps_per_epoch = -(-len(x) // cfg["batch_size"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg["epochs"] * steps_per_epoch)
        model.train()
        for _ in range(cfg["epochs"]):
            perm = torch.randperm(len(x), generator=gen)
            for start in range(0, len(x), cfg["batch_size"]):
                idx = perm[start : start + cfg["batch_size"]]
                xb = _random_shift(x[idx], cfg["max_shift"], gen)
                loss = F.cross_entropy(model(xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    model.eval()
    return model


def cache_dir() -> Path:
    """Where trained classifiers are kept: ``$DENSITYLAB_CACHE``, else ``~/.cache/densitylab``."""
    env = os.environ.get("DENSITYLAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "densitylab"


def _config_checksum(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]


def _cache_path(seed: int, cfg: dict, root: Path) -> Path:
    return root / f"digit-classifier-v{__version__}-seed{seed}-{_config_checksum(cfg)}.pt"


def _load_cached(path: Path, seed: int, cfg: dict) -> DigitClassifier | None:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if (
            blob.get("version") != __version__
            or blob.get("seed") != seed
            or blob.get("checksum") != _config_checksum(cfg)
        ):
            raise ValueError("metadata does not match")
        model = DigitClassifier(cfg)
        model.load_state_dict(blob["state_dict"])
    except Exception as err:  # any unreadable or mismatched file is simply retrained
        logger.warning("classifier cache %s is unusable (%s); retraining", path, err)
        return None
    model.eval()
    return model


def get_classifier(
    seed: int = 0, device="cpu", *, cache: str | os.PathLike | None = None, retrain: bool = False
) -> DigitClassifier:
    """The digit classifier for ``seed``: from the disk cache, or trained (seconds) and cached.

    The cache file (under :func:`cache_dir`, or ``cache``) is keyed by the package version, the seed
    and a checksum of :data:`ARCHITECTURE`; it is written atomically, and a missing, corrupted or
    mismatched file is retrained. Within one process the model is also kept in memory.

    Returns:
        A :class:`DigitClassifier` in eval mode on ``device``, with ``test_accuracy`` (its
        accuracy on the held-out digits test split) as an attribute.
    """
    seed = check_int(seed, "seed", minimum=0)
    dev = resolve_device(device)
    root = Path(cache).expanduser() if cache is not None else cache_dir()
    cfg = dict(ARCHITECTURE)
    key = (seed, str(dev), str(root.resolve()), _config_checksum(cfg))
    if not retrain and key in _memo:
        return _memo[key]
    path = _cache_path(seed, cfg, root)
    model = None if retrain else _load_cached(path, seed, cfg)
    if model is None:
        logger.info("training the digit classifier (seed %d); cached at %s", seed, path)
        model = train_classifier(seed, config=cfg)
        atomic_torch_save(
            {
                "version": __version__,
                "seed": seed,
                "checksum": _config_checksum(cfg),
                "config": cfg,
                "state_dict": model.state_dict(),
            },
            path,
        )
    x_test, y_test = load_digits("test")
    model.test_accuracy = model.accuracy(x_test, y_test)
    model = model.to(dev)
    _memo[key] = model
    return model


def check_digit_images(x, name: str = "x") -> torch.Tensor:
    """Check images ``(n, C, 8, 8)`` with values in [0, 1] (any C); return a float tensor."""
    t = as_tensor(x, name, ndim=4)
    if tuple(t.shape[2:]) != (8, 8):
        raise ValueError(
            f"{name} must be 8x8 images of shape (n, C, 8, 8) for the digit classifier, got "
            f"{tuple(t.shape)}"
        )
    lo, hi = float(t.min()), float(t.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"{name} must have values in [0, 1], got range [{lo:.4g}, {hi:.4g}]")
    return t
