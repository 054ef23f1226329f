"""The tidy results table: one row per (run, metric value), read from a results folder."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..suite.store import RunStore

__all__ = ["COLUMNS", "results_table", "failed_runs", "summarize"]

#: Columns of ``results.csv``, in order.
COLUMNS = ["suite", "dataset", "model", "seed", "metric", "value", "group", "run_id",
           "dataset_name", "model_kind", "steps", "eval_samples", "device", "wall_s", "train_s"]


def results_table(out_dir: str | Path) -> pd.DataFrame:
    """Every metric value of every finished run in ``out_dir`` as a tidy DataFrame.

    ``metric`` is the value's name (``modes_covered``, ``mmd``, ...) and ``group`` the suite
    metric that produced it (``mode_coverage``, ``mmd``, ...). Failed runs, failed and skipped
    metrics have no rows (see :func:`failed_runs` and the report).
    """
    rows: list[dict[str, Any]] = []
    for rec in RunStore(out_dir).records():
        if rec.get("status") != "ok":
            continue
        cfg = rec.get("config", {})
        base = {
            "suite": rec.get("suite"), "dataset": rec.get("dataset"), "model": rec.get("model"),
            "seed": rec.get("seed"), "run_id": rec["run_id"],
            "dataset_name": cfg.get("dataset", {}).get("name"),
            "model_kind": cfg.get("model", {}).get("kind"),
            "steps": cfg.get("train", {}).get("steps"), "eval_samples": cfg.get("eval_samples"),
            "device": rec.get("device"), "wall_s": rec.get("wall_s"),
            "train_s": rec.get("train_s"),
        }
        for group, result in rec.get("metrics", {}).items():
            for name, value in result.get("values", {}).items():
                rows.append({**base, "metric": name, "value": float(value), "group": group})
    return pd.DataFrame(rows, columns=COLUMNS)


def failed_runs(out_dir: str | Path) -> pd.DataFrame:
    """The runs whose latest record says ``failed``, with their errors."""
    rows = [{"dataset": r.get("dataset"), "model": r.get("model"), "seed": r.get("seed"),
             "run_id": r["run_id"], "error": r.get("error", "")}
            for r in RunStore(out_dir).records() if r.get("status") != "ok"]
    return pd.DataFrame(rows, columns=["dataset", "model", "seed", "run_id", "error"])


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard error (sample std / sqrt(n), NaN for one seed) and n over seeds."""
    if table.empty:
        return pd.DataFrame(columns=["dataset", "model", "metric", "mean", "se", "n"])
    grouped = table.groupby(["dataset", "model", "metric"], sort=False)["value"]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    out["se"] = [s / math.sqrt(n) if n > 1 else np.nan for s, n in zip(out["std"], out["n"],
                                                                        strict=True)]
    return out.drop(columns="std")[["dataset", "model", "metric", "mean", "se", "n"]]
