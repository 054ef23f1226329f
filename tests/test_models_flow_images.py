"""The flow on images and the dequantised likelihood scale: the image flow is the flat flow on
flattened pixels, its density integrates to one, dequantisation puts each level in its own bin,
and bits per dimension match a hand computation and a discrete model's exact code length."""

from __future__ import annotations

import math

import pytest
import torch

from densitylab import images, models


def test_image_flow_is_the_flat_flow_on_flattened_pixels():
    flat = models.Flow(data_dim=4, hidden=(8,), num_layers=2, seed=0)
    img = models.Flow(data_shape=(1, 2, 2), hidden=(8,), num_layers=2, seed=0)
    x = torch.rand(16, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(img.log_prob(x), flat.log_prob(x.reshape(16, 4)))
    with pytest.warns(UserWarning, match="before fit"):
        s_img, s_flat = img.sample(5, seed=3), flat.sample(5, seed=3)
    assert s_img.shape == (5, 1, 2, 2)
    assert torch.equal(s_img.reshape(5, 4), s_flat)
    # the config rebuilds the image flow, and a flat flow's config is what it was
    assert models.Flow(**img.config).data_shape == (1, 2, 2)
    assert "data_shape" not in flat.config and flat.config["data_dim"] == 4
    with pytest.raises(ValueError, match="prod\\(data_shape\\)"):
        models.Flow(data_shape=(1, 1, 1))


@pytest.mark.slow  # ~10 s on the loaded 2-core machine
def test_image_flow_density_integrates_to_one():
    """A flow fitted briefly to dequantised 2-pixel images: the integral of exp(log_prob) over a
    box holding all but a negligible share of its mass, by the midpoint rule, is 1."""
    torch.manual_seed(0)
    levels = 5
    k = torch.randint(0, levels, (512, 1, 1, 2)).float()
    data = images.dequantize(k / (levels - 1), levels, torch.Generator().manual_seed(1))
    flow = models.Flow(data_shape=(1, 1, 2), hidden=(16,), num_layers=2, seed=0)
    flow.fit(data, steps=30, batch_size=128, seed=0, num_threads=1, progress=False)
    std = flow.networks["standardizer"]
    lo, hi = std.loc - 9 * std.scale, std.loc + 9 * std.scale  # beyond the splines' bound 4
    m = 400
    axes = [lo[i] + (torch.arange(m) + 0.5) * (hi[i] - lo[i]) / m for i in range(2)]
    grid = torch.cartesian_prod(*axes).reshape(-1, 1, 1, 2)
    cell = float((hi[0] - lo[0]) * (hi[1] - lo[1])) / m**2
    mass = float(flow.log_prob(grid).double().exp().sum()) * cell
    assert mass == pytest.approx(1.0, abs=5e-3)


@pytest.mark.slow  # ~7 s on the loaded machine (loading scikit-learn's digits)
def test_dequantized_digits_spread_each_level_over_its_own_bin():
    raw = images.Digits("test").sample(300, seed=4)
    deq = images.Digits("test", dequantize=True).sample(300, seed=4)  # same images, + noise
    assert ((deq >= 0) & (deq < 1)).all()
    assert torch.equal(torch.floor(deq * 17), torch.round(raw * 16))
    assert images.Digits("test", dequantize=True).levels == images.DIGIT_LEVELS == 17
    # the pixel noise is U(0, 1) in level units: mean 1/2, variance 1/12
    u = deq * 17 - torch.round(raw * 16)
    assert float(u.mean()) == pytest.approx(0.5, abs=0.01)
    assert float(u.var()) == pytest.approx(1 / 12, abs=0.005)
    stacked_raw = images.StackedDigits("test").sample(50, seed=2)[0]
    stacked = images.StackedDigits("test", dequantize=True).sample(50, seed=2)[0]
    assert torch.equal(torch.floor(stacked * 17), torch.round(stacked_raw * 16))
    centres = images.Digits("test", dequantize=True).fixed_images()
    assert torch.allclose(centres * 17 - 0.5, torch.round(images.load_digits("test")[0] * 16))
    assert "dequantize" not in images.Digits("test").params  # plain digits' ids stay


def test_bits_per_dim_against_a_hand_computation():
    # (100 + 64 ln 17) / (64 ln 2) = (100 + 181.3257) / 44.3614
    assert images.bits_per_dim(-100.0, 64, 17) == pytest.approx(281.32566 / 44.36142, rel=1e-6)
    assert images.bits_per_dim(0.0, 192, 17) == pytest.approx(math.log2(17))  # uniform density
    assert images.bits_per_dim(-64 * math.log(2), 64, 2) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="dim"):
        images.bits_per_dim(-1.0, 0, 17)
    with pytest.raises(ValueError, match="levels"):
        images.bits_per_dim(-1.0, 4, 1)


def test_bits_per_dim_is_the_exact_code_length_of_a_piecewise_constant_density():
    """Independent truth: a discrete model P over the levels of each pixel, spread uniformly
    over the bins, has density p(y) = P(k) L per pixel; its dequantised log-density minus
    D log L is log P(k) exactly, so bits_per_dim equals -log2 P(k) / D, the code length."""
    levels, dim, n = 17, 6, 4000
    gen = torch.Generator().manual_seed(0)
    probs = torch.rand(levels, generator=gen, dtype=torch.float64) + 0.1
    probs = probs / probs.sum()
    k = torch.multinomial(probs, n * dim, replacement=True, generator=gen).reshape(n, dim)
    y = images.dequantize(k.float() / (levels - 1), levels, gen)
    bins = torch.floor(y * levels).long()
    log_density = torch.log(probs[bins] * levels).sum(dim=1)  # log p(y), nats per point
    code_length = -torch.log2(probs[k]).sum(dim=1).mean() / dim
    assert images.bits_per_dim(float(log_density.mean()), dim, levels) == pytest.approx(
        float(code_length), rel=1e-9)
