"""The PacGAN authors' training protocol (``pacgan2d``): simultaneous updates, batch norm per
pack slot, population statistics moved once a step and refreshed, packs built once.

Each test fails on the behaviour densitylab had before (alternating updates, batch norm over the
whole batch moved twice a step, packs regrouped every epoch) and checks against a computation
made here by hand or from the data, not against the code under test.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from densitylab import distributions, models
from densitylab.models.base import iter_batches
from densitylab.models.networks import SlotBatchNorm1d
from densitylab.models.train import SingleEngine

SMALL = {"data_dim": 2, "g_hidden": [8, 8], "d_hidden": [6, 6], "g_norm": "batch",
         "d_activation": "maxout", "maxout_pieces": 3, "init_std": 0.3, "betas": [0.8, 0.999]}
FAITHFUL = {"updates": "simultaneous", "pack_norm": "per_slot", "bn_updates": "once_per_step",
            "packs": "fixed"}


def _gan(**kw) -> models.GAN:
    return models.GAN(**{**SMALL, **kw, "seed": kw.get("seed", 0)}).double()


def _bn_layers(gan) -> list[SlotBatchNorm1d]:
    return [m for m in gan.generator.modules() if isinstance(m, SlotBatchNorm1d)]


def _one_step(gan, real: torch.Tensor, lr: float, noise_seed: int):
    """Run one training step of ``gan`` on the batch ``real`` (noise from ``noise_seed``)."""
    eng = SingleEngine(gan, lr, real.shape[0], iter([real]))
    gan.train()
    torch.manual_seed(noise_seed)
    out = gan._step(eng)
    gan.eval()
    return out


def _adam_first_step(p: torch.Tensor, g: torch.Tensor, lr: float, betas) -> torch.Tensor:
    """Adam's first update (Kingma and Ba 2015, Algorithm 1 at t = 1), written out."""
    b1, b2 = betas
    m_hat = (1 - b1) * g / (1 - b1)
    v_hat = (1 - b2) * g * g / (1 - b2)
    return p - lr * m_hat / (v_hat.sqrt() + 1e-8)


