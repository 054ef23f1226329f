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

    ``fit(data, steps=, batch_size=, seed=, lr=)`` trains on a target (anything with
    ``sample``) and returns its history; ``sample(n, seed=None)`` returns ``n`` points;
    ``log_prob(x)`` returns per-point log-densities and is called only when ``has_density`` is
    true. ``lr`` is passed only when the suite sets one (or the model has a ``default_lr``).

    Anything more is declared, never guessed from signatures, by three optional class
    attributes, each a collection of keyword names (default: empty, the basic contract above):

    * ``fit_options``: optional keywords of ``fit`` the suite may pass: ``lr_schedule`` (a
      suite may ask for a schedule other than ``"constant"`` only then), ``train_size``,
      ``callback`` (``eval_every``), ``device`` and ``progress``;
    * ``sample_options``: keywords a suite's ``[[models]] sample`` table may set (the VAE's
      ``noise``);
    * ``log_prob_options``: with ``"seed"``, ``log_prob(x, seed=...)`` is a random estimate
      the suite seeds (the VAE's importance-weighted bound).
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
