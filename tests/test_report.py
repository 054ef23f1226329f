"""Reports: tidy CSV schema and values, Markdown tables, figures, published numbers."""

from __future__ import annotations

import math

import _suite_fakes
import numpy as np
import pandas as pd
import pytest
import tomllib

from densitylab import stats
from densitylab.report import COLUMNS, summarize, write_report
from densitylab.report.published import PUBLISHED, protocol_of
from densitylab.suite import RunStore, parse_suite, run_suite


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    run_suite(parse_suite(tomllib.loads(_suite_fakes.TINY_SUITE)), out, show_progress=False)
    (out / "runs" / ".0123456789ab.json.abc.tmp").write_text("{half")  # a killed writer's temp
    return out, write_report(out)


def test_csv_is_tidy_with_the_promised_columns(results):
    out, paths = results
    df = pd.read_csv(paths.csv)
    required = {"suite", "dataset", "model", "seed", "metric", "value", "run_id", "steps",
                "device", "wall_s"}
    assert required <= set(df.columns) and list(df.columns) == COLUMNS
    # one row per run x metric value; failures are rows too, with an empty value and a reason
    values = df[df["status"] == "ok"]
    assert len(values) == 4 and set(values["metric"]) == {"mean_gap"}
    broken = df[df["status"] == "error"]  # the metric that raises, on each of the 4 ok runs
    assert len(broken) == 4 and set(broken["metric"]) == {"broken"}
    assert broken["value"].isna().all() and broken["reason"].str.contains("always fails").all()
    failed = df[df["status"] == "failed"]  # the 4 runs of model "bad": one row each
    assert len(failed) == 4 and set(failed["model"]) == {"bad"} and failed["metric"].isna().all()
    assert failed["reason"].str.contains("fake model asked to fail").all()
    assert len(df) == 12 and not df["reference"].any()
    assert set(df["suite"]) == {"tiny"} and set(df["device"]) == {"cpu"}
    assert set(df["steps"]) == {4}
    for row in values.itertuples():  # each value is the one in its run's record
        rec = RunStore(out).load(row.run_id)
        assert rec["seed"] == row.seed
        assert math.isclose(rec["metrics"]["mean_gap"]["values"]["mean_gap"], row.value)


def test_summary_is_mean_and_standard_error():
    df = pd.DataFrame({"dataset": "d", "model": "m", "metric": "x", "value": [1.0, 2.0, 6.0]})
    s = summarize(df).iloc[0]
    assert s["mean"] == 3.0 and s["n"] == 3
    assert s["se"] == pytest.approx(np.std([1, 2, 6], ddof=1) / math.sqrt(3))
    one = summarize(df.iloc[:1]).iloc[0]
    assert math.isnan(one["se"])


def test_markdown_has_tables_failures_and_figures(results):
    out, paths = results
    text = paths.markdown.read_text()
    df = pd.read_csv(paths.csv)
    g = df[(df.dataset == "ring") & (df.model == "g") & (df.status == "ok")]["value"]
    iv = stats.bootstrap_interval(g.to_numpy(), seed=0)
    cell = (f"| mean_gap | g | {g.mean():.3g} | {g.median():.3g} | [{iv.low:.3g}, "
            f"{iv.high:.3g}] | 2 | 0 |")
    assert cell in text
    assert "## Failed and diverged runs" in text and "fake model asked to fail" in text
    assert "`broken` failed for ring / g" in text
    for fig in paths.figures:
        assert fig.is_file() and fig.stat().st_size > 1000
        assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figures/{fig.name}" in text
    names = {f.name for f in paths.figures}
    assert {"samples.png", "density.png", "metrics_ring.png", "training_ring.png"} <= names


