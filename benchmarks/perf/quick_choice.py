"""Measure candidate quick-suite GAN/VAE settings on the ring: modes covered and the
high-quality fraction per seed (the VEEGAN / PacGAN mode-coverage protocol, 2,500 samples),
and the CPU seconds each candidate's training takes on one torch thread.

    python benchmarks/perf/quick_choice.py CANDIDATE [CANDIDATE ...] --out FILE.json

Candidates are named in ``CANDIDATES``; each trains all seeds as one batched model, as the
suite does with ``batch_seeds = true``. Writes JSON (one entry per candidate).
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from densitylab import distributions, metrics, models

SEEDS = [0, 1, 2]
RING = {"n_modes": 8, "radius": 1.0, "std": 0.01}
BASE = {"latent_dim": 2, "hidden": (128, 128)}
CANDIDATES = {
    "gan_lr1e-3_cosine_3000": ("gan", BASE, {"steps": 3000, "lr": 1e-3, "lr_schedule": "cosine"}),
    "gan_lr2e-4_3000": ("gan", BASE, {"steps": 3000, "lr": 2e-4}),
    "gan_lr1e-4_3000": ("gan", BASE, {"steps": 3000, "lr": 1e-4}),
    "gan_lr3e-4_cosine_3000": ("gan", BASE, {"steps": 3000, "lr": 3e-4, "lr_schedule": "cosine"}),
    "gan_lr1e-3_3000": ("gan", BASE, {"steps": 3000, "lr": 1e-3}),
    "gan_h64_lr1e-3_cosine_3000": ("gan", {"latent_dim": 2, "hidden": (64, 64)},
                                   {"steps": 3000, "lr": 1e-3, "lr_schedule": "cosine"}),
    "vae_3000": ("vae", BASE, {"steps": 3000}),
}


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(name: str) -> dict:
    """Train one candidate on the ring (all seeds batched) and score every seed."""
    kind, params, train = CANDIDATES[name]
    p = distributions.ring(**RING)
    cls = models.BatchedGAN if kind == "gan" else models.BatchedVAE
    model = cls(seeds=SEEDS, data_dim=2, **params)
    c0, t0 = cpu_seconds(), time.perf_counter()
    model.fit(p, batch_size=256, num_threads=1, progress=False, **train)
    c1, t1 = cpu_seconds(), time.perf_counter()
    samples = model.sample(2500, seed=1234)
    per_seed = []
    for seed, y in zip(SEEDS, samples, strict=True):
        cov = metrics.mode_coverage(y, p, threshold=3.0)
        per_seed.append({"seed": seed, "modes_covered": int(cov.modes_covered),
                         "high_quality_fraction": round(float(cov.high_quality_fraction), 4),
                         "kl_to_uniform": None if cov.kl_to_uniform is None
                         else round(float(cov.kl_to_uniform), 4)})
    return {"candidate": name, "kind": kind, "params": {k: list(v) if isinstance(v, tuple) else v
                                                        for k, v in params.items()},
            "train": dict(train, batch_size=256), "dataset": {"ring": RING}, "seeds": SEEDS,
            "train_cpu_s": round(c1 - c0, 1), "train_wall_s": round(t1 - t0, 1),
            "per_seed": per_seed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="+", choices=sorted(CANDIDATES))
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = [measure(name) for name in args.candidates]
    with open(args.out, "w") as fh:
        json.dump({"torch": torch.__version__, "threads": 1, "results": results}, fh, indent=1)
    for r in results:
        print(r["candidate"], r["train_cpu_s"], "s CPU",
              [(s["modes_covered"], s["high_quality_fraction"]) for s in r["per_seed"]])


if __name__ == "__main__":
    main()
