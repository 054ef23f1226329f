"""Devices, seeds, atomic files, progress reporting and signal handling: runtime services every
module shares."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "resolve_device",
    "make_generator",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "progress",
    "logger",
    "LR_SCHEDULES",
    "signal_handled",
    "Terminated",
    "raise_terminated",
    "keep_freed_memory",
    "release_freed_memory",
]

logger = logging.getLogger("densitylab")

#: Learning-rate schedules of every ``fit`` (and of a suite's ``train.lr_schedule``): constant,
#: or cosine annealing without restarts (Loshchilov and Hutter, ICLR 2017),
#: ``lr * (1 + cos(pi t / steps)) / 2`` at step t. Defined once, here.
LR_SCHEDULES = ("constant", "cosine")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Map ``"auto"`` (or None) to CUDA when available, else CPU; check explicit requests.

    Raises:
        ValueError: unknown device string, or ``"cuda"`` asked for with no CUDA device present.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {device!r}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device='cuda' was requested but no CUDA device is available; use 'cpu' or 'auto'"
        )
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {device!r}")
    return dev


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator | None:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``; None when ``seed`` is None."""
    if seed is None:
        return None
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(int(seed))
    return gen


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    A reader (or a crash at any moment) sees either the old file or the complete new one. The
    file gets the mode an ordinary ``open(path, "w")`` would give it (0666 less the umask:
    0644 under umask 022), not the temp file's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 text (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (see :func:`atomic_write_bytes`)."""
    return atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    )


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """Atomically ``torch.save`` ``obj`` to ``path`` (see :func:`atomic_write_bytes`)."""
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def _json_default(obj: Any):
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def stderr_is_tty() -> bool:
    """Whether standard error is a terminal (where a progress bar may be drawn)."""
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def progress(
    iterable: Iterable,
    *,
    total: int | None = None,
    desc: str = "",
    enabled: bool | None = None,
    log_every: int | None = None,
) -> Iterator:
    """Iterate with progress: a tqdm bar on a TTY, else INFO log lines every ``log_every`` items.

    ``enabled=False`` silences it; ``None`` means "bar on a TTY, log lines otherwise". Log lines go
    through the ``densitylab`` logger, so nothing prints unless the caller configures logging.
    """
    if enabled is False:
        yield from iterable
        return
    if enabled or stderr_is_tty():
        from tqdm.auto import tqdm

        yield from tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)
        return
    every = log_every or max(1, (total or 100) // 10)
    for i, item in enumerate(iterable, start=1):
        yield item
        if i % every == 0 or (total is not None and i == total):
            logger.info("%s %d/%s", desc, i, total if total is not None else "?")


#: glibc's ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache  # the setting holds for the process; finding libc runs a subprocess (ldconfig)
def keep_freed_memory(mmap_threshold: int = 32 * 2**20, trim_threshold: int = 256 * 2**20) -> bool:
    """Let glibc's allocator keep freed memory for reuse (``mallopt``); True when it took effect.

    By default glibc serves every allocation above a threshold (128 KiB, raised dynamically)
    with a fresh ``mmap`` and trims the heap's top on free, so a loop that allocates and frees
    the same megabyte-sized tensors (a batched model's activations, a metric's blocks) faults
    every page in again each time. Serving up to ``mmap_threshold`` bytes from the heap and
    trimming only above ``trim_threshold`` free bytes keeps those pages: 500 steps of toy2d's
    ring models, 10 seeds batched, took 13 % (GAN), 9 % (VAE) and 15 % (diffusion) less CPU
    time with 2 to 4 % of the page faults (``benchmarks/perf/allocator_perf.py``). The cost is
    memory kept by the process after a peak. A no-op (False) where the C library has no
    ``mallopt`` (macOS, Windows).
    """
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))
                and mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))


def release_freed_memory() -> bool:
    """Hand the allocator's free memory back to the system (glibc's ``malloc_trim(0)``); True
    when it ran.

    :func:`keep_freed_memory` keeps freed blocks for reuse while a unit of a suite runs; a
    worker calls this after each unit, so that the free blocks of one unit's peak, fragmented
    by what the next unit allocates, do not stay resident for the rest of the suite (a toy2d
    worker reached 2.13 GB without it, against about 1.3 GB for a GAN or VAE unit alone). A
    no-op (False) where the C library has no ``malloc_trim``.
    """
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache  # finding libc runs a subprocess (ldconfig)
def _libc():
    """The C library (ctypes), or None where it cannot be loaded."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@contextmanager
def torch_threads(n: int | None):
    """Temporarily set torch's intra-op thread count (no-op for None)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def signal_handled(signum: int, handler):
    """Install ``handler`` for ``signum`` while the block runs (in the main thread only, the one
    that may set handlers), then restore the old one. Worker processes started while SIGINT is
    ignored inherit "ignore", so a Ctrl-C cannot kill them half-way through their start-up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, old)


class Terminated(KeyboardInterrupt):
    """What :func:`raise_terminated` raises for SIGTERM: a KeyboardInterrupt, so that code which
    stops its workers on Ctrl-C stops them the same way; ``signum`` says which signal."""

    def __init__(self, signum: int):
        super().__init__(f"received signal {signum}")
        self.signum = signum


def raise_terminated(signum, frame):
    """A signal handler raising :class:`Terminated`: ``signal_handled(SIGTERM, raise_terminated)``
    stops a block on SIGTERM as on Ctrl-C."""
    raise Terminated(signum)


class _ContiguousGradAdam(torch.optim.Adam):
    """torch's fused Adam given contiguous gradients. Its CPU kernel (torch 2.13) reads a
    gradient's memory as if it were contiguous, so a transposed gradient (a batched model's
    stacked weights get them) would update the wrong entries: with a (3, 4) gradient stored
    transposed, one step moved parameters by up to 0.2 against the per-tensor loop at lr 0.1
    (tests/test_runtime_adam.py)."""

    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and not p.grad.is_contiguous():
                    p.grad = p.grad.contiguous()
        return super().step(closure)


def fused_adam(params: list[torch.Tensor], **options: Any) -> torch.optim.Adam:
    """Adam with torch's fused kernel where the parameters' device has one (CPU and CUDA): one
    call updates every tensor instead of a handful of small ops per tensor, which is most of an
    optimiser step for the small networks here (the toy2d VAE, diffusion and GAN steps: 0.91,
    0.86 and 0.91 of the per-tensor loop's CPU time, docs/performance.md). The update is Adam's,
    equal to the per-tensor loop's on these networks (gradients are made contiguous first, see
    :class:`_ContiguousGradAdam`); elsewhere torch's default Adam."""
    params = list(params)
    if params and params[0].device.type in ("cpu", "cuda"):
        return _ContiguousGradAdam(params, **options, fused=True)
    return torch.optim.Adam(params, **options)
