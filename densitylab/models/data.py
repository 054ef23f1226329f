"""Training data as streams of batches: a data tensor shuffled each epoch, a distribution
sampled afresh each step, or a fixed training set drawn once from a distribution."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .._runtime import make_generator
from .._validation import as_tensor, check_int

__all__ = ["iter_batches", "check_data"]


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