@pytest.mark.parametrize("pack", [1, 2])
def test_one_simultaneous_step_is_the_hand_computed_update_of_both_players(pack):
    lr, bs = 1e-2, 8
    real = distributions.ring().sample(bs, seed=3).double()
    gan = _gan(pack=pack, **FAITHFUL)
    g_copy = copy.deepcopy(gan.generator).train()
    d_copy = copy.deepcopy(gan.discriminator)
    before = copy.deepcopy(gan.state_dict())
    losses = _one_step(gan, real, lr, noise_seed=11)

    # By hand: the same batch and the one draw of z, one forward pass, each player's gradient
    # of its own loss at the parameters both had before the step.
    torch.manual_seed(11)
    z = torch.randn(bs, 2, dtype=torch.float64)
    fake = g_copy(z)
    real_logits = d_copy(real.reshape(bs // pack, 2 * pack))
    fake_logits = d_copy(fake.reshape(bs // pack, 2 * pack))
    d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    g_loss = F.softplus(-fake_logits).mean()
    d_params, g_params = list(d_copy.parameters()), list(g_copy.parameters())
    d_grads = torch.autograd.grad(d_loss, d_params, retain_graph=True)
    g_grads = torch.autograd.grad(g_loss, g_params)
    assert losses["d_loss"] == pytest.approx(float(d_loss.detach()), abs=1e-12)
    assert losses["g_loss"] == pytest.approx(float(g_loss.detach()), abs=1e-12)
    with torch.no_grad():
        for mine, p, g in [*zip(gan.discriminator.parameters(), d_params, d_grads, strict=True),
                           *zip(gan.generator.parameters(), g_params, g_grads, strict=True)]:
            torch.testing.assert_close(mine, _adam_first_step(p, g, lr, (0.8, 0.999)),
                                       rtol=0, atol=1e-12)
    # the population statistics moved as in the one generator pass made here
    for mine, ref in zip(_bn_layers(gan), [m for m in g_copy.modules()
                                           if isinstance(m, SlotBatchNorm1d)], strict=True):
        torch.testing.assert_close(mine.running_mean, ref.running_mean, rtol=0, atol=1e-12)
        torch.testing.assert_close(mine.running_var, ref.running_var, rtol=0, atol=1e-12)

    # the alternating rule (the old behaviour) from the same start does not give this update
    alt = _gan(pack=pack, **{**FAITHFUL, "updates": "alternating"})
    alt.load_state_dict(before)
    _one_step(alt, real, lr, noise_seed=11)
    moved = [(a - b).abs().max() for a, b in zip(alt.generator.parameters(),
                                                 gan.generator.parameters(), strict=True)]
    assert max(moved) > 1e-4


def test_simultaneous_needs_one_critic_step_and_no_unrolling():
    with pytest.raises(ValueError, match="updates='simultaneous'.*n_critic=1"):
        _gan(updates="simultaneous", n_critic=5)
    with pytest.raises(ValueError, match="updates"):
        _gan(updates="together")
    with pytest.raises(ValueError, match="pack_norm='per_slot'.*g_norm='batch'"):
        _gan(pack_norm="per_slot", g_norm="none")
    with pytest.raises(ValueError, match="for a generator without it set pack_norm='joint', "
                                         "bn_updates='every_pass', bn_refresh_batches=0"):
        models.preset("pacgan2d", g_norm="none")


def test_batch_norm_normalises_each_pack_slot_over_its_own_samples():
    per_slot = _gan(pack=2, pack_norm="per_slot")
    joint = _gan(pack=2)
    joint.load_state_dict(per_slot.state_dict())
    per_slot.generator.train()
    joint.generator.train()
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(20, 2, generator=gen, dtype=torch.float64)  # 10 packs of 2: row 2i + j
    z_other = z.clone()
    z_other[1::2] = torch.randn(10, 2, generator=gen, dtype=torch.float64)  # new slot-1 noise
    with torch.no_grad():
        out, out_other = per_slot.generator(z), per_slot.generator(z_other)
        # each slot is the generator run on that slot's 10 z alone (the authors' m passes)
        for j in (0, 1):
            torch.testing.assert_close(out[j::2], joint.generator(z[j::2]), rtol=0, atol=1e-12)
        joint_out, joint_other = joint.generator(z), joint.generator(z_other)
    torch.testing.assert_close(out[0::2], out_other[0::2], rtol=0, atol=0)
    assert (out[1::2] - out_other[1::2]).abs().max() > 1e-3
    # over the whole batch (the old behaviour) slot 0 depends on slot 1's noise
    assert (joint_out[0::2] - joint_other[0::2]).abs().max() > 1e-6


def test_slot_population_statistics_move_once_by_the_slot_average():
    bn = SlotBatchNorm1d(3, slots=2, momentum=0.05).double().train()
    x = torch.randn(12, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    bn(x)
    slots = [x[0::2], x[1::2]]
    mean = sum(s.mean(0) for s in slots) / 2
    var = sum(s.var(0, unbiased=True) for s in slots) / 2
    torch.testing.assert_close(bn.running_mean, 0.05 * mean, rtol=0, atol=1e-15)
    torch.testing.assert_close(bn.running_var, 0.95 + 0.05 * var, rtol=0, atol=1e-15)
    assert int(bn.num_batches_tracked) == 1
    with pytest.raises(ValueError, match="2 batch-norm slots"):
        bn(x[:3])


@pytest.mark.parametrize(("protocol", "moves"), [
    (FAITHFUL, 1),
    ({**FAITHFUL, "updates": "alternating"}, 1),
    ({"updates": "alternating", "bn_updates": "every_pass"}, 2),  # the old behaviour
])
def test_population_statistics_move_once_per_step(protocol, moves):
    gan = _gan(pack=2, **protocol)
    data = distributions.ring().sample(400, seed=0)
    history = gan.fit(data, steps=3, batch_size=20, seed=0)
    for layer in _bn_layers(gan):
        assert int(layer.num_batches_tracked) == 3 * moves
    assert history.steps == 3


def test_the_alternating_discriminator_pass_leaves_population_statistics_alone():
    gan = _gan(pack=2, **{**FAITHFUL, "updates": "alternating"})
    gan.train()
    before = [layer.running_mean.clone() for layer in _bn_layers(gan)]
    real = distributions.ring().sample(8, seed=0).double()
    z = torch.randn(8, 2, dtype=torch.float64)
    with torch.no_grad():
        gan.d_objective(real, z)
    assert all(torch.equal(b, layer.running_mean) for b, layer in zip(before, _bn_layers(gan),
                                                                       strict=True))
    with torch.no_grad():
        gan.g_objective(z)  # the generator step's pass is the one that moves them
    assert not torch.equal(before[0], _bn_layers(gan)[0].running_mean)


def test_refresh_pass_adds_its_batches_at_epoch_ends_only():
    gan = _gan(pack=2, bn_refresh_batches=4, bn_refresh_every=5, **FAITHFUL)
    data = distributions.ring().sample(400, seed=0)
    gan.fit(data, steps=4, batch_size=20, seed=0)
    assert {int(m.num_batches_tracked) for m in _bn_layers(gan)} == {4}
    gan.fit(data, steps=5, batch_size=20, seed=0)
    assert {int(m.num_batches_tracked) for m in _bn_layers(gan)} == {4 + 5 + 4}


def test_evaluation_samples_use_population_statistics_row_by_row():
    gan = _gan(pack=2, **FAITHFUL)
    gan.fit(distributions.ring().sample(400, seed=0), steps=3, batch_size=20, seed=0)
    x = gan.sample(50, seed=7)
    z = gan._sample_inputs(50, torch.Generator().manual_seed(7))[0]
    with torch.no_grad():
        rows = torch.cat([gan.generator(z[i:i + 1]) for i in range(50)])  # eval mode
    torch.testing.assert_close(x, rows, rtol=0, atol=1e-12)
    torch.testing.assert_close(gan.sample(50, seed=7), x, rtol=0, atol=0)


def _tuples(batches, pack: int, count: int) -> list[tuple[float, ...]]:
    out = []
    for _ in range(count):
        b = next(batches)
        out += [tuple(row.flatten().tolist()) for row in b.reshape(-1, pack * b.shape[1])]
    return out


def test_packs_are_built_once_and_shuffled_each_epoch():
    n, pack, bs = 40, 2, 8  # an epoch: 40 tuples in batches of 4 tuples = 10 batches
    data = torch.stack([torch.arange(n), -torch.arange(n)], dim=1).double()  # distinct points
    kw = {"device": torch.device("cpu"), "dtype": torch.float64, "seed": 3}
    batches = iter_batches(data, bs, (2,), fixed_packs=pack, **kw)
    first, second = _tuples(batches, pack, 10), _tuples(batches, pack, 10)
    assert sorted(first) == sorted(second) and first != second  # same tuples, new order
    # each slot is a bootstrap resample of the n points: drawn with replacement from them
    points = {tuple(p) for p in data.tolist()}
    slot0 = [t[:2] for t in first]
    assert set(slot0) <= points and len(set(slot0)) < n
    # regrouping shuffled points each epoch (the old behaviour) forms other tuples
    old = iter_batches(data, bs, (2,), **kw)
    assert sorted(_tuples(old, pack, 10)) != sorted(_tuples(old, pack, 10))


def test_the_gan_streams_fixed_packs_when_asked():
    assert _gan(pack=3, packs="fixed")._fixed_packs() == 3
    assert _gan(pack=3)._fixed_packs() is None
    with pytest.raises(ValueError, match="multiple of the pack size 3"):
        next(iter_batches(torch.zeros(30, 2), 10, (2,), device=torch.device("cpu"),
                          dtype=torch.float32, seed=0, fixed_packs=3))


def test_pacgan2d_uses_the_authors_protocol_and_keeps_the_old_one_reachable():
    cfg = models.preset("pacgan2d", pack=2, seed=0).config
    assert {k: cfg[k] for k in (*FAITHFUL, "bn_refresh_batches", "bn_refresh_every")} == {
        **FAITHFUL, "bn_refresh_batches": 50, "bn_refresh_every": 1000}
    layers = _bn_layers(models.preset("pacgan2d", pack=2, seed=0))
    assert len(layers) == 4 and all(m.slots == 2 for m in layers)
    assert {(m.eps, m.momentum) for m in layers} == {(1e-4, 0.05)}  # Blocks' eps, 0.95 p + 0.05 m
    alt = models.preset("pacgan2d_alternating", pack=2, seed=0).config
    assert alt == {k: v for k, v in cfg.items() if k != "updates"}  # "alternating": default
    old = models.preset("pacgan2d", updates="alternating", pack_norm="joint",
                        bn_updates="every_pass", bn_refresh_batches=0, packs="regrouped").config
    assert not set(models.gan.PROTOCOL_DEFAULTS) & set(old)  # the options are at their defaults
    # a GAN without the options keeps the config (and so the suite run ids) it always had
    assert "updates" not in models.GAN(data_dim=2).config


def test_batched_faithful_gan_reproduces_the_single_fits():
    kw = {**SMALL, "pack": 2, **FAITHFUL, "bn_refresh_batches": 2, "bn_refresh_every": 3}
    batched = models.BatchedGAN(seeds=[0, 1], **kw).double()
    data = distributions.ring()
    histories = batched.fit(data, steps=4, batch_size=8, train_size=200)
    for i, seed in enumerate((0, 1)):
        single = models.GAN(**kw, seed=seed).double()
        h = single.fit(data, steps=4, batch_size=8, train_size=200, seed=seed)
        assert histories[i]["d_loss"] == pytest.approx(h["d_loss"], abs=1e-10)
        state = batched.networks.state_dict()
        for key, value in single.networks.state_dict().items():
            torch.testing.assert_close(state[key][i], value, rtol=0, atol=1e-10)


@pytest.mark.slow  # a suite run, ~2 s
def test_a_pack_2_pacgan2d_suite_validates_and_trains_batched(tmp_path):
    from densitylab.suite import RunStore, parse_suite, run_suite

    cfg = parse_suite({
        "suite": {"name": "tiny", "device": "cpu", "seeds": [0, 1], "eval_samples": 100,
                  "batch_seeds": True, "density_grid": 0, "references": False},
        "train": {"steps": 3, "train_size": 500},
        "datasets": [{"name": "ring"}],
        "models": [{"name": "pacgan2", "preset": "pacgan2d",
                    "params": {"pack": 2, "g_hidden": [8], "d_hidden": [8]}}],
        "metrics": [{"name": "mode_coverage"}],
    })
    params = cfg.runs[0].config["model"]["params"]
    assert params["updates"] == "simultaneous" and params["packs"] == "fixed"
    result = run_suite(cfg, tmp_path, show_progress=False)
    assert len(result.ok) == 2
    rec = RunStore(tmp_path).load(cfg.runs[0].run_id)
    assert rec["batched"]["seeds"] == [0, 1] and rec["history"]["steps"] == 3
