"""Ways to run toy2d's small networks faster on a CPU, each timed beside what densitylab does
today, in one process, one thread, alternated. Writes JSON.

Usage:
    python benchmarks/perf/kernel_options.py [--repeats 3] [--out PATH]

1. ``torch.compile`` (inductor, default mode) of a batched discriminator's forward and
   backward (10 seeds of 256 points, 2 -> 128 -> 128 -> 1, LeakyReLU 0.2) against eager
   PyTorch; the compile time is reported apart.
2. The exact divergence of a diffusion noise predictor (``NoisePredictorMLP``, 3 x 128, on
   2,500 points), which the probability-flow ODE needs at every evaluation: one backward pass
   per coordinate (today) against both coordinates in one batched backward
   (``is_grads_batched``) and against forward-mode tangents propagated by hand through the
   MLP (both coordinates stacked into one product per layer). Their largest difference from
   today's divergence is recorded.
3. float32 products at ``torch.set_float32_matmul_precision("medium")`` (bfloat16 inputs on
   CPUs with AMX or AVX512-BF16) against the default: speed of the training product, and its
   relative error against float64.

Times are medians over ``--repeats`` of the mean of ``calls`` calls, in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from densitylab import __version__
from densitylab._runtime import atomic_write_json, keep_freed_memory
from densitylab.models.diffusion import NoisePredictorMLP, _divergence_exact, time_embedding


def timed_ms(fn: Callable[[], object], calls: int) -> float:
    """Mean milliseconds of ``fn()`` over ``calls`` calls, after 5 warm-up calls."""
    for _ in range(5):
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e3


def alternated(fns: dict[str, Callable[[], object]], calls: int, repeats: int) -> dict:
    """Median milliseconds of each of ``fns``, timed in turn within every repeat."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed_ms(fn, calls))
    return {name: round(statistics.median(ts), 3) for name, ts in times.items()}


