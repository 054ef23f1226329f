"""The tidy results table: one row per (run, metric value), read from a results folder."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..suite.store import RunStore
from .explain import _undefined

__all__ = ["COLUMNS", "results_table", "failed_runs", "summarize", "run_status"]

#: Columns of ``results.csv``, in order. ``status`` is ``ok`` for a value, ``undefined`` for a
#: value the metric could not define for that seed (``reason`` says why), ``error`` for a metric
#: that raised, ``failed`` / ``diverged`` for a run with no result (``metric`` empty);
#: ``reference`` marks the oracle and noise rows.
COLUMNS = ["suite", "dataset", "model", "seed", "metric", "value", "group", "run_id",
           "dataset_name", "model_kind", "steps", "eval_samples", "device", "wall_s", "train_s",
           "status", "reason", "reference"]


def run_status(rec: dict[str, Any]) -> str:
    """``ok``, ``diverged`` (status or a ``diverged`` entry: an untrained model's scores are no
    result) or ``failed``."""
    status = rec.get("status", "failed")
    if status == "ok" and rec.get("diverged"):
        return "diverged"
    return status if status in ("ok", "diverged") else "failed"


def _diverged_reason(rec: dict[str, Any]) -> str:
    div = rec.get("diverged") or {}
    if isinstance(div, dict) and "step" in div:
        return f"training diverged at step {div['step']} (loss {div.get('loss')})"
    return rec.get("error") or "training diverged"


def results_table(out_dir: str | Path, *, with_failures: bool = False) -> pd.DataFrame:
    """Every metric value of every finished run in ``out_dir`` as a tidy DataFrame.

    ``metric`` is the value's name (``modes_covered``, ``mmd``, ...) and ``group`` the suite
    metric that produced it (``mode_coverage``, ``mmd``, ...). Without ``with_failures`` only
    values (``status == "ok"``) are returned. With it (what ``results.csv`` holds) a failure is
    a row too, never silently dropped: a value the metric left undefined for a seed
    (``undefined``, e.g. the mode-histogram KL with no high-quality sample), a metric that
    raised (``error``, one row per value name it gives on other seeds), and a failed or
    diverged run (one row with an empty ``metric``); their ``value`` is empty and ``reason``
    says why. Metrics skipped as not applicable (a GAN's likelihood) have no rows.
    """
    records = RunStore(out_dir).current_and_stale()[0]  # never another configuration's
    names: dict[tuple[Any, Any, str], list[str]] = {}
    for rec in records:  # the value names each metric gives, to name an erroring metric's rows
        for group, result in rec.get("metrics", {}).items():
            known = names.setdefault((rec.get("dataset"), rec.get("model"), group), [])
            for name in list(result.get("values", {})) + _undefined(result):
                if name not in known:
                    known.append(name)
    rows: list[dict[str, Any]] = []
    for rec in records:
        base = _base_row(rec)
        status = run_status(rec)
        if status != "ok":
            if with_failures:
                reason = (_diverged_reason(rec) if status == "diverged"
                          else rec.get("error", "run failed"))
                rows.append({**base, "metric": "", "value": np.nan, "group": "",
                             "status": status, "reason": reason})
            continue
        for group, result in rec.get("metrics", {}).items():
            for name, value in result.get("values", {}).items():
                rows.append({**base, "metric": name, "value": float(value), "group": group,
                             "status": "ok", "reason": ""})
            if not with_failures:
                continue
            details = result.get("details", {})
            for name in _undefined(result):
                rows.append({**base, "metric": name, "value": np.nan, "group": group,
                             "status": "undefined", "reason": str(details[f"{name}_note"])})
            if "error" in result:
                for name in names.get((rec.get("dataset"), rec.get("model"), group)) or [group]:
                    rows.append({**base, "metric": name, "value": np.nan, "group": group,
                                 "status": "error", "reason": str(result["error"])})
    return pd.DataFrame(rows, columns=COLUMNS)


def _base_row(rec: dict[str, Any]) -> dict[str, Any]:
    from ..suite.references import is_reference

    cfg = rec.get("config", {})
    return {
        "suite": rec.get("suite"), "dataset": rec.get("dataset"), "model": rec.get("model"),
        "seed": rec.get("seed"), "run_id": rec["run_id"],
        "dataset_name": cfg.get("dataset", {}).get("name"),
        "model_kind": cfg.get("model", {}).get("kind"),
        "steps": cfg.get("train", {}).get("steps"), "eval_samples": cfg.get("eval_samples"),
        "device": rec.get("device"), "wall_s": rec.get("wall_s"),
        "train_s": rec.get("train_s"), "reference": is_reference(rec),
    }


def failed_runs(out_dir: str | Path) -> pd.DataFrame:
    """The runs whose latest record says ``failed`` or ``diverged``, with their errors."""
    rows = [{"dataset": r.get("dataset"), "model": r.get("model"), "seed": r.get("seed"),
             "run_id": r["run_id"], "status": run_status(r),
             "error": (_diverged_reason(r) if run_status(r) == "diverged"
                       else r.get("error", ""))}
            for r in RunStore(out_dir).current_and_stale()[0] if run_status(r) != "ok"]
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
