"""The Pyro VAE: bounds against an analytic marginal, training, seeds, divergence, persistence."""

from __future__ import annotations

import math

import pyro
import pytest
import torch

import densitylab
from densitylab import distributions, losses, models

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- linear-Gaussian VAE
# x = W z + b + s eps, z ~ N(0, I2), in R^3. W has orthogonal columns, so the exact posterior
# N(m(x), C) has a diagonal C = (I + W^T W / s^2)^-1 and m(x) = C W^T (x - b) / s^2: the guide
# family contains it. The marginal is N(b, W W^T + s^2 I) (Tipping and Bishop 1999).
S = 0.5


def _linear_problem():
    q, _ = torch.linalg.qr(torch.tensor([[1.0, 0.3, -0.2], [0.2, 1.0, 0.4], [-0.5, 0.1, 1.0]],
                                        dtype=torch.float64))
    w = q[:, :2] * torch.tensor([1.0, 2.0], dtype=torch.float64)
    b = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    cov_post = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + w.T @ w / S**2)
    assert torch.allclose(cov_post, torch.diag(torch.diagonal(cov_post)), atol=1e-12)
    return w, b, cov_post


def _linear_vae(shift: float = 0.0, scale_factor: float = 1.0) -> models.VAE:
    """Linear VAE with the true decoder; its guide is the exact posterior when shift=0, factor=1."""
    w, b, cov_post = _linear_problem()
    vae = models.VAE(data_dim=3, latent_dim=2, network="linear", decoder_scale=S, seed=0)
    vae.networks.double()
    gain = cov_post @ w.T / S**2  # m(x) = gain (x - b)
    with torch.no_grad():
        dec = vae.decoder.net.net[0]
        dec.weight.copy_(w)
        dec.bias.copy_(b)
        enc = vae.encoder.net.net[0]
        enc.weight.zero_()
        enc.weight[:2].copy_(gain)
        enc.bias[:2].copy_(-gain @ b + shift)
        enc.bias[2:].copy_(0.5 * torch.log(torch.diagonal(cov_post)) + math.log(scale_factor))
    return vae


def _true_log_p(x):
    w, b, _ = _linear_problem()
    cov = w @ w.T + S**2 * torch.eye(3, dtype=torch.float64)
    return torch.distributions.MultivariateNormal(b, cov).log_prob(x)


def _data(n=16, seed=3):
    w, b, _ = _linear_problem()
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return z @ w.T + b + S * torch.randn(n, 3, generator=g, dtype=torch.float64)


def test_exact_posterior_guide_makes_the_elbo_equal_log_p():
    vae, x = _linear_vae(), _data()
    # with q = p(z | x) every log-weight equals log p(x), so even one sample is exact
    torch.testing.assert_close(vae.elbo(x, num_samples=3, seed=0), _true_log_p(x))
    torch.testing.assert_close(vae.log_prob(x, num_samples=5, seed=0), _true_log_p(x))


def test_monte_carlo_elbo_matches_the_closed_form_elbo():
    vae, x = _linear_vae(shift=0.7, scale_factor=1.8), _data()
    w, b, _ = _linear_problem()
    loc, scale = vae.encoder(x)
    # E_q log N(x; W z + b, S^2 I) = log N(x; W loc + b, S^2 I) - tr(W diag(scale^2) W^T) / 2S^2
    resid = x - loc @ w.T - b
    expected_rec = (-0.5 * (resid**2).sum(1) / S**2 - 3 * math.log(S)
                    - 1.5 * math.log(2 * math.pi) - 0.5 * ((scale**2) @ (w**2).sum(0)) / S**2)
    expected = (expected_rec - losses.gaussian_kl(loc, scale)).detach()
    lw = vae.log_weights(x, num_samples=20000, seed=1)
    standard_error = lw.std(0) / math.sqrt(lw.shape[0])
    assert bool(((lw.mean(0) - expected).abs() < 4.5 * standard_error).all())
    torch.testing.assert_close(vae.elbo(x, num_samples=20000, seed=1), lw.mean(0))


