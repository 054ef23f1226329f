"""Resident memory of one batched fit as it trains: does a many-seed fit hold its memory flat?

Trains ``--seeds`` seeds of the ring GAN of the ``ring40`` suite (128-unit MLPs, batch 256, lr 1e-3
with a cosine decay) as one batched model through :class:`densitylab.models.Trainer` on one
thread, and reads the process's resident set size (``/proc/self/statm``, Linux) every
``--every`` steps. Writes the series as JSON.

    python benchmarks/perf/batched_memory.py --seeds 40 --steps 2500 --out batched_memory.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from densitylab import __version__, distributions, models


def resident_gb() -> float:
    """The process's resident set size in GB (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--out", type=Path, default=Path("batched_memory.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    gans = models.BatchedGAN(seeds=seeds, data_dim=2, latent_dim=2, hidden=(128, 128))
    series: list[dict[str, float]] = []
    start = time.perf_counter()

    def sample_memory(step: int, losses, model) -> bool:
        if (step + 1) % args.every == 0:
            series.append({"step": step + 1, "resident_gb": resident_gb(),
                           "seconds": time.perf_counter() - start})
            print(series[-1], flush=True)
        return False

    models.Trainer(args.steps, 256, 1e-3, lr_schedule="cosine", seeds=seeds, progress=False,
                   callback=sample_memory).fit(gans, distributions.ring())
    out = {"benchmark": "batched_memory", "seeds": args.seeds, "steps": args.steps,
           "series": series, "peak_resident_gb": max(r["resident_gb"] for r in series),
           "densitylab": __version__, "torch": torch.__version__,
           "python": platform.python_version(), "machine": platform.machine()}
    args.out.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
