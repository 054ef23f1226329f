"""Seaborn / matplotlib figures of a results folder, drawn off-screen (Agg canvas, no pyplot).

* ``samples.png``: each model's samples over the target's mode centres, one panel per
  (dataset, model), from its median seed by high-quality fraction (the typical seed, not
  whichever came first): the picture of a VAE's blur against a GAN's sharpness.
* ``samples_flagged.png``: a small panel per diverged or collapsed seed (any seed, not only
  the first), so that a seed that failed is seen rather than averaged away.
* ``samples_<dataset>.png`` (image datasets): a grid of real images beside a grid of each
  model's samples: the picture of a VAE's blur against a GAN's sharpness. One channel is drawn
  in grey; three channels (stacked digits) as a colour image, one digit per colour channel.
* ``density.png``: log-density contours of the models with a density (VAE, flow).
* ``c2st_map.png``: the C2ST classifier's probability of "model" on the plane, per 2D run.
* ``witness.png``: where each 2D model is wrong, as an MMD witness map with its significant
  regions outlined (:mod:`densitylab.report.maps`).
* ``metrics_<dataset>.png``: each seed's value, the mean with its 95 % bootstrap interval over
  seeds, failures as "k of n", and the reference rows (oracle, noise) as horizontal bands. Each
  panel says whether higher or lower is better; a model without a density is marked "no density"
  in the likelihood panels, and the target's own log-likelihood is a reference line, not a panel.
* ``modes_<dataset>.png``: how many samples each mode received (mean over seeds).
* ``thresholds_<dataset>.png``: high-quality share and modes covered against the threshold, 1
  to 5 standard deviations, from the saved samples (:mod:`densitylab.report.thresholds`).
* ``curves_<dataset>.png``: metric values against the training step (suites with
  ``eval_every``), one colour per model, one line per seed.
* ``training_<dataset>.png``: training losses per model, one colour per seed.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .._runtime import atomic_write_bytes
from ..results.records import RunRecord
from ..results.store import RunStore
from ..suite.references import is_reference
from .inference import cell_summary
from .legacy import legacy_target
from .maps import map_figures
from .metric_info import direction_text, entry_metrics
from .naming import ordered_metrics as _ordered
from .naming import slug as _slug
from .sections import model_label
from .seeds import representative_seed as _representative_seed
from .seeds import seed_caption
from .thresholds import threshold_figure, threshold_table

__all__ = ["write_figures", "seed_caption", "samples_figure", "image_grid_figure", "image_mosaic",
           "density_figure", "metric_bars", "mode_histograms", "training_curves",
           "metric_curves"]

#: Values drawn as reference lines in another value's panel, not as bars of their own.
_REFERENCE_LINES = {"target_loglik": ("heldout_loglik", "target's own"),
                    "kl_mc_stderr": (None, None)}
#: Style of those reference lines: distinct from the reference rows' dashed bands.
_REFERENCE_LINE_STYLE = {"color": "k", "ls": ":", "lw": 1.3}
#: A seed value this many interquartile ranges beyond the quartiles is drawn at the panel's
#: edge (marked, with its value) instead of stretching the axis for the others.
_OUTLIER_IQRS = 10.0


def _is_panel(metric: str) -> bool:
    """False for values that qualify another value (its standard error, its p-value): they are
    in the tables, not panels of their own."""
    return metric not in _REFERENCE_LINES and not metric.endswith(("_stderr", "_pvalue"))


#: Metric groups that need a model density: a model without one gets a visible mark.
_DENSITY_GROUPS = ("log_likelihood", "kl_mc")

_MAX_POINTS = 2500  # points drawn per scatter panel
_GRID_SIDE = 8  # image grids show up to 8 x 8 images
_MAX_BARS = 60  # more modes than this are drawn as a ranked curve, not one bar per mode


def write_figures(out_dir: str | Path, records: list[RunRecord],
                  table: pd.DataFrame) -> list[Path]:
    """Draw every figure that the results support into ``out_dir/figures``; return the paths.

    Everything drawn comes from the folder: the records, and the samples file of each run with
    its reference (target) sample and the target's mode centres; no dataset is rebuilt, except
    for a folder written before runs saved those (:func:`densitylab.report.legacy.legacy_target`).
    """
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    records = _typed(records)
    store = RunStore(out_dir)
    fig_dir = Path(out_dir) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    ok = [r for r in records if r.status == "ok"]
    paths: list[Path] = []
    shown, why_shown = _representative_seed(ok)
    maps = map_figures(shown, store)
    for name, fig in (("samples", samples_figure(shown, store, why_shown)),
                      ("samples_flagged", flagged_samples_figure(records, store)),
                      ("density", density_figure(shown, store)),
                      ("witness", maps["witness"]),
                      ("c2st_map", maps["c2st_map"])):
        if fig is not None:
            paths.append(_save(fig, fig_dir / f"{name}.png"))
    for dataset in dict.fromkeys(r.dataset for r in ok):
        slug = _slug(dataset)
        runs = [r for r in ok if r.dataset == dataset]
        for name, fig in (
            (f"samples_{slug}", image_grid_figure([r for r in shown if r.dataset == dataset],
                                                  store, dataset)),
            (f"metrics_{slug}", metric_bars(table[table["dataset"] == dataset], dataset,
                                            no_density=_without_density(runs),
                                            entries=entry_metrics(runs))),
            (f"modes_{slug}", mode_histograms(runs, dataset)),
            (f"thresholds_{slug}", threshold_figure(threshold_table(runs, store), dataset)),
            (f"curves_{slug}", metric_curves(runs, dataset)),
            (f"training_{slug}", training_curves(runs, dataset)),
        ):
            if fig is not None:
                paths.append(_save(fig, fig_dir / f"{name}.png"))
    return paths


def _typed(records: list[RunRecord | dict[str, Any]]) -> list[RunRecord]:
    """The records typed (a figure function also takes the JSON mappings of
    :meth:`densitylab.results.store.RunStore.records`)."""
    return [RunRecord.of(r) for r in records]


def _without_density(records: list[RunRecord]) -> list[str]:
    """Models whose density metrics were skipped (no density): marked in the metric panels."""
    out = []
    for r in records:
        if any(g in r.metrics and r.metrics[g].skipped is not None for g in _DENSITY_GROUPS) \
                and r.model not in out:
            out.append(r.model)
    return out


def _panel_grid(n: int, *, max_cols: int, panel_size: tuple[float, float],
                min_width: float = 0.0):
    """A figure of ``n`` panels wrapped into rows of at most ``max_cols``, each panel
    ``panel_size`` inches; returns the figure and its axes, flat, unused ones switched off."""
    cols = min(max_cols, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(max(min_width, panel_size[0] * cols), panel_size[1] * rows),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).reshape(-1)
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes


def _grid_of(records):
    datasets = list(dict.fromkeys(r.dataset for r in records))
    models = list(dict.fromkeys(r.model for r in records))
    return datasets, models


def _dataset_by_model_axes(panels, cell_width: float, cell_height: float):
    """A figure with one (hidden until used) axis per dataset row x model column of ``panels``.

    Returns ``(fig, axis_of)`` where ``axis_of(record)`` turns on and returns that run's axis.
    """
    datasets, models = _grid_of([r for r, _ in panels])
    fig = Figure(figsize=(cell_width * len(models), cell_height * len(datasets)),
                 layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(datasets), len(models), squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()

    def axis_of(record):
        ax = axes[datasets.index(record.dataset), models.index(record.model)]
        ax.set_axis_on()
        return ax

    return fig, axis_of


def _name(record: RunRecord) -> str:
    """A run's model name, marked when it is a reference row (oracle, noise)."""
    return model_label(record.model, is_reference(record.model_kind))


