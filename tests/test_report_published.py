"""The published-table check: which runs follow PacGAN's setup, and ours against each cell."""

import math

import _suite_fakes
import pandas as pd
import pytest
import tomllib

from densitylab import models
from densitylab.cli import main
from densitylab.report import write_report
from densitylab.report.published import PUBLISHED, published_check, published_setup
from densitylab.suite import RunStore, parse_suite


def _pacgan_model(pack: int = 1, **overrides) -> dict:
    """A resolved suite model config built from the pacgan2d preset itself."""
    return {"kind": "gan", "params": models.preset("pacgan2d", pack=pack, **overrides).config}


PUBLISHED_BUDGET = {"lr": 1e-4, "train_size": 100_000, "steps": 400_000, "batch_size": 100}


def test_preset_runs_are_matched_to_their_published_row():
    assert published_setup(_pacgan_model(1), PUBLISHED_BUDGET).model == "GAN"
    setup = published_setup(_pacgan_model(3), PUBLISHED_BUDGET)
    assert setup.model == "PacGAN3" and setup.budget_matches and setup.budget == "as published"


def test_a_shorter_budget_is_named_not_hidden():
    setup = published_setup(_pacgan_model(2), {**PUBLISHED_BUDGET, "steps": 10_000})
    assert setup.model == "PacGAN2" and not setup.budget_matches
    assert "steps 10000" in setup.budget and "400000" in setup.budget


@pytest.mark.parametrize("override", [{"g_hidden": [128, 128]}, {"d_activation": "leaky_relu"},
                                      {"init_std": None},
                                      {"g_norm": "none", "pack_norm": "joint",
                                       "bn_updates": "every_pass", "bn_refresh_batches": 0}])
def test_other_architectures_are_not_the_published_setup(override):
    assert published_setup(_pacgan_model(1, **override), PUBLISHED_BUDGET) is None


def test_non_gan_models_are_never_matched():
    assert published_setup({"kind": "vae", "params": {}}, PUBLISHED_BUDGET) is None


def test_cells_compare_means_with_the_combined_standard_error():
    # ring GAN published: modes 6.3 +- 0.5, high quality 98.2 +- 0.2 %, KL 0.45 +- 0.09
    summary = pd.DataFrame([
        {"dataset": "ring8", "model": "gan", "metric": "modes_covered", "mean": 7.0, "se": 0.1,
         "n": 10},
        {"dataset": "ring8", "model": "gan", "metric": "high_quality_fraction", "mean": 0.90,
         "se": 0.01, "n": 10},
    ])
    setups = {"gan": published_setup(_pacgan_model(1), PUBLISHED_BUDGET)}
    cells = {c.metric: c for c in published_check(summary, setups, {"ring8": "ring"})}
    assert set(cells) == {"modes_covered", "high_quality_fraction"}
    modes = cells["modes_covered"]
    assert modes.published == 6.3 and math.isclose(modes.difference, 0.7)
    assert math.isclose(modes.combined_se, math.sqrt(0.1**2 + 0.5**2))
    assert modes.within  # 0.7 <= 2 * 0.51
    hq = cells["high_quality_fraction"]
    assert math.isclose(hq.ours, 90.0) and math.isclose(hq.difference, 90.0 - 98.2)
    assert not hq.within  # 8.2 > 2 * sqrt(1 + 0.04)


def test_every_pacgan_cell_can_be_checked():
    rows = [r for r in PUBLISHED if r.source == "PacGAN" and r.model != "ALI"]
    names = {"GAN": 1, "PacGAN2": 2, "PacGAN3": 3, "PacGAN4": 4}
    setups = {f"m{m}": published_setup(_pacgan_model(m), PUBLISHED_BUDGET)
              for m in names.values()}
    summary = pd.DataFrame([
        {"dataset": ds, "model": f"m{m}", "metric": metric, "mean": 1.0, "se": 0.1, "n": 10}
        for ds in ("ring", "grid") for m in names.values()
        for metric in ("modes_covered", "high_quality_fraction", "kl_modes")])
    cells = published_check(summary, setups, {"ring": "ring", "grid": "grid"})
    assert len(rows) == 8 and len(cells) == 24


def test_report_sets_preset_runs_against_each_published_cell(tmp_path, capsys):
    data = tomllib.loads(_suite_fakes.TINY_SUITE)
    data["suite"].update(eval_samples=2500, seeds=[0, 1])
    data["datasets"] = [{"name": "ring"}]
    data["models"] = [{"name": "pac2", "preset": "pacgan2d", "params": {"pack": 2}}]
    data["metrics"] = [{"name": "mode_coverage"}]
    data["train"] = {"steps": 10_000}
    cfg = parse_suite(data)
    store = RunStore(tmp_path)
    for spec, (modes, hq) in zip(cfg.runs, [(8.0, 0.95), (8.0, 0.97)], strict=True):
        store.write_record({"run_id": spec.run_id, "status": "ok", "suite": cfg.name,
                            "dataset": spec.dataset, "model": spec.model, "seed": spec.seed,
                            "config": spec.config, "device": "cpu", "wall_s": 1.0,
                            "metrics": {"mode_coverage": {"values": {
                                "modes_covered": modes, "high_quality_fraction": hq,
                                "kl_modes": 0.05}, "details": {"counts": [1] * 8}}}})
    paths = write_report(tmp_path, figures=False)
    assert len(paths.published) == 3 and {c.published_model for c in paths.published} == {
        "PacGAN2"}
    text = paths.markdown.read_text()
    assert "### Check against PacGAN Table 1 (the published setup)" in text
    assert "pac2: steps 10000 (published 400000)" in text  # the budget gap is stated
    # modes: 8 +- 0 against 7.9 +- 0.1 -> within; high quality 96 +- 1 against 95.6 +- 2 -> within
    assert "| pac2 | PacGAN2 | modes | 8 ± 0 (2) | 7.9 ± 0.1 | +0.1 | 0.1 | yes |" in text
    assert "| pac2 | PacGAN2 | high-quality % | 96 ± 1 (2) | 95.6 ± 2 | +0.4 | 2.2 | yes |" in text
    # KL: 0.05 +- 0 against 0.07 +- 0.03: within
    assert "cells within 2 combined s.e.: 3 of 3" in text
    assert main(["report", str(tmp_path), "--no-figures"]) == 0
    printed = capsys.readouterr().out
    assert "published PacGAN Table 1 cells within 2 combined s.e.: 3 of 3" in printed
