"""Input checks done once, at the public boundary (in the manner of scikit-learn's ``check_array``).

Every public function converts its array arguments with :func:`as_samples` (or
:func:`as_tensor`) and its scalar options with the ``check_*`` helpers below, so that bad input
raises a ``TypeError`` or ``ValueError`` that names the argument and says what was expected.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np
import torch

__all__ = [
    "as_tensor",
    "as_samples",
    "check_same_dim",
    "check_positive",
    "check_int",
    "check_choice",
    "check_probability",
]


def as_tensor(
    x,
    name: str,
    *,
    ndim: int | Iterable[int] | None = None,
    min_rows: int = 1,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    allow_nonfinite: bool = False,
) -> torch.Tensor:
    """Convert ``x`` (numpy array, torch tensor or nested list) to a floating tensor, checked.

    Integer and boolean input is promoted to ``float64`` (or ``dtype`` when given); floating
    tensors keep their dtype and device unless ``dtype``/``device`` is given.

    Raises:
        TypeError: ``x`` is not array-like or not numeric.
        ValueError: wrong number of dimensions, fewer than ``min_rows`` rows, or NaN/inf.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, np.ndarray | list | tuple) or np.isscalar(x):
        arr = np.asarray(x)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
        ):
            raise TypeError(f"{name} must be a numeric array or tensor, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    else:
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    if t.is_complex():
        raise TypeError(f"{name} must be real-valued, got complex dtype {t.dtype}")
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.float64)
    if device is not None:
        t = t.to(device)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if t.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(
                f"{name} must have {want} dimension(s), got shape {tuple(t.shape)}"
                + (" (reshape a single feature to (n, 1))" if t.ndim == 1 and 2 in allowed else "")
            )
    if t.ndim >= 1 and t.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} sample(s), got {t.shape[0]}")
    if not allow_nonfinite and t.numel() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); remove or impute them")
    return t


def as_samples(x, name: str, *, min_rows: int = 1, **kwargs) -> torch.Tensor:
    """Check a sample set: a finite 2D array of shape ``(n, d)`` with ``n >= min_rows``."""
    t = as_tensor(x, name, ndim=2, min_rows=min_rows, **kwargs)
    if t.shape[1] < 1:
        raise ValueError(
            f"{name} must have at least one feature column, got shape {tuple(t.shape)}"
        )
    return t


def check_same_dim(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("x", "y")) -> None:
    """Raise ``ValueError`` unless two sample sets have the same number of feature columns."""
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same feature shape, got "
            f"{tuple(x.shape[1:])} and {tuple(y.shape[1:])}"
        )


def check_positive(value, name: str, *, allow_none: bool = False, allow_zero: bool = False):
    """Return ``float(value)`` after checking it is a finite number > 0 (or >= 0)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return v


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``int(value)`` after checking it is an integer within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {v}")
    return v


def check_choice(value, name: str, choices: Iterable[str]) -> str:
    """Return ``value`` after checking it is one of ``choices`` (a string)."""
    options = tuple(choices)
    if value not in options:
        raise ValueError(
            f"unknown {name} {value!r}; expected one of {', '.join(map(repr, options))}"
        )
    return value


def check_probability(value, name: str, *, open_interval: bool = True) -> float:
    """Return ``float(value)`` after checking it lies in (0, 1) (or [0, 1])."""
    v = check_positive(value, name, allow_zero=not open_interval)
    if v > 1 or (open_interval and v >= 1):
        raise ValueError(
            f"{name} must lie in {'(0, 1)' if open_interval else '[0, 1]'}, got {value!r}"
        )
    return v