def _target(record: RunRecord, arrays: dict[str, np.ndarray], n: int):
    """``(points, mode_centres)`` of the target behind a run's samples: the first ``n`` points of
    the reference sample saved with the run and the target's saved mode centres (None when it
    has none); for a run saved before these were, :func:`~densitylab.report.legacy.legacy_target`.
    """
    if "reference" in arrays:
        return arrays["reference"][:n], arrays.get("mode_means")
    return legacy_target(record, n)


def _points_2d(arrays: dict[str, np.ndarray] | None) -> bool:
    return arrays is not None and "samples" in arrays and arrays["samples"].ndim == 2 \
        and arrays["samples"].shape[1] == 2


def samples_figure(records: list[RunRecord], store: RunStore,
                   why_shown: dict[str, str] | None = None) -> Figure | None:
    """Samples of each (dataset, model) over a faint target sample and its mode centres.

    ``why_shown`` (by run id, from :func:`_representative_seed`) replaces a panel's ``seed s``
    caption, e.g. to say that the seed is the median-high-quality one."""
    panels = []
    for r in _typed(records):
        arrays = store.load_samples(r.run_id)
        if _points_2d(arrays):
            panels.append((r, arrays))
    if not panels:
        return None
    fig, axis_of = _dataset_by_model_axes(panels, 2.6, 2.6)
    for r, arrays in panels:
        ax = axis_of(r)
        pts = arrays["samples"][:_MAX_POINTS]
        ref, mu = _target(r, arrays, len(pts))
        if ref is not None:
            ax.scatter(ref[:, 0], ref[:, 1], s=2, c="0.8", linewidths=0, label="target")
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c="C0", alpha=0.5, linewidths=0, label="model")
        if mu is not None:
            ax.scatter(mu[:, 0], mu[:, 1], marker="x", s=20, c="C3", linewidths=1,
                       label="mode centres")
        caption = (why_shown or {}).get(r.run_id, f"seed {r.seed}")
        ax.set_title(f"{r.dataset} / {_name(r)}\n({caption})", fontsize=8)
        ax.set_aspect("equal", adjustable="datalim")
        ax.tick_params(labelsize=6)
    # one legend below the panels: inside a panel it hides the modes in its corner
    handles, labels = axis_of(panels[0][0]).get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=7,
               markerscale=3, frameon=False)
    return fig


