"""The shared model interface: registry, config round trip, history, files that are not models."""

from __future__ import annotations

import json

import pytest
import torch

from densitylab import distributions, models


def test_registry_builds_every_model_with_a_json_config():
    assert models.available() == ["diffusion", "flow", "gan", "vae"]
    for name in models.available():
        m = models.make(name, data_dim=2, hidden=[8], seed=0)
        assert isinstance(m, models.GenerativeModel) and m.name == name
        config = json.loads(json.dumps(m.config))  # JSON-able
        rebuilt = type(m)(**config)
        assert rebuilt.config == m.config
        # the seed in the config rebuilds the same initial weights
        for p, q in zip(rebuilt.parameters(), m.parameters(), strict=True):
            assert torch.equal(p, q)
        assert m.has_density == (name != "gan")
        assert m.sample(4, seed=0).shape == (4, 2)


def test_make_rejects_unknown_names_and_hyperparameters():
    with pytest.raises(ValueError, match="unknown model 'autoregressive'"):
        models.make("autoregressive")
    with pytest.raises(TypeError, match="'vae'"):
        models.make("vae", data_dim=2, widths=(3,))


def test_config_is_a_copy():
    vae = models.VAE(data_dim=2, hidden=(8,))
    vae.config["hidden"].append(99)
    assert vae.config["hidden"] == [8]


def test_history_records_every_step():
    gan = models.GAN(data_dim=2, hidden=(8,), seed=0)
    seen = []
    h = gan.fit(distributions.ring(), steps=4, batch_size=8, seed=0, progress=False,
                callback=lambda step, losses, model: seen.append((step, losses)))
    assert [s for s, _ in seen] == [0, 1, 2, 3]
    assert h["d_loss"] == [loss["d_loss"] for _, loss in seen]
    d = json.loads(json.dumps(h.to_dict()))
    assert d["steps"] == 4 and not d["interrupted"] and not d["diverged"]
    assert h.mean("g_loss") == pytest.approx(sum(h["g_loss"]) / 4)
    assert gan.history is h


def test_load_rejects_files_that_are_not_models(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a densitylab model"):
        models.load(path)


def test_fit_seed_none_still_trains_and_restores_the_global_rng():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    vae = models.VAE(data_dim=2, hidden=(8,))
    torch.set_rng_state(state)
    h = vae.fit(distributions.ring(), steps=2, batch_size=8, progress=False)
    assert len(h) == 2
    # fit draws its seed from the global stream (one draw) and restores everything else
    torch.set_rng_state(state)
    torch.randint(0, 2**31 - 1, (1,))
    expected = torch.get_rng_state()
    torch.set_rng_state(state)
    vae.fit(distributions.ring(), steps=2, batch_size=8, progress=False)
    assert torch.equal(torch.get_rng_state(), expected)


def test_cosine_schedule_anneals_the_learning_rate_to_zero():
    seen = []

    class Recording(models.GAN):  # the rate each step's updates use, for both players
        def _step(self, eng):
            rates = {g["lr"] for opt in eng.optimizers.values() for g in opt.param_groups}
            assert len(rates) == 1
            seen.append(rates.pop())
            return super()._step(eng)

    gan = Recording(data_dim=2, hidden=(8,), seed=0)
    gan.fit(distributions.ring(), steps=4, batch_size=8, lr=0.1, seed=0, progress=False,
            lr_schedule="cosine")
    assert seen == pytest.approx([0.1, 0.1 * (1 + 2**-0.5) / 2, 0.05, 0.1 * (1 - 2**-0.5) / 2])
    # the step-0 update uses the full lr, so the first two losses match a constant-lr run
    const = models.GAN(data_dim=2, hidden=(8,), seed=0)
    h = const.fit(distributions.ring(), steps=3, batch_size=8, lr=0.1, seed=0, progress=False)
    cosine = gan.history["d_loss"]
    assert h["d_loss"][:2] == cosine[:2] and h["d_loss"][2] != cosine[2]
    with pytest.raises(ValueError, match="lr_schedule"):
        const.fit(distributions.ring(), steps=1, lr_schedule="linear")


class _CountingRing:
    """The ring, recording every ``sample(n, seed)`` call."""

    def __init__(self):
        self.ring = distributions.ring()
        self.calls: list[tuple[int, int]] = []

    def sample(self, n, seed=None):
        self.calls.append((n, seed))
        return self.ring.sample(n, seed=seed)


def test_train_size_draws_one_fixed_set_and_iterates_shuffled_epochs_over_it():
    from densitylab.models.base import iter_batches

    target = _CountingRing()
    batches = iter_batches(target, 10, (2,), device=torch.device("cpu"), dtype=torch.float32,
                           seed=4, train_size=40)
    epochs = [torch.cat([next(batches) for _ in range(4)]) for _ in range(3)]
    assert len(target.calls) == 1 and target.calls[0][0] == 40
    fixed = target.ring.sample(40, seed=target.calls[0][1])

    def rows(x):
        return sorted(map(tuple, x.tolist()))

    for epoch in epochs:  # every epoch is the fixed set, each point once
        assert rows(epoch) == rows(fixed)
    assert not torch.equal(epochs[0], epochs[1])  # reshuffled each epoch
    # the same seed draws the same set; another seed another one
    again = iter_batches(_CountingRing(), 10, (2,), device=torch.device("cpu"),
                         dtype=torch.float32, seed=4, train_size=40)
    assert torch.equal(next(again), epochs[0][:10])
    other = _CountingRing()
    next(iter_batches(other, 10, (2,), device=torch.device("cpu"), dtype=torch.float32,
                      seed=5, train_size=40))
    assert other.calls[0][1] != target.calls[0][1]


def test_fit_with_train_size_samples_the_distribution_once():
    target = _CountingRing()
    gan = models.GAN(data_dim=2, hidden=(8,), seed=0)
    h = gan.fit(target, steps=7, batch_size=8, seed=0, progress=False, train_size=24)
    assert len(h) == 7 and target.calls == [(24, target.calls[0][1])]
    streaming = _CountingRing()
    gan.fit(streaming, steps=7, batch_size=8, seed=0, progress=False)
    assert len(streaming.calls) == 7  # today's default: a fresh batch every step
    with pytest.raises(ValueError, match="train_size"):
        gan.fit(distributions.ring().sample(50, seed=0), steps=1, batch_size=8, train_size=20)
    with pytest.raises(ValueError, match="batch_size=32 exceeds"):
        gan.fit(target, steps=1, batch_size=32, train_size=20)
    with pytest.raises(ValueError, match="train_size"):
        gan.fit(target, steps=1, batch_size=8, train_size=0)
