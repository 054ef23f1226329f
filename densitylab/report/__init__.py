"""Reports from a results folder: ``results.csv`` (tidy), ``report.md`` and ``figures/*.png``.

Example:
    >>> from densitylab import report
    >>> paths = report.write_report("results/quick")   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .._runtime import atomic_write_text
from ..results.records import RunRecord
from ..results.store import RunStore
from .figures import write_figures
from .markdown import render_report
from .published import PublishedCell, check_records
from .table import COLUMNS, failed_runs, results_table, summarize

__all__ = ["ReportPaths", "write_report", "results_table", "failed_runs", "summarize",
           "COLUMNS"]


@dataclass
class ReportPaths:
    """The files a report wrote."""

    csv: Path
    markdown: Path
    figures: list[Path] = field(default_factory=list)
    #: Our runs against each published PacGAN Table 1 cell they follow (the published setup).
    published: list[PublishedCell] = field(default_factory=list)


def write_report(out_dir: str | Path, *, figures: bool = True) -> ReportPaths:
    """Write ``results.csv``, ``report.md`` and (unless ``figures=False``) ``figures/*.png``.

    Only the runs of the suite the folder belongs to (the ids in its ``suite.json``) are
    reported; records of another configuration are listed as stale, never averaged.

    Raises:
        FileNotFoundError: ``out_dir`` holds no run records.
    """
    out = Path(out_dir)
    store = RunStore(out)
    records, stale = store.current_and_stale()  # the one read of the record files
    records, stale = [RunRecord.of(r) for r in records], [RunRecord.of(r) for r in stale]
    suite_info = store.read_suite() or {}
    if not records:
        raise FileNotFoundError(f"no run records of this folder's suite in {out / 'runs'}; run "
                                f"a suite into {out} first")
    full = results_table(records, with_failures=True)  # values, and a row for every failure
    failed = failed_runs(records)
    csv_path = atomic_write_text(out / "results.csv", full.to_csv(index=False))
    fig_paths: list[Path] = []
    if figures:
        fig_paths = write_figures(out, records, full)
    checked = check_records([r for r in records if r.status == "ok"], summarize(full))
    text = render_report(suite_info, records, full, failed, fig_paths, out, stale=stale,
                         published=checked)
    md_path = atomic_write_text(out / "report.md", text)
    return ReportPaths(csv_path, md_path, fig_paths, checked)
