"""The published-table check: which runs follow PacGAN's setup, and ours against each cell."""

import math

import pandas as pd
import pytest

from densitylab import models
from densitylab.report.published import PUBLISHED, published_check, published_setup


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
                                      {"init_std": None}, {"g_norm": "none"}])
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