def test_elbo_below_iwae_below_log_p_and_iwae_tightens_with_k():
    vae, x = _linear_vae(shift=0.4, scale_factor=1.4), _data()
    log_p = float(_true_log_p(x).mean())
    replicates = 400
    mean, se = {}, {}
    for k in (1, 10, 100):
        lw = vae.log_weights(x, num_samples=k * replicates, seed=k).reshape(replicates, k, -1)
        per_replicate = losses.iwae_bound(lw, dim=1).mean(1)  # IWAE_k averaged over the points
        mean[k] = float(per_replicate.mean())
        se[k] = float(per_replicate.std()) / math.sqrt(replicates)
    # In expectation ELBO = IWAE_1 <= IWAE_10 <= IWAE_100 <= log p(x) (Burda et al. 2016, Thm 1);
    # each comparison allows 3 standard errors of Monte Carlo noise (gaps here: ~2, 0.2, 0.01).
    elbo = float(vae.elbo(x, num_samples=20000, seed=0).mean())
    assert abs(elbo - mean[1]) < 4 * se[1]
    assert mean[1] < mean[10] - 3 * (se[1] + se[10])
    assert mean[10] < mean[100] - 3 * (se[10] + se[100])
    assert mean[100] <= log_p + 3 * se[100]
    assert log_p - mean[100] < log_p - mean[10] < log_p - elbo


def test_gap_closes_as_the_guide_approaches_the_posterior():
    x = _data()
    log_p = _true_log_p(x)
    gaps = []
    for t in (1.0, 0.5, 0.1, 0.0):  # t = 0 is the exact posterior
        vae = _linear_vae(shift=0.8 * t, scale_factor=math.exp(0.6 * t))
        gaps.append(float((log_p - vae.elbo(x, num_samples=4000, seed=0)).mean()))
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3] >= -1e-9
    assert gaps[3] < 1e-9


# ---------------------------------------------------------------- training behaviour
def _small_vae(**kw):
    kw.setdefault("hidden", (32, 32))
    return models.VAE(data_dim=2, latent_dim=2, seed=0, **kw)


def test_training_lowers_the_negative_elbo_and_raises_iwae_log_likelihood():
    ring = distributions.ring(std=0.05)
    x_eval = ring.sample(256, seed=9)
    vae = _small_vae(jit=True)
    before = float(vae.log_prob(x_eval, num_samples=16, seed=0).mean())
    history = vae.fit(ring, steps=250, batch_size=128, lr=3e-3, seed=0, progress=False)
    assert len(history) == 250 and history.seconds > 0
    assert history.mean("loss", last=25) < history.mean("loss", first=25) - 1.0
    after = float(vae.log_prob(x_eval, num_samples=16, seed=0).mean())
    assert after > before + 1.0
    # the sampled means lie near the ring of radius 1
    radius = vae.sample(500, seed=0).norm(dim=1)
    assert abs(float(radius.median()) - 1.0) < 0.25


def test_same_seed_same_training_and_samples_and_global_rng_untouched():
    ring = distributions.ring()
    state = torch.get_rng_state()
    runs = []
    for _ in range(2):
        vae = _small_vae()
        h = vae.fit(ring, steps=5, batch_size=64, seed=11, progress=False)
        runs.append((h["loss"], vae.sample(10, seed=4), vae.sample(10, seed=4, noise=True)))
    assert torch.equal(torch.get_rng_state(), state)
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1]) and torch.equal(runs[0][2], runs[1][2])
    other = _small_vae()
    h = other.fit(ring, steps=5, batch_size=64, seed=12, progress=False)
    assert h["loss"] != runs[0][0]


def test_tensor_data_and_jit_and_particles_and_clipped_adam():
    x = distributions.grid().sample(300, seed=0)
    for kw in ({"jit": True}, {"num_particles": 3}, {"optimizer": "clipped_adam"},
               {"estimator": "mean_field", "jit": True}):
        vae = _small_vae(**kw)
        h = vae.fit(x, steps=6, batch_size=100, seed=0, progress=False)
        assert len(h["loss"]) == 6 and all(math.isfinite(v) for v in h["loss"])


def test_models_never_share_parameters_through_the_param_store():
    ring = distributions.ring()
    a, b = _small_vae(), _small_vae()
    a_before = [p.detach().clone() for p in a.parameters()]
    b.fit(ring, steps=3, batch_size=32, seed=0, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), a_before, strict=True))
    assert not any(torch.equal(p, q) for p, q in zip(b.parameters(), a_before, strict=True))
    assert len(pyro.get_param_store()) == 0  # fit leaves the global store as it found it


def test_decoder_noise_is_the_blur_story():
    vae = models.VAE(data_dim=2, hidden=(16,), decoder_scale=0.3, seed=0)
    means = vae.sample(4000, seed=5)
    noisy = vae.sample(4000, seed=5, noise=True)
    # the same z (same seed), so the difference is the decoder's N(0, 0.3^2) noise
    assert float((noisy - means).std()) == pytest.approx(0.3, rel=0.05)
    assert float((noisy - means).mean().abs()) < 0.02


