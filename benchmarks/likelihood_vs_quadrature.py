"""Likelihood estimators against the latent quadrature on trained ring models (docs/metrics.md).

Trains the toy2d architecture briefly (VAE: 3,000 steps, seed 0; GAN: 5,000 steps, seed 8,
cosine schedule), then scores 2,500 held-out ring points (seed 123) by quadrature and compares
IWAE (K = 1,000, all points) and AIS at its defaults (the first ``--ais-points`` points) with it.
Writes JSON (gap = estimate - quadrature, mean and its standard error over points).

    python benchmarks/likelihood_vs_quadrature.py --out likelihood-vs-quadrature.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from densitylab import distributions, metrics, models


def _gap(estimate: torch.Tensor, truth: torch.Tensor, seconds: float, **extra) -> dict:
    gap = estimate.double() - truth.double()
    return {"points": gap.numel(), "mean_gap": float(gap.mean()),
            "gap_stderr": float(gap.std() / gap.numel() ** 0.5),
            "max_abs_gap": float(gap.abs().max()), "seconds": seconds, **extra}


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="likelihood-vs-quadrature.json")
    parser.add_argument("--ais-points", type=int, default=200)
    parser.add_argument("--sigma", type=float, default=0.05)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ring = distributions.ring()
    x = ring.sample(2500, seed=123)
    out: dict = {}

    vae = models.VAE(data_dim=2, latent_dim=2, hidden=(128, 128), seed=0)
    vae.fit(ring, steps=3000, batch_size=256, lr=1e-3, seed=0, progress=False)
    scale = float(vae.decoder.scale().detach())
    quad, secs = _timed(lambda: metrics.quadrature_log_likelihood(
        lambda z: (vae.decoder(z), vae.decoder.scale()), x))
    out["vae_quadrature"] = {"mean": quad.mean, "converged": quad.converged,
                             "resolution": quad.resolution, "seconds": secs,
                             "decoder_scale": scale}
    iwae, secs = _timed(lambda: vae.log_prob(x, num_samples=1000, seed=0))
    out["vae_iwae_1000"] = _gap(iwae, quad.log_likelihood, secs)
    xa = x[:args.ais_points]
    ais, secs = _timed(lambda: metrics.ais_log_likelihood(vae.decoder, xa, 2, scale))
    out["vae_ais_defaults"] = _gap(ais.log_likelihood, quad.log_likelihood[:len(xa)], secs,
                                   ais_stderr=ais.mean_stderr)
    print(json.dumps(out), flush=True)

    gan = models.GAN(data_dim=2, latent_dim=2, hidden=(128, 128), seed=8)
    gan.fit(ring, steps=5000, batch_size=256, lr=1e-3, seed=8, progress=False,
            lr_schedule="cosine")
    cov = metrics.mode_coverage(gan.sample(2500, seed=0), ring)
    quad, secs = _timed(lambda: metrics.quadrature_log_likelihood(gan.generator, x, 2,
                                                                  args.sigma))
    out["gan_quadrature"] = {"mean": quad.mean, "converged": quad.converged,
                             "resolution": quad.resolution, "seconds": secs,
                             "sigma": args.sigma, "modes_covered": cov.modes_covered,
                             "high_quality_fraction": cov.high_quality_fraction}
    ais, secs = _timed(lambda: metrics.ais_log_likelihood(gan.generator, xa, 2, args.sigma))
    out["gan_ais_defaults"] = _gap(ais.log_likelihood, quad.log_likelihood[:len(xa)], secs,
                                   ais_stderr=ais.mean_stderr)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
