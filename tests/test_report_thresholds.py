"""Threshold curves from a results folder: the mode numbers at 1 to 5 standard deviations,
recomputed from the saved samples, against the run's own recorded values and a hand count."""

from __future__ import annotations

import _suite_fakes  # noqa: F401  (registers the gaussfit model)
import numpy as np
import pytest

from densitylab.report import write_report
from densitylab.report.thresholds import (
    THRESHOLDS,
    threshold_figure,
    threshold_lines,
    threshold_table,
)
from densitylab.suite import RunStore, parse_suite, run_suite


def _suite(tmp_path, **suite):
    data = {
        "suite": {"name": "thr", "device": "cpu", "seeds": [0, 1], "eval_samples": 200,
                  "references": True, "density_grid": 0, **suite},
        "train": {"steps": 2, "batch_size": 16},
        "datasets": [{"name": "ring", "params": {"n_modes": 4, "std": 0.05}}],
        "models": [{"name": "g", "kind": "gaussfit"}],
        "metrics": [{"name": "mode_coverage"}],
    }
    run_suite(parse_suite(data), tmp_path, show_progress=False)
    return RunStore(tmp_path)


def test_threshold_curves_from_the_folder_match_the_recorded_values_and_a_hand_count(tmp_path):
    store = _suite(tmp_path)
    records = store.current_records()
    table = threshold_table(records, store)
    assert THRESHOLDS == (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
    assert len(table) == len(records) * len(THRESHOLDS)  # g, oracle, noise: 2 seeds each
    # at the protocol's 3 std the curve is the value the run recorded
    for r in records:
        at3 = table[(table["model"] == r.model) & (table["seed"] == r.seed)
                    & (table["threshold"] == 3.0)].iloc[0]
        values = r.values("mode_coverage")
        assert at3["high_quality_fraction"] == pytest.approx(values["high_quality_fraction"])
        assert at3["modes_covered"] == values["modes_covered"]
    # more generous thresholds never lose a sample
    for _, curve in table.groupby(["model", "seed"]):
        assert np.all(np.diff(curve["high_quality_fraction"].to_numpy()) >= 0)
    # a hand-made samples file: points at 0.5, 1.2, 2.2, 3.4 and 4.6 std from mode 0 (the ring
    # of 4 with std 0.05 has its modes 1 apart, so each point's nearest mode is mode 0)
    rec = next(r for r in records if r.model == "g" and r.seed == 0)
    arrays = store.load_samples(rec.run_id)
    centre, std = arrays["mode_means"][0], float(arrays["mode_stds"].reshape(-1)[0])
    direction = np.array([0.6, 0.8])
    arrays["samples"] = np.stack([centre + d * std * direction
                                  for d in (0.5, 1.2, 2.2, 3.4, 4.6)]).astype(np.float32)
    store.write_samples(rec.run_id, arrays)
    mine = threshold_table([rec], store)
    expected = {1.0: 1, 1.5: 2, 2.0: 2, 2.5: 3, 3.0: 3, 3.5: 4, 4.0: 4, 4.5: 4, 5.0: 5}
    assert dict(zip(mine["threshold"], mine["high_quality_fraction"] * 5, strict=True)) == (
        pytest.approx(expected))
    assert (mine["modes_covered"] == 1).all() and (mine["num_modes"] == 4).all()


@pytest.mark.slow
def test_the_report_draws_and_tabulates_the_curves_and_skips_runs_without_samples(tmp_path):
    store = _suite(tmp_path / "with")
    table = threshold_table(store.current_records(), store)
    assert threshold_figure(table, "ring") is not None
    assert threshold_figure(table, "elsewhere") is None
    lines = threshold_lines(table, "ring")
    assert "| model | 1 std | 2 std | **3 std** | 4 std | 5 std |" in lines
    paths = write_report(tmp_path / "with")
    assert "thresholds_ring.png" in {p.name for p in paths.figures}
    text = paths.markdown.read_text()
    assert "figures/thresholds_ring.png" in text and "**3 std**" in text
    # without saved samples there is nothing to recompute: no curve, no table, no error
    bare = _suite(tmp_path / "without", save_samples=False)
    assert threshold_table(bare.current_records(), bare).empty
    paths = write_report(tmp_path / "without", figures=False)
    assert "**3 std**" not in paths.markdown.read_text()
