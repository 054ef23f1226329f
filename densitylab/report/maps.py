"""Discrepancy maps of 2D runs: where a model is wrong, drawn from a results folder.

``witness.png``: for each (dataset, model) shown in ``samples.png`` (the representative seed),
the MMD witness of the saved target sample against the model's samples
(:func:`densitylab.metrics.witness_map`: bandwidth chosen on a split, max-T family-wise
significance at 5 %), red where the target has mass the model lacks, blue where the model puts
too much; the significant regions are outlined (solid: missing mass, dashed: excess mass).

``c2st_map.png``: for the same runs, the C2ST classifier's probability that a point comes from
the model (:func:`densitylab.metrics.c2st_map`), near 0 where the model misses the target's
mass, near 1 where it puts mass the target lacks.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
from matplotlib.figure import Figure

from ..metrics.c2st import c2st_map
from ..metrics.witness import witness_map
from ..results.records import RunRecord
from ..results.store import RunStore
from ..suite.references import is_reference
from .sections import model_label

__all__ = ["witness_figure", "c2st_map_figure", "map_figures", "MAX_MAP_POINTS"]

#: Points per set a map uses (a seeded subsample above it): the map's memory is the kernel
#: matrix between half of them and the grid, and 2,000 points resolve the ring's modes.
MAX_MAP_POINTS = 2000


def _subsample(points: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(points) <= n:
        return points
    return points[np.sort(np.random.default_rng(seed).choice(len(points), n, replace=False))]


def _map_inputs(records: list[RunRecord], store: RunStore, seed: int):
    """``(record, target points, model points, mode centres)`` of each run with 2D samples and a
    saved target sample, each set subsampled to :data:`MAX_MAP_POINTS`."""
    out = []
    for r in records:
        arrays = store.load_samples(r.run_id)
        if (arrays is None or "samples" not in arrays or "reference" not in arrays
                or arrays["samples"].ndim != 2 or arrays["samples"].shape[1] != 2):
            continue
        x = _subsample(np.asarray(arrays["reference"], dtype=np.float64), MAX_MAP_POINTS, seed)
        y = _subsample(np.asarray(arrays["samples"], dtype=np.float64), MAX_MAP_POINTS, seed + 1)
        if len(x) >= 5 and len(y) >= 5:  # the C2ST's five folds need five points a side
            out.append((r, x, y, arrays.get("mode_means")))
    return out


def _panels(count: int, title: str):
    """A figure of ``count`` map panels, four to a row, under ``title`` wrapped to its width."""
    cols = min(4, count)
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(3.0 * cols, 3.0 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    fig.suptitle(textwrap.fill(title, width=44 * cols), fontsize=8)  # one panel is narrow
    return fig, axes


def _finish_panel(ax, r: RunRecord, means, detail: str) -> None:
    if means is not None:
        ax.scatter(means[:, 0], means[:, 1], marker="x", s=14, c="k", linewidths=0.8)
    name = model_label(r.model, is_reference(r.model_kind))
    ax.set_title(f"{r.dataset} / {name} (seed {r.seed})\n{detail}", fontsize=7)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=6)


def map_figures(records: list[RunRecord], store: RunStore, *,
                seed: int = 0) -> dict[str, Figure | None]:
    """``{"witness": ..., "c2st_map": ...}``: both map figures (:func:`witness_figure`,
    :func:`c2st_map_figure`) from one read of each run's saved samples."""
    inputs = _map_inputs(records, store, seed)
    return {"witness": _witness_panels(inputs, seed=seed),
            "c2st_map": _c2st_panels(inputs, seed=seed)}


def witness_figure(records: list[RunRecord], store: RunStore, *, grid_size: int = 64,
                   num_permutations: int = 500, seed: int = 0) -> Figure | None:
    """One witness-map panel per run with 2D samples and a saved target sample (None when no
    run has both). Each panel costs one :func:`~densitylab.metrics.witness_map` call (about 3 s
    at 1,000 points a side on one thread)."""
    return _witness_panels(_map_inputs(records, store, seed), grid_size=grid_size,
                           num_permutations=num_permutations, seed=seed)


def _witness_panels(inputs, *, grid_size: int = 64, num_permutations: int = 500,
                    seed: int = 0) -> Figure | None:
    def panel(ax, x, y) -> str:
        res = witness_map(x, y, seed=seed, grid_size=grid_size,
                          num_permutations=num_permutations)
        scale = float(np.abs(res.witness).max()) or 1.0
        ax.pcolormesh(res.grid_x, res.grid_y, res.witness, cmap="RdBu_r", vmin=-scale,
                      vmax=scale, shading="auto")
        for mask, style in ((res.missing, "solid"), (res.excess, "dashed")):
            if mask.any():
                ax.contour(res.grid_x, res.grid_y, mask.astype(float), levels=[0.5],
                           colors="k", linewidths=0.8, linestyles=style)
        return f"bandwidth {res.bandwidth:.3g}, {int(res.significant.sum())} significant cells"

    return _draw(inputs, "MMD witness (target - model): red = mass the model misses, blue = "
                 "excess; outlined: significant at family-wise 5 % (solid missing, dashed "
                 "excess)", panel)


def c2st_map_figure(records: list[RunRecord], store: RunStore, *, grid_size: int = 64,
                    seed: int = 0) -> Figure | None:
    """One panel per run with 2D samples and a saved target sample (None when no run has
    both): the C2ST classifier's probability that a point comes from the model
    (:func:`~densitylab.metrics.c2st_map`, its folds' cross-fitted classifiers averaged; about
    1 s per panel at 2,000 points a side on one thread), shaded only where the pooled samples
    are (elsewhere the classifier extrapolates)."""
    return _c2st_panels(_map_inputs(records, store, seed), grid_size=grid_size, seed=seed)


def _c2st_panels(inputs, *, grid_size: int = 64, seed: int = 0) -> Figure | None:
    def panel(ax, x, y) -> str:
        res = c2st_map(x, y, seed=seed, grid_size=grid_size)
        ax.pcolormesh(res.grid_x, res.grid_y, _where_data(res, np.concatenate([x, y])),
                      cmap="RdBu", vmin=0.0, vmax=1.0, shading="auto")
        return f"C2ST accuracy {res.test.accuracy:.3f}"

    return _draw(inputs, "C2ST classifier's P(model | point): red = the target's mass the "
                 "model misses (near 0), blue = the model's excess (near 1), white = agreement "
                 "(0.5); blank where there is no data", panel)


def _draw(inputs, title: str, panel) -> Figure | None:
    """One panel per map input under ``title`` (None without inputs); ``panel(ax, x, y)`` draws
    a run's map and returns the second line of its title."""
    if not inputs:
        return None
    fig, axes = _panels(len(inputs), title)
    for ax, (r, x, y, means) in zip(axes, inputs, strict=False):
        _finish_panel(ax, r, means, panel(ax, x, y))
    return fig


def _where_data(res, points: np.ndarray) -> np.ma.MaskedArray:
    """The probability map masked at grid nodes whose cell (the points nearest that node, as
    ``pcolormesh`` draws it) holds none of ``points``."""
    def nearest(axis: np.ndarray, values: np.ndarray) -> np.ndarray:
        step = axis[1] - axis[0]
        return np.clip(np.rint((values - axis[0]) / step).astype(int), 0, len(axis) - 1)

    filled = np.zeros((len(res.grid_y), len(res.grid_x)), dtype=bool)
    filled[nearest(res.grid_y, points[:, 1]), nearest(res.grid_x, points[:, 0])] = True
    return np.ma.masked_array(res.probability, mask=~filled)
