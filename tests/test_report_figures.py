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


def test_samples_figure_draws_the_median_seed_by_high_quality():
    from densitylab.report.figures import _representative_seed
    from densitylab.suite.store import RunRecord

    def record(model, seed, hq):
        values = {} if hq is None else {"high_quality_fraction": hq, "modes_covered": 8}
        return RunRecord.of({"run_id": f"{model}{seed}", "dataset": "ring", "model": model,
                             "seed": seed, "status": "ok",
                             "metrics": {"mode_coverage": {"values": values}}})

    # seed 0 collapsed (0.0), seed 3 is the lucky one: the median of 0.0, 0.5, 0.8, 0.9 (lower
    # median of an even count) is seed 2's 0.5
    gan = [record("gan", 0, 0.0), record("gan", 1, 0.8), record("gan", 2, 0.5),
           record("gan", 3, 0.9)]
    few = [record("vae", 4, 0.3), record("vae", 1, 0.1)]  # two seeds: the first is drawn
    flow = [record("flow", s, None) for s in (2, 0, 1)]  # no mode counts: the first seed
    picked, why = _representative_seed(gan + few + flow)
    assert {r.model: r.seed for r in picked} == {"gan": 2, "vae": 1, "flow": 0}
    # only the seed picked as the median says so in its caption
    assert why == {"gan2": "seed 2, median high quality of 4"}
