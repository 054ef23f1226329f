"""A diffusion model on the ring (8 modes, std 0.01): the CPU budget that makes it sharp (JSON).

Usage:
    python benchmarks/perf/diffusion_ring.py [--out PATH] [--steps 6000] [--lr 3e-3]
        [--seeds 0 1 2] [--threads 1] [--jobs 1]

Per seed: ``Diffusion(data_dim=2, seed=s)`` (hidden (128, 128, 128), linear schedule, T = 1000,
training times uniform in log-SNR) trained by ``fit(ring, steps, batch_size=256, lr,
lr_schedule="cosine", seed=s)``; 2,500 ancestral samples (seed s + 100) scored by
``metrics.mode_coverage`` (the VEEGAN / PacGAN protocol); the held-out log-likelihood of 500 ring
points (seed s + 200) by the probability-flow ODE (25 RK4 steps) and by DDPM's variational bound,
beside the ring's own log-density on the same points. Wall times of each phase are recorded;
the machine's load is recorded with them, since a shared machine makes them noisy. ``--jobs``
trains that many seeds at once in separate processes (each on ``--threads`` threads).
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from densitylab import distributions, metrics, models
from densitylab._runtime import atomic_write_json


def one_seed(seed: int, steps: int, lr: float, threads: int) -> dict:
    torch.set_num_threads(threads)
    ring = distributions.ring()
    model = models.Diffusion(data_dim=2, seed=seed)
    start = time.perf_counter()
    history = model.fit(ring, steps=steps, batch_size=256, lr=lr, lr_schedule="cosine",
                        seed=seed, progress=False)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    samples = model.sample(2500, seed=seed + 100)
    sample_s = time.perf_counter() - start
    cov = metrics.mode_coverage(samples, ring)
    x = ring.sample(500, seed=seed + 200)
    start = time.perf_counter()
    ode = float(model.log_prob(x, ode_steps=25).mean())
    ode_s = time.perf_counter() - start
    start = time.perf_counter()
    elbo = float(model.elbo(x, seed=seed).mean())
    elbo_s = time.perf_counter() - start
    return {"seed": seed, "modes_covered": int(cov.modes_covered),
            "high_quality_fraction": float(cov.high_quality_fraction),
            "heldout_loglik_ode": ode, "heldout_elbo": elbo,
            "target_loglik": float(ring.log_prob(x).mean()),
            "final_loss_mean_last_200": history.mean("loss", last=200),
            "fit_s": fit_s, "sample_2500_ancestral_s": sample_s, "ode_500_points_s": ode_s,
            "elbo_500_points_s": elbo_s, "load_average_after": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).parent / "results" / f"diffusion-ring-{socket.gethostname()}.json"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {"benchmark": "diffusion_ring", "host": socket.gethostname(),
               "python": sys.version.split()[0], "torch": torch.__version__,
               "platform": platform.platform(), "cpu_threads": torch.get_num_threads(),
               "steps": args.steps, "lr": args.lr, "batch_size": 256,
               "load_average_before": os.getloadavg()[0], "seeds": []}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(one_seed, s, args.steps, args.lr, args.threads) for s in args.seeds]
        for future in futures:
            results["seeds"].append(future.result())
            print(results["seeds"][-1], flush=True)
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