def test_bernoulli_conv_vae_on_images():
    g = torch.Generator().manual_seed(0)
    imgs = (torch.rand(64, 1, 8, 8, generator=g) > 0.5).float()
    vae = models.VAE(data_shape=(1, 8, 8), latent_dim=4, network="conv", likelihood="bernoulli",
                     conv_width=8, seed=0)
    vae.fit(imgs, steps=3, batch_size=32, seed=0, progress=False)
    probs = vae.sample(6, seed=0)
    bits = vae.sample(6, seed=0, noise=True)
    assert probs.shape == (6, 1, 8, 8) and bool(((probs > 0) & (probs < 1)).all())
    assert set(bits.unique().tolist()) <= {0.0, 1.0}
    assert vae.log_prob(imgs[:4], num_samples=3, seed=0).shape == (4,)


class _StackedLike:
    """A sampler returning (images, labels), as images.StackedDigits does."""

    def sample(self, n, seed=None):
        g = torch.Generator().manual_seed(seed)
        return torch.rand(n, 3, 8, 8, generator=g), torch.zeros(n, 3, dtype=torch.long)


def test_fit_uses_the_first_element_of_a_tuple_sample():
    vae = models.VAE(data_shape=(3, 8, 8), latent_dim=3, hidden=(16,), likelihood="bernoulli",
                     seed=0)
    h = vae.fit(_StackedLike(), steps=2, batch_size=8, seed=0, progress=False)
    assert len(h) == 2


# ---------------------------------------------------------------- robustness
class _Poisoned:
    """A 2D sampler whose batch at call ``bad_call`` (0-based) is NaN."""

    def __init__(self, bad_call):
        self.calls, self.bad_call = 0, bad_call
        self.ring = distributions.ring()

    def sample(self, n, seed=None):
        x = self.ring.sample(n, seed=seed)
        self.calls += 1
        return torch.full_like(x, float("nan")) if self.calls - 1 == self.bad_call else x


def test_divergence_names_the_step_and_keeps_the_last_finite_parameters():
    reference = _small_vae()
    reference.fit(_Poisoned(bad_call=-1), steps=3, batch_size=32, seed=0, progress=False)
    vae = _small_vae()
    with pytest.raises(densitylab.TrainingDiverged) as info:
        vae.fit(_Poisoned(bad_call=3), steps=10, batch_size=32, seed=0, progress=False)
    assert info.value.step == 3 and math.isnan(info.value.loss)
    assert "step 3" in str(info.value)
    assert vae.history.diverged and len(vae.history) == 3
    for p, q in zip(vae.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)  # exactly the weights after steps 0, 1, 2
    assert torch.isfinite(vae.sample(5, seed=0)).all()
    assert len(pyro.get_param_store()) == 0


def test_huge_learning_rate_diverges_cleanly():
    vae = _small_vae()
    with pytest.raises(densitylab.TrainingDiverged):
        vae.fit(distributions.ring(), steps=200, batch_size=32, lr=1e9, seed=0, progress=False)
    assert all(torch.isfinite(p).all() for p in vae.parameters())


def test_ctrl_c_leaves_a_usable_model():
    def interrupt(step, losses_, model):
        if step == 2:
            raise KeyboardInterrupt

    vae = _small_vae()
    with pytest.raises(KeyboardInterrupt):
        vae.fit(distributions.ring(), steps=50, batch_size=32, seed=0, callback=interrupt,
                progress=False)
    assert vae.history.interrupted and len(vae.history) == 3
    assert not vae.networks.training
    assert torch.isfinite(vae.sample(5, seed=0)).all()
    assert len(pyro.get_param_store()) == 0


def test_callback_can_stop_training():
    vae = _small_vae()
    h = vae.fit(distributions.ring(), steps=50, batch_size=32, seed=0, progress=False,
                callback=lambda step, losses_, model: step == 4)
    assert h.stopped_early and len(h) == 5


def test_save_load_round_trip_and_checkpoints(tmp_path):
    vae = _small_vae(likelihood="gaussian", decoder_scale="learned")
    ckpt = tmp_path / "ckpt.pt"
    vae.fit(distributions.ring(), steps=6, batch_size=32, seed=0, progress=False,
            checkpoint_every=3, checkpoint_path=ckpt)
    path = vae.save(tmp_path / "vae.pt")
    for loaded in (models.VAE.load(path), models.load(path), models.load(ckpt)):
        assert isinstance(loaded, models.VAE) and loaded.config == vae.config
        assert torch.equal(loaded.sample(20, seed=3), vae.sample(20, seed=3))
        x = distributions.ring().sample(8, seed=1)
        torch.testing.assert_close(loaded.log_prob(x, num_samples=7, seed=2),
                                   vae.log_prob(x, num_samples=7, seed=2))
    gan_path = models.GAN(data_dim=2, hidden=(8,)).save(tmp_path / "gan.pt")
    with pytest.raises(ValueError, match="GAN"):
        models.VAE.load(gan_path)


