"""The held-out likelihood's cost on trained toy2d models, today's code beside a previous
revision's, side by side in one process. Writes JSON.

Usage:
    python benchmarks/perf/likelihood_perf.py --baseline REV [--out PATH] [--repeats 3]

The toy2d suite's evaluation is mostly its ``log_likelihood`` metric: the GAN's latent
quadrature under N(x; G(z), 0.05^2 I) and the VAE's IWAE bound (K = 1,000) with its latent
quadrature, on 2,500 held-out ring points (run records' ``metric_s``). This script trains the
toy2d ring GAN (5,000 steps, cosine schedule) and VAE (5,000 steps), seed 0, one torch thread,
then times, alternated within each repeat so that both see the same load:

- ``metrics.quadrature_log_likelihood`` of today's code against the same function of
  ``densitylab/metrics/quadrature.py`` at ``--baseline`` (read with ``git show``), on both
  models; the values must agree (their largest difference is recorded);
- the VAE's IWAE log-weights at today's ``chunk_size`` default against 65,536 (the earlier
  default); the draws are grouped differently, so the values differ by Monte Carlo noise;
- the quadrature's decoder calls alone (2^21 latents through the GAN's generator) in blocks of
  4,096 (today's ``decode_batch``) against 65,536 (the earlier one).

Times are process CPU seconds (the work done, with one thread) and wall seconds, medians over
repeats.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from densitylab import distributions, metrics, models
from densitylab._runtime import atomic_write_json
from densitylab.losses import iwae_bound
from densitylab.metrics.quadrature import _decode_all as decode_all

REPO = Path(__file__).resolve().parents[2]
SIGMA = 0.05
IWAE_K = 1000


def baseline_quadrature(rev: str):
    """``quadrature_log_likelihood`` as it was at git revision ``rev``."""
    src = subprocess.run(["git", "show", f"{rev}:densitylab/metrics/quadrature.py"], cwd=REPO,
                         check=True, capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("densitylab.metrics._quadrature_at_" + rev[:12],
                                           loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "densitylab.metrics"  # its relative imports resolve in the package
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    exec(compile(src, f"{rev}:densitylab/metrics/quadrature.py", "exec"), module.__dict__)
    return module.quadrature_log_likelihood


def _timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    value = fn()
    return value, time.process_time() - cpu, time.perf_counter() - wall


def _trained_models(ring):
    gan = models.GAN(data_dim=2, latent_dim=2, hidden=(128, 128), seed=0)
    gan.fit(ring, steps=5000, batch_size=256, lr=1e-3, lr_schedule="cosine", seed=0,
            progress=False)
    vae = models.VAE(data_dim=2, latent_dim=2, hidden=(128, 128), seed=0)
    vae.fit(ring, steps=5000, batch_size=256, seed=0, progress=False)
    return gan, vae


def run(baseline: str, repeats: int, points: int) -> dict:
    torch.set_num_threads(1)
    old_quadrature = baseline_quadrature(baseline)
    ring = distributions.ring()
    gan, vae = _trained_models(ring)
    x = ring.sample(points, seed=123)
    latents = torch.randn(2**21, 2, generator=torch.Generator().manual_seed(0))

    def vae_decode(z):
        return vae.decoder(z), vae.decoder.scale()

    cases = {
        "gan_quadrature": {
            "today": lambda: metrics.quadrature_log_likelihood(gan.generator, x, 2, SIGMA),
            "baseline": lambda: old_quadrature(gan.generator, x, 2, SIGMA)},
        "vae_quadrature": {
            "today": lambda: metrics.quadrature_log_likelihood(vae_decode, x, 2),
            "baseline": lambda: old_quadrature(vae_decode, x, 2)},
        "vae_iwae_1000": {
            "today": lambda: vae.log_weights(x, IWAE_K, seed=0),
            "baseline": lambda: vae.log_weights(x, IWAE_K, seed=0, chunk_size=65536)},
        # the quadrature's decoder calls alone: 2^21 latents (the 1,448^2 grid's size) in
        # blocks of today's default against the earlier 65,536
        "gan_decode_2m": {
            "today": lambda: decode_all(gan.generator, latents, SIGMA, x, 4096)[0],
            "baseline": lambda: decode_all(gan.generator, latents, SIGMA, x, 65536)[0]},
    }
    raw = {case: {side: {"cpu_s": [], "wall_s": []} for side in sides}
           for case, sides in cases.items()}
    values: dict[str, dict[str, torch.Tensor]] = {case: {} for case in cases}
    load = [os.getloadavg()]
    for _ in range(repeats):
        for case, sides in cases.items():
            for side, fn in sides.items():
                value, cpu, wall = _timed(fn)
                values[case][side] = value
                raw[case][side]["cpu_s"].append(cpu)
                raw[case][side]["wall_s"].append(wall)
        load.append(os.getloadavg())
    summary = {}
    for case in cases:
        entry = {side: {k: statistics.median(v) for k, v in r.items()}
                 for side, r in raw[case].items()}
        entry["cpu_ratio_today_to_baseline"] = (entry["today"]["cpu_s"]
                                                / entry["baseline"]["cpu_s"])
        today, before = values[case]["today"], values[case]["baseline"]
        if case.endswith("quadrature"):
            entry["max_abs_difference_nats"] = float(
                (today.log_likelihood - before.log_likelihood).abs().max())
            entry["resolution"] = today.resolution
        elif case.startswith("vae_iwae"):
            entry["mean_iwae_today"] = float(iwae_bound(today).mean())
            entry["mean_iwae_baseline"] = float(iwae_bound(before).mean())
        else:
            entry["max_abs_difference_of_means"] = float((today - before).abs().max())
        summary[case] = entry
    return {"benchmark": "likelihood_perf", "host": socket.gethostname(),
            "python": sys.version.split()[0], "torch": torch.__version__,
            "platform": platform.platform(), "cpu_threads": torch.get_num_threads(),
            "baseline_revision": baseline, "points": points, "sigma": SIGMA,
            "repeats": repeats, "loadavg": load, "summary": summary, "raw": raw}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).parent / "results" / f"likelihood-{socket.gethostname()}.json"
    parser.add_argument("--baseline", required=True,
                        help="git revision whose quadrature.py is timed beside today's")
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--points", type=int, default=2500)
    args = parser.parse_args(argv)
    results = run(args.baseline, args.repeats, args.points)
    atomic_write_json(args.out, results)
    for case, entry in results["summary"].items():
        ratio = entry["cpu_ratio_today_to_baseline"]
        print(f"{case:16s} today {entry['today']['cpu_s']:.2f} s  baseline "
              f"{entry['baseline']['cpu_s']:.2f} s cpu  ({ratio:.2f}x)")
    print(f"load average {results['loadavg'][0]} -> {results['loadavg'][-1]}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
