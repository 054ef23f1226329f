"""What a suite needs of a model (:class:`Model`, checked by :func:`check_model`).

What a metric sees of a run (:class:`EvalContext`) and the seeds derived from a run's seed live
in :mod:`densitylab.scoring.context` (the score stage) and are importable from here too.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ..scoring.context import (
    EvalContext,
    as_points,
    declared_options,
    derive_seed,
    draw,
    heldout_target,
    model_log_prob,
    sample_points,
)

__all__ = ["Model", "check_model", "declared_options", "EvalContext", "derive_seed",
           "as_points", "sample_points", "draw", "heldout_target", "model_log_prob"]


@runtime_checkable
class Model(Protocol):
    """What a suite needs of a model (a built-in family, a reference row or a registered one).

    ``fit(data, steps=, batch_size=, seed=, lr=)`` trains on a target and returns its history
    (``lr`` only when the suite sets one or the model has a ``default_lr``); ``sample(n,
    seed=None)`` returns ``n`` points; ``log_prob(x)`` per-point log-densities, called only when
    ``has_density`` is true. Optional keywords are declared, never guessed from signatures, by
    the class attributes ``fit_options``, ``sample_options`` and ``log_prob_options``
    (``docs/user-guide.md``, "What the suite calls", says what each allows).
    """

    has_density: bool

    def fit(self, data: Any, steps: int, batch_size: int, seed: int, *args: Any,
            **kwargs: Any) -> Any: ...

    def sample(self, n: int, seed: int | None = None) -> Any: ...

    def log_prob(self, x: Any) -> Any: ...


def check_model(model: Any, kind: str) -> Model:
    """``model`` itself when it has the members of :class:`Model`; otherwise a TypeError naming
    the model ``kind`` and the members it lacks (raised when a suite is loaded, before any run)."""
    missing = [name for name in ("fit", "sample", "log_prob", "has_density")
               if not hasattr(model, name)]
    if missing:
        raise TypeError(f"model kind {kind!r}: a {type(model).__name__} lacks "
                        f"{', '.join(missing)}; a suite model needs fit, sample, log_prob and "
                        "has_density (densitylab.suite.context.Model)")
    return model