def test_device_handling():
    vae = _small_vae()
    assert vae.device.type == "cpu"
    vae.fit(distributions.ring(), steps=1, batch_size=8, seed=0, device="auto", progress=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert vae.device.type == expected and vae.sample(3).device.type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            vae.fit(distributions.ring(), steps=1, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_and_sampling():
    vae = _small_vae()
    vae.fit(distributions.ring().to("cuda"), steps=20, batch_size=64, seed=0, device="cuda",
            progress=False)
    assert vae.sample(10, seed=0).is_cuda
    x = distributions.ring().sample(16, seed=0)
    assert vae.log_prob(x, num_samples=4).is_cuda
    assert torch.isfinite(vae.elbo(x)).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"data_dim": 0}, ValueError, "data_dim"),
        ({"data_dim": 2, "data_shape": (2,)}, ValueError, "exactly one"),
        ({}, ValueError, "exactly one"),
        ({"data_dim": 2, "likelihood": "poisson"}, ValueError, "likelihood"),
        ({"data_dim": 2, "decoder_scale": -1.0}, ValueError, "decoder_scale"),
        ({"data_dim": 2, "decoder_scale": "fixed"}, ValueError, "decoder_scale"),
        ({"data_dim": 2, "network": "conv"}, ValueError, "conv"),
        ({"data_dim": 2, "hidden": 5}, TypeError, "hidden"),
        ({"data_dim": 2, "latent_dim": 1.5}, TypeError, "latent_dim"),
        ({"data_dim": 2, "num_particles": 0}, ValueError, "num_particles"),
        ({"data_dim": 2, "jit": "yes"}, TypeError, "jit"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        models.VAE(**kwargs)


def test_bad_fit_and_evaluation_arguments_raise():
    vae = _small_vae()
    x = distributions.ring().sample(20, seed=0)
    with pytest.raises(ValueError, match="steps"):
        vae.fit(x, steps=-1)
    with pytest.raises(ValueError, match="batch_size"):
        vae.fit(x, steps=1, batch_size=64)
    with pytest.raises(ValueError, match="shape"):
        vae.fit(torch.zeros(20, 3), steps=1, batch_size=4)
    with pytest.raises(ValueError, match="NaN"):
        vae.fit(torch.full((20, 2), float("nan")), steps=1, batch_size=4)
    with pytest.raises(ValueError, match="lr"):
        vae.fit(x, steps=1, batch_size=4, lr=0.0)
    with pytest.raises(ValueError, match="num_samples"):
        vae.log_prob(x, num_samples=0)
    with pytest.raises(ValueError, match="shape"):
        vae.elbo(torch.zeros(4, 5))


@pytest.mark.slow
def test_vae_on_ring_covers_at_least_7_of_8_modes():
    from densitylab import metrics

    ring = distributions.ring()
    vae = models.VAE(data_dim=2, latent_dim=2, seed=0, jit=True)
    vae.fit(ring, steps=3000, batch_size=256, lr=1e-3, seed=0, progress=False)
    for noise in (False, True):  # decoder means, and true samples with the decoder's noise
        coverage = metrics.mode_coverage(vae.sample(2500, seed=0, noise=noise), ring)
        assert coverage.modes_covered >= 7


def test_fit_uses_its_own_parameter_store_and_leaves_the_global_one_alone():
    pyro.clear_param_store()
    pyro.param("users_own", torch.ones(2))
    for jit in (False, True):
        vae = models.VAE(data_dim=2, hidden=(8,), jit=jit, seed=0)
        vae.fit(distributions.ring(), steps=3, batch_size=16, seed=0, progress=False)
    assert list(pyro.get_param_store().keys()) == ["users_own"]
    pyro.clear_param_store()


def test_jit_and_plain_elbo_draw_the_same_noise_and_give_the_same_fit():
    ring = distributions.ring()
    fitted = []
    for jit in (False, True):
        vae = models.VAE(data_dim=2, hidden=(16,), jit=jit, seed=0)
        vae.networks.double()
        h = vae.fit(ring, steps=5, batch_size=16, seed=2, progress=False)
        fitted.append((vae, h))
    (plain, hp), (jitted, hj) = fitted
    for p, q in zip(plain.parameters(), jitted.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12)
    assert hp["loss"] == pytest.approx(hj["loss"], abs=1e-10)