def test_protocol_detection_and_published_table(tmp_path):
    data = tomllib.loads(_suite_fakes.TINY_SUITE)
    data["suite"]["eval_samples"] = 2500
    data["datasets"] = [{"name": "ring", "params": {"n_modes": 8, "std": 0.01}},
                        {"name": "grid", "params": {"std": 0.1}}]
    data["metrics"] = [{"name": "mode_coverage"}]
    # the published budget (PacGAN: 400 epochs of 100,000 samples); the records are written
    # below, nothing trains
    data["train"].update(steps=400_000, batch_size=100)
    cfg = parse_suite(data)
    protocols = {r.dataset: protocol_of(r.config) for r in cfg.runs}
    assert protocols == {"ring": "ring", "grid": None}  # grid std 0.1 is not the protocol
    # records as a finished run would leave them, with the protocol's metric values
    store = RunStore(tmp_path)
    for spec in cfg.runs:
        if spec.model != "g":
            continue
        store.write_record({"run_id": spec.run_id, "status": "ok", "suite": "tiny",
                            "dataset": spec.dataset, "model": spec.model, "seed": spec.seed,
                            "config": spec.config, "device": "cpu", "wall_s": 1.0,
                            "metrics": {"mode_coverage": {"values": {
                                "modes_covered": 8.0, "high_quality_fraction": 0.5,
                                "kl_modes": 0.01}, "details": {"counts": [1] * 8}}}})
    text = write_report(tmp_path, figures=False).markdown.read_text()
    assert "Published results on the same protocol (ring)" in text
    assert "protocol (grid)" not in text
    assert "Lin et al." in text and "Srivastava et al." in text
    assert "| g | this run | 8 ± 0 | 50 ± 0 | 0.01 ± 0 |" in text
    pac_gan_ring = next(r for r in PUBLISHED if r.source == "PacGAN" and r.model == "GAN"
                        and r.dataset == "ring")
    assert "| GAN | PacGAN | 6.3 ± 0.5 | 98.2 ± 0.2 | 0.45 ± 0.09 |" in text
    assert pac_gan_ring.modes == 6.3


def test_report_on_empty_folder_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run records"):
        write_report(tmp_path)


# ---------------------------------------------------------------- image datasets


def test_image_mosaic_places_each_image_in_its_tile():
    from densitylab.report.figures import image_mosaic

    x = np.zeros((3, 3, 2, 2))
    for i in range(3):
        x[i, i] = 1.0  # image i lights colour channel i
    m = image_mosaic(x, side=2, pad=1)
    assert m.shape == (2 * 3 + 1, 2 * 3 + 1, 3)
    np.testing.assert_array_equal(m[1:3, 1:3], np.broadcast_to([1.0, 0, 0], (2, 2, 3)))
    np.testing.assert_array_equal(m[1:3, 4:6], np.broadcast_to([0, 1.0, 0], (2, 2, 3)))
    np.testing.assert_array_equal(m[4:6, 1:3], np.broadcast_to([0, 0, 1.0], (2, 2, 3)))
    assert np.all(m[4:6, 4:6] == 0.5) and np.all(m[0] == 0.5)  # empty tile and padding
    grey = image_mosaic(np.full((1, 1, 2, 2), 2.0), side=1)
    assert grey.shape == (4, 4) and grey[1, 1] == 1.0  # one channel, clipped to [0, 1]


def _image_records(tmp_path):
    """Hand-made records of a stacked-digits suite and a ring suite, as runs would leave them."""
    from densitylab import images

    store = RunStore(tmp_path)
    x, _ = images.StackedDigits("test").sample(64, seed=3)
    stacked_cfg = {"dataset": {"label": "stacked", "name": "stacked_digits",
                               "params": {"split": "test", "seed": 0, "balanced": True}},
                   "eval_samples": 26000,
                   "metrics": [{"name": "stacked_modes",
                                "params": {"threshold": None, "min_count": 1}}]}
    ring_cfg = {"dataset": {"label": "ring", "name": "ring",
                            "params": {"n_modes": 8, "radius": 1.0, "std": 0.05}},
                "eval_samples": 400,
                "metrics": [{"name": "mode_coverage",
                             "params": {"threshold": 2.0, "min_count": 1}}]}
    values = {("vae", 0): (900.0, 0.2), ("vae", 1): (920.0, 0.3), ("gan", 0): (40.0, 3.1),
              ("gan", 1): (0.0, None)}
    for (model, seed), (modes, kl) in values.items():
        rid = f"s{model}{seed}".ljust(12, "0")
        vals = {"modes_covered": modes, "num_modes": 1000.0, "high_quality_fraction": 0.8}
        details = {"counts": [1] * int(modes) + [0] * (1000 - int(modes))}
        if kl is None:
            details["kl_modes_note"] = "undefined: no high-quality sample"
        else:
            vals["kl_modes"] = kl
        store.write_record({"run_id": rid, "status": "ok", "suite": "img", "dataset": "stacked",
                            "model": model, "seed": seed, "config": stacked_cfg, "device": "cpu",
                            "wall_s": 1.0, "metrics": {"stacked_modes": {"values": vals,
                                                                         "details": details}}})
        store.write_samples(rid, {"samples": x.numpy()})
    store.write_record({"run_id": "ring00000000", "status": "ok", "suite": "img",
                        "dataset": "ring", "model": "g", "seed": 0, "config": ring_cfg,
                        "device": "cpu", "wall_s": 1.0,
                        "metrics": {"mode_coverage": {"values": {
                            "modes_covered": 8.0, "high_quality_fraction": 0.5,
                            "kl_modes": 0.01}, "details": {"counts": [1] * 8}}}})
    return store


