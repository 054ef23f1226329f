"""Building blocks for property-based tests of losses, divergences and sample metrics.

This module is public: import it from your own test suite. It gives

* Hypothesis strategies that generate well-defined inputs: :func:`point_clouds`,
  :func:`sample_pairs`, :func:`gaussian_mixtures`, :func:`logits`, and the transforms
  :func:`orthogonal_matrices` and :func:`affine_maps` for invariance checks;
* assertion helpers for laws that many functions should obey: :func:`assert_finite`,
  :func:`assert_divergence_laws`, :func:`assert_symmetric`,
  :func:`assert_permutation_invariant`, :func:`assert_invariant`;
* laws of GAN losses and variational bounds, one call each:
  :func:`assert_generator_loss_laws`, :func:`assert_discriminator_loss_laws`,
  :func:`assert_optimal_discriminator`, :func:`assert_elbo_laws`, :func:`assert_iwae_monotone`
  (with the exactly solvable :func:`linear_gaussian_model` they use);
* :func:`register_profiles`, which registers a fast derandomized ``ci`` profile and a
  ``thorough`` profile and loads the one named by ``DENSITYLAB_HYPOTHESIS_PROFILE``.

The approach is property-based testing as in QuickCheck (Claessen and Hughes, ICFP 2000) and
Hypothesis (MacIver et al., JOSS 2019): state a law that must hold for every valid input, let the
library search for a counterexample, and get back a minimal one when the law fails.

Every strategy documents the bounds of what it generates; they keep the laws well defined (no
overflow when squaring distances, no collapsed bandwidth, no degenerate covariance) while still
reaching the edges (duplicated rows, extreme logits, tiny and large scales).

Example:
    >>> from hypothesis import given
    >>> from densitylab import testing
    >>> def mean_gap(x, y):  # squared distance between the sample means
    ...     return float(((x.mean(0) - y.mean(0)) ** 2).sum())
    >>> @given(testing.sample_pairs(max_n=20))
    ... def test_mean_gap_is_a_divergence(pair):
    ...     x, y = pair
    ...     testing.assert_divergence_laws(mean_gap, x, y, atol=1e-9)
    >>> test_mean_gap_is_a_divergence()
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

from ._loss_laws import (
    OPTIMA,
    LinearGaussianModel,
    assert_discriminator_loss_laws,
    assert_elbo_laws,
    assert_generator_loss_laws,
    assert_iwae_monotone,
    assert_optimal_discriminator,
    linear_gaussian_model,
)
from .distributions import GaussianMixture

__all__ = [
    "PROFILE_ENV_VAR",
    "point_clouds",
    "sample_pairs",
    "gaussian_mixtures",
    "logits",
    "orthogonal_matrices",
    "affine_maps",
    "assert_finite",
    "assert_close",
    "assert_divergence_laws",
    "assert_symmetric",
    "assert_permutation_invariant",
    "assert_invariant",
    "assert_generator_loss_laws",
    "assert_discriminator_loss_laws",
    "assert_optimal_discriminator",
    "assert_elbo_laws",
    "assert_iwae_monotone",
    "OPTIMA",
    "LinearGaussianModel",
    "linear_gaussian_model",
    "register_profiles",
]

#: Environment variable that names the Hypothesis profile :func:`register_profiles` loads.
PROFILE_ENV_VAR = "DENSITYLAB_HYPOTHESIS_PROFILE"

# Coordinates of clouds with distinct rows lie on a grid of this many steps per unit scale, so
# two distinct rows are at least scale / _GRID apart and their squared distance never underflows.
_GRID = 1024


# --------------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------------


def _check_range(name: str, lo: int, hi: int, minimum: int) -> None:
    if int(lo) != lo or int(hi) != hi:
        raise InvalidArgument(f"{name} bounds must be integers, got {lo!r} and {hi!r}")
    if lo < minimum or hi < lo:
        raise InvalidArgument(f"need {minimum} <= min_{name} <= max_{name}, got {lo} and {hi}")


def _check_scale(scale: tuple[float, float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in scale)
    except (TypeError, ValueError) as err:
        raise InvalidArgument(f"scale must be a pair (lo, hi) of numbers, got {scale!r}") from err
    if not (0 < lo <= hi < 1e15):
        raise InvalidArgument(f"scale must satisfy 0 < lo <= hi < 1e15, got {scale!r}")
    return lo, hi


def _dims(dim: int | tuple[int, int]) -> st.SearchStrategy[int]:
    if isinstance(dim, int):
        _check_range("dim", dim, dim, 1)
        return st.just(dim)
    lo, hi = dim
    _check_range("dim", lo, hi, 1)
    return st.integers(lo, hi)


def _finish(arr: np.ndarray, dtype: torch.dtype, as_numpy: bool):
    t = torch.as_tensor(np.ascontiguousarray(arr), dtype=dtype)
    return t.numpy() if as_numpy else t


# Non-zero unit coordinates are at least this large in magnitude: a cloud's extent is then tied
# to its scale, and squares of coordinates or of the scale never underflow.
_TINY = 1e-6


def _float_width(dtype: torch.dtype) -> int:
    """Bits of the Hypothesis floats drawn for ``dtype`` (bfloat16 values are rounded on cast)."""
    return {torch.float16: 16, torch.float32: 32, torch.bfloat16: 32}.get(dtype, 64)


def _unit_elements(dtype: torch.dtype) -> st.SearchStrategy[float]:
    width = _float_width(dtype)
    floats = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False, allow_subnormal=False,
                       width=width)
    return floats.map(lambda u: 0.0 if abs(u) < _TINY else u)


@st.composite
def _cloud(draw, n: int, d: int, s: float, distinct_rows: bool, dtype: torch.dtype) -> np.ndarray:
    if distinct_rows:
        coord = st.integers(-_GRID, _GRID)
        rows = draw(st.lists(st.tuples(*([coord] * d)), min_size=n, max_size=n, unique=True))
        unit = np.asarray(rows, dtype=np.float64).reshape(n, d) / _GRID
    else:
        unit = draw(hnp.arrays(np.float64, (n, d), elements=_unit_elements(dtype)))
    return unit * s


@st.composite
def point_clouds(
    draw,
    *,
    min_n: int = 2,
    max_n: int = 32,
    min_dim: int = 1,
    max_dim: int = 4,
    scale: tuple[float, float] = (1e-2, 1e2),
    distinct_rows: bool = False,
    dtype: torch.dtype = torch.float64,
    as_numpy: bool = False,
):
    """Finite point clouds: arrays of shape ``(n, d)`` with every coordinate in ``[-s, s]``.

    ``n`` is drawn from ``[min_n, max_n]``, ``d`` from ``[min_dim, max_dim]`` and the cloud's
    scale ``s`` from ``scale = (lo, hi)``. Coordinates are ``s * u`` with ``u`` a float in
    ``[-1, 1]`` that is either 0 or at least ``1e-6`` in magnitude (no NaN, no infinity, no
    subnormal, no ``1e-300``), so squared distances stay below ``4 d s^2`` and never overflow
    in float32 or float64 (``hi < 1e15`` is required), and a cloud that is not all zeros spans
    at least ``1e-6 s``.

    Rows may repeat (Hypothesis likes to try all-equal clouds), which is right for laws that
    must hold on duplicates and wrong for estimators that need distinct points (k-NN distances,
    the median-heuristic bandwidth): pass ``distinct_rows=True`` and the coordinates are drawn
    from the grid ``s * k / 1024``, ``|k| <= 1024``, with all rows distinct, so any two rows are
    at least ``s / 1024`` apart. With ``distinct_rows=True`` keep ``max_n <= 2049 ** max_dim``.

    Arguments:
        min_n, max_n: bounds on the number of rows (``1 <= min_n <= max_n``).
        min_dim, max_dim: bounds on the number of columns (``1 <= min_dim <= max_dim``).
        scale: bounds ``(lo, hi)`` on the half-width ``s`` of the box holding the cloud.
        distinct_rows: guarantee pairwise distinct rows (see above).
        dtype: torch floating dtype of the result (float32 draws float32-representable values).
        as_numpy: return a numpy array instead of a torch tensor.

    Example:
        >>> from hypothesis import given
        >>> @given(point_clouds(max_n=10, max_dim=3))
        ... def test_centering_removes_the_mean(x):
        ...     assert_close((x - x.mean(0)).mean(0).abs().max(), 0.0, atol=1e-9 * x.abs().max())
        >>> test_centering_removes_the_mean()
    """
    _check_range("n", min_n, max_n, 1)
    _check_range("dim", min_dim, max_dim, 1)
    lo, hi = _check_scale(scale)
    if distinct_rows and max_n > (2 * _GRID + 1) ** min_dim:
        raise InvalidArgument(f"max_n={max_n} distinct grid rows do not fit in dim {min_dim}")
    n = draw(st.integers(min_n, max_n), label="n")
    d = draw(st.integers(min_dim, max_dim), label="dim")
    s = draw(st.floats(lo, hi), label="scale")
    return _finish(draw(_cloud(n, d, s, distinct_rows, dtype)), dtype, as_numpy)


@st.composite
def gaussian_mixtures(
    draw,
    *,
    min_modes: int = 1,
    max_modes: int = 5,
    dim: int | tuple[int, int] = 2,
    mean_bound: float = 5.0,
    std_range: tuple[float, float] = (0.1, 2.0),
    diagonal: bool = False,
    min_weight: float = 0.05,
    dtype: torch.dtype = torch.float32,
) -> GaussianMixture:
    """Valid, well-conditioned, bounded :class:`~densitylab.distributions.GaussianMixture`.

    Draws ``K`` in ``[min_modes, max_modes]``, the dimension from ``dim`` (an int or a pair of
    bounds), means with every coordinate in ``[-mean_bound, mean_bound]``, standard deviations in
    ``std_range = (lo, hi)`` (one per mode, or one per mode and axis when ``diagonal``), and raw
    weights in ``[min_weight, 1]``, normalised by the mixture. So the covariance condition number
    is at most ``(hi / lo) ** 2``, the largest weight is at most ``1 / min_weight`` times the
    smallest, and every log-density is finite on the whole box the means live in.

    Arguments:
        min_modes, max_modes: bounds on the number of components.
        dim: the dimension, or ``(min_dim, max_dim)``.
        mean_bound: half-width of the box holding the means (> 0).
        std_range: ``(lo, hi)`` bounds on the standard deviations, ``0 < lo <= hi``.
        diagonal: draw a separate std for every axis (diagonal covariance) instead of one per mode.
        min_weight: lower bound of the raw weights, in ``(0, 1]``.
        dtype: dtype of the mixture's parameters, samples and log-densities.

    Example:
        >>> from hypothesis import given
        >>> @given(gaussian_mixtures(max_modes=3, dim=(1, 3)))
        ... def test_log_prob_is_finite_on_samples(p):
        ...     assert_finite(p.log_prob(p.sample(50, seed=0)), "log_prob")
        >>> test_log_prob_is_finite_on_samples()
    """
    _check_range("modes", min_modes, max_modes, 1)
    lo, hi = (float(v) for v in std_range)
    if not (0 < lo <= hi < math.inf):
        raise InvalidArgument(f"std_range must satisfy 0 < lo <= hi, got {std_range!r}")
    if not (0 < mean_bound < math.inf):
        raise InvalidArgument(f"mean_bound must be finite and > 0, got {mean_bound!r}")
    if not (0 < min_weight <= 1):
        raise InvalidArgument(f"min_weight must lie in (0, 1], got {min_weight!r}")
    k = draw(st.integers(min_modes, max_modes), label="n_modes")
    d = draw(_dims(dim), label="dim")
    coord = st.floats(-mean_bound, mean_bound, allow_subnormal=False)
    means = draw(hnp.arrays(np.float64, (k, d), elements=coord), label="means")
    std_shape = (k, d) if diagonal else (k,)
    stds = draw(hnp.arrays(np.float64, std_shape, elements=st.floats(lo, hi)), label="stds")
    weights = draw(hnp.arrays(np.float64, (k,), elements=st.floats(min_weight, 1.0)),
                   label="weights")
    return GaussianMixture(means, stds, weights, dtype=dtype)


_EXTREMES = (0.0, 1.0, -1.0, 30.0, -30.0, 100.0, -100.0)


@st.composite
def logits(
    draw,
    *,
    shape: int | tuple[int, ...] | st.SearchStrategy | None = None,
    min_size: int = 1,
    max_size: int = 16,
    max_abs: float = 1e4,
    dtype: torch.dtype = torch.float32,
    requires_grad: bool = False,
    as_numpy: bool = False,
):
    """Finite logits with magnitude at most ``max_abs``, extreme values included on purpose.

    Each entry is either a float in ``[-max_abs, max_abs]`` or one of the values where losses
    break in practice: ``0``, ``+-1``, ``+-30`` (where ``exp`` leaves float32's sigmoid
    saturated), ``+-100`` and ``+-max_abs``. ``max_abs = 1e4`` is far beyond where a naive
    ``log(sigmoid(x))`` returns ``-inf``, and still representable in float16's bigger cousins.

    Arguments:
        shape: the shape (an int, a tuple, or a strategy of either); by default a 1D vector with
            length in ``[min_size, max_size]``.
        max_abs: the largest magnitude, finite and > 0.
        dtype: torch floating dtype (float32 entries are drawn float32-representable).
        requires_grad: return a leaf tensor that records gradients.
        as_numpy: return a numpy array instead of a torch tensor.

    Example:
        >>> from hypothesis import given
        >>> @given(logits(max_abs=1e4, requires_grad=True))
        ... def test_softplus_is_finite(z):
        ...     torch.nn.functional.softplus(z).sum().backward()
        ...     assert_finite(z.grad, "grad")
        >>> test_softplus_is_finite()
    """
    if not (0 < max_abs < math.inf):
        raise InvalidArgument(f"max_abs must be finite and > 0, got {max_abs!r}")
    if requires_grad and as_numpy:
        raise InvalidArgument("requires_grad=True needs a torch tensor, not as_numpy=True")
    if shape is None:
        _check_range("size", min_size, max_size, 0)
        shape = st.integers(min_size, max_size)
    if isinstance(shape, st.SearchStrategy):
        shape = draw(shape, label="shape")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    width = _float_width(dtype)
    specials = [v for v in _EXTREMES if abs(v) <= max_abs] + [max_abs, -max_abs]
    elements = st.one_of(
        st.sampled_from(specials),
        st.floats(-max_abs, max_abs, allow_subnormal=False, width=width),
    )
    arr = draw(hnp.arrays(np.float64, shape, elements=elements), label="logits")
    if as_numpy:
        return _finish(arr, dtype, True)
    t = _finish(arr, dtype, False)
    return t.requires_grad_(True) if requires_grad else t


@st.composite
def sample_pairs(
    draw,
    *,
    min_n: int = 2,
    max_n: int = 32,
    min_dim: int = 1,
    max_dim: int = 4,
    scale: tuple[float, float] = (1e-2, 1e2),
    same_size: bool = False,
    distinct_rows: bool = False,
    same_distribution: bool = False,
    dtype: torch.dtype = torch.float64,
    as_numpy: bool = False,
):
    """Pairs ``(x, y)`` of sample sets with the same number of columns, for two-sample laws.

    By default ``x`` and ``y`` are two independent :func:`point_clouds` (any finite values within
    the documented bounds, sizes drawn independently unless ``same_size``), sharing the
    dimension and the scale ``s``. With ``same_distribution=True`` they are instead two
    independent i.i.d. samples of one drawn :func:`gaussian_mixtures` target (means in
    ``[-5 s, 5 s]``, stds in ``[0.1 s, 2 s]``): the case where a consistent divergence
    estimator should come close to 0 and a two-sample test should not reject.

    Arguments:
        min_n, max_n: bounds on each set's number of rows.
        min_dim, max_dim: bounds on the shared number of columns.
        scale: bounds on the shared scale ``s`` (see :func:`point_clouds`).
        same_size: give ``x`` and ``y`` the same number of rows.
        distinct_rows: no repeated row inside ``x``, inside ``y``, nor between them (arbitrary
            pairs: grid coordinates as in :func:`point_clouds`; mixture samples are distinct
            with probability one).
        same_distribution: draw both sets from one Gaussian mixture (see above).
        dtype, as_numpy: as in :func:`point_clouds`.

    Example:
        >>> from hypothesis import given
        >>> @given(sample_pairs(max_n=16))
        ... def test_mean_gap_is_symmetric(pair):
        ...     x, y = pair
        ...     gap = lambda a, b: float((a.mean(0) - b.mean(0)).norm())
        ...     assert_symmetric(gap, x, y)
        >>> test_mean_gap_is_symmetric()
    """
    _check_range("n", min_n, max_n, 1)
    _check_range("dim", min_dim, max_dim, 1)
    lo, hi = _check_scale(scale)
    n = draw(st.integers(min_n, max_n), label="n")
    m = n if same_size else draw(st.integers(min_n, max_n), label="m")
    d = draw(st.integers(min_dim, max_dim), label="dim")
    s = draw(st.floats(lo, hi), label="scale")
    if same_distribution:
        p = draw(gaussian_mixtures(max_modes=4, dim=d, dtype=torch.float64), label="target")
        p = GaussianMixture(p.means * s, p.stds * s, p.weights, dtype=torch.float64)
        seed = draw(st.integers(0, 2**31 - 1), label="seed")
        both = p.sample(n + m, seed=seed).numpy()
        x, y = both[:n], both[n:]
    elif distinct_rows:
        if n + m > (2 * _GRID + 1) ** d:
            raise InvalidArgument(f"{n + m} distinct grid rows do not fit in dim {d}")
        both = draw(_cloud(n + m, d, s, True, dtype))
        x, y = both[:n], both[n:]
    else:
        x = draw(_cloud(n, d, s, False, dtype), label="x")
        y = draw(_cloud(m, d, s, False, dtype), label="y")
    return _finish(x, dtype, as_numpy), _finish(y, dtype, as_numpy)


@st.composite
def orthogonal_matrices(draw, dim: int, *, dtype: torch.dtype = torch.float64):
    """Orthogonal ``(dim, dim)`` matrices (rotations and reflections), Haar-distributed.

    Built as in Mezzadri (Notices of the AMS, 2007): the Q factor of a Gaussian matrix with the
    signs of R's diagonal folded in. A seed is drawn, so shrinking goes towards seed 0.

    Example:
        >>> from hypothesis import given
        >>> @given(orthogonal_matrices(3))
        ... def test_rotation_keeps_norms(q):
        ...     v = torch.ones(3, dtype=q.dtype)
        ...     assert_close(float((q @ v).norm()), float(v.norm()), rtol=1e-12)
        >>> test_rotation_keeps_norms()
    """
    _check_range("dim", dim, dim, 1)
    seed = draw(st.integers(0, 2**31 - 1), label="seed")
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))[None, :]
    return q.to(dtype)


@st.composite
def affine_maps(
    draw,
    dim: int,
    *,
    max_condition: float = 10.0,
    scale: tuple[float, float] = (0.1, 10.0),
    shift_bound: float = 10.0,
    dtype: torch.dtype = torch.float64,
):
    """Invertible affine maps ``x -> x @ A.T + b`` as pairs ``(A, b)``, well conditioned.

    ``A = c * U diag(s) V^T`` with ``U, V`` from :func:`orthogonal_matrices`, singular values
    ``s`` in ``[1, max_condition]`` (so ``cond(A) <= max_condition``), an overall factor ``c``
    in ``scale``, and every coordinate of ``b`` in ``[-shift_bound, shift_bound]``.

    Example:
        >>> from hypothesis import given
        >>> @given(affine_maps(2))
        ... def test_map_is_invertible(ab):
        ...     a, b = ab
        ...     assert abs(float(torch.linalg.det(a))) > 0
        >>> test_map_is_invertible()
    """
    lo, hi = _check_scale(scale)
    if not (1 <= max_condition < math.inf):
        raise InvalidArgument(f"max_condition must be finite and >= 1, got {max_condition!r}")
    u = draw(orthogonal_matrices(dim), label="U")
    v = draw(orthogonal_matrices(dim), label="V")
    s = draw(hnp.arrays(np.float64, (dim,), elements=st.floats(1.0, max_condition)), label="s")
    c = draw(st.floats(lo, hi), label="c")
    b = draw(hnp.arrays(np.float64, (dim,), elements=st.floats(-shift_bound, shift_bound)),
             label="b")
    a = c * (u * torch.from_numpy(s)[None, :]) @ v.T
    return a.to(dtype), torch.from_numpy(b).to(dtype)


# --------------------------------------------------------------------------------------------
# assertion helpers
# --------------------------------------------------------------------------------------------


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().to(torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)


def _scalar(value: Any, what: str) -> float:
    arr = _to_numpy(value)
    if arr.size != 1:
        raise AssertionError(f"{what} must return a scalar, got shape {arr.shape}")
    return float(arr.reshape(()))


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor | np.ndarray):
        return f"{type(x).__name__} of shape {tuple(x.shape)}"
    return type(x).__name__


def assert_finite(value: Any, name: str = "value") -> None:
    """Assert that ``value`` (tensor, array, number, or a mapping/sequence of them) has no NaN/inf.

    Result objects with a ``to_dict()`` method are checked field by field; ``None`` fields
    (a value that is undefined by design, such as ``ModeCoverage.kl_to_uniform`` when no sample
    is of high quality) are skipped. The error names ``name``, counts the bad entries and shows
    the first one's index.

    Example:
        >>> assert_finite(torch.tensor([0.0, 1.0]), "loss")
    """
    if isinstance(value, Mapping):
        for key, item in value.items():
            if item is not None:
                assert_finite(item, f"{name}[{key!r}]")
        return
    if hasattr(value, "to_dict") and callable(value.to_dict):
        assert_finite(value.to_dict(), name)
        return
    if isinstance(value, Sequence) and not isinstance(value, str | bytes) and value and not all(
        isinstance(v, int | float) for v in value
    ):
        for i, item in enumerate(value):
            assert_finite(item, f"{name}[{i}]")
        return
    arr = _to_numpy(value)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0]) if arr.ndim else ()
        shown = arr[first] if arr.ndim else arr
        raise AssertionError(
            f"{name} has {int(bad.sum())} non-finite value(s) out of {arr.size}; "
            f"first at index {first}: {shown}"
        )


def assert_close(actual: Any, expected: Any, *, rtol: float = 1e-7, atol: float = 0.0,
                 name: str = "value") -> None:
    """Assert ``|actual - expected| <= atol + rtol * |expected|`` elementwise, with a clear message.

    Example:
        >>> assert_close(0.1 + 0.2, 0.3, rtol=1e-12)
    """
    a, e = _to_numpy(actual), _to_numpy(expected)
    if a.shape != e.shape and a.size != 1 and e.size != 1:
        raise AssertionError(f"{name}: shape {a.shape} differs from expected shape {e.shape}")
    assert_finite(a, name)
    err = np.abs(a - e)
    tol = atol + rtol * np.abs(e)
    if (err > tol).any():
        worst = np.unravel_index(int(np.argmax(err - tol)), np.broadcast(a, e).shape)
        raise AssertionError(
            f"{name} = {a} is not within atol={atol:g} + rtol={rtol:g} * |expected| of {e} "
            f"(largest gap {float(err.max()):.6g} at index {tuple(int(i) for i in worst)})"
        )


def assert_divergence_laws(
    divergence: Callable[..., Any],
    x: Any,
    y: Any,
    *,
    atol: float = 1e-8,
    zero_atol: float | None = None,
    **kwargs: Any,
) -> float:
    """Assert the laws of a divergence ``D``: finite, ``D(x, y) >= 0`` and ``D(x, x) = 0``.

    Checks ``D(x, y) >= -atol`` (round-off may dip just below zero), and
    ``|D(x, x)| <= zero_atol`` and ``|D(y, y)| <= zero_atol`` (``zero_atol`` defaults to
    ``atol``). Keyword arguments go to ``divergence``. Returns ``D(x, y)``.

    This suits estimators that are exactly zero on identical inputs, such as the biased
    (V-statistic) MMD; an unbiased estimator can be negative and breaks the first law by design.

    Example:
        >>> sq_mean_gap = lambda a, b: float(((a.mean(0) - b.mean(0)) ** 2).sum())
        >>> assert_divergence_laws(sq_mean_gap, torch.zeros(3, 2), torch.ones(4, 2))
        2.0
    """
    zero_atol = atol if zero_atol is None else zero_atol
    d_xy = _scalar(divergence(x, y, **kwargs), "divergence")
    if not math.isfinite(d_xy):
        raise AssertionError(f"divergence(x, y) = {d_xy} is not finite for x: {_describe(x)}, "
                             f"y: {_describe(y)}")
    if d_xy < -atol:
        raise AssertionError(f"divergence(x, y) = {d_xy!r} < 0 (beyond atol={atol:g}) for "
                             f"x: {_describe(x)}, y: {_describe(y)}")
    for label, z in (("x", x), ("y", y)):
        d_zz = _scalar(divergence(z, z, **kwargs), "divergence")
        if not (math.isfinite(d_zz) and abs(d_zz) <= zero_atol):
            raise AssertionError(f"divergence({label}, {label}) = {d_zz!r}, expected 0 within "
                                 f"zero_atol={zero_atol:g} for {label}: {_describe(z)}")
    return d_xy


def assert_symmetric(
    f: Callable[..., Any], x: Any, y: Any, *, rtol: float = 1e-7, atol: float = 1e-12,
    **kwargs: Any,
) -> float:
    """Assert ``f(x, y) == f(y, x)`` within ``atol + rtol * |f(x, y)|``; return ``f(x, y)``.

    Example:
        >>> assert_symmetric(lambda a, b: abs(a - b), 1.0, 3.0)
        2.0
    """
    f_xy = _scalar(f(x, y, **kwargs), "f")
    f_yx = _scalar(f(y, x, **kwargs), "f")
    if not (math.isfinite(f_xy) and math.isfinite(f_yx)):
        raise AssertionError(f"f(x, y) = {f_xy} and f(y, x) = {f_yx} must both be finite")
    if abs(f_xy - f_yx) > atol + rtol * abs(f_xy):
        raise AssertionError(
            f"not symmetric: f(x, y) = {f_xy!r} but f(y, x) = {f_yx!r} (gap {abs(f_xy - f_yx):.3g}"
            f" > atol={atol:g} + rtol={rtol:g} * |f(x, y)|) for x: {_describe(x)}, "
            f"y: {_describe(y)}"
        )
    return f_xy


def _permute_rows(z: Any, gen: np.random.Generator) -> Any:
    perm = gen.permutation(z.shape[0])
    if isinstance(z, torch.Tensor):
        return z[torch.as_tensor(perm, device=z.device)]
    return np.asarray(z)[perm]


def _unchanged(before: float, after: float, *, rtol: float, atol: float) -> bool:
    """Both values finite and ``|before - after| <= atol + rtol * |before|``."""
    return (math.isfinite(before) and math.isfinite(after)
            and not abs(before - after) > atol + rtol * abs(before))


def assert_permutation_invariant(
    f: Callable[..., Any], x: Any, y: Any = None, *, seed: int = 0, rtol: float = 1e-7,
    atol: float = 1e-12, **kwargs: Any,
) -> float:
    """Assert that ``f`` ignores the order of samples: shuffling the rows changes nothing.

    Compares ``f(x, y)`` with ``f(x[p], y[q])`` for random row permutations ``p`` and ``q``
    (drawn from ``seed``); with ``y=None`` compares ``f(x)`` with ``f(x[p])``. Returns the
    unshuffled value.

    Example:
        >>> assert_permutation_invariant(lambda a: float(a.sum()), torch.arange(5.0)[:, None])
        10.0
    """
    gen = np.random.default_rng(seed)
    args = (x,) if y is None else (x, y)
    shuffled = tuple(_permute_rows(z, gen) for z in args)
    before = _scalar(f(*args, **kwargs), "f")
    after = _scalar(f(*shuffled, **kwargs), "f")
    if not _unchanged(before, after, rtol=rtol, atol=atol):
        raise AssertionError(
            f"not permutation invariant: {before!r} before shuffling the rows, {after!r} after "
            f"(atol={atol:g}, rtol={rtol:g}, seed={seed})"
        )
    return before


def assert_invariant(
    f: Callable[..., Any], transform: Callable[[Any], Any], x: Any, y: Any = None, *,
    rtol: float = 1e-7, atol: float = 1e-12, name: str = "transform", **kwargs: Any,
) -> float:
    """Assert ``f(T(x), T(y)) == f(x, y)`` (or ``f(T(x)) == f(x)``) for a shared transform ``T``.

    For example a translation or rotation applied to both sample sets for a distance-based
    kernel statistic, or an invertible affine map for a KL divergence estimate. Returns
    ``f(x, y)``.

    Example:
        >>> spread = lambda a: float(a.std())
        >>> assert_invariant(spread, lambda a: a + 5.0, torch.arange(4.0, dtype=torch.float64),
        ...                  name="shift")
        1.2909944487358056
    """
    args = (x,) if y is None else (x, y)
    before = _scalar(f(*args, **kwargs), "f")
    after = _scalar(f(*(transform(z) for z in args), **kwargs), "f")
    if not _unchanged(before, after, rtol=rtol, atol=atol):
        raise AssertionError(
            f"not invariant under {name}: {before!r} before, {after!r} after (gap "
            f"{abs(before - after):.3g}, atol={atol:g}, rtol={rtol:g})"
        )
    return before


# --------------------------------------------------------------------------------------------
# profiles
# --------------------------------------------------------------------------------------------


def register_profiles(
    *,
    ci_max_examples: int = 30,
    thorough_max_examples: int = 1000,
    env_var: str = PROFILE_ENV_VAR,
    default: str = "ci",
    load: bool = True,
) -> str:
    """Register the ``ci`` and ``thorough`` Hypothesis profiles and load the selected one.

    * ``ci``: ``ci_max_examples`` examples, no deadline, ``derandomize=True`` (the same examples on
      every run, so a red build is reproducible), no example database, ``print_blob=True`` (a
      failure prints the ``@reproduce_failure`` line).
    * ``thorough``: ``thorough_max_examples`` random examples, no deadline, ``print_blob=True``.

    The profile loaded is the value of the environment variable ``env_var``
    (``DENSITYLAB_HYPOTHESIS_PROFILE``) or ``default``; it may also name a profile you
    registered yourself. Call it from your ``conftest.py``. Returns the selected name.

    Raises:
        ValueError: the environment variable names a profile that is not registered.

    Example:
        >>> register_profiles(load=False)
        'ci'
    """
    slow_ok = [HealthCheck.too_slow, HealthCheck.data_too_large]
    settings.register_profile(
        "ci", max_examples=int(ci_max_examples), deadline=None, derandomize=True, database=None,
        print_blob=True, suppress_health_check=slow_ok,
    )
    settings.register_profile(
        "thorough", max_examples=int(thorough_max_examples), deadline=None, print_blob=True,
        suppress_health_check=slow_ok,
    )
    name = os.environ.get(env_var, "").strip() or default
    try:
        settings.get_profile(name)
    except InvalidArgument as err:
        raise ValueError(
            f"{env_var}={name!r} is not a registered Hypothesis profile; use 'ci' or 'thorough'"
        ) from err
    if load:
        settings.load_profile(name)
    return name
