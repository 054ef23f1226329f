"""Batched seeds: S models trained as one computation must be S separate models.

The independent truth is the single model itself: with the same seeds, a batched model is
checked against ``GAN``/``VAE`` built and fitted one seed at a time (float64, so that rounding
differences cannot be amplified by Adam's normalisation).
"""

from __future__ import annotations

import math

import pytest
import torch

from densitylab import distributions, metrics
from densitylab.models import GAN, VAE, Diffusion, Flow
from densitylab.models.batched import (
    BatchedDiffusion,
    BatchedFlow,
    BatchedGAN,
    BatchedVAE,
    stack_networks,
)

SEEDS = [3, 5, 11]


pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"data_dim": 2, "latent_dim": 2, "hidden": (16, 16)}


def _state_close(single, batched_state, i, atol=0.0):
    for key, value in single.networks.state_dict().items():
        torch.testing.assert_close(batched_state[key][i], value, rtol=0.0, atol=atol,
                                   msg=lambda m, key=key: f"{key}: {m}")


def _singles(cls, seeds, **kwargs):
    out = [cls(**kwargs, seed=s) for s in seeds]
    for m in out:
        m.networks.double()
    return out


def _check_training_equals_separate_fits(batched_cls, single_cls, kwargs, schedule="constant",
                                         losses=(), *, lr=None, atol, data=None, seeds=SEEDS,
                                         steps=6, batch_size=32):
    """Fit ``seeds`` batched and one by one (float64, ``steps`` steps on ``data``, the ring by
    default); every slice's weights and recorded ``losses`` must equal its separate fit's
    within ``atol``."""
    data = distributions.ring() if data is None else data
    batched = batched_cls(seeds=seeds, **kwargs)
    batched.networks.double()
    histories = batched.fit(data, steps=steps, batch_size=batch_size, lr=lr, progress=False,
                            lr_schedule=schedule)
    state = batched.networks.state_dict()
    for i, single in enumerate(_singles(single_cls, seeds, **kwargs)):
        h = single.fit(data, steps=steps, batch_size=batch_size, lr=lr, seed=seeds[i],
                       progress=False, lr_schedule=schedule)
        _state_close(single, state, i, atol=atol)
        for key in losses:
            assert histories[i][key] == pytest.approx(h[key], abs=atol)
    return batched


@pytest.mark.parametrize("batched_cls, single_cls, extra", [
    (BatchedGAN, GAN, {"pack": 2}),
    (BatchedVAE, VAE, {"decoder_scale": "learned"}),
    (BatchedVAE, VAE, {"decoder_scale": 0.3, "network": "linear"}),
])
def test_slices_start_as_the_separately_built_models(batched_cls, single_cls, extra):
    batched = batched_cls(seeds=SEEDS, **SMALL, **extra)
    state = batched.networks.state_dict()
    for i, seed in enumerate(SEEDS):
        _state_close(single_cls(**SMALL, **extra, seed=seed), state, i)
    assert batched.num_seeds == 3 and batched.seeds == tuple(SEEDS)


def test_stacked_networks_keep_the_single_layout_with_a_seed_dimension():
    nets = [GAN(**SMALL, g_norm="batch", seed=s).networks for s in SEEDS]
    stacked = stack_networks(nets)
    state = stacked.state_dict()
    assert list(state) == list(nets[0].state_dict())  # parameters and buffers, key for key
    for key, value in state.items():
        assert value.shape == (3, *nets[0].state_dict()[key].shape)
        for i, net in enumerate(nets):
            assert torch.equal(value[i], net.state_dict()[key])
    assert all(isinstance(p, torch.nn.Parameter) for p in stacked.parameters())
    assert "generator.net.net.1.running_mean" in dict(stacked.named_buffers())


@pytest.mark.parametrize("extra, schedule", [
    ({"pack": 2}, "constant"),
    ({"loss": "minimax", "n_critic": 2}, "cosine"),
    ({"loss": "hinge"}, "constant"),
    ({"loss": "wasserstein", "gp_weight": 0.0}, "constant"),
    ({"loss": "least_squares"}, "constant"),
])
def test_batched_gan_training_equals_separate_fits(extra, schedule):
    _check_training_equals_separate_fits(BatchedGAN, GAN, {**SMALL, **extra}, schedule,
                                         ("d_loss", "g_loss"), lr=1e-3, atol=1e-12)


