"""The images suite: its declared protocol (four families, two VAE rows, references, seeds,
primary metrics, dequantised data), the bits_per_dim metric against the log_likelihood one,
and a smoke run of the new families (flow, diffusion, the Gaussian VAE) from the shipped file."""

from __future__ import annotations

import copy
from importlib import resources

import pytest
import tomllib
import torch

from densitylab import images, models
from densitylab.suite import RunStore, parse_suite, run_suite
from densitylab.suite.evaluate import EvalContext
from densitylab.suite.registry import get_metric


def _shipped() -> dict:
    text = resources.files("densitylab").joinpath("suites/images.toml").read_text()
    return tomllib.loads(text)


@pytest.mark.slow  # ~20 s on the loaded 2-core machine: loading builds every model of the suite
def test_images_suite_declares_the_protocol():
    data = _shipped()
    cfg = parse_suite(copy.deepcopy(data))
    labels = list(dict.fromkeys(r.model for r in cfg.runs))
    assert labels[:2] == ["oracle", "noise"]  # reference rows first
    kinds = {m["name"]: m["kind"] for m in data["models"]}
    assert set(kinds.values()) == {"vae", "gan", "flow", "diffusion"}
    vae_rows = [m for m in data["models"] if m["kind"] == "vae"]
    assert sorted(m.get("sample", {}).get("noise", False) for m in vae_rows) == [False, True]
    assert len(cfg.seeds) >= 5
    assert all(ds["params"].get("dequantize") for ds in data["datasets"])
    assert {m["name"] for m in data["metrics"]} >= {"bits_per_dim", "data_copying",
                                                    "stacked_modes", "feature_metrics"}
    assert "bits_per_dim" in cfg.primary and "modes_covered" in cfg.primary


def _context(model, target, n=32, seed=0):
    ref = torch.as_tensor(target.sample(n, seed=1)[0] if isinstance(target.sample(1), tuple)
                          else target.sample(n, seed=1))
    return EvalContext(target=target, model=model, samples=ref.clone(), reference=ref,
                       seed=seed, eval_samples=n, device=torch.device("cpu"))


@pytest.mark.slow  # ~30 s on the loaded 2-core machine
def test_bits_per_dim_metric_converts_the_log_likelihood_metric():
    target = images.Digits("train", dequantize=True)
    flow = models.Flow(data_shape=(1, 8, 8), hidden=(16,), num_layers=1, seed=0)
    flow.fit(target, steps=2, batch_size=16, seed=0, num_threads=1, progress=False)
    ctx = _context(flow, target)
    spec, loglik = get_metric("bits_per_dim"), get_metric("log_likelihood")
    params = dict(spec.defaults, num_samples=40)
    assert spec.applies(ctx, **params) is None
    out, ref = spec.fn(ctx, **params), loglik.fn(ctx, **params)
    assert out["heldout_loglik"] == ref["heldout_loglik"]
    assert out["bits_per_dim"] == pytest.approx(images.bits_per_dim(ref["heldout_loglik"], 64, 17))
    # the held-out points are dequantised test images: each pixel strictly inside [0, 1)
    held = ctx.heldout(40)
    assert ((held > 0) & (held < 1)).all()
    # plain (not dequantised) digits have no bits/dim bound; a GAN has no density
    assert "not dequantised" in spec.applies(_context(flow, images.Digits("train")), **params)
    gan = models.GAN(data_shape=(1, 8, 8), network="conv", seed=0)
    assert "no tractable density" in spec.applies(_context(gan, target), **params)


def test_data_copying_applies_to_the_digits_split_not_to_stacked_digits():
    spec = get_metric("data_copying")
    flow = models.Flow(data_shape=(1, 8, 8), hidden=(8,), num_layers=1, seed=0)
    digits = _context(flow, images.Digits("train", dequantize=True))
    assert spec.applies(digits, **spec.defaults) is None
    assert digits.training_set().shape == (1347, 1, 8, 8)  # the whole training split
    stacked = _context(models.Flow(data_shape=(3, 8, 8), hidden=(8,), num_layers=1, seed=0),
                       images.StackedDigits("train", dequantize=True))
    assert "no fixed training set" in spec.applies(stacked, **spec.defaults)


@pytest.mark.slow  # trains and scores three tiny models: 70-160 s on the loaded 2-core machine
def test_new_families_run_from_the_shipped_suite(tmp_path):
    data = _shipped()
    # C_T uses cells holding more than 20 generated points: 400 samples and 2 cells
    data["suite"].update(seeds=[0], eval_samples=400, references=False)
    data["suite"].pop("primary", None)
    data["train"].update(steps=2, batch_size=16)
    data["datasets"] = [d for d in data["datasets"] if d["name"] == "digits"]
    data["models"] = [m for m in data["models"] if m["kind"] in ("flow", "diffusion", "vae")]
    for m in data["models"]:
        m["train"] = {"steps": 2}
        if m["kind"] == "diffusion":  # a few steps of the chain and the ODE, not the full budget
            m["params"] = {**m.get("params", {}), "timesteps": 20, "ode_steps": 4}
            m["sample"] = {**m.get("sample", {}), "steps": 5}
    data["metrics"] = [{"name": "bits_per_dim", "params": {"num_samples": 16, "ode_rtol": 1e-3}},
                       {"name": "data_copying", "params": {"held_out": 400, "num_cells": 2}}]
    cfg = parse_suite(data)
    run_suite(cfg, tmp_path, show_progress=False)
    records = list(RunStore(tmp_path).records())
    assert {r["model"] for r in records} == {m["name"] for m in data["models"]}
    for rec in records:
        assert rec["status"] == "ok", rec.get("error")
        values = rec["metrics"]["bits_per_dim"]["values"]
        assert 0 < values["bits_per_dim"] < 50
        copying = rec["metrics"]["data_copying"]["values"]
        assert -50 < copying["data_copying"] < 50 and 0 <= copying["data_copying_pvalue"] <= 1
