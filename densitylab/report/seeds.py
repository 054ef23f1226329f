"""Which seed a report shows for each (dataset, model): the typical one, by high-quality
fraction. Both :mod:`.figures` (which draws it) and :mod:`.markdown` (whose captions name it)
import it from here, so neither imports the other."""

from __future__ import annotations

from ..results.records import RunRecord

__all__ = ["high_quality", "representative_seed", "seed_caption"]


def representative_seed(records: list[RunRecord]) -> tuple[list[RunRecord], dict[str, str]]:
    """One record per (dataset, model) to draw, and why it was picked (by run id).

    The seed with the median high-quality fraction (the lower median for an even count) when
    there are at least 3 seeds and all have mode counts, else the smallest seed. A figure of the
    first seed shows whatever that seed did (a collapse, or a lucky run); the median seed shows
    the typical one, and
    :func:`densitylab.report.figures.flagged_samples_figure` every failed one."""
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for r in records:
        groups.setdefault((r.dataset, r.model), []).append(r)
    out, why = [], {}
    for runs in groups.values():
        runs.sort(key=lambda r: r.seed)
        hq = [high_quality(r) for r in runs]
        if len(runs) > 2 and all(v is not None for v in hq):
            ranked = sorted(range(len(runs)), key=lambda i: (hq[i], runs[i].seed))
            pick = runs[ranked[(len(runs) - 1) // 2]]
            why[pick.run_id] = f"seed {pick.seed}, median high quality of {len(runs)}"
        else:
            pick = runs[0]
        out.append(pick)
    return out, why


def seed_caption(records: list[RunRecord]) -> str:
    """Which seed the per-model panels of ``samples.png`` and ``density.png`` show, as a
    caption's words: the one :func:`representative_seed` picks for the finished ``records``."""
    shown, why = representative_seed([RunRecord.of(r) for r in records])
    if shown and len(why) == len(shown):
        return "median seed by high-quality fraction"
    if not why:
        return "first seed"
    return ("median seed by high-quality fraction where a model has 3 or more seeds with mode "
            "counts, else its first seed (each panel names its seed)")


def high_quality(record: RunRecord) -> float | None:
    """The run's high-quality fraction (mode coverage), None when it has none."""
    value = record.values("mode_coverage").get("high_quality_fraction")
    return None if value is None else float(value)