@pytest.mark.parametrize("extra, schedule", [
    ({}, "constant"),
    ({"decoder_scale": 0.5, "activation": "tanh"}, "cosine"),
])
def test_batched_vae_training_equals_separate_fits(extra, schedule):
    _check_training_equals_separate_fits(BatchedVAE, VAE, {**SMALL, **extra}, schedule,
                                         ("loss",), lr=None, atol=1e-12)


def test_the_batched_step_never_compiles_the_elbo_that_a_single_jit_fit_compiles(monkeypatch):
    # BatchedVAE documents jit=True as accepted and without effect: its step reads Pyro traces
    # under vmap. The single fit builds its (JIT) ELBO loss; the batched fit must never do so.
    built = []
    original = VAE._build_elbo_loss

    def recording(self, batch_size):
        built.append(self._config["jit"])
        return original(self, batch_size)

    monkeypatch.setattr(VAE, "_build_elbo_loss", recording)
    ring = distributions.ring()
    VAE(**SMALL, jit=True, seed=0).fit(ring, steps=2, batch_size=16, progress=False)
    assert built == [True]  # the single JIT fit compiles its ELBO once
    batched = BatchedVAE(seeds=SEEDS, **SMALL, jit=True)
    batched.fit(ring, steps=2, batch_size=16, progress=False)
    assert built == [True]  # the batched fit built none
    assert "changes nothing here" in BatchedVAE.__doc__
    assert all(m.config["jit"] for m in batched.unstack())


@pytest.mark.parametrize("batched_cls, single_cls", [(BatchedGAN, GAN), (BatchedVAE, VAE)])
def test_batched_fit_with_a_fixed_training_set_equals_separate_fits(batched_cls, single_cls):
    ring = distributions.ring()
    batched = batched_cls(seeds=SEEDS, **SMALL)
    batched.networks.double()
    batched.fit(ring, steps=7, batch_size=16, progress=False, train_size=40)
    state = batched.networks.state_dict()
    for i, single in enumerate(_singles(single_cls, SEEDS, **SMALL)):
        single.fit(ring, steps=7, batch_size=16, seed=SEEDS[i], progress=False, train_size=40)
        _state_close(single, state, i, atol=1e-12)


PACGAN_SMALL = {"g_hidden": (16,) * 4, "d_hidden": (12,) * 3, "g_norm": "batch",
                "d_activation": "maxout", "maxout_pieces": 5, "betas": (0.8, 0.999),
                "init_std": 0.02}


@pytest.mark.parametrize("kwargs, data, batch_size", [
    # the published PacGAN 2D architecture at small widths: batch-norm generator, maxout critic
    ({**SMALL, **PACGAN_SMALL, "pack": 2}, "ring", 32),
    ({**SMALL, **PACGAN_SMALL, "pack": 1, "loss": "hinge"}, "ring", 16),
    # DCGAN-style conv nets on 8x8 images (batch norm in the generator), packed
    ({"data_shape": (1, 8, 8), "latent_dim": 4, "network": "conv", "conv_width": 4,
      "pack": 2}, "images", 16),
])
def test_batched_gan_of_any_architecture_equals_separate_fits(kwargs, data, batch_size):
    if data == "images":
        data = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)).double()
    else:
        data = distributions.ring()
    batched = BatchedGAN(seeds=SEEDS, **kwargs)
    batched.networks.double()
    histories = batched.fit(data, steps=5, batch_size=batch_size, lr=1e-3, progress=False,
                            lr_schedule="cosine")
    state = batched.networks.state_dict()
    assert any("running_mean" in key for key in state)  # batch-norm statistics are stacked
    drawn = batched.sample(10, seed=2)
    for i, single in enumerate(_singles(GAN, SEEDS, **kwargs)):
        h = single.fit(data, steps=5, batch_size=batch_size, lr=1e-3, seed=SEEDS[i],
                       progress=False, lr_schedule="cosine")
        _state_close(single, state, i, atol=1e-10)  # running statistics included
        for key in ("d_loss", "g_loss"):
            assert histories[i][key] == pytest.approx(h[key], abs=1e-10)
        torch.testing.assert_close(drawn[i], single.sample(10, seed=2), rtol=0, atol=1e-10)


