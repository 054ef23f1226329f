"""The report's statistics: cells with intervals and "k of n" failures, reference rows first,
pairwise tests with Holm's correction, Fisher on failure counts, and ``densitylab compare``."""

from __future__ import annotations

import math
from pathlib import Path

import _suite_fakes  # noqa: F401  (registers the gaussfit model and the test metrics)
import numpy as np
import pandas as pd
import pytest

from densitylab import stats
from densitylab.cli import main
from densitylab.report import write_report
from densitylab.report.figures import flagged_seed
from densitylab.report.inference import (
    cell_summary,
    compare,
    failure_tests,
    load_table,
    pairwise_tests,
)
from densitylab.suite import RunStore, parse_suite, run_suite

DOCS = Path(__file__).resolve().parent.parent / "docs" / "comparative-analysis"


def _table(groups: dict[str, list[float | None]], dataset: str = "d",
           metric: str = "x") -> pd.DataFrame:
    """A tidy table: None is an undefined value of that seed."""
    rows = []
    for model, values in groups.items():
        for seed, v in enumerate(values):
            rows.append({"dataset": dataset, "model": model, "seed": seed, "metric": metric,
                         "value": math.nan if v is None else v,
                         "status": "undefined" if v is None else "ok",
                         "reason": "no high-quality sample" if v is None else ""})
    return pd.DataFrame(rows)


def test_cells_count_failures_and_never_average_them():
    t = _table({"a": [1.0, 2.0, None, 4.0, 8.0]})
    t = pd.concat([t, pd.DataFrame([{"dataset": "d", "model": "a", "seed": 5, "metric": "",
                                     "value": math.nan, "status": "diverged",
                                     "reason": "training diverged at step 3"}])])
    c = cell_summary(t).iloc[0]
    assert (c["n"], c["seeds"], c["failures"]) == (4, 6, 2)
    assert c["mean"] == pytest.approx(3.75) and c["median"] == pytest.approx(3.0)
    iv = stats.bootstrap_interval([1.0, 2.0, 4.0, 8.0], seed=0)
    assert (c["low"], c["high"]) == (iv.low, iv.high)
    assert "seed 2: no high-quality sample" in c["reasons"]
    assert "seed 5: training diverged at step 3" in c["reasons"]


def test_committed_toy2d_results_cells_and_tests():
    table = load_table(DOCS)
    cells = cell_summary(table).set_index(["dataset", "model", "metric"])
    # every GAN seed put some sample on a mode, so its KL cell has 10 values and no failure
    assert cells.loc[("ring", "gan", "kl_modes"), "failures"] == 0
    assert cells.loc[("ring", "gan", "kl_modes"), "seeds"] == 10
    assert cells.loc[("ring", "gan", "modes_covered"), "mean"] == pytest.approx(7.8)
    # the reference rows are cells too: the oracle covers all 8 ring modes on every seed
    assert cells.loc[("ring", "oracle", "modes_covered"), "mean"] == 8
    pairs = pairwise_tests(table).set_index(["dataset", "metric", "model_a", "model_b"])
    # "packing fixes the ring" is not supported: 7.8 against 8 modes (two GAN seeds at 7)
    ring_modes = pairs.loc[("ring", "modes_covered", "gan", "pacgan2")]
    assert ring_modes["p"] > 0.3 and not ring_modes["holds"]
    # the diffusion model is sharper than the GAN on the ring (98.5 % against 61.3 %)
    assert pairs.loc[("ring", "high_quality_fraction", "gan", "diffusion"), "holds"]
    # a GAN (grid: 20.4 modes) against the flow (24.6): a large difference holds
    assert pairs.loc[("grid", "modes_covered", "gan", "flow"), "holds"]
    primary = pairs["family"] == "primary"
    assert (pairs.loc[primary, "p_holm"] >= pairs.loc[primary, "p"]).all()
    # Holm runs over the primary family only (the mixtures' three protocol values); the rest
    # keep their unadjusted p and never "hold"
    assert set(pairs[primary].index.get_level_values("metric")) == {
        "modes_covered", "high_quality_fraction", "kl_modes"}
    assert pairs.loc[~primary, "p_holm"].isna().all() and not pairs.loc[~primary, "holds"].any()
    assert primary.sum() == 2 * 3 * 10  # two datasets, three values, ten pairs of five models
    expected = stats.holm(pairs.loc[primary, "p"].to_numpy())
    assert pairs.loc[primary, "p_holm"].to_numpy() == pytest.approx(expected)
    # every tested difference carries its bootstrap interval
    row = pairs.loc[("grid", "modes_covered", "gan", "flow")]
    assert row["diff_low"] <= row["difference"] <= row["diff_high"] < 0
    fails = failure_tests(table).set_index(["dataset", "outcome", "model_a", "model_b"])
    missing = fails.loc[("ring", "seeds missing a mode", "gan", "pacgan2")]
    assert (missing["k_a"], missing["n_a"], missing["k_b"], missing["n_b"]) == (2, 10, 0, 10)
    # two-sided Fisher: twice the one-sided hypergeometric tail C(10,2)/C(20,2) = 0.237
    assert missing["p"] == pytest.approx(2 * math.comb(10, 2) / math.comb(20, 2))


