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
    from densitylab.report.seeds import representative_seed as _representative_seed
    from densitylab.results.store import RunRecord

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


# ---------------------------------------------------------------- figure glitches


def _table(rows):
    import pandas as pd

    base = {"status": "ok", "reference": False, "suite": "s"}
    return pd.DataFrame([{**base, **r, "run_id": f"{r['model']}{r['seed']}"} for r in rows])


def _inside_figure(fig, artist) -> bool:
    renderer = fig.canvas.get_renderer()
    box, page = artist.get_window_extent(renderer), fig.bbox
    return box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1


def test_density_panels_have_whole_titles_and_no_offset_colourbar(tmp_path):
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from densitylab.results.store import RunRecord

    store = RunStore(tmp_path)
    grid = np.linspace(-1.5, 1.5, 16)
    gx, gy = np.meshgrid(grid, grid)
    records = []
    for model, logp in (("noise", np.full_like(gx, -1.816447665)),  # uniform: one value
                        ("diffusion", -(gx ** 2 + gy ** 2) * 1e20)):
        rid = f"{model}0"
        store.write_samples(rid, {"grid_x": gx, "grid_y": gy, "grid_logp": logp})
        kind = "noise" if model == "noise" else "diffusion"
        records.append(RunRecord.of({"run_id": rid, "dataset": "two_moons", "model": model,
                                     "seed": 0, "status": "ok",
                                     "config": {"model": {"kind": kind}}}))
    fig = density_figure(records, store)
    FigureCanvasAgg(fig).draw()
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == 2
    for ax in titled:
        assert _inside_figure(fig, ax.title), ax.get_title()
    for ax in fig.axes:  # the colourbars: plain tick labels, no "1e-13-1.816..." offset
        assert ax.yaxis.get_offset_text().get_text() == "", ax.yaxis.get_offset_text()


def test_metric_panels_robust_to_an_outlier_with_distinct_reference_styles():
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from densitylab.report.figures import metric_bars

    rows = []
    for seed in range(10):
        for model, shift in (("vae", 0.0), ("diffusion", 0.5)):
            value = -1e12 if (model, seed) == ("diffusion", 3) else 1.0 + shift + 0.01 * seed
            rows.append({"dataset": "ring", "model": model, "seed": seed,
                         "metric": "heldout_loglik", "value": value, "group": "log_likelihood"})
            rows.append({"dataset": "ring", "model": model, "seed": seed,
                         "metric": "target_loglik", "value": 1.7, "group": "log_likelihood"})
            for name, v in (("c2st", 0.6), ("c2st_pvalue", 0.01), ("c2st_stderr", 0.007)):
                rows.append({"dataset": "ring", "model": model, "seed": seed, "metric": name,
                             "value": v + 0.001 * seed, "group": "c2st"})
        for name, v in (("heldout_loglik", 0.5), ("c2st", 0.99)):  # noise: c2st off the scale
            rows.append({"dataset": "ring", "model": "noise", "seed": seed, "metric": name,
                         "value": v + 0.01 * seed, "group": "c2st", "reference": True})
    fig = metric_bars(_table(rows), "ring")
    FigureCanvasAgg(fig).draw()
    titles = [ax.get_title().split("\n")[0] for ax in fig.axes if ax.get_title()]
    assert titles == ["heldout_loglik", "c2st"]  # p-value and s.e. are no panels of their own
    ax = next(a for a in fig.axes if a.get_title().startswith("heldout_loglik"))
    low, high = ax.get_ylim()
    assert np.isfinite(low) and low > -100 and high < 100  # -1e12 does not flatten the panel
    assert any("1 seed" in t.get_text() and "-1e+12" in t.get_text() for t in ax.texts)
    # the target's own value and the noise row are told apart, in the legend too
    styles = {line.get_label(): (line.get_color(), line.get_linestyle()) for line in ax.lines
              if line.get_label() in ("target's own", "noise (reference)")}
    assert len(styles) == 2 and len(set(styles.values())) == 2, styles
    legend = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert "target's own" in legend and "noise (reference)" in legend
    # a reference far off the scale is a note outside the plotting area, not over the dots
    c2st = next(a for a in fig.axes if a.get_title().startswith("c2st"))
    renderer = fig.canvas.get_renderer()
    notes = [t for t in [*c2st.texts, c2st.xaxis.label] if "noise (reference)" in t.get_text()]
    assert notes
    area = c2st.get_window_extent(renderer)
    for note in notes:
        box = note.get_window_extent(renderer)
        assert box.y1 <= area.y0 + 1 or box.y0 >= area.y1 - 1, note.get_text()