@pytest.mark.parametrize("extra", [
    {"network": "conv", "data_shape": (1, 8, 8), "likelihood": "bernoulli", "conv_width": 4},
    {"optimizer": "clipped_adam", "clip_norm": 0.5},
    {"jit": True},
])
def test_batched_vae_of_other_architectures_equals_separate_fits(extra):
    kwargs = {**SMALL, **extra}
    if "data_shape" in extra:
        kwargs.pop("data_dim")
        data = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)).double()
    else:
        data = distributions.ring()
    batched = BatchedVAE(seeds=SEEDS, **kwargs)
    batched.networks.double()
    histories = batched.fit(data, steps=5, batch_size=16, progress=False)
    state = batched.networks.state_dict()
    for i, single in enumerate(_singles(VAE, SEEDS, **kwargs)):
        h = single.fit(data, steps=5, batch_size=16, seed=SEEDS[i], progress=False)
        _state_close(single, state, i, atol=1e-10)
        assert histories[i]["loss"] == pytest.approx(h["loss"], abs=1e-10)


def test_training_on_a_data_tensor_with_other_training_seeds():
    data = distributions.grid().sample(200, seed=1).double()
    batched = BatchedVAE(num_seeds=2, **SMALL)
    batched.networks.double()
    batched.fit(data, steps=5, batch_size=50, seeds=[7, 8], progress=False)
    state = batched.networks.state_dict()
    for i, single in enumerate(_singles(VAE, [0, 1], **SMALL)):
        single.fit(data, steps=5, batch_size=50, seed=7 + i, progress=False)
        _state_close(single, state, i, atol=1e-12)


def test_unstack_gives_working_models_whose_samples_match():
    ring = distributions.ring()
    for batched in (BatchedGAN(seeds=SEEDS, **SMALL), BatchedVAE(seeds=SEEDS, **SMALL)):
        batched.fit(ring, steps=3, batch_size=16, progress=False)
        singles = batched.unstack()
        assert [type(m) for m in singles] == [batched.single_class] * 3
        assert [m.config["seed"] for m in singles] == SEEDS
        drawn = batched.sample(50, seed=4)
        assert drawn.shape == (3, 50, 2)
        for i, single in enumerate(singles):
            torch.testing.assert_close(drawn[i], single.sample(50, seed=4))
            assert single.history is batched.histories[i] and single.history.steps == 3
        per_slice = batched.sample(20, seed=[1, 2, 3])
        for i, single in enumerate(singles):
            torch.testing.assert_close(per_slice[i], single.sample(20, seed=i + 1))
    noisy = batched.sample(30, seed=9, noise=True)
    for i, single in enumerate(singles):
        torch.testing.assert_close(noisy[i], single.sample(30, seed=9, noise=True))
        assert torch.isfinite(single.log_prob(ring.sample(10, seed=0), num_samples=4)).all()


def test_unstacked_model_survives_save_and_load(tmp_path):
    batched = BatchedGAN(seeds=[0, 1], **SMALL)
    batched.fit(distributions.ring(), steps=2, batch_size=16, progress=False)
    model = batched.unstack()[1]
    path = model.save(tmp_path / "gan.pt")
    loaded = GAN.load(path)
    torch.testing.assert_close(loaded.sample(10, seed=0), batched.sample(10, seed=0)[1])


DIFFUSION = {"data_dim": 2, "hidden": (16, 16), "timesteps": 20}


@pytest.mark.parametrize("extra, schedule", [
    ({}, "constant"),
    ({"schedule": "cosine", "time_sampling": "uniform"}, "cosine"),
])
def test_batched_diffusion_training_equals_separate_fits(extra, schedule):
    batched = _check_training_equals_separate_fits(
        BatchedDiffusion, Diffusion, {**DIFFUSION, **extra}, schedule, ("loss",), lr=3e-3,
        atol=1e-10)
    samples = batched.sample(5, seed=1, sampler="ddim", steps=4)
    assert samples.shape == (3, 5, 2)
    for i, model in enumerate(batched.unstack()):
        assert torch.equal(samples[i], model.sample(5, seed=1, sampler="ddim", steps=4))


