"""The GAN: no density, learning a simple target, PacGAN packing, unrolling, seeds, robustness."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import densitylab
from densitylab import distributions, losses, models
from densitylab.models.gan import pack_samples

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
