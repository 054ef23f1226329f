"""Reports: tidy CSV schema and values, Markdown tables, figures, published numbers."""

from __future__ import annotations

import math

import _suite_fakes
import numpy as np
import pandas as pd
import pytest
import tomllib

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
    # one row per finished run x metric value: 4 ok runs, one working metric each
    assert len(df) == 4 and set(df["metric"]) == {"mean_gap"}
    assert set(df["suite"]) == {"tiny"} and set(df["device"]) == {"cpu"}
    assert set(df["steps"]) == {4}
    for row in df.itertuples():  # each value is the one in its run's record
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
    g = df[(df.dataset == "ring") & (df.model == "g")]["value"]
    cell = f"{g.mean():.3g} ± {g.std(ddof=1) / math.sqrt(len(g)):.2g}"
    assert f"| g | 2 | {cell} |" in text
    assert "## Failed runs" in text and "fake model asked to fail" in text
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
