"""Adam's per-tensor loop against its fused kernel in the toy2d models' training steps, side by
side in one process on one thread. Writes JSON.

Each family (the toy2d VAE, diffusion model and GAN on the ring, batch 256) is fitted for
``--steps`` steps with ``torch.optim.Adam``'s default CPU implementation (one small op per
tensor and moment) and with :func:`densitylab._runtime.fused_adam` (the library's choice), the
two alternated repeat by repeat; ``ms_per_step`` is the median over repeats of process CPU
time per step.

    python benchmarks/perf/optimizer_perf.py --steps 400 --repeats 3 --out optimizer.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

from densitylab import __version__, distributions, models
from densitylab.models import base

FAMILIES = {
    "vae": lambda: models.VAE(data_shape=(2,), latent_dim=2, hidden=[128, 128], seed=0),
    "diffusion": lambda: models.Diffusion(data_shape=(2,), hidden=[128, 128, 128], seed=0),
    "gan": lambda: models.GAN(data_shape=(2,), latent_dim=2, hidden=[128, 128], seed=0),
}
#: The modules that build their optimisers through ``fused_adam`` (swapped for the A/B).
USERS = ("densitylab.models.base", "densitylab.models.gan", "densitylab.models.vae")


def per_tensor_adam(params, **options):
    """torch's default CPU Adam (the per-tensor loop)."""
    return torch.optim.Adam(params, **options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="optimizer.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = distributions.ring().sample(20000, seed=0)
    load = os.getloadavg()
    out = {"densitylab": __version__, "torch": torch.__version__, "threads": 1,
           "steps": args.steps, "repeats": args.repeats, "load_start": load, "families": {}}
    for family, build in FAMILIES.items():
        times = {"per_tensor": [], "fused": []}
        for _ in range(args.repeats):
            for name, make in (("per_tensor", per_tensor_adam), ("fused", base.fused_adam)):
                for module in USERS:
                    sys.modules[module].fused_adam = make
                model = build()
                start = time.process_time()
                model.fit(data, steps=args.steps, batch_size=256)
                times[name].append((time.process_time() - start) / args.steps * 1000)
        for module in USERS:
            sys.modules[module].fused_adam = base.fused_adam
        med = {k: statistics.median(v) for k, v in times.items()}
        out["families"][family] = {"ms_per_step": med, "repeats_ms": times,
                                   "fused_over_per_tensor": med["fused"] / med["per_tensor"]}
        print(family, {k: round(v, 2) for k, v in med.items()}, flush=True)
    out["load_end"] = os.getloadavg()
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