def flagged_seed(record: RunRecord | dict[str, Any]) -> str | None:
    """Why a run's samples deserve their own panel: ``"diverged"``, ``"collapsed: k of K
    modes"`` (at most half the target's modes covered), or None."""
    record = RunRecord.of(record)
    if record.outcome == "diverged":
        return "diverged"
    values = record.values("mode_coverage")
    covered, total = values.get("modes_covered"), values.get("num_modes")
    if covered is not None and total and covered <= total / 2:
        return f"collapsed: {covered:g} of {total:g} modes"
    return None


def flagged_samples_figure(records: list[RunRecord], store: RunStore,
                           limit: int = 24) -> Figure | None:
    """A small panel of samples for each diverged or collapsed seed (see :func:`flagged_seed`),
    over a faint target sample, so that no such seed hides behind a mean; at most ``limit``."""
    panels = []
    for r in _typed(records):
        why = flagged_seed(r)
        arrays = store.load_samples(r.run_id) if why else None
        if _points_2d(arrays):
            panels.append((r, why, arrays))
    if not panels:
        return None
    panels = panels[:limit]
    fig, axes = _panel_grid(len(panels), max_cols=6, panel_size=(1.9, 2.0))
    for ax, (r, why, arrays) in zip(axes, panels, strict=False):
        pts = arrays["samples"][:_MAX_POINTS]
        ref, _ = _target(r, arrays, len(pts))
        if ref is not None:
            ax.scatter(ref[:, 0], ref[:, 1], s=1, c="0.8", linewidths=0)
        ax.scatter(pts[:, 0], pts[:, 1], s=1, c="C3", alpha=0.5, linewidths=0)
        ax.set_title(f"{r.dataset} / {r.model} seed {r.seed}\n{why}", fontsize=6)
        ax.set_aspect("equal", adjustable="datalim")
        ax.tick_params(labelsize=5)
    return fig