def compile_case(repeats: int) -> dict:
    """Eager against ``torch.compile`` for a batched discriminator's forward and backward."""
    torch.manual_seed(0)
    seeds, batch, width = 10, 256, 128
    weights = [torch.randn(seeds, 2, width) * 0.5, torch.randn(seeds, width, width) * 0.1,
               torch.randn(seeds, width, 1) * 0.1]
    biases = [torch.zeros(seeds, 1, width), torch.zeros(seeds, 1, width),
              torch.zeros(seeds, 1, 1)]
    params = [p.requires_grad_() for p in weights + biases]
    x = torch.randn(seeds, batch, 2)

    def loss(inputs: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(torch.baddbmm(params[3], inputs, params[0]), 0.2)
        h = F.leaky_relu(torch.baddbmm(params[4], h, params[1]), 0.2)
        return torch.baddbmm(params[5], h, params[2]).sum()

    def step(fn):
        def run():
            for p in params:
                p.grad = None
            fn(x).backward()
        return run

    compiled = torch.compile(loss)
    start = time.perf_counter()
    step(compiled)()
    compile_s = time.perf_counter() - start
    ms = alternated({"eager": step(loss), "compiled": step(compiled)}, 200, repeats)
    return {"what": "batched discriminator forward + backward, 10 x 256 x (2-128-128-1)",
            "compile_s": round(compile_s, 1), "ms": ms,
            "compiled_over_eager": round(ms["compiled"] / ms["eager"], 3)}


def divergence_two_passes(net: NoisePredictorMLP, x: torch.Tensor, t: torch.Tensor):
    """Today's: eps and its exact divergence, one backward pass per coordinate."""
    with torch.enable_grad():
        y = x.detach().requires_grad_(True)
        eps = net(y, t)
        return eps.detach(), _divergence_exact(eps, y)


def divergence_batched_backward(net: NoisePredictorMLP, x: torch.Tensor, t: torch.Tensor):
    """Both coordinates' vector-Jacobian products in one batched backward pass."""
    with torch.enable_grad():
        y = x.detach().requires_grad_(True)
        eps = net(y, t)
        d = eps.shape[1]
        basis = torch.eye(d, dtype=eps.dtype)[:, None, :].expand(d, *eps.shape)
        (g,) = torch.autograd.grad(eps, y, basis, is_grads_batched=True)
        return eps.detach(), g.diagonal(dim1=0, dim2=2).sum(-1).double()


def divergence_forward_tangents(net: NoisePredictorMLP, x: torch.Tensor, t: torch.Tensor):
    """Forward-mode: the tangents of every input coordinate carried through the MLP with the
    values, all in one product per layer (the first layer's tangent is its weight column)."""
    with torch.no_grad():
        linears = [m for m in net.net if isinstance(m, nn.Linear)]
        n, d = x.shape
        first = linears[0]
        a = torch.addmm(first.bias, torch.cat([x, time_embedding(t, net.embed_dim)], 1),
                        first.weight.T)
        tangent = first.weight[:, :d].T.unsqueeze(1)  # (d, 1, width): the same for every row
        for layer in linears[1:]:
            s = torch.sigmoid(a)
            stacked = torch.cat([(a * s).unsqueeze(0), tangent * (s * (1 + a * (1 - s)))])
            out = (stacked.reshape(-1, a.shape[1]) @ layer.weight.T).reshape(1 + d, n, -1)
            a, tangent = out[0] + layer.bias, out[1:]
        div = sum(tangent[j, :, j] for j in range(d))
        return a, div.double()


def divergence_case(repeats: int) -> dict:
    """The ODE's per-evaluation cost: today's divergence against the two alternatives."""
    torch.manual_seed(0)
    net = NoisePredictorMLP(2, (128, 128, 128), 16)
    x, t = torch.randn(2500, 2), torch.rand(2500)
    fns = {"two_backward_passes": divergence_two_passes,
           "batched_backward": divergence_batched_backward,
           "forward_tangents": divergence_forward_tangents}
    reference = fns["two_backward_passes"](net, x, t)[1]
    differences = {name: float((fn(net, x, t)[1] - reference).abs().max())
                   for name, fn in fns.items()}
    ms = alternated({name: (lambda fn=fn: fn(net, x, t)) for name, fn in fns.items()}, 100,
                    repeats)
    return {"what": "eps and its exact divergence, NoisePredictorMLP 3 x 128, 2,500 points",
            "ms": ms, "max_abs_difference": differences,
            "ratio_to_today": {k: round(v / ms["two_backward_passes"], 3) for k, v in ms.items()}}


def precision_case(repeats: int) -> dict:
    """bfloat16 products (matmul precision "medium") against float32 ("highest")."""
    torch.manual_seed(0)
    a, b = torch.randn(10, 256, 128), torch.randn(10, 128, 128)
    exact = torch.bmm(a.double(), b.double())
    out: dict = {"what": "bmm 10 x 256 x 128 x 128", "ms": {}, "relative_error": {}}
    for precision in ("highest", "medium"):
        torch.set_float32_matmul_precision(precision)
        try:
            err = (torch.bmm(a, b).double() - exact).abs().max() / exact.abs().max()
            out["relative_error"][precision] = float(err)
            out["ms"][precision] = alternated({precision: lambda: torch.bmm(a, b)}, 200,
                                              repeats)[precision]
        finally:
            torch.set_float32_matmul_precision("highest")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results"
                        / f"kernel-options-{socket.gethostname()}.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()
    load = os.getloadavg()
    result = {"densitylab": __version__, "torch": torch.__version__,
              "cpu": platform.processor() or platform.machine(), "load_start": load,
              "compile": compile_case(args.repeats),
              "divergence": divergence_case(args.repeats),
              "matmul_precision": precision_case(args.repeats),
              "load_end": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print({k: v for k, v in result.items() if k not in ("densitylab", "torch", "cpu")})


if __name__ == "__main__":
    main()
