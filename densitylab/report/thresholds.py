"""How the mode numbers depend on the high-quality threshold: each model's high-quality share
and modes covered at 1 to 5 standard deviations, computed from the samples a run saved.

The VEEGAN / PacGAN protocol calls a sample high quality when it lies within 3 standard
deviations of its nearest mode (:data:`densitylab.metrics.modes.HIGH_QUALITY_STDS`); a model
whose samples sit at 2.5 to 3.5 standard deviations scores very differently at 2 and at 4.
These curves show whether a comparison at 3 holds across the threshold or is an artefact of
it. They are recomputed with :func:`densitylab.metrics.mode_coverage` from each run's samples
file (``runs/<run_id>.samples.npz``: the model's evaluation samples with the target's mode
centres and standard deviations), so a results folder is enough; runs without saved samples
(``save_samples = false``) or without known modes are left out.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..metrics import mode_coverage
from ..metrics.modes import HIGH_QUALITY_STDS
from ..results.records import RunRecord
from ..results.store import RunStore
from ..suite.references import is_reference
from .sections import model_label

__all__ = ["THRESHOLDS", "threshold_table", "threshold_figure", "threshold_lines"]

#: Thresholds of the curves, in standard deviations of the nearest mode: 1 to 5 by 0.5.
THRESHOLDS = tuple(float(t) for t in np.arange(1.0, 5.0 + 1e-9, 0.5))
_COLUMNS = ["dataset", "model", "reference", "seed", "threshold", "high_quality_fraction",
            "modes_covered", "num_modes"]


def _min_count(record: RunRecord) -> int:
    """The ``min_count`` the run's ``mode_coverage`` metric used (1 when it has none)."""
    for m in record.metric_configs:
        if m.get("name") == "mode_coverage":
            return int((m.get("params") or {}).get("min_count", 1))
    return 1


def threshold_table(records: list[RunRecord], store: RunStore,
                    thresholds=THRESHOLDS) -> pd.DataFrame:
    """One row per (finished run with saved samples and mode centres, threshold): the
    ``high_quality_fraction``, ``modes_covered`` and ``num_modes`` that
    :func:`densitylab.metrics.mode_coverage` gives at that threshold on the run's saved
    evaluation samples (with the run's own ``min_count``)."""
    rows = []
    for r in (RunRecord.of(x) for x in records):
        if r.status != "ok":
            continue
        arrays = store.load_samples(r.run_id)
        if not arrays or "mode_means" not in arrays or "mode_stds" not in arrays:
            continue
        samples = np.asarray(arrays["samples"], dtype=np.float64)
        if samples.ndim != 2 or samples.shape[1] != arrays["mode_means"].shape[1]:
            continue
        for t in thresholds:
            mc = mode_coverage(samples, arrays["mode_means"], arrays["mode_stds"],
                               threshold=float(t), min_count=_min_count(r))
            rows.append({"dataset": r.dataset, "model": r.model,
                         "reference": is_reference(r.model_kind), "seed": r.seed,
                         "threshold": float(t),
                         "high_quality_fraction": mc.high_quality_fraction,
                         "modes_covered": mc.modes_covered, "num_modes": mc.num_modes})
    return pd.DataFrame(rows, columns=_COLUMNS)


def threshold_figure(table: pd.DataFrame, dataset: str) -> Figure | None:
    """High-quality share (%) and modes covered against the threshold for each model of
    ``dataset`` (:func:`threshold_table` rows): the mean over seeds (thick), each seed (thin),
    reference rows dashed, the protocol's 3 standard deviations marked. None without rows."""
    sub = table[table["dataset"] == dataset]
    if sub.empty:
        return None
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    models = list(dict.fromkeys(sub["model"]))
    colours = {m: f"C{i % 10}" for i, m in enumerate(models)}
    for ax, value, scale, label in ((axes[0], "high_quality_fraction", 100.0,
                                     "high-quality share (%)"),
                                    (axes[1], "modes_covered", 1.0, "modes covered")):
        for model in models:
            rows = sub[sub["model"] == model]
            ref = bool(rows["reference"].iloc[0])
            style = "--" if ref else "-"
            for _, seed in rows.groupby("seed"):
                ax.plot(seed["threshold"], seed[value] * scale, style, color=colours[model],
                        alpha=0.25, linewidth=0.8)
            mean = rows.groupby("threshold")[value].mean() * scale
            ax.plot(mean.index, mean.to_numpy(), style, marker="o", markersize=3,
                    color=colours[model], linewidth=2,
                    label=f"{model_label(model, ref)} ({rows['seed'].nunique()} seeds)")
        ax.axvline(HIGH_QUALITY_STDS, color="black", linestyle=":", linewidth=1)
        ax.annotate(f"published: {HIGH_QUALITY_STDS:g} std", (HIGH_QUALITY_STDS, 1.0),
                    xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", fontsize=8)
        ax.set_xlabel("threshold (standard deviations of the nearest mode)")
        ax.set_ylabel(label)
    total = int(sub["num_modes"].max())
    axes[1].axhline(total, color="grey", linewidth=0.8)
    axes[1].set_ylim(0, total * 1.05 + 0.5)
    axes[0].set_ylim(0, 102)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{dataset}: mode numbers against the high-quality threshold "
                 "(mean over seeds thick, each seed thin)")
    fig.tight_layout()
    return fig


def threshold_lines(table: pd.DataFrame, dataset: str) -> list[str]:
    """A Markdown table of each model's mean high-quality share and modes covered at each
    whole threshold (1 to 5 standard deviations), the protocol's 3 in bold."""
    sub = table[table["dataset"] == dataset]
    if sub.empty:
        return []
    whole = [t for t in dict.fromkeys(sub["threshold"]) if float(t).is_integer()]
    head = [f"**{t:g} std**" if math.isclose(t, HIGH_QUALITY_STDS) else f"{t:g} std"
            for t in whole]
    lines = ["High-quality share and modes covered (mean over seeds) against the threshold, "
             "recomputed from the saved samples; the protocol's threshold is 3 standard "
             "deviations (bold). A comparison that changes sides across these columns depends "
             "on the threshold.", "",
             "| model | " + " | ".join(head) + " |", "|---|" + "---|" * len(whole)]
    for model in dict.fromkeys(sub["model"]):
        rows = sub[sub["model"] == model]
        mean = rows.groupby("threshold")[["high_quality_fraction", "modes_covered"]].mean()
        cells = [f"{100 * mean.loc[t, 'high_quality_fraction']:.1f} %, "
                 f"{mean.loc[t, 'modes_covered']:.3g} modes" for t in whole]
        lines.append(f"| {model_label(model, bool(rows['reference'].iloc[0]))} | "
                     + " | ".join(cells) + " |")
    return lines + [""]
