"""What a design can decide: ``densitylab plan``, the dry-run warning, the report's power
section, and the primary family (declared or by default) that Holm's correction runs over."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from densitylab import stats
from densitylab.cli import main
from densitylab.report import sections
from densitylab.report.inference import pairwise_tests
from densitylab.report.power import failure_design, format_plan, plan_suite, shift_design
from densitylab.report.primary import default_primary, primary_for
from densitylab.suite import load_suite, parse_suite
from densitylab.suite.config import SuiteConfigError


def test_plan_says_the_quick_suites_three_seeds_cannot_reach_005_and_how_many_would(capsys):
    assert main(["plan", "benchmarks/suites/quick.toml"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert "3 test(s), Holm's correction" in out
    assert "ring: modes_covered, high_quality_fraction, kl_modes" in out
    assert ("the smallest p-value is 2 / C(6, 3) = 0.1 (exact permutation test), 0.3 after "
            "Holm over 3 tests. It cannot reach 0.05") in out
    assert "5 seeds a side would let the smallest p reach 0.05" in out
    # 4 seeds: 2 / C(8, 4) * 3 = 0.086 > 0.05; 5 seeds: 2 / C(10, 5) * 3 = 0.024
    assert 3 * 2 / math.comb(8, 4) > 0.05 >= 3 * 2 / math.comb(10, 5)
    d = shift_design(3, 3, 3)
    assert (d.min_p, d.min_p_adjusted, d.can_reject, d.seeds_to_reach) == (
        pytest.approx(0.1), pytest.approx(0.3), False, 5)
    n = d.seeds_for_power
    level = 0.05 / 3
    assert stats.t_test_power(n - 1, n - 1, 1.0, alpha=level) < 0.8
    assert stats.t_test_power(n, n, 1.0, alpha=level) >= 0.8
    assert f"{n} seeds a side give 80 %" in out


def test_design_numbers_for_ten_seeds_and_for_failure_counts():
    d = shift_design(10, 10, 60)
    assert d.can_reject and d.min_p == pytest.approx(2 / 184_756)
    assert d.min_p_adjusted == pytest.approx(60 * 2 / 184_756)
    f = failure_design(10, 10, 1)
    assert f.power == pytest.approx(stats.fisher_power(10, 10, 0.2, 0.0))
    assert f.seeds_for_power == 39  # the first n with 80 % power (tests/test_stats.py)
    two = shift_design(2, 2, 1)  # 2 against 2: the smallest p is 1/3 even without correction
    assert two.min_p == pytest.approx(1 / 3) and not two.can_reject and two.power == 0.0


def test_dry_run_warns_when_the_seeds_cannot_reject(tmp_path, capsys):
    assert main(["run", "quick", "--dry-run", "--out", str(tmp_path / "q")]) == 0
    out = capsys.readouterr().out
    assert ("warning: with 3 seeds per model no primary comparison can reach 0.05 after Holm's "
            "correction over 3 test(s)") in out
    assert "5 seeds per model would" in out
    assert not plan_suite(load_suite("toy2d")).shift.min_p_adjusted > 0.05


def _table(models: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    rows = []
    for model, metrics in models.items():
        for metric, values in metrics.items():
            rows += [{"dataset": "ring", "model": model, "seed": s, "metric": metric,
                      "value": v, "status": "ok"} for s, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_a_design_that_can_never_reject_says_so_instead_of_no_difference_holds():
    t = _table({"a": {"modes_covered": [8, 8], "high_quality_fraction": [0.9, 0.95],
                      "mmd": [0.1, 0.2]},
                "b": {"modes_covered": [2, 3], "high_quality_fraction": [0.1, 0.2],
                      "mmd": [0.5, 0.6]}})
    text = "\n".join(sections.tests_section(t))
    assert "No difference can hold with these seeds, whatever the models do" in text
    assert "No primary difference holds" not in text
    assert "2 against 2 seeds: the smallest p-value is 2 / C(4, 2) = 0.33" in text
    assert "Exploratory tests (unadjusted p-values; not findings)" in text


def test_holm_runs_over_the_primary_family_only_declared_or_by_default():
    rng = np.random.default_rng(0)
    t = _table({"a": {"modes_covered": list(rng.normal(8, 0.1, 8)),
                      "high_quality_fraction": list(rng.normal(0.9, 0.01, 8)),
                      "kl_modes": list(rng.normal(0.1, 0.01, 8)),
                      "mmd": list(rng.normal(1, 1, 8))},
                "b": {"modes_covered": list(rng.normal(6, 0.1, 8)),
                      "high_quality_fraction": list(rng.normal(0.5, 0.01, 8)),
                      "kl_modes": list(rng.normal(0.1, 0.01, 8)),
                      "mmd": list(rng.normal(1, 1, 8))}})
    pairs = pairwise_tests(t).set_index("metric")
    assert list(pairs[pairs["family"] == "primary"].index) == [
        "modes_covered", "high_quality_fraction", "kl_modes"]
    assert pairs.loc["mmd", "family"] == "exploratory" and math.isnan(pairs.loc["mmd", "p_holm"])
    first = pairs[pairs["family"] == "primary"]
    assert first["p_holm"].to_numpy() == pytest.approx(stats.holm(first["p"].to_numpy()))
    assert pairs.loc["modes_covered", "holds"]
    # every claimed difference carries its effect size and the bootstrap interval
    held = pairs.loc["modes_covered"]
    iv = stats.bootstrap_difference(t[(t.model == "a") & (t.metric == "modes_covered")]["value"],
                                    t[(t.model == "b") & (t.metric == "modes_covered")]["value"])
    assert (held["diff_low"], held["diff_high"]) == (iv.low, iv.high)
    text = "\n".join(sections.tests_section(t))
    claim = next(ln for ln in text.splitlines() if ln.startswith("- ring / `modes_covered`"))
    assert "95 % interval [" in claim and "Hedges' g" in claim and "exact" in claim
    declared = pairwise_tests(t, primary=["mmd"]).set_index("metric")
    assert list(declared[declared["family"] == "primary"].index) == ["mmd"]
    assert declared.loc["mmd", "p_holm"] == pytest.approx(declared.loc["mmd", "p"])


def test_default_primary_per_dataset_kind_and_the_suite_key():
    assert default_primary(["mmd", "modes_covered", "kl_modes", "high_quality_fraction"]) == (
        "modes_covered", "high_quality_fraction", "kl_modes")
    assert default_primary(["modes_covered", "kl_modes", "high_quality_fraction",
                            "frechet_distance", "kid_mean"]) == (
        "modes_covered", "kl_modes", "frechet_distance")
    assert default_primary(["c2st", "mmd"]) == ("mmd",)
    assert default_primary(["c2st", "energy_distance"]) == ("energy_distance",)
    assert primary_for(["mmd", "c2st"], ["c2st", "nothing"]) == ("c2st",)
    data = {"suite": {"seeds": 4, "primary": ["mmd"]},
            "datasets": [{"name": "ring"}], "models": [{"name": "vae"}, {"name": "gan"}],
            "metrics": [{"name": "mmd"}, {"name": "mode_coverage"}]}
    cfg = parse_suite(data)
    assert cfg.primary == ("mmd",)
    assert [r.run_id for r in cfg.runs] == [r.run_id for r in parse_suite(
        {**data, "suite": {"seeds": 4}}).runs]  # how results are tested: not in the run ids
    plan = plan_suite(cfg)
    assert plan.family == 1 and plan.datasets[0][1] == ("mmd",)
    typo = plan_suite(parse_suite({**data, "suite": {"seeds": 4, "primary": ["mdd"]}}))
    assert typo.family == 0 and "no metric of this suite produces mdd" in format_plan(typo)
    with pytest.raises(SuiteConfigError, match=r"suite\.primary: expected distinct"):
        parse_suite({**data, "suite": {"primary": ["mmd", "mmd"]}})
