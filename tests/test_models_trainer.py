"""The one trainer: a single model (S = 1) and a batched model (S seeds) go through the same
``Trainer.fit``, with the same callback, history, stopping and Ctrl-C behaviour, and a fitted
model carries no training state (optimisers, fit-specific losses) afterwards."""

from __future__ import annotations

import pytest
import torch

from densitylab import distributions, models
from densitylab.models.trainer import History, Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"data_dim": 2, "hidden": (8,)}


def _model(num_seeds: int):
    """A single GAN for S = 1, a batched GAN of S seeds otherwise."""
    if num_seeds == 1:
        return models.GAN(**SMALL, seed=0)
    return models.BatchedGAN(seeds=list(range(num_seeds)), **SMALL)


def _histories(model) -> list[History]:
    return [model.history] if isinstance(model, models.GenerativeModel) else model.histories


@pytest.mark.parametrize("num_seeds", [1, 2])
def test_model_fit_is_a_call_of_the_trainer(num_seeds, monkeypatch):
    calls = []
    original = Trainer.fit

    def spy(self, model, data):
        calls.append((self.steps, self.batch_size, self.lr_schedule, model))
        return original(self, model, data)

    monkeypatch.setattr(Trainer, "fit", spy)
    model = _model(num_seeds)
    out = model.fit(distributions.ring(), steps=3, batch_size=8, lr_schedule="cosine",
                    progress=False)
    assert calls == [(3, 8, "cosine", model)]
    histories = out if isinstance(out, list) else [out]
    assert len(histories) == num_seeds and all(h.steps == 3 for h in histories)


@pytest.mark.parametrize("num_seeds", [1, 2])
def test_callback_stops_every_seed_and_the_histories_record_each_step(num_seeds):
    seen = []

    def callback(step, losses, model):
        seen.append((step, torch.as_tensor(losses["g_loss"]).reshape(-1).tolist()))
        return step == 2

    model = _model(num_seeds)
    trainer = Trainer(steps=10, batch_size=8, callback=callback, progress=False)
    histories = trainer.fit(model, distributions.ring())
    assert [s for s, _ in seen] == [0, 1, 2]
    assert len(histories) == num_seeds and histories == _histories(model)
    for i, h in enumerate(histories):
        assert h.steps == 3 and h.stopped_early and not h.diverged and not h.interrupted
        assert h["g_loss"] == pytest.approx([losses[i] for _, losses in seen], abs=1e-6)
    assert not model.training


@pytest.mark.parametrize("num_seeds", [1, 2])
def test_ctrl_c_leaves_partial_histories_marked_interrupted(num_seeds):
    def callback(step, losses, model):
        if step == 1:
            raise KeyboardInterrupt

    model = _model(num_seeds)
    with pytest.raises(KeyboardInterrupt):
        Trainer(steps=10, batch_size=8, callback=callback, progress=False).fit(
            model, distributions.ring())
    histories = _histories(model)
    assert len(histories) == num_seeds
    assert all(h.interrupted and h.steps == 2 and h.seconds > 0 for h in histories)
    assert not model.training  # left usable: eval mode


@pytest.mark.parametrize("num_seeds", [1, 2])
def test_a_slice_that_turns_non_finite_keeps_its_last_finite_weights(num_seeds):
    model = _model(num_seeds)
    weight = model.networks["generator"].net.net[0].weight  # single: a row; batched: a slice
    with torch.no_grad():
        weight[-1].fill_(float("nan"))
    before = {k: v.clone() for k, v in model.networks.state_dict().items()}
    trainer = Trainer(steps=3, batch_size=8, progress=False)
    if num_seeds == 1:
        with pytest.raises(models.base.TrainingDiverged):
            trainer.fit(model, distributions.ring())
    else:
        trainer.fit(model, distributions.ring())
    histories = _histories(model)
    assert histories[-1].diverged and histories[-1].steps == 0
    for key, value in model.networks.state_dict().items():  # the diverged slice is untouched
        torch.testing.assert_close(value[-1] if num_seeds > 1 else value,
                                   before[key][-1] if num_seeds > 1 else before[key],
                                   equal_nan=True, rtol=0, atol=0)
    if num_seeds > 1:
        assert not histories[0].diverged and histories[0].steps == 3
        assert model.divergences[-1]["step"] == 0


def test_trainer_refuses_seeds_that_do_not_match_the_model():
    with pytest.raises(ValueError, match="one seed"):
        Trainer(steps=1, seeds=[1, 2]).fit(_model(1), distributions.ring())
    with pytest.raises(ValueError, match="2 seeds"):
        Trainer(steps=1, seeds=[1, 2, 3]).fit(_model(2), distributions.ring())
    with pytest.raises(ValueError, match="checkpoint"):
        Trainer(steps=1, checkpoint_every=1, checkpoint_path="x.pt").fit(
            _model(2), distributions.ring())


def test_trainer_with_one_seed_is_the_model_fit():
    assert models.Trainer is Trainer
    a, b = _model(1), _model(1)
    h = a.fit(distributions.ring(), steps=4, batch_size=8, seed=5, progress=False)
    (g,) = Trainer(steps=4, batch_size=8, seeds=5, progress=False).fit(b, distributions.ring())
    assert h.losses == g.losses
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


_KINDS = {
    "vae": (models.VAE, {"jit": True}),
    "gan": (models.GAN, {"unrolled_steps": 1}),
    "flow": (models.Flow, {}),
    "diffusion": (models.Diffusion, {"timesteps": 10}),
}


@pytest.mark.parametrize("kind", sorted(_KINDS))
def test_models_carry_no_training_state_after_fit(kind):
    cls, extra = _KINDS[kind]
    model = cls(**SMALL, **extra, seed=0)
    attributes = set(vars(model))
    model.fit(distributions.ring(), steps=2, batch_size=8, seed=0, progress=False)
    assert set(vars(model)) == attributes  # nothing added (the history was declared as None)
    assert isinstance(model.history, History)
    for value in vars(model).values():
        assert not isinstance(value, torch.optim.Optimizer)
        assert not callable(value) or isinstance(value, torch.nn.Module | type)


@pytest.mark.parametrize("cls", [models.BatchedGAN, models.BatchedVAE])
def test_batched_models_carry_no_training_state_after_fit(cls):
    batched = cls(seeds=[0, 1], **SMALL)
    attributes, template = set(vars(batched)), set(vars(batched._template))
    batched.fit(distributions.ring(), steps=2, batch_size=8, progress=False)
    assert set(vars(batched)) == attributes and set(vars(batched._template)) == template
