"""Discrepancy maps of 2D runs: where a model is wrong, drawn from a results folder.

``witness.png``: for each (dataset, model) shown in ``samples.png`` (the representative seed),
the MMD witness of the saved target sample against the model's samples
(:func:`densitylab.metrics.witness_map`: bandwidth chosen on a split, max-T family-wise
significance at 5 %), red where the target has mass the model lacks, blue where the model puts
too much; the significant regions are outlined (solid: missing mass, dashed: excess mass).
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from ..metrics.witness import witness_map
from ..results.records import RunRecord
from ..results.store import RunStore
from ..suite.references import is_reference
from .sections import model_label

__all__ = ["witness_figure", "MAX_MAP_POINTS"]

#: Points per set a map uses (a seeded subsample above it): the map's memory is the kernel
#: matrix between half of them and the grid, and 2,000 points resolve the ring's modes.
MAX_MAP_POINTS = 2000


def _subsample(points: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(points) <= n:
        return points
    return points[np.sort(np.random.default_rng(seed).choice(len(points), n, replace=False))]


def witness_figure(records: list[RunRecord], store: RunStore, *, grid_size: int = 64,
                   num_permutations: int = 500, seed: int = 0) -> Figure | None:
    """One witness-map panel per run with 2D samples and a saved target sample (None when no
    run has both). Each panel costs one :func:`~densitylab.metrics.witness_map` call (about 3 s
    at 1,000 points a side on one thread)."""
    panels = []
    for r in records:
        arrays = store.load_samples(r.run_id)
        if (arrays is None or "samples" not in arrays or "reference" not in arrays
                or arrays["samples"].ndim != 2 or arrays["samples"].shape[1] != 2):
            continue
        x = _subsample(np.asarray(arrays["reference"], dtype=np.float64), MAX_MAP_POINTS, seed)
        y = _subsample(np.asarray(arrays["samples"], dtype=np.float64), MAX_MAP_POINTS, seed + 1)
        if len(x) < 4 or len(y) < 4:
            continue
        res = witness_map(x, y, seed=seed, grid_size=grid_size,
                          num_permutations=num_permutations)
        panels.append((r, res, arrays.get("mode_means")))
    if not panels:
        return None
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(3.0 * cols, 3.0 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, (r, res, means) in zip(axes, panels, strict=False):
        scale = float(np.abs(res.witness).max()) or 1.0
        ax.pcolormesh(res.grid_x, res.grid_y, res.witness, cmap="RdBu_r", vmin=-scale,
                      vmax=scale, shading="auto")
        for mask, style in ((res.missing, "solid"), (res.excess, "dashed")):
            if mask.any():
                ax.contour(res.grid_x, res.grid_y, mask.astype(float), levels=[0.5],
                           colors="k", linewidths=0.8, linestyles=style)
        if means is not None:
            ax.scatter(means[:, 0], means[:, 1], marker="x", s=14, c="k", linewidths=0.8)
        name = model_label(r.model, is_reference(r.model_kind))
        ax.set_title(f"{r.dataset} / {name} (seed {r.seed})\nbandwidth {res.bandwidth:.3g}, "
                     f"{int(res.significant.sum())} significant cells", fontsize=7)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
    fig.suptitle("MMD witness (target - model): red = mass the model misses, blue = excess; "
                 "outlined: significant at family-wise 5 % (solid missing, dashed excess)",
                 fontsize=8)
    return fig
