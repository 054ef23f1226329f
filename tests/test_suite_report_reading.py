"""The first report reads right: it opens with what the suite is, sets published numbers only
beside runs whose protocol and budget match (otherwise says why), counts collapsed seeds, and
its figures say which way is better, mark models without a density, draw reference values as
lines, give each seed its colour and draw metric-versus-step curves for ``eval_every``."""

from __future__ import annotations

import _suite_fakes
import pytest
import tomllib

from densitylab.report import failed_runs, results_table, write_report
from densitylab.report.figures import metric_bars, metric_curves, training_curves
from densitylab.report.markdown import render_report
from densitylab.report.published import PUBLISHED_TRAINING_SAMPLES, budget_mismatch
from densitylab.suite import RunStore, parse_suite, run_suite

SUITE = """
[suite]
name = "reading"
description = "A small suite on the published ring."
device = "cpu"
seeds = [0, 1]
eval_samples = 2500
density_grid = 0
references = false

[train]
steps = 4
batch_size = 64
eval_every = 2

[[datasets]]
name = "ring"

[[models]]
name = "dens"
kind = "stepfit"

[[models]]
name = "nodens"
kind = "nodensityfit"

[[metrics]]
name = "mode_coverage"

[[metrics]]
name = "log_likelihood"
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("reading")
    run_suite(parse_suite(tomllib.loads(SUITE)), out, show_progress=False)
    return out, write_report(out, figures=False)


def test_the_report_opens_with_what_the_suite_is(report):
    out, paths = report
    text = paths.markdown.read_text()
    opening = text.split("## ring")[0]
    assert "## What this suite is" in opening and "A small suite on the published ring." in opening
    assert "seeds: 2 (0, 1)" in opening and "4 steps of 64 samples (256 samples seen)" in opening
    assert "It cannot show" in opening and "the published numbers" in opening


def test_published_numbers_only_beside_a_matching_budget(report):
    out, paths = report
    text = paths.markdown.read_text()
    # same protocol (ring, 2,500 samples, 3 std) but a tiny budget: linked with the reason
    assert "| PacGAN |" not in text and "| VEEGAN |" not in text
    assert "are not set beside these runs" in text and "256 samples" in text
    cfg = {"train": {"steps": PUBLISHED_TRAINING_SAMPLES // 100, "batch_size": 100}}
    assert budget_mismatch([cfg]) is None
    assert "0.5%" in budget_mismatch([{"train": {"steps": 2000, "batch_size": 100}}])


def test_collapsed_seeds_are_counted(report):
    out, paths = report
    text = paths.markdown.read_text()
    for r in RunStore(out).records():
        values = r["metrics"]["mode_coverage"]["values"]
        modes, hq = int(values["modes_covered"]), values["high_quality_fraction"]
        # each seed's count and its share of high-quality samples, beside each other
        assert f"seed {r['seed']}: {modes} at {100 * hq:.1f} %" in text
    assert "- dens: all 8 modes in" in text


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts] + \
           [ax.get_title() for ax in fig.axes]


def test_metric_panels_say_which_way_is_better_and_mark_missing_densities(report):
    out, _ = report
    table = results_table(out)
    fig = metric_bars(table, "ring", no_density=["nodens"])
    texts = _texts(fig)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert all("is better" in t for t in titles), titles
    assert not any(t.startswith("target_loglik") for t in titles)  # a line, not a bar
    assert "no density" in texts
    panel = next(ax for ax in fig.axes if ax.get_title().startswith("heldout_loglik"))
    # the target's own value: dotted, apart from the reference rows' dashed lines
    assert any(line.get_label() == "target's own" and line.get_linestyle() == ":"
               for line in panel.lines)


def test_training_curves_have_a_colour_per_seed_and_named_axes(report):
    out, _ = report
    fig = training_curves(RunStore(out).records(), "ring")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "training step" and ax.get_ylabel().startswith("training loss")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "seed 0" in labels and "seed 1" in labels


def test_eval_every_curves_are_drawn(report):
    out, paths = report
    records = RunStore(out).records()
    assert all(r["curves"]["step"] == [2, 4] for r in records)
    fig = metric_curves(records, "ring")
    assert fig is not None and any(ax.get_xlabel() == "training step" for ax in fig.axes)
    text = _render(out, ["curves_ring.png"])
    assert "figures/curves_ring.png" in text and "Metrics during training" in text


def test_samples_caption_fits_targets_without_modes(tmp_path, report):
    data = tomllib.loads(_suite_fakes.TINY_SUITE)
    data["datasets"] = [{"name": "two_moons"}]
    data["models"] = [data["models"][0]]
    data["metrics"] = [data["metrics"][0]]
    run_suite(parse_suite(data), tmp_path, show_progress=False)
    text = _render(tmp_path, ["samples.png"])
    assert "figures/samples.png" in text and "mode centres" not in text
    out, _ = report
    assert "mode centres (red crosses)" in _render(out, ["samples.png"])


def _render(out, figure_names):
    """The report's text as if these figures had been drawn (drawing them is slow)."""
    store = RunStore(out)
    records, stale = store.current_records(), store.stale_records()
    return render_report(store.read_suite(), records, results_table(out), failed_runs(out),
                         [out / "figures" / n for n in figure_names], out, stale=stale)
