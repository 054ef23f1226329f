"""Building blocks: maxout against a brute-force maximum, bias-less batch-norm layers, N(0, s^2)
initialisation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from densitylab.models.networks import (
    MLP,
    ConvDecoder,
    ConvEncoder,
    Maxout,
    SlotBatchNorm1d,
    init_normal_,
)


def test_maxout_is_the_maximum_over_each_units_pieces():
    torch.manual_seed(0)
    layer = Maxout(3, units=4, pieces=5)
    x = torch.randn(7, 3, dtype=torch.float64)
    layer.double()
    out = layer(x).detach()
    assert out.shape == (7, 4)
    w, b = layer.linear.weight.detach(), layer.linear.bias.detach()
    for i in range(7):
        for u in range(4):  # output u * pieces + k is piece k of unit u
            pieces = [float(w[u * 5 + k] @ x[i] + b[u * 5 + k]) for k in range(5)]
            assert float(out[i, u]) == pytest.approx(max(pieces), abs=1e-12)
    # leading batch dimensions pass through
    assert layer(torch.randn(2, 3, 3, dtype=torch.float64)).shape == (2, 3, 4)


def test_maxout_mlp_has_no_other_nonlinearity_and_a_linear_output():
    net = MLP((4,), (1,), (6, 6), "maxout", pieces=3)
    kinds = [type(m) for m in net.net]
    assert kinds == [Maxout, Maxout, nn.Linear]
    assert net.net[0].linear.in_features == 4 and net.net[0].linear.out_features == 18
    assert net.net[1].linear.in_features == 6 and net.net[2].in_features == 6
    assert net(torch.randn(5, 4)).shape == (5, 1)


def test_batch_norm_mlp_hidden_layers_are_linear_without_bias():
    net = MLP((2,), (2,), (8, 8, 8), "relu", norm="batch")
    linears = [m for m in net.net if isinstance(m, nn.Linear)]
    assert [m.bias is None for m in linears] == [True, True, True, False]  # output has a bias
    kinds = [type(m) for m in net.net]
    assert kinds == [nn.Linear, SlotBatchNorm1d, nn.ReLU] * 3 + [nn.Linear]  # a BatchNorm1d
    x = torch.randn(32, 2)
    net.train()
    h = net.net[:2](x)  # training mode: each unit standardised over the batch
    torch.testing.assert_close(h.mean(0), torch.zeros(8), atol=1e-5, rtol=0)
    assert net(x).shape == (32, 2)
    net.eval()
    assert net(torch.randn(3, 5, 2)).shape == (3, 5, 2)  # several leading dimensions
    with pytest.raises(ValueError, match="norm"):
        MLP((2,), (2,), (8,), norm="layer")


@pytest.mark.parametrize("build", [
    lambda: MLP((4,), (3,), (300, 300), "maxout", pieces=5),
    lambda: MLP((2,), (2,), (400, 400), "relu", norm="batch"),
    lambda: nn.Sequential(ConvEncoder((1, 8, 8), 1, width=64),
                          ConvDecoder(16, (1, 8, 8), width=64, batch_norm=True)),
])
def test_init_normal_draws_weights_with_the_given_std_and_zero_biases(build):
    torch.manual_seed(0)
    net = init_normal_(build(), 0.02)
    weights = []
    for m in net.modules():
        if isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            weights.append(m.weight.detach().flatten())
            if m.bias is not None:
                assert torch.equal(m.bias, torch.zeros_like(m.bias))
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):  # normalisation keeps scale 1, shift 0
            assert torch.equal(m.weight, torch.ones_like(m.weight))
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
    w = torch.cat(weights).double()
    n = w.numel()
    assert n > 10_000
    # mean within 5 s.e. of 0, std within 5 s.e. of 0.02 (s.e. of a normal sample's std: s/sqrt(2n))
    assert abs(float(w.mean())) < 5 * 0.02 / math.sqrt(n)
    assert abs(float(w.std()) - 0.02) < 5 * 0.02 / math.sqrt(2 * n)
