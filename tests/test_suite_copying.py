"""The suite's copying and calibration metrics see the training set a train_size run fitted on."""

from __future__ import annotations

import pytest
import torch

from densitylab import distributions, models
from densitylab.models import base
from densitylab.suite.context import EvalContext
from densitylab.suite.metric_adapters import BUILTIN_METRICS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
def test_training_set_is_the_set_fit_trains_on(monkeypatch):
    seen = []
    original = base.iter_batches

    def spy(*args, **kwargs):
        for batch in original(*args, **kwargs):
            seen.append(batch.detach().clone())
            yield batch

    monkeypatch.setattr(base, "iter_batches", spy)
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
