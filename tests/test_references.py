"""Reference rows against analytic truth: the oracle (the target itself) on the published ring and
grid covers every mode with the 3-sigma probability of a 2D Gaussian, 1 - e^-4.5, and a
mode-histogram KL at the multinomial sampling-noise level; uniform noise over the grid's padded
box matches the area ratio. Image references are held-out real images and their shuffled
pixels."""

from __future__ import annotations

import math

import _suite_fakes  # noqa: F401  (registers the gaussfit model)
import numpy as np
import pytest
import tomllib
import torch

from densitylab import distributions
from densitylab.report import results_table
from densitylab.suite import RunStore, load_suite, parse_suite, run_suite
from densitylab.suite.references import (
    BOX_PADDING,
    NoiseReference,
    OracleReference,
    is_reference,
    make_reference,
)

P_3SIGMA = 1.0 - math.exp(-4.5)  # P(r < 3 sigma) for an isotropic 2D Gaussian: 0.98889
N = 2500
SEEDS = [0, 1, 2, 3]


def _suite(references: bool = True) -> dict:
    return {
        "suite": {"name": "refs", "device": "cpu", "seeds": SEEDS, "eval_samples": N,
                  "references": references, "save_samples": False},
        "train": {"steps": 1, "batch_size": 8},
        "datasets": [{"name": "ring"}, {"name": "grid"}],
        "models": [{"name": "g", "kind": "gaussfit"}],
        "metrics": [{"name": "mode_coverage"}],
    }


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    out = tmp_path_factory.mktemp("refs")
    run_suite(parse_suite(_suite()), out, show_progress=False)
    values = {}
    for rec in RunStore(out).records():
        assert rec["status"] == "ok", rec.get("error")
        values.setdefault((rec["dataset"], rec["model"]), []).append(
            rec["metrics"]["mode_coverage"]["values"])
    return values


def test_references_come_first_and_only_when_asked():
    cfg = parse_suite(_suite())
    labels = list(dict.fromkeys(r.model for r in cfg.runs))
    assert labels == ["oracle", "noise", "g"]
    assert all(is_reference(r.config) == (r.model != "g") for r in cfg.runs)
    assert {r.model for r in parse_suite(_suite(references=False)).runs} == {"g"}
    clash = _suite()
    clash["models"][0]["name"] = "oracle"
    with pytest.raises(ValueError, match="reference rows"):
        parse_suite(clash)


PLAIN_SUITE = """
[suite]
name = "plain"
device = "cpu"
seeds = [0, 1]
eval_samples = 64
save_samples = false
density_grid = 0

[train]
steps = 1
batch_size = 8

[[datasets]]
name = "ring"

[[models]]
name = "g"
kind = "gaussfit"

[[metrics]]
name = "mean_gap"
"""


def test_a_suite_file_gets_the_reference_rows_by_default_and_false_removes_them(tmp_path):
    default, off = tmp_path / "plain.toml", tmp_path / "off.toml"
    default.write_text(PLAIN_SUITE)
    off.write_text(PLAIN_SUITE.replace("[suite]\n", "[suite]\nreferences = false\n"))
    on_cfg, off_cfg = load_suite(default), load_suite(off)
    assert [(r.model, r.seed) for r in on_cfg.runs] == [
        ("oracle", 0), ("oracle", 1), ("noise", 0), ("noise", 1), ("g", 0), ("g", 1)]
    assert [(r.model, r.seed) for r in off_cfg.runs] == [("g", 0), ("g", 1)]
    # the references add runs; the model's runs are the same runs, with the same ids
    assert [r.run_id for r in on_cfg.runs if r.model == "g"] == [r.run_id for r in off_cfg.runs]
    # a file without a [suite] table at all gets them too
    bare = tomllib.loads(PLAIN_SUITE)
    del bare["suite"]
    assert list(dict.fromkeys(r.model for r in parse_suite(bare).runs)) == ["oracle", "noise", "g"]

    result = run_suite(on_cfg, tmp_path / "out", show_progress=False)
    assert len(result.ok) == 6
    kinds = {(rec["model"], rec["config"]["model"]["kind"])
             for rec in RunStore(tmp_path / "out").records()}
    assert kinds == {("oracle", "oracle"), ("noise", "noise"), ("g", "gaussfit")}
    table = results_table(tmp_path / "out")
    assert sorted(table.groupby("model")["reference"].all().items()) == [
        ("g", False), ("noise", True), ("oracle", True)]
    assert len(table) == 6  # one mean_gap value per run


