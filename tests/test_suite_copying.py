"""The suite's copying and calibration metrics see the training set a train_size run fitted on."""

from __future__ import annotations

import pytest
import torch

from densitylab import distributions, models
from densitylab.models import trainer
from densitylab.scoring import BUILTIN_METRICS
from densitylab.suite.context import EvalContext

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
def test_training_set_is_the_set_fit_trains_on(monkeypatch):
    seen = []
    original = trainer.iter_batches  # the batch stream every fit draws from

    def spy(*args, **kwargs):
        for batch in original(*args, **kwargs):
            seen.append(batch.detach().clone())
            yield batch

    monkeypatch.setattr(trainer, "iter_batches", spy)
    target = distributions.ring()
    model = models.VAE(data_dim=2, latent_dim=2)
    model.fit(target, steps=3, batch_size=32, seed=5, train_size=64, progress=False)
    ctx = EvalContext(target, model, target.sample(10, seed=1), target.sample(10, seed=2), 5, 10,
                      torch.device("cpu"), train_size=64)
    train = ctx.training_set()
    assert train.shape == (64, 2)
    rows = {tuple(r.tolist()) for r in train}
    assert len(seen) >= 3 and all(tuple(r.tolist()) in rows for b in seen for r in b)
    assert EvalContext(target, model, train, train, 5, 10, torch.device("cpu")).training_set() \
        is None


@pytest.mark.slow
def test_data_copying_metric_flags_a_model_that_returns_its_training_set():
    spec = {s.name: s for s in BUILTIN_METRICS}["data_copying"]
    target = distributions.ring(dtype=torch.float64)
    ctx = EvalContext(target, None, torch.empty(0, 2), target.sample(10, seed=2), 3, 500,
                      torch.device("cpu"), train_size=500)
    train = ctx.training_set()
    gen = torch.Generator().manual_seed(0)
    ctx.samples = train[torch.randint(0, 500, (500,), generator=gen)] + 1e-5 * torch.randn(
        500, 2, generator=gen, dtype=torch.float64)
    assert spec.applies(ctx) is None
    out = spec.fn(ctx, num_cells=5, held_out=0)
    assert out["data_copying"] < 0 and out["data_copying_pvalue"] < 0.01
    assert out["authenticity"] < out["authenticity_heldout"]
    # the copier is close to its own training set only, not to a fresh set of the same size
    assert out["data_copying_fresh_set_pvalue"] > 0.05
    # modes too narrow, no copying: close to any set, so both C_T values are negative
    ctx.samples = distributions.ring(std=0.0075, dtype=torch.float64).sample(500, seed=4)
    narrow = spec.fn(ctx, num_cells=5, held_out=0)
    assert narrow["data_copying_pvalue"] < 0.01 and narrow["data_copying_fresh_set_pvalue"] < 0.01
    no_train = EvalContext(target, None, train, train, 3, 500, torch.device("cpu"))
    assert "train_size" in spec.applies(no_train)


def test_memorisation_suite_validates_matches_its_copy_and_carries_the_copying_metrics():
    from pathlib import Path

    from densitylab.suite import builtin_suites, load_suite

    shipped = builtin_suites()["memorisation"]
    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "suites" / "memorisation.toml"
    assert shipped.read_bytes() == bench.read_bytes()
    cfg = load_suite("memorisation")
    assert {r.config["train"]["train_size"] for r in cfg.runs} == {1000}
    assert {r.config["model"]["kind"] for r in cfg.runs} >= {"vae", "gan", "flow", "diffusion"}
    assert {m["name"] for m in cfg.metrics} >= {"data_copying", "calibration"}


@pytest.mark.slow
def test_prd_metric_separates_recall_from_precision_on_a_model_missing_half_the_modes():
    from densitylab.distributions import GaussianMixture

    spec = {s.name: s for s in BUILTIN_METRICS}["prd_curve"]
    p = distributions.ring(dtype=torch.float64)
    keep = torch.arange(8) % 2 == 0
    half = GaussianMixture(p.means[keep], p.stds[keep], p.weights[keep], dtype=torch.float64)
    ctx = EvalContext(p, None, half.sample(1000, seed=1), p.sample(1000, seed=2), 0, 1000,
                      torch.device("cpu"))
    out = spec.fn(ctx, classifier="mlp", folds=5)
    # truth: alpha(lambda) = min(lambda / 2, 1), beta = min(1/2, 1/lambda), so the largest
    # F_8 is 65 * 0.5 / 64.5 = 0.504 and the largest F_1/8 is (65/64) * 0.5 / (1/64 + 0.5) = 0.985
    assert out["prd_f8"] == pytest.approx(0.504, abs=0.05)
    assert out["prd_f1_8"] == pytest.approx(0.985, abs=0.03)
    assert len(out["prd_precision"]) == len(out["prd_recall"]) == 101