FLOW = {"data_dim": 2, "num_layers": 2, "hidden": (16,)}


@pytest.mark.parametrize("extra, schedule", [
    ({}, "constant"),
    ({"kind": "spline_autoregressive", "count_bins": 5}, "cosine"),
    ({"kind": "affine_autoregressive"}, "constant"),
])
def test_batched_flow_training_equals_separate_fits(extra, schedule):
    # zuko's masked layers under vmap; each slice's standardiser is fitted from its own batch
    batched = _check_training_equals_separate_fits(
        BatchedFlow, Flow, {**FLOW, **extra}, schedule, ("loss",), lr=5e-3, atol=1e-10)
    samples = batched.sample(6, seed=1)
    assert samples.shape == (3, 6, 2)
    x = distributions.ring().sample(8, seed=0).double()
    for i, model in enumerate(batched.unstack()):
        torch.testing.assert_close(samples[i], model.sample(6, seed=1), rtol=0, atol=1e-12)
        assert bool(model.networks["standardizer"].fitted)
        assert torch.isfinite(model.log_prob(x)).all()


def test_batched_flow_on_three_dimensional_data_equals_separate_fits():
    # with 3 features coupling (2 passes) and autoregressive (3 passes) layers differ
    data = torch.randn(64, 3, generator=torch.Generator().manual_seed(0)).double()
    for kind in ("spline_coupling", "spline_autoregressive"):
        batched = _check_training_equals_separate_fits(
            BatchedFlow, Flow, {**FLOW, "data_dim": 3, "kind": kind}, atol=1e-10, data=data,
            seeds=SEEDS[:2], steps=3, batch_size=16)
        torch.testing.assert_close(batched.sample(4, seed=2)[1],
                                   batched.unstack()[1].sample(4, seed=2), rtol=0, atol=1e-12)


def test_batched_conv_diffusion_equals_separate_fits():
    data = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0)).double()
    kwargs = {"data_shape": (1, 8, 8), "network": "conv", "conv_width": 4, "timesteps": 10}
    _check_training_equals_separate_fits(BatchedDiffusion, Diffusion, kwargs, atol=1e-10,
                                         data=data, seeds=SEEDS[:2], steps=3, batch_size=8)


@pytest.mark.parametrize("batched_cls, single_cls, kwargs, last_layer", [
    (BatchedGAN, GAN, SMALL, lambda m: m.generator.net.net[-1]),
    (BatchedVAE, VAE, SMALL, lambda m: m.decoder.net.net[-1]),
    (BatchedDiffusion, Diffusion, DIFFUSION, lambda m: m.noise_predictor.net[-1]),
])
def test_a_diverging_seed_is_frozen_and_the_others_train_on(batched_cls, single_cls, kwargs,
                                                            last_layer):
    ring = distributions.ring()
    batched = batched_cls(seeds=SEEDS, **kwargs)
    batched.networks.double()
    with torch.no_grad():  # slice 1 outputs inf: its losses are non-finite at step 0
        last_layer(batched).bias[1].fill_(math.inf)
    frozen = {k: v[1].clone() for k, v in batched.networks.state_dict().items()}
    histories = batched.fit(ring, steps=4, batch_size=32, progress=False)
    state = batched.networks.state_dict()
    for key, value in frozen.items():
        assert torch.equal(state[key][1], value), key
    assert batched.divergences[1]["step"] == 0 and batched.divergences[0] is None
    assert histories[1].diverged and histories[1].steps == 0
    assert not histories[0].diverged and histories[0].steps == 4
    for i in (0, 2):
        single = _singles(single_cls, [SEEDS[i]], **kwargs)[0]
        single.fit(ring, steps=4, batch_size=32, seed=SEEDS[i], progress=False)
        _state_close(single, state, i, atol=1e-12)


