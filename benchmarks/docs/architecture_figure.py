"""The figure of docs/architecture.md: the suite's stages left to right, the typed value each
hands to the next on the arrows, and below them the libraries the stages use.

Regenerate it from the repository root with::

    python benchmarks/docs/architecture_figure.py --out docs/architecture.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

STAGE_COLOUR = "#dbe9f6"
LIBRARY_COLOUR = "#fde8c8"
HANDOFF_COLOUR = "#08306b"
USE_COLOUR = "#8c5a00"

# lengths in inches: the axes are drawn at one data unit per inch
BOX_W, BOX_H = 1.6, 1.15
LIBRARY_W = 2.0
STAGE_Y, LIBRARY_Y = 3.7, 0.7
STEP = 2.6  # distance between the centres of two neighbouring stages
END = 1.25  # length of the arrows into the first stage and out of the last
X0 = END + BOX_W / 2  # centre of the first stage

#: (title, module lines) of each stage, left to right
STAGES = [
    ("config", "suite/config.py\nschema.py\nsweeps.py\n_checking.py"),
    ("plan", "suite/plan.py\nplan_work\n(reads RunStore)"),
    ("train", "suite/train.py\ntrain_unit"),
    ("score", "suite/score.py\nscore_run"),
    ("store", "results/store.py\nRunStore\n.save_run"),
    ("report", "report/\nwrite_report"),
]

#: the typed value on the arrow into stage i (the last: out of the last stage)
HANDOFFS = ["suite\nTOML", "SuiteConfig\n+ RunSpecs", "Work\n(units)", "TrainedRun",
            "ScoredRun\n+ RunRecord", "runs/\n*.json", "results.csv\nreport.md\nfigures/"]

#: (title, module lines, centre x in stage positions) of each library of the bottom row
LIBRARIES = [
    ("registry", "registry.py\nsuite/registry.py", 0.0),
    ("models + Trainer", "models/\nmodels/trainer.py", 2.0),
    ("scoring + metrics", "scoring/ MetricSpec\nmetrics/ functions", 3.35),
    ("results", "results/\nRunRecord\nRunStore", 4.65),
]

#: (library index, stage index) for every "is used by" arrow
USES = [(0, 0), (0, 2), (1, 2), (2, 3), (2, 5), (3, 4), (3, 5)]


def _x(position: float) -> float:
    return X0 + position * STEP


def _box(ax, x: float, y: float, title: str, detail: str, colour: str,
         width: float = BOX_W) -> None:
    ax.add_patch(FancyBboxPatch((x - width / 2, y - BOX_H / 2), width, BOX_H,
                                boxstyle="round,pad=0.04,rounding_size=0.08",
                                facecolor=colour, edgecolor="#333333", linewidth=1.0))
    ax.text(x, y + BOX_H / 2 - 0.2, title, ha="center", va="center", fontsize=12,
            fontweight="bold")
    ax.text(x, y - 0.15, detail, ha="center", va="center", fontsize=8.5, family="monospace",
            linespacing=1.2)


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], **style) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=13,
                                 linewidth=style.pop("linewidth", 1.3),
                                 color=style.pop("color", "#222222"), **style))


def draw(path: Path) -> None:
    """Draw the stages, their hand-offs and the libraries under them into ``path``."""
    x_min, x_max = -0.05, _x(len(STAGES) - 1) + BOX_W / 2 + END + 0.05
    y_min, y_max = -0.05, 5.55
    fig = plt.figure(figsize=(x_max - x_min, y_max - y_min))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(x_min, x_max)
    ax.set_ylim(y_min, y_max)
    ax.axis("off")

    # the runners schedule each unit of the Work through train, score and store
    left, right = _x(2) - BOX_W / 2 - 0.12, _x(4) + BOX_W / 2 + 0.12
    bottom, top = STAGE_Y - BOX_H / 2 - 0.15, STAGE_Y + BOX_H / 2 + 0.85
    ax.add_patch(FancyBboxPatch((left, bottom), right - left, top - bottom,
                                boxstyle="round,pad=0.02,rounding_size=0.1", facecolor="none",
                                edgecolor="#6a6a6a", linestyle="--", linewidth=1.1))
    ax.text((left + right) / 2, top - 0.38,
            "runners.py (this process | worker processes | Dask) hand each unit of Work to\n"
            "evaluate.execute_batched_runs(unit, out_dir): train -> score -> store",
            ha="center", va="center", fontsize=9, color="#333333", linespacing=1.3)

    for i, (title, detail) in enumerate(STAGES):
        _box(ax, _x(i), STAGE_Y, title, detail, STAGE_COLOUR)
    for i, label in enumerate(HANDOFFS):
        x1 = _x(i) - BOX_W / 2 - 0.06 if i < len(STAGES) else x_max - 0.1
        x0 = _x(i - 1) + BOX_W / 2 + 0.06 if i > 0 else x_min + 0.1
        _arrow(ax, (x0, STAGE_Y), (x1, STAGE_Y), linewidth=1.8)
        ax.text((x0 + x1) / 2, STAGE_Y + 0.1, label, ha="center", va="bottom", fontsize=9,
                family="monospace", color=HANDOFF_COLOUR, linespacing=1.15)

    for title, detail, position in LIBRARIES:
        _box(ax, _x(position), LIBRARY_Y, title, detail, LIBRARY_COLOUR, width=LIBRARY_W)
    for lib, stage in USES:
        x_lib, x_stage = _x(LIBRARIES[lib][2]), _x(stage)
        # spread the arrows at both ends so that no two meet in one point
        start_x = x_lib + max(-0.55, min(0.55, (x_stage - x_lib) * 0.25))
        end_x = x_stage + max(-0.35, min(0.35, (x_lib - x_stage) * 0.12))
        _arrow(ax, (start_x, LIBRARY_Y + BOX_H / 2 + 0.05),
               (end_x, STAGE_Y - BOX_H / 2 - 0.06), color=USE_COLOUR, linewidth=1.0)
    ax.text(x_min + 0.1, LIBRARY_Y + BOX_H / 2 + 0.3, "libraries (arrows: used by)",
            ha="left", va="bottom", fontsize=10, style="italic", color=USE_COLOUR)
    ax.text(x_min + 0.1, y_max - 0.3, "stages (arrows: the typed value handed on)",
            ha="left", va="center", fontsize=10, style="italic", color=HANDOFF_COLOUR)

    fig.savefig(path, dpi=120, facecolor="white")
    plt.close(fig)


def main() -> None:
    """Parse ``--out`` and write the figure there."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/architecture.png"))
    draw(parser.parse_args().out)


if __name__ == "__main__":
    main()
