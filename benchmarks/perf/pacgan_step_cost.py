"""Per-step cost of the ``pacgan2d`` preset: simultaneous against alternating updates (JSON).

Usage:
    python benchmarks/perf/pacgan_step_cost.py [--out PATH] [--steps 200] [--packs 1 2]
        [--threads 1] [--rounds 2]

For each pack m and each setting, ``models.preset(...)`` on the ring trained by ``fit`` with the
preset's options (lr 1e-4, 100 packed examples a step, a fixed set of 100,000 points) for
``--steps`` steps, all in one process on ``--threads`` threads (wall and CPU time per step).
The settings: ``pacgan2d`` (the authors' loop: simultaneous), ``pacgan2d_alternating``
(alternating, the same batch-norm and data protocol) and ``previous`` (the settings densitylab
used before: alternating, joint batch norm moved twice a step, packs regrouped each epoch).
``--rounds`` repeats the whole sweep in interleaved order and the minimum per setting is
reported beside every round's value, since a shared machine makes single timings noisy.
Epoch-end refresh passes (every 1,000 steps) are not in a 200-step window; one costs 50
generator passes without gradient.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from densitylab import distributions, models
from densitylab._runtime import atomic_write_json

PREVIOUS = {"updates": "alternating", "pack_norm": "joint", "bn_updates": "every_pass",
            "bn_refresh_batches": 0, "packs": "regrouped"}
SETTINGS = {"pacgan2d": ("pacgan2d", {}), "pacgan2d_alternating": ("pacgan2d_alternating", {}),
            "previous": ("pacgan2d", PREVIOUS)}


def step_ms(name: str, overrides: dict, pack: int, steps: int) -> tuple[float, float]:
    """Milliseconds per training step of preset ``name`` (with ``overrides``) at ``pack``:
    (wall, CPU time of this process). On one thread the CPU time is the work done, which a
    loaded machine inflates far less than the wall time."""
    ring = distributions.ring()
    model = models.preset(name, pack=pack, seed=0, **overrides)
    train = models.preset_train_defaults(name, pack=pack)
    train.pop("steps")
    cpu = time.process_time()
    history = model.fit(ring, steps=steps, seed=0, progress=False, **train)
    cpu = time.process_time() - cpu
    return 1000.0 * history.seconds / steps, 1000.0 * cpu / steps


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path("benchmarks/perf/results/pacgan-step-cost-vm.json"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--packs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for pack in args.packs:
            for label, (name, overrides) in SETTINGS.items():
                ms, cpu_ms = step_ms(name, overrides, pack, args.steps)
                wall.setdefault(f"{label} pack={pack}", []).append(round(ms, 2))
                cpu.setdefault(f"{label} pack={pack}", []).append(round(cpu_ms, 2))
                print(f"{label:22s} pack={pack}: {ms:6.1f} ms/step wall, {cpu_ms:6.1f} CPU",
                      flush=True)
    result = {
        "steps": args.steps, "threads": args.threads, "rounds": args.rounds,
        "ms_per_step": {k: {"min": min(v), "rounds": v} for k, v in wall.items()},
        "cpu_ms_per_step": {k: {"min": min(v), "rounds": v} for k, v in cpu.items()},
        "load_average": list(os.getloadavg()), "machine": platform.platform(),
        "torch": torch.__version__, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
