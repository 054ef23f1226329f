"""The allocator setting of suite workers (``_runtime.keep_freed_memory``) against glibc's
default, on the toy2d batched models' training. Writes JSON.

Usage:
    python benchmarks/perf/allocator_perf.py [--out PATH] [--steps 500] [--repeats 3]

Each measurement is a fresh Python process (glibc's settings are per process) that trains the
toy2d ring GAN, VAE or diffusion model as 10 batched seeds for ``--steps`` steps of batch 256
on one torch thread, with or without ``keep_freed_memory()`` called first, and reports its
process CPU time, its system time and its minor page faults (``getrusage``). The two settings
alternate within each repeat so that both see the same load; medians over repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from densitylab._runtime import atomic_write_json

CHILD = """
import json, resource, sys, time, torch
from densitylab import distributions, models
from densitylab._runtime import keep_freed_memory
kind, steps, keep = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
took_effect = keep_freed_memory() if keep else False
torch.set_num_threads(1)
cls = {"gan": models.BatchedGAN, "vae": models.BatchedVAE,
       "diffusion": models.BatchedDiffusion}[kind]
hidden = (128, 128, 128) if kind == "diffusion" else (128, 128)
extra = {} if kind == "diffusion" else {"latent_dim": 2}
model = cls(seeds=list(range(10)), data_dim=2, hidden=hidden, **extra)
before = resource.getrusage(resource.RUSAGE_SELF)
cpu = time.process_time()
model.fit(distributions.ring(), steps=steps, batch_size=256, lr=1e-3, progress=False)
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu_s": time.process_time() - cpu,
                  "system_s": after.ru_stime - before.ru_stime,
                  "minor_faults": after.ru_minflt - before.ru_minflt,
                  "took_effect": took_effect}))
"""


def _measure(kind: str, steps: int, keep: bool) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(steps), "1" if keep else "0"],
                         check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(steps: int, repeats: int, kinds: list[str]) -> dict:
    raw = {kind: {"glibc_default": [], "keep_freed_memory": []} for kind in kinds}
    load = [os.getloadavg()]
    for _ in range(repeats):
        for kind in kinds:
            for name, keep in (("glibc_default", False), ("keep_freed_memory", True)):
                raw[kind][name].append(_measure(kind, steps, keep))
        load.append(os.getloadavg())
    summary = {}
    for kind, sides in raw.items():
        entry = {name: {key: statistics.median(m[key] for m in runs)
                        for key in ("cpu_s", "system_s", "minor_faults")}
                 for name, runs in sides.items()}
        entry["cpu_ratio"] = entry["keep_freed_memory"]["cpu_s"] / entry["glibc_default"]["cpu_s"]
        entry["fault_ratio"] = (entry["keep_freed_memory"]["minor_faults"]
                                / entry["glibc_default"]["minor_faults"])
        entry["took_effect"] = all(m["took_effect"] for m in sides["keep_freed_memory"])
        summary[kind] = entry
    return {"benchmark": "allocator_perf", "host": socket.gethostname(),
            "python": sys.version.split()[0], "torch": torch.__version__,
            "platform": platform.platform(), "steps": steps, "seeds_batched": 10,
            "repeats": repeats, "loadavg": load, "summary": summary, "raw": raw}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).parent / "results" / f"allocator-{socket.gethostname()}.json"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kinds", default="gan,vae,diffusion")
    args = parser.parse_args(argv)
    results = run(args.steps, args.repeats, args.kinds.split(","))
    atomic_write_json(args.out, results)
    for kind, entry in results["summary"].items():
        print(f"{kind:10s} cpu {entry['glibc_default']['cpu_s']:.2f} -> "
              f"{entry['keep_freed_memory']['cpu_s']:.2f} s ({entry['cpu_ratio']:.2f}x), minor "
              f"faults {entry['fault_ratio']:.3f}x")
    print(f"load average {results['loadavg'][0]} -> {results['loadavg'][-1]}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
