"""fused_adam: torch's fused kernel must give the per-tensor loop's update, also for gradients
stored transposed (a batched model's stacked weights get them, and torch 2.13's CPU kernel reads
a gradient's memory as if it were contiguous)."""

from __future__ import annotations

import torch

from densitylab._runtime import fused_adam


def _steps(make, grads, start):
    p = start.clone().requires_grad_()
    opt = make([p], lr=0.1, betas=(0.8, 0.999))
    for g in grads:
        p.grad = g
        opt.step()
    return p.detach()


def test_fused_adam_matches_the_per_tensor_loop_on_transposed_gradients():
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(3, 4, dtype=torch.float64, generator=gen)
    grads = [torch.randn(4, 3, dtype=torch.float64, generator=gen).t() for _ in range(3)]
    assert not grads[0].is_contiguous()
    reference = _steps(lambda ps, **o: torch.optim.Adam(ps, **o), grads, start)
    torch.testing.assert_close(_steps(fused_adam, grads, start), reference, rtol=0,
                               atol=1e-15)
    # what torch's own fused kernel does with them: the guard is still needed
    raw = _steps(lambda ps, **o: torch.optim.Adam(ps, **o, fused=True), grads, start)
    assert (raw - reference).abs().max() > 1e-3


def test_fused_adam_uses_the_fused_kernel_on_a_cpu():
    p = torch.zeros(2, requires_grad=True)
    assert fused_adam([p], lr=1e-3).defaults["fused"] is True
