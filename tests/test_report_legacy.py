"""Old results folders: the committed ``docs/pacgan2d`` (record format 1) reports as it was
committed, and a run whose samples file lacks the saved reference sample is drawn by rebuilding
its dataset (:func:`densitylab.report.legacy.legacy_target`, the one place the report does)."""

from __future__ import annotations

from pathlib import Path

import _suite_fakes
import numpy as np
import tomllib

from densitylab import distributions
from densitylab.report import failed_runs, results_table, summarize
from densitylab.report.figures import samples_figure
from densitylab.report.legacy import LEGACY_SEED, legacy_target
from densitylab.report.markdown import render_report
from densitylab.report.published import check_records
from densitylab.suite import RunStore, parse_suite, registry, run_suite

PACGAN2D = Path(__file__).resolve().parents[1] / "docs" / "pacgan2d"


def test_the_committed_pacgan2d_folder_reports_as_committed():
    store = RunStore(PACGAN2D)
    records = store.current_records()
    full = results_table(PACGAN2D, with_failures=True)
    assert full.to_csv(index=False) == (PACGAN2D / "results.csv").read_text()
    checked = check_records([r for r in records if r.status == "ok"], summarize(full))
    text = render_report(store.read_suite(), records, full, failed_runs(PACGAN2D),
                         sorted((PACGAN2D / "figures").glob("*.png")), PACGAN2D,
                         stale=store.stale_records(), published=checked)
    assert text == (PACGAN2D / "report.md").read_text()


def _format1(out: Path) -> None:
    """Make ``out`` look like a folder written before format 2: drop the saved target arrays."""
    store = RunStore(out)
    for run_id in store.record_ids():
        arrays = store.load_samples(run_id)
        if arrays is not None:
            store.write_samples(run_id, {k: v for k, v in arrays.items()
                                         if k not in ("reference", "mode_means", "mode_stds")})


def test_a_format_1_folder_is_drawn_from_the_rebuilt_dataset(tmp_path, monkeypatch):
    run_suite(parse_suite(tomllib.loads(_suite_fakes.TINY_SUITE)), tmp_path, show_progress=False)
    _format1(tmp_path)
    record = next(r for r in RunStore(tmp_path).current_records()
                  if r.is_ok and r.dataset == "ring")
    points, means = legacy_target(record, 5)
    ring = distributions.ring(n_modes=4, radius=1.0, std=0.05)
    np.testing.assert_allclose(points, ring.sample(5, seed=LEGACY_SEED).numpy())
    np.testing.assert_allclose(means, ring.means.numpy())
    built = []
    real_make = registry.make_dataset
    monkeypatch.setattr(registry, "make_dataset",
                        lambda *a, **k: built.append(a) or real_make(*a, **k))
    assert samples_figure([record], RunStore(tmp_path)) is not None and len(built) == 1

    def unavailable(*args, **kwargs):
        raise ImportError("dataset plugin not installed here")

    monkeypatch.setattr(registry, "make_dataset", unavailable)  # drawn without the target
    assert legacy_target(record, 5) == (None, None)
    fig = samples_figure([record], RunStore(tmp_path))
    assert fig is not None and len(fig.axes[0].collections) == 1  # the model's samples only