@pytest.mark.parametrize("cls, kwargs, option", [
    (BatchedGAN, {"loss": "wasserstein"}, "gp_weight"),
    (BatchedGAN, {"r1_weight": 1.0}, "r1_weight"),
    (BatchedGAN, {"unrolled_steps": 2}, "unrolled_steps"),
    (BatchedVAE, {"num_particles": 2}, "num_particles"),
    (BatchedVAE, {"estimator": "mean_field"}, "estimator"),
])
def test_unsupported_options_raise_naming_the_option(cls, kwargs, option):
    base = {"data_dim": 2} if "data_shape" not in kwargs else {}
    with pytest.raises(ValueError, match=option):
        cls(num_seeds=2, **base, **kwargs)


def test_bad_seeds_and_arguments_raise():
    with pytest.raises(ValueError, match="num_seeds"):
        BatchedGAN(data_dim=2)
    with pytest.raises(ValueError, match="distinct"):
        BatchedGAN(seeds=[1, 1], data_dim=2)
    with pytest.raises(TypeError, match="seeds"):
        BatchedGAN(num_seeds=2, data_dim=2, seed=0)
    with pytest.raises(ValueError, match="seeds entry"):
        BatchedVAE(seeds=[-1], data_dim=2)
    gan = BatchedGAN(num_seeds=2, data_dim=2, pack=2)
    with pytest.raises(ValueError, match="one per slice"):
        gan.sample(3, seed=[1, 2, 3])
    with pytest.raises(ValueError, match="pack"):
        gan.fit(distributions.ring(), steps=1, batch_size=3)
    with pytest.raises(ValueError, match="2 seeds"):
        gan.fit(distributions.ring(), steps=1, batch_size=4, seeds=[0, 1, 2])
    with pytest.raises(TypeError, match="latent_dim"):
        BatchedGAN(num_seeds=2, data_dim=2, latent_dim=1.5)


@pytest.mark.slow
def test_metrics_of_batched_and_separate_runs_agree_in_distribution():
    """Different seeds for the two groups, so the agreement is statistical, not by construction.

    A slice is the separate model with its seed (tested exactly above), so the metric values of
    the two groups are draws from one distribution: their means agree within sampling error.
    """
    ring = distributions.ring(std=0.05)
    reference = ring.sample(1000, seed=123)
    kwargs = {"data_dim": 2, "latent_dim": 2, "hidden": (64, 64)}
    train = {"steps": 300, "batch_size": 128, "lr": 1e-3}

    def scores(model):
        x = model.sample(1000, seed=0)
        return (metrics.mmd(x, reference, bandwidth=0.3),
                metrics.mode_coverage(x, ring).modes_covered)

    batched = BatchedGAN(seeds=list(range(6)), **kwargs)
    batched.fit(ring, progress=False, **train)
    group_b = torch.tensor([scores(m) for m in batched.unstack()], dtype=torch.float64)
    separate = []
    for seed in range(100, 106):
        model = GAN(**kwargs, seed=seed)
        model.fit(ring, seed=seed, progress=False, **train)
        separate.append(scores(model))
    group_s = torch.tensor(separate, dtype=torch.float64)
    assert group_b.std(dim=0).min() > 0  # the metrics vary over seeds: the check has content
    se = (group_b.var(dim=0) / 6 + group_s.var(dim=0) / 6).sqrt()
    assert ((group_b.mean(dim=0) - group_s.mean(dim=0)).abs() <= 4 * se).all()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batched_fit_on_cuda_matches_separate_cuda_fits():
    ring = distributions.ring()
    for batched_cls, single_cls in ((BatchedGAN, GAN), (BatchedVAE, VAE)):
        batched = batched_cls(seeds=SEEDS, **SMALL)
        batched.networks.double()
        batched.fit(ring, steps=5, batch_size=32, device="cuda", progress=False)
        assert batched.sample(4, seed=0).device.type == "cuda"
        state = batched.networks.state_dict()
        for i, single in enumerate(_singles(single_cls, SEEDS, **SMALL)):
            single.fit(ring, steps=5, batch_size=32, seed=SEEDS[i], device="cuda",
                       progress=False)
            _state_close(single, state, i, atol=1e-9)