def test_stacked_digits_report_grid_wording_and_mode_table(tmp_path):
    from densitylab.report.figures import image_grid_figure
    from densitylab.report.published import STACKED_MNIST

    store = _image_records(tmp_path)
    paths = write_report(tmp_path)
    text = paths.markdown.read_text()
    # (a) a sample grid per image dataset: real images first, then each model, in colour
    assert "figures/samples_stacked.png" in text
    assert (tmp_path / "figures" / "samples_stacked.png").stat().st_size > 1000
    first = [r for r in store.records() if r["dataset"] == "stacked" and r["seed"] == 0]
    fig = image_grid_figure(first, store, "stacked")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "real images"
    assert sorted(titles[1:]) == ["gan (seed 0)", "vae (seed 0)"]
    assert all(ax.images[0].get_array().shape[-1] == 3 for ax in fig.axes)  # RGB, not a colormap
    # (b) high_quality_fraction is explained per dataset kind, with the run's own threshold
    assert ("- `high_quality_fraction` (stacked): mean classifier confidence (max softmax "
            "probability) over the three channel images") in text
    assert ("- `high_quality_fraction` (ring): share of samples within 2 standard deviations"
            in text)
    assert "within 3 std" not in text
    # (c) the mode-count table: ours, then the published stacked-MNIST rows, labelled apart
    assert "not directly comparable" in text and "Srivastava et al." in text
    assert "Table 2" in text and "Lin et al." in text
    assert "| vae | stacked 8x8 digits (26,000 samples per evaluation) | this run | 910 ± 10 | " \
           "0.25 ± 0.05 |" in text
    for row in STACKED_MNIST:
        assert f"| {row.model} | stacked MNIST 28x28 | {row.source} | {row.modes:g}" in text
    # an undefined KL is said so, and averaged over the seeds that define it, never NaN
    assert "`kl_modes` (stacked_modes) undefined: no high-quality sample for stacked / gan " \
           "(seeds 1)" in text
    assert "| gan | stacked 8x8 digits (26,000 samples per evaluation) | this run | 20 ± 20 | " \
           "3.1 |" in text
    # the dataset table counts the undefined seed as a failure: one value, "1 of 2"
    assert "| kl_modes | gan | 3.1 | 3.1 | n/a | 1 | 1 of 2 |" in text
    # 1,000 modes are drawn as a ranked curve of readable size, not 1,000 bars
    from densitylab.report.figures import mode_histograms

    fig = mode_histograms([r for r in store.records() if r["dataset"] == "stacked"], "stacked")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "vae (910 of 1000 modes visited)" in legend and fig.get_figwidth() < 10
    df = pd.read_csv(paths.csv)
    # the undefined value is a row with an empty cell and its reason; every other row a value
    undefined = df[df["status"] == "undefined"]
    assert len(undefined) == 1 and undefined["value"].isna().all()
    assert undefined.iloc[0]["metric"] == "kl_modes" and undefined.iloc[0]["seed"] == 1
    assert undefined.iloc[0]["reason"] == "undefined: no high-quality sample"
    assert not df[df["status"] == "ok"]["value"].isna().any()
    assert len(df[(df.model == "gan") & (df.metric == "kl_modes")]) == 2


# ---------------------------------------------------------------- text that fits the suite


def _mixture_records(tmp_path, *, seeds=(0, 1, 2), steps=4, mode_metric=True, datasets=None):
    """A finished suite's records written by hand (nothing trains): model ``g`` on the given
    datasets, with mode-coverage values when ``mode_metric``."""
    data = tomllib.loads(_suite_fakes.TINY_SUITE)
    data["suite"].update(seeds=list(seeds), eval_samples=2500)  # the published evaluation
    data["datasets"] = datasets or [{"name": "ring", "params": {"n_modes": 8, "std": 0.01}}]
    data["metrics"] = [{"name": "mode_coverage" if mode_metric else "mean_gap"}]
    data["models"] = [data["models"][0]]
    data["train"].update(steps=steps)
    cfg = parse_suite(data)
    store = RunStore(tmp_path)
    store.write_suite({"name": cfg.name, "run_ids": cfg.run_ids()})
    for spec in cfg.runs:
        values = ({"mode_coverage": {"values": {"modes_covered": 8.0, "num_modes": 8.0,
                                               "high_quality_fraction": 0.1 * (spec.seed + 1),
                                               "kl_modes": 0.01}}} if mode_metric else
                  {"mean_gap": {"values": {"mean_gap": 0.1 * (spec.seed + 1)}}})
        store.write_record({"run_id": spec.run_id, "status": "ok", "suite": "tiny",
                            "dataset": spec.dataset, "model": spec.model, "seed": spec.seed,
                            "config": spec.config, "device": "cpu", "wall_s": 1.0,
                            "metrics": values})
    return store


