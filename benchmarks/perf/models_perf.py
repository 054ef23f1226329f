"""Speed of model training: VAE SVI steps (Trace_ELBO, JitTrace_ELBO) against a plain torch loop
with the analytic-KL ELBO on the same networks, and GAN steps per second. Writes JSON.

Usage:
    python benchmarks/perf/models_perf.py [--out PATH] [--steps 300] [--repeats 3] [--threads 1]

Every figure is the median over ``--repeats`` runs of ``--steps`` steps each, batch 256, 2D
ring data, through the public ``fit`` (data drawn by the ring's sampler each step, divergence
guard on). ``seconds_per_step`` is the steady state after the first 20 steps (which absorb the
JIT compilation); ``seconds_per_step_whole_fit`` includes them. The plain torch loop draws its
batches the same way and uses the same Adam (multi-tensor) on the same networks. CUDA figures
are added when a GPU is present.
"""

from __future__ import annotations

import argparse
import platform
import socket
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch

from densitylab import distributions, losses, models
from densitylab._runtime import atomic_write_json

BATCH = 256


WARMUP = 20  # steps excluded from the steady-state figure (JIT compilation, allocator warm-up)


def _time_fit(make_model, data, steps: int, repeats: int, device: str) -> dict[str, list[float]]:
    """Seconds per step through ``fit``: steady state (after WARMUP steps) and whole-fit average."""
    steady, whole = [], []
    for r in range(repeats):
        model = make_model()
        model.to(device)
        stamps: list[float] = []

        def stamp(*_, stamps=stamps):
            stamps.append(time.perf_counter())

        start = time.perf_counter()
        model.fit(data, steps=steps, batch_size=BATCH, seed=r, device=device, progress=False,
                  callback=stamp)
        whole.append((time.perf_counter() - start) / steps)
        steady.append((stamps[-1] - stamps[WARMUP - 1]) / (steps - WARMUP))
    return {"steady": steady, "whole_fit": whole}


def _plain_torch_vae(data, steps: int, repeats: int, device: str) -> dict[str, list[float]]:
    """The same encoder/decoder, trained by hand: loss = -E_q[log p(x|z)] + KL(q || N(0, I))."""
    steady, whole = [], []
    for r in range(repeats):
        vae = models.VAE(data_dim=2, seed=0).to(device)
        enc, dec = vae.encoder, vae.decoder
        opt = torch.optim.Adam(list(vae.parameters()), lr=1e-3, foreach=True)  # as fit uses
        gen = torch.Generator().manual_seed(r)
        stamps = []
        start = time.perf_counter()
        for _ in range(steps):
            x = data.sample(BATCH, seed=int(torch.randint(0, 2**62, (1,), generator=gen)))
            x = x.to(device)
            loc, scale = enc(x)
            z = loc + scale * torch.randn_like(loc)
            rec = torch.distributions.Normal(dec(z), dec.scale()).log_prob(x).sum(-1)
            loss = (losses.gaussian_kl(loc, scale) - rec).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            float(loss.detach())  # one sync per step, as fit records every loss
            stamps.append(time.perf_counter())
        whole.append((time.perf_counter() - start) / steps)
        steady.append((stamps[-1] - stamps[WARMUP - 1]) / (steps - WARMUP))
    return {"steady": steady, "whole_fit": whole}


def run(steps: int, repeats: int, threads: int | None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    ring = distributions.ring()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results: dict = {
        "benchmark": "models_perf",
        "host": socket.gethostname(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "batch_size": BATCH,
        "steps_per_run": steps,
        "repeats": repeats,
        "note": "median seconds per step over repeats; shared machines make these noisy",
        "warmup_steps_excluded": WARMUP,
        "devices": {},
    }
    for device in devices:
        ring_d = ring.to(device) if device == "cuda" else ring
        entry: dict = {"name": torch.cuda.get_device_name(0) if device == "cuda"
                       else platform.processor() or platform.machine()}
        timings = {
            "vae_trace_elbo": _time_fit(lambda: models.VAE(data_dim=2, seed=0), ring_d, steps,
                                        repeats, device),
            "vae_jit_trace_elbo": _time_fit(lambda: models.VAE(data_dim=2, jit=True, seed=0),
                                            ring_d, steps, repeats, device),
            "vae_jit_mean_field_elbo": _time_fit(
                lambda: models.VAE(data_dim=2, jit=True, estimator="mean_field", seed=0),
                ring_d, steps, repeats, device),
            "vae_plain_torch_analytic_kl": _plain_torch_vae(ring_d, steps, repeats, device),
            "gan_non_saturating": _time_fit(lambda: models.GAN(data_dim=2, seed=0), ring_d, steps,
                                            repeats, device),
            "gan_pack2": _time_fit(lambda: models.GAN(data_dim=2, pack=2, seed=0), ring_d, steps,
                                   repeats, device),
            "gan_wgan_gp_ncritic5": _time_fit(
                lambda: models.GAN(data_dim=2, loss="wasserstein", n_critic=5, seed=0), ring_d,
                max(steps // 5, 2 * WARMUP), repeats, device),
        }
        entry["seconds_per_step"] = {k: statistics.median(v["steady"]) for k, v in timings.items()}
        entry["seconds_per_step_whole_fit"] = {
            k: statistics.median(v["whole_fit"]) for k, v in timings.items()
        }
        entry["raw"] = timings
        sps = entry["seconds_per_step"]
        entry["steps_per_second"] = {k: 1.0 / v for k, v in sps.items()}
        plain = sps["vae_plain_torch_analytic_kl"]
        entry["ratio_to_plain_torch"] = {
            k: sps[k] / plain for k in ("vae_trace_elbo", "vae_jit_trace_elbo",
                                        "vae_jit_mean_field_elbo")
        }
        entry["target_jit_over_plain_at_most"] = 1.5
        results["devices"][device] = entry
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).parent / "results" / f"models-{socket.gethostname()}.json"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    results = run(args.steps, args.repeats, args.threads or None)
    atomic_write_json(args.out, results)
    for device, entry in results["devices"].items():
        print(f"[{device}: {entry['name']}]")
        for key, value in entry["seconds_per_step"].items():
            print(f"  {key:32s} {value * 1e3:8.3f} ms/step  ({1 / value:8.1f} steps/s)")
        for key, value in entry["ratio_to_plain_torch"].items():
            print(f"  {key:32s} {value:8.2f}x plain torch")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