def _tiny_suite(batch_seeds: bool):
    from densitylab.suite import parse_suite

    return parse_suite({
        "suite": {"name": "tiny", "device": "cpu", "seeds": [0, 1, 2], "eval_samples": 200,
                  "batch_seeds": batch_seeds, "density_grid": 0, "references": False},
        "train": {"steps": 4, "batch_size": 32},
        "datasets": [{"name": "ring"}],
        "models": [{"name": "gan", "kind": "gan", "params": {"hidden": [16, 16], "pack": 2}},
                   {"name": "vae", "kind": "vae", "params": {"hidden": [16, 16]}},
                   {"name": "pinned", "kind": "vae", "params": {"hidden": [8], "seed": 4}},
                   {"name": "ddpm", "kind": "diffusion",
                    "params": {"hidden": [16], "timesteps": 10, "ode_steps": 2}}],
        "metrics": [{"name": "mode_coverage"}, {"name": "mmd", "params": {"bandwidth": 0.5}}],
    })


def test_suite_with_batch_seeds_records_the_same_runs_as_one_by_one(tmp_path):
    from densitylab.suite import RunStore, run_suite
    from densitylab.suite.runners import group_runs

    batched_cfg, plain_cfg = _tiny_suite(True), _tiny_suite(False)
    assert [r.run_id for r in batched_cfg.runs] == [r.run_id for r in plain_cfg.runs]
    # gan, vae and ddpm seeds form one group each; a model with a fixed seed is not batched
    assert sorted(len(u) for u in group_runs(batched_cfg.runs)) == [1, 1, 1, 3, 3, 3]
    res_b = run_suite(batched_cfg, tmp_path / "b", show_progress=False)
    res_p = run_suite(plain_cfg, tmp_path / "p", show_progress=False)
    assert len(res_b.ok) == len(res_p.ok) == 12
    store_b, store_p = RunStore(tmp_path / "b"), RunStore(tmp_path / "p")
    for spec in batched_cfg.runs:
        rec_b, rec_p = store_b.load(spec.run_id), store_p.load(spec.run_id)
        assert ("batched" in rec_b) == (spec.model != "pinned")
        if spec.model != "pinned":
            assert rec_b["batched"]["seeds"] == [0, 1, 2]
        assert rec_b["history"]["steps"] == rec_p["history"]["steps"] == 4
        for metric in ("mode_coverage", "mmd"):
            values_b = rec_b["metrics"][metric]["values"]
            values_p = rec_p["metrics"][metric]["values"]
            assert values_b == pytest.approx(values_p, rel=1e-4, abs=1e-6), (spec.label, metric)
    again = run_suite(batched_cfg, tmp_path / "b", show_progress=False)
    assert len(again.skipped) == 12 and not again.finished


def test_suite_batch_seeds_must_be_a_boolean():
    from densitylab.suite import parse_suite

    with pytest.raises(TypeError, match="suite.batch_seeds"):
        parse_suite({"suite": {"batch_seeds": "yes"}, "datasets": [{"name": "ring"}],
                     "models": [{"name": "gan"}], "metrics": [{"name": "mmd"}]})


class _InterruptingTarget:
    """A ring that raises KeyboardInterrupt (as Ctrl-C would) on its ``after``-th batch."""

    def __init__(self, after: int):
        self.ring, self.calls, self.after = distributions.ring(), 0, after

    def sample(self, n, seed=None):
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt
        return self.ring.sample(n, seed=seed)


def test_ctrl_c_leaves_a_usable_model_with_partial_histories():
    batched = BatchedVAE(seeds=[0, 1], **SMALL)
    with pytest.raises(KeyboardInterrupt):
        batched.fit(_InterruptingTarget(after=2 * 3), steps=10, batch_size=16, progress=False)
    assert all(h.interrupted and h.steps == 3 for h in batched.histories)
    assert not batched.networks.training
    assert torch.isfinite(batched.sample(5, seed=0)).all()
    assert batched.fit(distributions.ring(), steps=1, batch_size=16)[0].steps == 1
