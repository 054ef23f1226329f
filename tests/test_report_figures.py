"""The report draws its figures from the results folder alone: it never rebuilds a dataset."""

from __future__ import annotations

import _suite_fakes
import tomllib

from densitylab.cli import main
from densitylab.report.figures import density_figure, samples_figure
from densitylab.suite import RunStore, parse_suite, registry, run_suite


def test_report_draws_without_building_any_dataset(tmp_path, monkeypatch):
    data = tomllib.loads(_suite_fakes.TINY_SUITE)
    data["datasets"], data["models"] = data["datasets"][:1], data["models"][:1]
    data["metrics"] = data["metrics"][:1]
    run_suite(parse_suite(data), tmp_path, show_progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError(f"the report rebuilt a dataset: {args}")

    monkeypatch.setattr(registry, "make_dataset", refuse)
    assert main(["report", str(tmp_path), "--quiet"]) == 0
    assert "## ring" in (tmp_path / "report.md").read_text()
    drawn = {p.name for p in (tmp_path / "figures").glob("*.png")}
    assert {"samples.png", "density.png", "metrics_ring.png", "training_ring.png"} <= drawn
    store = RunStore(tmp_path)
    first = [r for r in store.current_records() if r.is_ok and r.seed == 0]
    fig = samples_figure(first, store)
    for ax in fig.axes:  # each panel: the saved target sample, the model, the mode centres
        labels = [c.get_label() for c in ax.collections]
        assert labels == ["target", "model", "mode centres"], labels
    fig = density_figure(first, store)
    assert all(len(ax.collections) >= 2 for ax in fig.axes if ax.get_title())  # crosses drawn