def test_oracle_covers_every_mode_with_the_3_sigma_share(refs):
    for dataset, modes in (("ring", 8), ("grid", 25)):
        vals = refs[dataset, "oracle"]
        assert [v["modes_covered"] for v in vals] == [modes] * len(SEEDS)
        hq = np.array([v["high_quality_fraction"] for v in vals])
        # binomial noise of one seed's share: sqrt(p (1 - p) / N) = 0.0021
        sd = math.sqrt(P_3SIGMA * (1 - P_3SIGMA) / N)
        assert np.all(np.abs(hq - P_3SIGMA) < 4 * sd), hq
        assert abs(hq.mean() - P_3SIGMA) < 4 * sd / math.sqrt(len(SEEDS))
        # 2 N KL ~ chi^2_{K-1} for a multinomial against its own (uniform) probabilities
        kl = np.array([v["kl_modes"] for v in vals])
        noise_level = (modes - 1) / (2 * N * P_3SIGMA)
        sd_kl = math.sqrt(2 * (modes - 1)) / (2 * N * P_3SIGMA)
        assert np.all(kl < noise_level + 5 * sd_kl), (kl, noise_level)
        assert abs(kl.mean() - noise_level) < 4 * sd_kl / math.sqrt(len(SEEDS))


def test_noise_on_the_grid_matches_the_area_ratio(refs):
    target = distributions.grid()
    vals = refs["grid", "noise"]
    hq = np.array([v["high_quality_fraction"] for v in vals])
    covered = np.array([v["modes_covered"] for v in vals])
    for seed, h, c in zip(SEEDS, hq, covered, strict=True):
        box = NoiseReference(data_dim=2)
        box.fit(target, seed=seed)
        area = float(torch.prod(box.high - box.low))
        p_mode = math.pi * (3 * 0.05) ** 2 / area  # one mode's 3-sigma disc, wholly in the box
        p_hq = 25 * p_mode
        assert abs(h - p_hq) < 4 * math.sqrt(p_hq * (1 - p_hq) / N), (h, p_hq)
        expected = 25 * (1 - (1 - p_mode) ** N)
        assert abs(c - expected) < 4 * math.sqrt(25 * (1 - p_mode) ** N), (c, expected)
        # the analytic values quoted in the docs: about 1.8 % and 20.7 modes
        assert 0.016 < p_hq < 0.019 and 20.3 < expected < 21.0
    assert abs(covered.mean() - 20.7) < 1.5


def test_noise_box_is_the_padded_sample_box_and_its_density_integrates_to_one():
    target = distributions.ring()
    ref = make_reference("noise", data_dim=2)
    ref.fit(target, seed=3)
    pts = target.sample(10_000, seed=3).double()
    lo, hi = pts.min(0).values, pts.max(0).values
    assert torch.allclose(ref.low, lo - BOX_PADDING * (hi - lo))
    assert torch.allclose(ref.high, hi + BOX_PADDING * (hi - lo))
    x = ref.sample(5000, seed=0).double()
    assert torch.all((x >= ref.low - 1e-6) & (x <= ref.high + 1e-6))
    assert ref.sample(10, seed=1).equal(ref.sample(10, seed=1))
    inside = ref.log_prob(x[:10])
    assert torch.allclose(inside.exp() * torch.prod(ref.high - ref.low), torch.ones(10,
                                                                                    dtype=torch.float64))
    assert ref.log_prob(torch.tensor([[100.0, 0.0]])).item() == -math.inf


def test_image_references_are_held_out_real_images_and_their_shuffled_pixels():
    from densitylab.images import Digits, load_digits

    train = Digits(split="train")
    oracle = OracleReference(data_shape=(1, 8, 8))
    oracle.fit(train)
    x = oracle.sample(64, seed=0)
    test_x, _ = load_digits("test")
    flat_test = test_x.reshape(len(test_x), -1)
    dist = torch.cdist(x.reshape(64, -1), flat_test).min(dim=1).values
    assert torch.all(dist == 0)  # every oracle image is a held-out (test-split) image
    noise = NoiseReference(data_shape=(1, 8, 8))
    noise.fit(train, seed=0)
    shuffled = noise.sample(64, seed=0)
    assert shuffled.shape == x.shape
    same_pixels = torch.sort(shuffled.reshape(64, -1), dim=1).values.equal(
        torch.sort(x.reshape(64, -1), dim=1).values)
    assert same_pixels  # the same images (same seed), pixels only moved
    assert not shuffled.equal(x)
    assert not noise.has_density and not oracle.has_density
