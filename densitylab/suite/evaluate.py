"""One unit of a suite through its stages: train, score, store (:func:`execute_batched_runs`,
what every runner calls, in this process, a worker process or a Dask worker).

It never raises for a failure of a run itself: a failed run is recorded with its error (status
``"failed"``) and retried the next time the suite runs; a metric that fails is recorded as that
metric's error and the other metrics still count.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .._runtime import keep_freed_memory, logger, release_freed_memory, torch_threads
from ..results.store import RunStore
from ..results.tensorboard import LiveLog, write_run_events
from ..scoring import BUILTIN_METRICS, evaluate_metrics, labelled_value
from ..scoring.context import EvalContext, derive_seed
from . import registry
from .config import RunSpec
from .score import (
    CurveScorer,
    ScoredRun,
    saved_arrays,
    score_run,
    summarize_history,
)
from .train import train_unit

__all__ = ["EvalContext", "BUILTIN_METRICS", "execute_run", "execute_batched_runs", "saved_arrays",
           "evaluate_metrics", "derive_seed", "labelled_value", "summarize_history"]


def execute_run(spec: RunSpec | dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Train, sample, score and record one run in ``out_dir/runs/<run_id>.json``; returns its
    summary (:meth:`densitylab.results.records.RunRecord.summary`); a run that raises is
    recorded as ``failed``, not re-raised."""
    return execute_batched_runs([spec], out_dir)[0]


def execute_batched_runs(specs: list[RunSpec | dict[str, Any]],
                         out_dir: str | Path) -> list[dict[str, Any]]:
    """Train the runs ``specs`` (one, or several with equal
    :func:`~densitylab.suite.plan.batch_key` and distinct seeds, trained as one batched model:
    see :func:`~densitylab.suite.train.train_unit`), score and record each; returns one
    :meth:`RunRecord.summary <densitylab.results.records.RunRecord.summary>` per run."""
    specs = [RunSpec.from_dict(s) if isinstance(s, dict) else s for s in specs]
    store = RunStore(out_dir)
    scorers: dict[str, CurveScorer] = {}

    def callback_for(spec, target, model, device):
        live = _live_log(spec, store, model)
        every = spec.config["train"].get("eval_every")
        if not every:
            return live
        scorers[spec.run_id] = CurveScorer(spec, target, device, every, then=live)
        return scorers[spec.run_id]

    out = []
    keep_freed_memory()  # this process trains and scores: reuse freed pages
    with torch_threads(specs[0].threads):
        for run in train_unit(specs, callback_for):
            start = time.perf_counter()
            scorer = scorers.get(run.spec.run_id)
            scored = score_run(run, None if scorer is None else scorer.curves)
            out.append(_store(scored, store, run.train_s + time.perf_counter() - start,
                              tensorboard=run.spec.tensorboard))
    release_freed_memory()  # the next unit in this process starts from what it holds
    return out


def _store(scored: ScoredRun, store: RunStore, wall_s: float, *,
           tensorboard: bool) -> dict[str, Any]:
    """The store stage: keep the scored run (see :meth:`RunStore.save_run`) with its
    TensorBoard events when the suite asks for them; returns the run's summary."""
    events = (lambda record: write_run_events(store, record)) if tensorboard else None
    return store.save_run(scored.record, scored.arrays, scored.model, wall_s=wall_s,
                          before_record=events).summary(wall_s)


def _live_log(spec: RunSpec, store: RunStore, model) -> LiveLog | None:
    """The TensorBoard log of a run while it trains (``tensorboard = true`` and a model whose
    ``fit`` takes a callback), else None; see :class:`densitylab.results.tensorboard.LiveLog`."""
    if not spec.tensorboard or "callback" not in registry.declared_options(model, "fit"):
        return None
    try:
        return LiveLog(store, spec, spec.config["train"]["steps"])
    except Exception as err:  # the log is optional; the run is not
        logger.warning("no live TensorBoard log for %s: %s", spec.label, err)
        return None
