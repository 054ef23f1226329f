"""The suite's [train] options reach the models' fit: lr, lr_schedule, single and batched."""

from __future__ import annotations

import _suite_fakes
import pytest
import tomllib

from densitylab.suite import RunStore, parse_suite, register_model, run_suite, unregister

SUITE = """
[suite]
name = "train-options"
device = "cpu"
seeds = [0, 1]
eval_samples = 64
save_samples = false
references = false

[train]
steps = 3
batch_size = 16
lr = 0.01
lr_schedule = "cosine"

[[datasets]]
name = "ring"
params = { n_modes = 4, std = 0.1 }

[[models]]
name = "rec"
kind = "recfit"

[[metrics]]
name = "mean_gap"
"""

CALLS: list[dict] = []


class RecordingFit(_suite_fakes.GaussianFit):
    """GaussianFit that records the keyword arguments of each fit and has a schedule option."""

    fit_options = frozenset({"lr_schedule"})

    def fit(self, data, steps, batch_size, seed, lr=None, progress=False,
            lr_schedule="constant"):
        CALLS.append({"steps": steps, "batch_size": batch_size, "seed": seed, "lr": lr,
                      "lr_schedule": lr_schedule})
        return super().fit(data, steps, batch_size, seed, lr, progress)


@pytest.fixture
def recfit():
    register_model("recfit", RecordingFit)
    CALLS.clear()
    yield
    unregister("recfit")


def test_train_table_reaches_fit(recfit, tmp_path):
    data = tomllib.loads(SUITE)
    data["models"].append({"name": "rec2", "kind": "recfit",
                           "train": {"lr_schedule": "constant", "steps": 2}})
    result = run_suite(parse_suite(data), tmp_path, show_progress=False)
    assert len(result.ok) == 4, result.summary()
    assert sorted(CALLS, key=lambda c: (c["steps"], c["seed"])) == [
        {"steps": 2, "batch_size": 16, "seed": 0, "lr": 0.01, "lr_schedule": "constant"},
        {"steps": 2, "batch_size": 16, "seed": 1, "lr": 0.01, "lr_schedule": "constant"},
        {"steps": 3, "batch_size": 16, "seed": 0, "lr": 0.01, "lr_schedule": "cosine"},
        {"steps": 3, "batch_size": 16, "seed": 1, "lr": 0.01, "lr_schedule": "cosine"},
    ]
    recorded = {r["model"]: r["config"]["train"] for r in RunStore(tmp_path).records()}
    assert recorded["rec"]["lr_schedule"] == "cosine" and recorded["rec2"]["steps"] == 2


def _gan_suite(batch_seeds: bool) -> dict:
    data = tomllib.loads(SUITE)
    data["suite"]["batch_seeds"] = batch_seeds
    data["models"] = [{"name": "gan", "kind": "gan", "params": {"hidden": [8]}}]
    data["metrics"] = [{"name": "mode_coverage"}]
    return data


@pytest.mark.parametrize("batch_seeds", [False, True])
def test_real_gan_gets_the_schedule_single_and_batched(monkeypatch, tmp_path, batch_seeds):
    from densitylab.models import GAN, BatchedGAN

    seen = []
    cls = BatchedGAN if batch_seeds else GAN
    original = cls.fit

    def spy(self, *args, **kwargs):
        seen.append((kwargs.get("lr"), kwargs.get("lr_schedule")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "fit", spy)
    result = run_suite(parse_suite(_gan_suite(batch_seeds)), tmp_path, show_progress=False)
    assert len(result.ok) == 2, result.summary()
    assert seen == [(0.01, "cosine")] * (1 if batch_seeds else 2)


def test_default_learning_rate_is_the_models_own():
    from densitylab.models import GAN

    data = _gan_suite(False)
    del data["train"]["lr"]
    run = parse_suite(data).runs[0]
    assert run.config["train"]["lr"] == GAN.default_lr