def test_compare_command_on_clear_and_identical_groups(tmp_path, capsys):
    rng = np.random.default_rng(0)
    clear = _table({"a": list(rng.normal(0, 1, 10)), "b": list(rng.normal(4, 1, 10)),
                    "c": list(rng.normal(0, 1, 10))})
    clear.to_csv(tmp_path / "results.csv", index=False)
    assert main(["compare", str(tmp_path), "--metric", "x", "a", "b"]) == 0
    out = capsys.readouterr().out
    p = float(out.split("permutation test p = ")[1].split()[0])
    assert p < 0.01 and "Hedges' g" in out and "difference of means (a - b)" in out
    same = clear[clear["model"] == "a"].assign(model="a2")
    pd.concat([clear, same]).to_csv(tmp_path / "results.csv", index=False)
    assert main(["compare", str(tmp_path), "--metric", "x", "--dataset", "d", "a", "a2"]) == 0
    assert "permutation test p = 1 (" in capsys.readouterr().out
    assert main(["compare", str(tmp_path), "--metric", "y", "a", "b"]) == 2
    assert "metric: 'y' is not in the results" in capsys.readouterr().err
    assert main(["compare", str(tmp_path), "--metric", "x", "a", "zz"]) == 2
    assert "model_b: no runs of model 'zz'" in capsys.readouterr().err


def test_compare_reports_failures_with_fisher():
    t = _table({"a": [1.0, 2.0, 3.0, None, None], "b": [1.5, 2.5, 3.5, 2.0, 1.0]})
    (res,) = compare(t, "x", "a", "b")
    assert res["a"].failures == 2 and res["test"].exact
    assert res["fisher_p"] == pytest.approx(stats.fisher_failures(2, 5, 0, 5))


def test_flagged_seeds_are_the_diverged_and_the_collapsed():
    def rec(covered, diverged=None):
        return {"status": "ok", "diverged": diverged, "metrics": {"mode_coverage": {
            "values": {"modes_covered": covered, "num_modes": 8.0}}}}

    assert flagged_seed(rec(8.0)) is None and flagged_seed(rec(5.0)) is None
    assert flagged_seed(rec(4.0)) == "collapsed: 4 of 8 modes"
    assert flagged_seed(rec(8.0, {"step": 3, "loss": math.inf})) == "diverged"
    assert flagged_seed({"status": "diverged"}) == "diverged"


def test_report_shows_references_first_and_the_tested_differences(tmp_path):
    data = {
        "suite": {"name": "refs", "device": "cpu", "seeds": [0, 1, 2], "eval_samples": 300,
                  "references": True, "density_grid": 8},
        "train": {"steps": 2, "batch_size": 16},
        "datasets": [{"name": "ring", "params": {"n_modes": 4, "std": 0.05}}],
        "models": [{"name": "g", "kind": "gaussfit"}, {"name": "h", "kind": "gaussfit"}],
        "metrics": [{"name": "mode_coverage"}, {"name": "mean_gap"}],
    }
    run_suite(parse_suite(data), tmp_path, show_progress=False)
    # a diverged seed: recorded, counted as a failure, not in the mean
    store = RunStore(tmp_path)
    rec = next(r for r in store.records() if r["model"] == "h" and r["seed"] == 2)
    store.write_record({**rec, "diverged": {"step": 1, "loss": math.inf}})
    paths = write_report(tmp_path)
    text = paths.markdown.read_text()
    table = text[text.index("| metric | model |"):]
    rows = [line for line in table.splitlines() if line.startswith("| modes_covered |")]
    assert [r.split("|")[2].strip() for r in rows] == [
        "**oracle (reference)**", "**noise (reference)**", "g", "h"]
    assert rows[-1].endswith("| 2 | 1 of 3 |")
    assert "## Which differences hold" in text and "Holm" in text
    # the opening lists no training budget for a reference row
    assert not [ln for ln in text.splitlines() if ln.startswith("- oracle:") and "steps" in ln]
    assert [ln for ln in text.splitlines() if ln.startswith("- g:") and "2 steps" in ln]
    df = pd.read_csv(paths.csv)
    assert set(df[df["reference"]]["model"]) == {"oracle", "noise"}
    assert (df[(df["model"] == "h") & (df["seed"] == 2)]["status"] == "diverged").all()
    oracle = df[(df["model"] == "oracle") & (df["metric"] == "modes_covered")]["value"]
    assert (oracle == 4).all()
    names = {p.name for p in paths.figures}
    assert "metrics_ring.png" in names
