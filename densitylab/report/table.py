"""The tidy results table: one row per (run, metric value), read from a results folder."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..results.store import RunRecord, RunStore
from ..suite.references import is_reference

__all__ = ["COLUMNS", "results_table", "failed_runs", "summarize", "run_status"]

#: Columns of ``results.csv``, in order. ``status`` is ``ok`` for a value, ``undefined`` for a
#: value the metric could not define for that seed (``reason`` says why), ``error`` for a metric
#: that raised, ``failed`` / ``diverged`` for a run with no result (``metric`` empty);
#: ``reference`` marks the oracle and noise rows.
COLUMNS = ["suite", "dataset", "model", "seed", "metric", "value", "group", "run_id",
           "dataset_name", "model_kind", "steps", "eval_samples", "device", "wall_s", "train_s",
           "status", "reason", "reference"]


def run_status(rec: dict[str, Any] | RunRecord) -> str:
    """``ok``, ``diverged`` (status or a ``diverged`` entry: an untrained model's scores are no
    result) or ``failed`` (:attr:`densitylab.results.store.RunRecord.outcome`)."""
    return RunRecord.of(rec).outcome


def results_table(out_dir: str | Path | list[RunRecord], *,
                  with_failures: bool = False) -> pd.DataFrame:
    """Every metric value of every finished run in ``out_dir`` (a results folder, or the
    records already read from one) as a tidy DataFrame.

    ``metric`` is the value's name (``modes_covered``, ``mmd``, ...) and ``group`` the suite
    metric that produced it (``mode_coverage``, ``mmd``, ...). Without ``with_failures`` only
    values (``status == "ok"``) are returned. With it (what ``results.csv`` holds) a failure is
    a row too, never silently dropped: a value the metric left undefined for a seed
    (``undefined``, e.g. the mode-histogram KL with no high-quality sample), a metric that
    raised (``error``, one row per value name it gives on other seeds), and a failed or
    diverged run (one row with an empty ``metric``); their ``value`` is empty and ``reason``
    says why. Metrics skipped as not applicable (a GAN's likelihood) have no rows.
    """
    records = _current(out_dir)
    names: dict[tuple[Any, Any, str], list[str]] = {}
    for rec in records:  # the value names each metric gives, to name an erroring metric's rows
        for group, result in rec.metrics.items():
            known = names.setdefault((rec.dataset, rec.model, group), [])
            for name in list(result.values) + result.undefined:
                if name not in known:
                    known.append(name)
    rows: list[dict[str, Any]] = []
    for rec in records:
        base = _base_row(rec)
        status = rec.outcome
        if status != "ok":
            if with_failures:
                rows.append({**base, "metric": "", "value": np.nan, "group": "",
                             "status": status, "reason": rec.failure_reason})
            continue
        for group, result in rec.metrics.items():
            for name, value in result.values.items():
                rows.append({**base, "metric": name, "value": float(value), "group": group,
                             "status": "ok", "reason": ""})
            if not with_failures:
                continue
            for name in result.undefined:
                rows.append({**base, "metric": name, "value": np.nan, "group": group,
                             "status": "undefined",
                             "reason": str(result.details[f"{name}_note"])})
            if result.error is not None:
                for name in names.get((rec.dataset, rec.model, group)) or [group]:
                    rows.append({**base, "metric": name, "value": np.nan, "group": group,
                                 "status": "error", "reason": str(result.error)})
    return pd.DataFrame(rows, columns=COLUMNS)


def _current(source: str | Path | list[RunRecord]) -> list[RunRecord]:
    """The records of the suite a folder belongs to (never another configuration's), or the
    records given."""
    return list(source) if isinstance(source, list) else RunStore(source).current_records()


def _base_row(rec: RunRecord) -> dict[str, Any]:
    return {
        "suite": rec.suite, "dataset": rec.dataset, "model": rec.model, "seed": rec.seed,
        "run_id": rec.run_id, "dataset_name": rec.dataset_name, "model_kind": rec.model_kind,
        "steps": rec.steps, "eval_samples": rec.eval_samples, "device": rec.device,
        "wall_s": rec.wall_s, "train_s": rec.train_s, "reference": is_reference(rec.model_kind),
    }


def failed_runs(out_dir: str | Path | list[RunRecord]) -> pd.DataFrame:
    """The runs whose latest record says ``failed`` or ``diverged``, with their errors
    (``out_dir``: a results folder, or the records already read from one)."""
    rows = [{"dataset": r.dataset, "model": r.model, "seed": r.seed, "run_id": r.run_id,
             "status": r.outcome, "error": r.failure_reason}
            for r in _current(out_dir) if r.outcome != "ok"]
    return pd.DataFrame(rows, columns=["dataset", "model", "seed", "run_id", "error", "status"])


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard error (sample std / sqrt(n), NaN for one seed) and n over seeds.

    Only values (status ``ok``) count; see :func:`densitylab.report.inference.cell_summary` for
    the report's cells (median, bootstrap interval, failures as "k of n").
    """
    if "status" in table.columns:
        table = table[table["status"].fillna("ok") == "ok"]
    if table.empty:
        return pd.DataFrame(columns=["dataset", "model", "metric", "mean", "se", "n"])
    grouped = table.groupby(["dataset", "model", "metric"], sort=False)["value"]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    out["se"] = [s / math.sqrt(n) if n > 1 else np.nan for s, n in zip(out["std"], out["n"],
                                                                        strict=True)]
    return out.drop(columns="std")[["dataset", "model", "metric", "mean", "se", "n"]]