def test_what_it_can_show_fits_the_suites_metrics_and_datasets(tmp_path):
    _mixture_records(tmp_path / "modes", steps=4)
    text = write_report(tmp_path / "modes", figures=False).markdown.read_text()
    assert "It can show which model covers the modes" in text
    assert "It cannot show" in text and "the published numbers: the shortest training" in text
    _mixture_records(tmp_path / "gap", mode_metric=False)
    text = write_report(tmp_path / "gap", figures=False).markdown.read_text()
    assert "covers the modes" not in text and "counted per seed below each table" not in text
    assert "published numbers" not in text  # a ring of 8 modes at std 0.01 has them...
    moons = [{"name": "two_moons"}]
    _mixture_records(tmp_path / "moons", mode_metric=False, datasets=moons)
    text = write_report(tmp_path / "moons", figures=False).markdown.read_text()
    assert "published" not in text.lower()  # ...two moons has none


def test_failure_counts_sentence_uses_the_actual_seed_count():
    from densitylab.report.sections import tests_section

    rows = []
    for model, failing in (("a", 0), ("b", 2)):
        for seed in range(3):
            failed = seed < failing
            rows.append({"dataset": "ring", "model": model, "seed": seed,
                         "metric": "modes_covered", "value": np.nan if failed else 8.0,
                         "status": "failed" if failed else "ok", "reference": False,
                         "group": "mode_coverage", "run_id": f"{model}{seed}"})
    text = "\n".join(tests_section(pd.DataFrame(rows)))
    assert "0 of 10 against" not in text and "With 3 seeds per model" in text


def test_the_ais_skip_reason_shows_the_toml_to_write():
    from types import SimpleNamespace

    from densitylab.scoring.likelihood import needs_likelihood as _needs_likelihood

    why = _needs_likelihood(SimpleNamespace(model=object()))
    assert "params = { sigma = " in why and "{{" not in why


def test_sample_and_density_captions_name_the_seed_drawn(tmp_path):
    from pathlib import Path

    from densitylab.report.markdown import render_report
    from densitylab.report.table import failed_runs, results_table

    store = _mixture_records(tmp_path, seeds=(0, 1, 2))
    figures = [Path(tmp_path / "figures" / n) for n in ("samples.png", "density.png")]
    text = render_report(store.read_suite(), store.current_records(),
                         results_table(tmp_path, with_failures=True), failed_runs(tmp_path),
                         figures, tmp_path)
    assert "first seed" not in text
    assert text.count("median seed by high-quality fraction") == 2 * 2  # image alt + caption
    store = _mixture_records(tmp_path / "two", seeds=(0, 1))  # too few for a median
    text = render_report(store.read_suite(), store.current_records(),
                         results_table(tmp_path / "two", with_failures=True),
                         failed_runs(tmp_path / "two"), figures, tmp_path / "two")
    assert "median seed" not in text and "first seed" in text


def test_published_sentences_say_matched_only_where_true(tmp_path):
    from densitylab.report.published import budget_mismatch

    own = {"model": {"kind": "gan", "params": {"latent_dim": 2}},
           "train": {"steps": 100, "batch_size": 10}}
    assert "with other architectures" in budget_mismatch([own])
    published = {"model": {"kind": "gan", "params": {
        "latent_dim": 2, "g_hidden": [400] * 4, "d_hidden": [200] * 3, "g_norm": "batch",
        "d_activation": "maxout", "maxout_pieces": 5, "betas": [0.8, 0.999], "init_std": 0.02,
        "loss": "non_saturating"}}, "train": {"steps": 100, "batch_size": 10}}
    text = budget_mismatch([published])
    assert "other architectures" not in text and "the published architecture" in text
    _mixture_records(tmp_path, steps=4)
    report = write_report(tmp_path, figures=False).markdown.read_text()
    assert "matched setup" not in report
