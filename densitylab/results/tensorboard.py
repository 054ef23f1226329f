"""TensorBoard event files of a results folder's runs (a suite's ``tensorboard = true``).

Each run, when it finishes, writes one event file under
``DIR/tb/<dataset>/<model>/seed<seed>-<run_id>/`` built from its record (see
:func:`write_run_events`), so TensorBoard's run names read ``ring/vae/seed0-3f2a9c0e1b7d``.
A run trained alone whose model's ``fit`` takes a ``callback`` also logs while it trains
(:class:`LiveLog`); the events built from its record replace those when it finishes. Watch a
suite while it runs with ``tensorboard --logdir DIR/tb``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from .records import RunRecord
from .store import RunStore

__all__ = ["write_run_events", "LiveLog", "tensorboard_available"]

#: Points per loss a live log writes during training (as many as the record's history keeps).
LIVE_POINTS = 200


class LiveLog:
    """A fit callback writing a run's losses to its TensorBoard folder while it trains.

    ``callback(step, losses, model)`` logs each loss every ``steps // LIVE_POINTS`` steps (its
    value at that step, not an average: the final events hold the record's averaged history);
    ``curves(step, values)`` logs ``eval_every`` scores. It never stops the fit (returns False)
    and touches no random state, so the run computes what it computes without it. :meth:`close`
    when training ends.
    """

    def __init__(self, store: RunStore, spec, steps: int):
        from torch.utils.tensorboard import SummaryWriter

        self.folder = store.tensorboard_dir(spec.dataset, spec.model, spec.seed, spec.run_id)
        shutil.rmtree(self.folder, ignore_errors=True)  # a retried run's partial events
        self.writer = SummaryWriter(log_dir=str(self.folder))
        self.every = max(1, int(steps) // LIVE_POINTS)

    def __call__(self, step: int, losses, model) -> bool:
        if (step + 1) % self.every == 0:
            _scalars(self.writer, "train", dict(losses), step + 1)
        return False

    def curves(self, step: int, values: dict[str, float]) -> None:
        """Log the ``eval_every`` scores of ``step``."""
        _scalars(self.writer, "curves", values, step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


def tensorboard_available() -> None:
    """Raise ImportError saying how to install TensorBoard when it is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as err:
        raise ImportError("tensorboard = true needs TensorBoard: pip install "
                          "'densitylab[tensorboard]' (or set tensorboard = false)") from err


def write_run_events(store: RunStore, record: RunRecord) -> Path:
    """Write the TensorBoard events of ``record`` and return their folder: ``train/<loss>`` (the
    record's history), ``curves/<value>`` (``eval_every``), ``metrics/<value>`` at the last
    step, ``time/train_s`` and ``time/eval_s``, and a text entry ``run`` with the run's facts.

    They are written into a hidden folder beside the records and renamed into place, so a run
    computed again replaces its events instead of adding a second copy. Needs TensorBoard
    (``pip install 'densitylab[tensorboard]'``)."""
    from torch.utils.tensorboard import SummaryWriter

    dest = store.tensorboard_dir(record.dataset, record.model, record.seed, record.run_id)
    tmp = store.runs_dir / f".tb-{record.run_id}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    writer = SummaryWriter(log_dir=str(tmp))
    try:
        if record.history is not None:
            for loss, series in record.history.series.items():
                for step, value in zip(series.step, series.value, strict=False):
                    _scalar(writer, f"train/{loss}", value, step)
        if record.curves is not None:
            for name, values in record.curves.values.items():
                for step, value in zip(record.curves.step, values, strict=False):
                    _scalar(writer, f"curves/{name}", value, step)
        last = int(record.trained_steps or record.steps or 0)
        for result in record.metrics.values():
            _scalars(writer, "metrics", result.values, last)
        _scalars(writer, "time", {"train_s": record.train_s, "eval_s": record.eval_s}, last)
        writer.add_text("run", _run_text(record), last)
    finally:
        writer.close()
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    return dest


def _scalar(writer, tag: str, value, step: int) -> None:
    if isinstance(value, int | float) and math.isfinite(value):
        writer.add_scalar(tag, float(value), int(step))


def _scalars(writer, section: str, values: dict[str, Any], step: int) -> None:
    """Each finite value as ``section/<name>`` at ``step``."""
    for name, value in values.items():
        _scalar(writer, f"{section}/{name}", value, step)


def _run_text(record: RunRecord) -> str:
    """The run's facts as Markdown (TensorBoard's text tab renders it)."""
    code = record.code or {}
    rows = [("run", f"{record.dataset}/{record.model}/{record.seed}"),
            ("run id", record.run_id), ("status", record.outcome),
            ("model", json.dumps(record.model_config.get("params", {}), sort_keys=True)),
            ("train", json.dumps(record.train, sort_keys=True)),
            ("code", f"fingerprint {code.get('fingerprint', 'not recorded')}, densitylab "
                     f"{code.get('densitylab', '?')}, git {code.get('git_commit') or 'none'}")]
    if record.outcome != "ok":
        rows.append(("why", record.failure_reason))
    return "\n".join(["| | |", "|---|---|"] + [f"| {k} | `{v}` |" for k, v in rows])
