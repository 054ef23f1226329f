"""The GAN: no density, learning a simple target, PacGAN packing, unrolling, seeds, robustness."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import densitylab
from densitylab import distributions, losses, models
from densitylab.models.gan import pack_samples
from densitylab.models.networks import SlotBatchNorm1d

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _small_gan(**kw):
    kw.setdefault("hidden", (32, 32))
    return models.GAN(data_dim=2, latent_dim=2, seed=0, **kw)


def test_log_prob_raises_and_points_to_sample_based_metrics():
    gan = _small_gan()
    assert gan.has_density is False
    with pytest.raises(NotImplementedError, match="no density") as info:
        gan.log_prob(torch.zeros(3, 2))
    assert isinstance(info.value, models.NoDensityError)
    assert "mmd" in str(info.value) and "mode_coverage" in str(info.value)


def test_generator_moves_to_a_shifted_gaussian():
    # target N((3, -2), 0.3^2 I): the truth the samples must approach from an initial mean near 0
    target = distributions.GaussianMixture([[3.0, -2.0]], 0.3)
    gan = _small_gan()
    before = float((gan.sample(1000, seed=0).mean(0) - target.means[0]).norm())
    history = gan.fit(target, steps=100, batch_size=128, lr=3e-3, seed=0, progress=False)
    after = float((gan.sample(1000, seed=0).mean(0) - target.means[0]).norm())
    assert before > 3.0 and after < 0.5
    assert set(history.losses) == {"d_loss", "g_loss"} and len(history) == 100


@pytest.mark.parametrize("loss", losses.GAN_LOSSES)
def test_every_loss_trains_finitely(loss):
    gan = _small_gan(loss=loss, r1_weight=1.0 if loss == "hinge" else 0.0)
    h = gan.fit(distributions.ring(), steps=4, batch_size=32, seed=0, progress=False)
    assert all(math.isfinite(v) for v in h["d_loss"] + h["g_loss"])
    if loss == "wasserstein":
        assert gan.config["gp_weight"] == 10.0  # WGAN-GP default


def test_discriminator_loss_is_the_documented_formula_at_initialisation():
    gan = _small_gan(loss="minimax")
    real = distributions.ring().sample(8, seed=0)
    fake = gan.sample(8, seed=1)
    d_real, d_fake = gan.discriminate(real), gan.discriminate(fake)
    # -E log D(real) - E log(1 - D(fake)), written naively (fine at initialisation's logits)
    expected = (-torch.log(torch.sigmoid(d_real)).mean()
                - torch.log(1 - torch.sigmoid(d_fake)).mean())
    torch.testing.assert_close(gan._d_loss(real, fake).detach(), expected, rtol=1e-5, atol=1e-6)


def test_pacgan_packs_consecutive_samples():
    x = torch.arange(12.0).reshape(6, 2)
    packed = pack_samples(x, 3)
    assert packed.shape == (2, 6)
    assert packed[0].tolist() == [0, 1, 2, 3, 4, 5] and packed[1].tolist() == list(range(6, 12))
    imgs = torch.arange(4 * 2 * 4 * 4.0).reshape(4, 2, 4, 4)
    assert torch.equal(pack_samples(imgs, 2)[1], torch.cat([imgs[2], imgs[3]], dim=0))
    gan = _small_gan(pack=3)
    assert gan.discriminator.net.in_shape == (6,)
    assert gan.discriminate(torch.zeros(9, 2)).shape == (3,)
    with pytest.raises(ValueError, match="multiple of pack"):
        gan.fit(distributions.ring(), steps=1, batch_size=10, progress=False)


def test_unrolled_logits_equal_manual_sgd_steps_on_a_copy():
    gan = _small_gan(unrolled_steps=2)
    real = distributions.ring().sample(16, seed=0)
    fake = gan.sample(16, seed=1)
    lr = 0.05
    clone = copy.deepcopy(gan.discriminator)
    opt = torch.optim.SGD(clone.parameters(), lr=lr)
    for _ in range(2):
        opt.zero_grad()
        losses.discriminator_loss(clone(real), clone(fake), "non_saturating").backward()
        opt.step()
    expected = clone(fake).detach()
    got = gan._unrolled_logits(real, fake, steps=2, step_size=lr).detach()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # the real discriminator is untouched, and training with unrolling runs
    torch.testing.assert_close(gan.discriminate(fake), gan.discriminator(fake).detach())
    h = gan.fit(distributions.ring(), steps=3, batch_size=16, seed=0, progress=False)
    assert len(h) == 3


def test_n_critic_draws_fresh_batches():
    calls = []

    class Counting:
        def sample(self, n, seed=None):
            calls.append(seed)
            return distributions.ring().sample(n, seed=seed)

    gan = _small_gan(n_critic=3)
    gan.fit(Counting(), steps=2, batch_size=8, seed=0, progress=False)
    assert len(calls) == 6 and len(set(calls)) == 6


def test_same_seed_same_training_and_samples():
    ring = distributions.ring()
    runs = []
    for _ in range(2):
        gan = _small_gan(pack=2)
        h = gan.fit(ring, steps=5, batch_size=16, seed=3, progress=False)
        runs.append((h["d_loss"], h["g_loss"], gan.sample(20, seed=1)))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    assert torch.equal(runs[0][2], runs[1][2])
    assert not torch.equal(runs[0][2], _small_gan(pack=2).sample(20, seed=2))


def test_divergence_names_the_step_and_keeps_finite_weights():
    class Poisoned:
        def __init__(self):
            self.calls = 0

        def sample(self, n, seed=None):
            self.calls += 1
            x = distributions.ring().sample(n, seed=seed)
            return x * float("inf") if self.calls == 3 else x

    gan = _small_gan()
    with pytest.raises(densitylab.TrainingDiverged) as info:
        gan.fit(Poisoned(), steps=10, batch_size=16, seed=0, progress=False)
    assert info.value.step == 2
    assert all(torch.isfinite(p).all() for p in gan.parameters())
    assert torch.isfinite(gan.sample(10, seed=0)).all()


def test_save_load_round_trip(tmp_path):
    gan = _small_gan(loss="hinge", pack=2)
    gan.fit(distributions.ring(), steps=3, batch_size=16, seed=0, progress=False)
    path = gan.save(tmp_path / "gan.pt")
    for loaded in (models.GAN.load(path), models.load(path)):
        assert isinstance(loaded, models.GAN) and loaded.config == gan.config
        assert torch.equal(loaded.sample(30, seed=5), gan.sample(30, seed=5))


@pytest.mark.parametrize("size", [8, 28])
def test_dcgan_on_images(size):
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(32, 1, size, size, generator=g)
    gan = models.GAN(data_shape=(1, size, size), latent_dim=8, network="conv", conv_width=8,
                     pack=2, seed=0)
    h = gan.fit(imgs, steps=2, batch_size=16, seed=0, progress=False)
    assert len(h) == 2
    out = gan.sample(5, seed=0)
    assert out.shape == (5, 1, size, size) and bool(((out >= 0) & (out <= 1)).all())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_and_sampling():
    gan = _small_gan(pack=2, loss="wasserstein")
    gan.fit(distributions.ring().to("cuda"), steps=10, batch_size=32, seed=0, device="cuda",
            progress=False)
    assert gan.sample(10, seed=0).is_cuda


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"data_dim": 2, "loss": "wgan"}, ValueError, "loss"),
        ({"data_dim": 2, "pack": 0}, ValueError, "pack"),
        ({"data_dim": 2, "n_critic": 0}, ValueError, "n_critic"),
        ({"data_dim": 2, "gp_weight": -1.0}, ValueError, "gp_weight"),
        ({"data_dim": 2, "r1_weight": float("nan")}, ValueError, "r1_weight"),
        ({"data_dim": 2, "unrolled_steps": -1}, ValueError, "unrolled_steps"),
        ({"data_dim": 2, "betas": (0.5, 1.0)}, ValueError, "betas"),
        ({"data_dim": 2, "network": "conv"}, ValueError, "conv"),
        ({"data_shape": (1, 6, 6), "network": "conv"}, ValueError, "divisible by 4"),
        ({"data_dim": 2, "output": "tanh"}, ValueError, "output"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        models.GAN(**kwargs)


@pytest.mark.slow
def test_pacgan_on_ring_covers_at_least_7_of_8_modes():
    from densitylab import metrics

    ring = distributions.ring()
    gan = models.GAN(data_dim=2, pack=2, seed=0)
    gan.fit(ring, steps=3000, batch_size=256, lr=1e-3, lr_schedule="cosine", seed=0,
            progress=False)
    coverage = metrics.mode_coverage(gan.sample(2500, seed=0), ring)
    assert coverage.modes_covered >= 7


def _pacgan_small(**kw):
    """The published 2D architecture at small widths (tests run fast)."""
    kw = {"g_hidden": (16,) * 4, "d_hidden": (12,) * 3, "g_norm": "batch",
          "d_activation": "maxout", "maxout_pieces": 5, "betas": (0.8, 0.999),
          "init_std": 0.02, **kw}
    return models.GAN(data_dim=2, latent_dim=2, seed=0, **kw)


@pytest.mark.parametrize("pack", [1, 2, 4])
def test_published_architecture_layers_and_shapes(pack):
    from torch import nn

    from densitylab.models.networks import Maxout

    gan = models.GAN(data_dim=2, latent_dim=2, g_hidden=(400,) * 4, d_hidden=(200,) * 3,
                     g_norm="batch", d_activation="maxout", maxout_pieces=5, pack=pack,
                     betas=(0.8, 0.999), init_std=0.02, seed=0)
    g_layers = list(gan.generator.net.net)
    assert [type(m) for m in g_layers] == [nn.Linear, SlotBatchNorm1d, nn.ReLU] * 4 + [nn.Linear]
    g_linear = [m for m in g_layers if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features, m.bias is None) for m in g_linear] == [
        (2, 400, True), (400, 400, True), (400, 400, True), (400, 400, True), (400, 2, False)]
    d_layers = list(gan.discriminator.net.net)
    assert [type(m) for m in d_layers] == [Maxout] * 3 + [nn.Linear]
    assert d_layers[0].linear.in_features == 2 * pack
    assert [m.linear.out_features for m in d_layers[:3]] == [1000] * 3
    assert not any(isinstance(m, nn.BatchNorm1d) for m in gan.discriminator.modules())
    for m in gan.networks.modules():  # biases 0 under init_std
        if isinstance(m, nn.Linear) and m.bias is not None:
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
    d_weights = torch.cat([m.weight.detach().flatten() for m in gan.discriminator.modules()
                           if isinstance(m, nn.Linear)])
    assert float(d_weights.std()) == pytest.approx(0.02, rel=0.02)
    assert gan.sample(7, seed=0).shape == (7, 2)
    assert gan.discriminate(torch.zeros(4 * pack, 2)).shape == (4,)


def test_published_architecture_trains_and_round_trips_through_save_load(tmp_path):
    gan = _pacgan_small(pack=2)
    h = gan.fit(distributions.ring(), steps=4, batch_size=32, seed=0, progress=False,
                train_size=64)
    assert len(h) == 4 and all(math.isfinite(v) for v in h["d_loss"] + h["g_loss"])
    bn = gan.generator.net.net[1]
    assert int(bn.num_batches_tracked) > 0  # running statistics are state, saved with weights
    path = gan.save(tmp_path / "pacgan.pt")
    for loaded in (models.GAN.load(path), models.load(path)):
        assert loaded.config == gan.config
        assert loaded.config["g_norm"] == "batch" and loaded.config["init_std"] == 0.02
        assert loaded.config["d_activation"] == "maxout" and loaded.config["maxout_pieces"] == 5
        for key, value in gan.networks.state_dict().items():
            assert torch.equal(loaded.networks.state_dict()[key], value), key
        assert torch.equal(loaded.sample(30, seed=5), gan.sample(30, seed=5))


def test_new_options_at_their_defaults_build_the_same_networks_as_before():
    # g_norm / d_activation / init_std defaults must not move existing configs' numbers
    gan = _small_gan(pack=2)
    cfg = gan.config
    assert (cfg["g_norm"], cfg["d_activation"], cfg["init_std"]) == ("none", "leaky_relu", None)
    torch.manual_seed(0)  # what the constructor built before these options existed
    from densitylab.models.networks import MLP

    g = MLP((2,), (2,), (32, 32), "relu")
    d = MLP((4,), (1,), (32, 32), "leaky_relu")
    for mine, ref in ((gan.generator.net, g), (gan.discriminator.net, d)):
        for (k, v), (k2, v2) in zip(mine.state_dict().items(), ref.state_dict().items(),
                                    strict=True):
            assert k == k2 and torch.equal(v, v2)
    conv = models.GAN(data_shape=(1, 8, 8), network="conv", conv_width=4, seed=0)
    assert conv.config["g_norm"] == "batch"  # the DCGAN generator, as before
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in conv.generator.modules())
    plain = models.GAN(data_shape=(1, 8, 8), network="conv", conv_width=4, g_norm="none")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.generator.modules())


def test_files_saved_before_the_new_options_still_load(tmp_path):
    gan = _small_gan()
    state = gan.state()
    for key in ("g_norm", "d_activation", "maxout_pieces", "init_std"):
        del state["config"][key]
    torch.save(state, tmp_path / "old.pt")
    loaded = models.load(tmp_path / "old.pt")
    assert loaded.config == gan.config
    assert torch.equal(loaded.sample(10, seed=0), gan.sample(10, seed=0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"g_norm": "layer"}, "g_norm"),
        ({"d_activation": "swish"}, "d_activation"),
        ({"maxout_pieces": 1, "d_activation": "maxout"}, "maxout_pieces"),
        ({"init_std": 0.0}, "init_std"),
        ({"init_std": -0.02}, "init_std"),
    ],
)
def test_bad_architecture_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.GAN(data_dim=2, **kwargs)
    with pytest.raises(ValueError, match="maxout"):
        models.GAN(data_shape=(1, 8, 8), network="conv", d_activation="maxout")