def image_mosaic(images: np.ndarray, side: int = _GRID_SIDE, pad: int = 1) -> np.ndarray:
    """Tile up to ``side * side`` images ``(n, C, H, W)`` into one picture.

    Returns ``(rows * (H + pad) + pad, side * (W + pad) + pad)`` for one channel, with a trailing
    axis of 3 for three channels (channel c is colour c); the padding is mid-grey (0.5) so that
    it separates tiles on white and on black backgrounds. Values are clipped to [0, 1].
    """
    x = np.clip(np.asarray(images, dtype=np.float64)[: side * side], 0.0, 1.0)
    n, c, h, w = x.shape
    if c not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got shape {x.shape}")
    rows = max(1, -(-n // side))
    out = np.full((rows * (h + pad) + pad, side * (w + pad) + pad, c), 0.5)
    for i in range(n):
        r, q = divmod(i, side)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        out[top:top + h, left:left + w] = x[i].transpose(1, 2, 0)
    return out[..., 0] if c == 1 else out


def image_grid_figure(records: list[RunRecord], store: RunStore,
                      dataset: str) -> Figure | None:
    """Real images beside each model's samples (the seed :func:`_representative_seed` picks) for
    one image dataset, or None.

    The stored samples of an image run are its first 64 evaluation samples; the real images are
    the first of the reference images saved with the first run. Grey for one channel (ink dark
    on white), colour for three.
    """
    panels, first = [], None
    for r in _typed(records):
        arrays = store.load_samples(r.run_id)
        if arrays is not None and "samples" in arrays and arrays["samples"].ndim == 4 \
                and arrays["samples"].shape[1] in (1, 3):
            panels.append((f"{_name(r)} (seed {r.seed})", arrays["samples"]))
            first = first or (r, arrays)
    if not panels:
        return None
    n = min(len(panels[0][1]), _GRID_SIDE * _GRID_SIDE)
    real, _ = _target(*first, n)
    if real is not None and real.shape[1:] == panels[0][1].shape[1:]:
        panels.insert(0, ("real images", real))
    fig = Figure(figsize=(2.4 * len(panels), 2.7), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)).reshape(-1)
    for ax, (title, images) in zip(axes, panels, strict=True):
        mosaic = image_mosaic(images)
        if mosaic.ndim == 2:
            ax.imshow(mosaic, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(mosaic, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    fig.suptitle(f"{dataset}: real images and model samples", fontsize=9)
    return fig


def density_figure(records: list[RunRecord], store: RunStore) -> Figure | None:
    """Filled contours of the stored model log-density grids, mode centres marked."""
    panels = []
    for r in _typed(records):
        arrays = store.load_samples(r.run_id)
        if arrays is not None and "grid_logp" in arrays:
            panels.append((r, arrays))
    if not panels:
        return None
    fig, axis_of = _dataset_by_model_axes(panels, 2.8, 2.6)
    for r, a in panels:
        ax = axis_of(r)
        logp = np.asarray(a["grid_logp"], dtype=float)
        finite = logp[np.isfinite(logp)]
        # Clip the far tail so the contour levels resolve the modes rather than the void.
        floor = np.percentile(finite, 5) if finite.size else 0.0
        shown = np.clip(logp, floor, None)
        top = float(finite.max()) if finite.size else 0.0
        levels = 20
        if finite.size and top - floor <= 1e-9 * max(1.0, abs(top)):  # one value: uniform
            shown, levels = np.full_like(logp, top), [top - 0.5, top + 0.5]
        cs = ax.contourf(a["grid_x"], a["grid_y"], shown, levels=levels, cmap="viridis")
        bar = fig.colorbar(cs, ax=ax, shrink=0.8)
        # plain tick labels: no offset text ("1e-13-1.816...") above the bar
        bar.ax.yaxis.set_major_formatter(FuncFormatter(_plain))
        if isinstance(levels, list):  # uniform: one tick, at its value
            bar.set_ticks([top])
        bar.ax.tick_params(labelsize=6)
        _, mu = _target(r, a, 0)
        if mu is not None:
            ax.scatter(mu[:, 0], mu[:, 1], marker="x", s=15, c="w", linewidths=1)
        ax.set_title(_wrap(f"{r.dataset} / {_name(r)}", 22), fontsize=8)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
    fig.suptitle("model log-density", fontsize=9)
    return fig


def _wrap(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters where it has spaces, so that
    a panel title stays within its panel."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width, break_long_words=False)) or text


def _plain(value: float, _pos=None) -> str:
    return f"{value:.3g}"


def metric_bars(table: pd.DataFrame, dataset: str, *, no_density: list[str] | None = None,
                entries: dict[str, str] | None = None) -> Figure | None:
    """One panel per metric value: each seed's value (dots), the mean with its 95 % bootstrap
    interval over seeds (:func:`densitylab.stats.bootstrap_interval`), failures as "k of n"
    under the model's name, and the reference rows (oracle, noise) as horizontal bands (their
    mean as a dashed line, their interval as the band), or a note at the panel's edge when a
    reference lies far off the models' scale.

    ``table`` is a tidy results table of one dataset; rows with a ``status`` other than ``ok``
    count as failures. Each panel's title says which way is better, as the value's metric
    declares it (:func:`~densitylab.report.metric_info.direction_text`; ``entries``: the metric
    of each labelled entry, :func:`~densitylab.report.metric_info.entry_metrics`); the target's
    own log-likelihood is a dashed line in the held-out log-likelihood panel; the models in
    ``no_density`` are marked "no density" in the panels of metrics that need a density.
    """
    if table.empty:
        return None
    cells = cell_summary(table)
    ok = table[table["status"].fillna("ok") == "ok"] if "status" in table else table
    lines = {m: ok[ok["metric"] == m]["value"].mean() for m in _REFERENCE_LINES
             if m in set(ok["metric"])}
    metrics = [m for m in _ordered(m for m in ok["metric"] if isinstance(m, str) and m)
               if _is_panel(m)]
    if not metrics:
        return None
    fig, axes = _panel_grid(len(metrics), max_cols=4, panel_size=(3.2, 2.9), min_width=4.5)
    rng = np.random.default_rng(0)  # jitter of the seed dots
    for ax, metric in zip(axes, metrics, strict=False):
        mcells = cells[cells["metric"] == metric]
        models = mcells[~mcells["reference"]]
        labels = []
        seeds = {r.model: ok[(ok["model"] == r.model) & (ok["metric"] == metric)]["value"]
                 .to_numpy(dtype=float) for r in models.itertuples()}
        scale = _robust_range(np.concatenate([*seeds.values(), np.empty(0)]))
        for i, r in enumerate(models.itertuples()):
            vals = seeds[r.model]
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(vals)), vals, s=9, c="k", alpha=0.6,
                       linewidths=0, zorder=3)
            if r.n:
                low = r.low if np.isfinite(r.low) else r.mean
                high = r.high if np.isfinite(r.high) else r.mean
                ax.errorbar(i + 0.3, r.mean, yerr=[[r.mean - low], [high - r.mean]], fmt="o",
                            color=f"C{i}", ms=5, capsize=4, lw=1.5, zorder=4)
            labels.append(r.model + (f"\n{r.failures} of {r.seeds} failed" if r.failures
                                     else ""))
        if ok[ok["metric"] == metric]["group"].isin(_DENSITY_GROUPS).any():
            for model in no_density or []:
                if model not in set(models["model"]):
                    ax.text(len(labels), 0.5, "no density", transform=ax.get_xaxis_transform(),
                            ha="center", va="center", fontsize=7, color="0.4", rotation=90)
                    labels.append(model)
        for ref, (panel, label) in _REFERENCE_LINES.items():
            if panel == metric and ref in lines:
                ax.axhline(lines[ref], label=label, zorder=2, **_REFERENCE_LINE_STYLE)
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlim(-0.6, max(len(labels) - 0.4, 0.6))
        notes = _reference_bands(ax, mcells[mcells["reference"]], models, scale)
        if scale is not None:
            _clip_outliers(ax, scale, seeds, models)
        group = next(iter(ok[ok["metric"] == metric]["group"]), None) if "group" in ok else None
        direction = direction_text(metric, group, (entries or {}).get(group))
        ax.set_title(metric + (f"\n({direction})" if direction else ""), fontsize=9)
        # a reference far off the scale is named under the panel, never over the seed dots
        ax.set_xlabel("\n".join(notes), fontsize=6, color="0.3")
        ax.set_ylabel("")
        ax.tick_params(labelsize=7)
    handles, names = [], []
    for ax in axes:
        for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
            if n not in names:
                handles.append(h)
                names.append(n)
    if handles:
        fig.legend(handles, names, loc="outside lower center", ncols=len(names), fontsize=7,
                   frameon=False)
    fig.suptitle(f"{dataset}: each seed (dots), mean and 95 % bootstrap interval over seeds",
                 fontsize=10)
    return fig


def _robust_range(values: np.ndarray) -> tuple[float, float] | None:
    """``(low, high)`` of the seed values without the far outliers (beyond
    :data:`_OUTLIER_IQRS` interquartile ranges of the quartiles), or None when none is that far
    (or the spread is zero): then the axis fits every value as usual."""
    values = values[np.isfinite(values)]
    if values.size < 4:
        return None
    q1, q3 = np.percentile(values, [25, 75])
    iqr = q3 - q1
    if iqr <= 0:
        return None
    inner = values[(values >= q1 - _OUTLIER_IQRS * iqr) & (values <= q3 + _OUTLIER_IQRS * iqr)]
    if inner.size == values.size:
        return None
    return float(inner.min()), float(inner.max())


def _clip_outliers(ax, scale: tuple[float, float], seeds: dict[str, np.ndarray],
                   models: pd.DataFrame) -> None:
    """Fit the y axis to ``scale`` (the seeds without far outliers) and mark each seed (and
    each mean) beyond it at the panel's edge with a triangle and its value."""
    lo, hi = scale
    pad = 0.15 * max(hi - lo, 1e-12 * max(1.0, abs(hi)))
    bottom, top = lo - pad, hi + pad
    ax.set_ylim(bottom, top)
    for i, r in enumerate(models.itertuples()):
        vals = seeds[r.model]
        for above in (False, True):
            off = vals[vals > top] if above else vals[vals < bottom]
            mean_off = np.isfinite(r.mean) and (r.mean > top if above else r.mean < bottom)
            if not off.size and not mean_off:
                continue
            edge = top if above else bottom
            ax.scatter([i], [edge], marker="^" if above else "v", s=30, c="C3", zorder=5,
                       clip_on=False)
            words = []
            if off.size:
                words.append(f"{off.size} seed{'s' if off.size > 1 else ''} at "
                             + ", ".join(f"{v:.3g}" for v in off[:3]))
            if mean_off:
                words.append(f"mean {r.mean:.3g}")
            ax.annotate("; ".join(words) + " (off the scale)", xy=(i, edge),
                        xytext=(4, -10 if above else 4), textcoords="offset points",
                        fontsize=6, color="C3", va="bottom", ha="left", zorder=5)


def _reference_bands(ax, refs: pd.DataFrame, models: pd.DataFrame,
                     scale: tuple[float, float] | None = None) -> list[str]:
    """Draw each reference row as a band (interval) with a dashed line (mean); one far off
    the models' scale (``scale``, else their means and intervals) is returned as a note, e.g.
    ``"noise (reference): 5.9, below the scale"``, for the caller to print under the panel."""
    if scale is not None:
        spans = list(scale)
    else:
        spans = [v for v in np.concatenate([models["low"], models["high"], models["mean"]])
                 if np.isfinite(v)]
    lo, hi = (min(spans), max(spans)) if spans else (np.nan, np.nan)
    width = max(hi - lo, 1e-12 + 1e-3 * abs(hi)) if spans else np.nan
    notes = []
    for j, r in enumerate(refs.itertuples()):
        if not np.isfinite(r.mean):
            continue
        colour = ("0.35", "C3", "C4")[j % 3]
        label = f"{r.model} (reference)"
        if spans and not (lo - 3 * width <= r.mean <= hi + 3 * width):
            notes.append(f"{label}: {r.mean:.3g}, {'above' if r.mean > hi else 'below'} the "
                         "scale")
            continue
        if np.isfinite(r.low) and np.isfinite(r.high):
            ax.axhspan(r.low, r.high, color=colour, alpha=0.15, lw=0, zorder=1)
        ax.axhline(r.mean, color=colour, ls="--", lw=1, zorder=2, label=label)
    return notes


def mode_histograms(records: list[RunRecord], dataset: str) -> Figure | None:
    """Samples per mode for each model, averaged over seeds (uniform = perfect coverage)."""
    import seaborn as sns

    rows = []
    for r in _typed(records):
        for group in ("mode_coverage", "stacked_modes"):
            counts = r.metrics[group].details.get("counts") if group in r.metrics else None
            if counts:
                rows += [{"model": r.model, "seed": r.seed, "mode": i, "count": c}
                         for i, c in enumerate(counts)]
    if not rows:
        return None
    df = pd.DataFrame(rows)
    models = list(dict.fromkeys(df["model"]))
    n_modes = int(df["mode"].max()) + 1
    if n_modes > _MAX_BARS:
        return _ranked_modes(df, models, n_modes, dataset)
    fig = Figure(figsize=(max(4.0, 0.18 * n_modes + 2), 1.9 * len(models)),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(models), 1, squeeze=False)).reshape(-1)
    for ax, model in zip(axes, models, strict=True):
        sub = df[df["model"] == model].groupby("mode", as_index=False)["count"].mean()
        sns.barplot(data=sub, x="mode", y="count", color="C0", ax=ax)
        total = sub["count"].sum()
        ax.axhline(total / n_modes, color="C3", lw=1, ls="--", label="uniform")
        ax.set_title(f"{dataset} / {model}: samples per mode (mean over seeds)", fontsize=8)
        ax.tick_params(labelsize=6)
        if n_modes > 40:
            ax.set_xticks([])
    axes[0].legend(fontsize=6)
    return fig


def _ranked_modes(df: pd.DataFrame, models: list[str], n_modes: int, dataset: str) -> Figure:
    """Too many modes for bars (stacked digits: 1,000): counts sorted from most to least
    visited, one line per model (mean over seeds of each seed's sorted counts), against the
    uniform share. A collapsed model drops to zero after a few ranks; a perfect one is flat."""
    fig = Figure(figsize=(6.0, 3.0), layout="constrained")
    ax = fig.subplots()
    ranks = np.arange(1, n_modes + 1)
    total = 0.0
    for i, model in enumerate(models):
        sub = df[df["model"] == model]
        per_seed = [np.sort(np.bincount(g["mode"], weights=g["count"], minlength=n_modes))[::-1]
                    for _, g in sub.groupby("seed")]
        mean = np.mean(per_seed, axis=0)
        total = max(total, float(mean.sum()))
        covered = float(np.mean([np.count_nonzero(c) for c in per_seed]))
        ax.step(ranks, mean, where="post", color=f"C{i}", lw=1.2,
                label=f"{model} ({covered:g} of {n_modes} modes visited)")
    ax.axhline(total / n_modes, color="k", lw=1, ls="--", label="uniform")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(bottom=0.0)
    ax.set_xscale("log")  # the first ranks show a collapse, the tail shows coverage
    ax.set_xlim(1, n_modes)
    ax.set_xlabel("mode rank (most visited first, log scale)", fontsize=8)
    ax.set_ylabel("samples", fontsize=8)
    ax.set_title(f"{dataset}: samples per mode, sorted (mean over seeds)", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    return fig


def training_curves(records: list[RunRecord], dataset: str) -> Figure | None:
    """Training losses against step: one panel per model, one colour per seed (legend), one
    line style per loss (a GAN has two)."""
    import seaborn as sns

    rows = []
    for r in _typed(records):
        for loss, s in (r.history.series if r.history is not None else {}).items():
            rows += [{"model": r.model, "seed": r.seed, "loss": loss, "step": st,
                      "value": v} for st, v in zip(s.step, s.value, strict=True)]
    if not rows:
        return None
    df = pd.DataFrame(rows)
    models = list(dict.fromkeys(df["model"]))
    fig = Figure(figsize=(3.2 * len(models), 2.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(models), squeeze=False)).reshape(-1)
    for ax, model in zip(axes, models, strict=True):
        sub = df[df["model"] == model].assign(seed=lambda d: "seed " + d["seed"].astype(str))
        several = sub["loss"].nunique() > 1
        sns.lineplot(data=sub, x="step", y="value", hue="seed",
                     style="loss" if several else None, estimator=None, lw=0.8, ax=ax)
        clipped = _clip_early_spike(ax, sub)
        ax.set_title(f"{dataset} / {model}" + (" (first steps off the scale)" if clipped else ""),
                     fontsize=9)
        ax.set_xlabel("training step", fontsize=8)
        ax.set_ylabel("training loss" + ("" if several else f" ({sub['loss'].iloc[0]})"),
                      fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    return fig


def metric_curves(records: list[RunRecord], dataset: str) -> Figure | None:
    """Metric values against the training step, from the ``curves`` that ``eval_every`` stores:
    one panel per metric value, one colour per model, one line per seed. None without curves."""
    import seaborn as sns

    rows, groups = [], {}
    for r in _typed(records):
        if r.curves is None:
            continue
        groups.update({name: label for label, result in r.metrics.items()
                       for name in result.values})
        for name, values in r.curves.values.items():
            rows += [{"model": r.model, "seed": r.seed, "metric": name, "step": st,
                      "value": v} for st, v in zip(r.curves.step, values, strict=True)]
    if not rows:
        return None

    df = pd.DataFrame(rows)
    metrics = [m for m in _ordered(df["metric"]) if _is_panel(m)]
    fig, axes = _panel_grid(len(metrics), max_cols=3, panel_size=(3.4, 2.6))
    for ax, metric in zip(axes, metrics, strict=False):
        sub = df[df["metric"] == metric]
        sns.lineplot(data=sub, x="step", y="value", hue="model", units="seed", estimator=None,
                     lw=0.9, marker="o", markersize=2.5, ax=ax)
        group = groups.get(metric)
        direction = direction_text(metric, group, entry_metrics(records).get(group))
        ax.set_title(metric + (f" ({direction})" if direction else ""), fontsize=8)
        ax.set_xlabel("training step", fontsize=8)
        ax.set_ylabel(metric, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.suptitle(f"{dataset}: metrics during training (one line per seed)", fontsize=10)
    return fig


def _clip_early_spike(ax, sub: pd.DataFrame) -> bool:
    """Limit the y axis to the range of the losses after the first 5% of steps when the first
    steps reach far beyond it (a VAE's initial loss is often 100 times its final one, which
    flattens the rest of the curve into a line); return True when it did."""
    values = sub["value"].to_numpy(dtype=float)
    late = values[sub["step"].to_numpy() > 0.05 * sub["step"].max()]
    late, values = late[np.isfinite(late)], values[np.isfinite(values)]
    if late.size == 0 or values.size == 0:
        return False
    lo, hi = float(late.min()), float(late.max())
    span = max(hi - lo, 1e-12)
    if values.max() <= hi + span and values.min() >= lo - span:
        return False
    ax.set_ylim(lo - 0.1 * span, hi + 0.1 * span)
    return True


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return atomic_write_bytes(path, buf.getvalue())
