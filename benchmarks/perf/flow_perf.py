"""A spline flow's training step: densitylab's ``models.Flow`` against zuko's NSF of the same size,
side by side in one process, and (``--seeds S``) S flow seeds batched against one. Writes JSON.

Usage:
    python benchmarks/perf/flow_perf.py [--out PATH] [--steps 300] [--repeats 5] [--threads 1]
        [--seeds 10] [--batched-steps 100]

Both sides: 2D ring data (8 modes, std 0.01), batch 256, 4 transformations with 64-64 hidden
units and 8 bins, Adam at lr 5e-3, one loss read back per step. densitylab's step is the public
``Flow.fit`` on a data tensor of 20,000 points (shuffled batches, divergence guard, history);
zuko's is the plain loop of zuko's documentation on the same tensor (``loss =
-flow().log_prob(x).mean()``, ``zero_grad``, ``backward``, ``step``, torch's default Adam).
Repeats alternate the two, so both see the same load; ``seconds_per_step`` is the median over
repeats of process CPU time per step after the first 20 steps (with one torch thread, the work
done: a shared machine's other load barely moves it). ``ratio`` divides densitylab's by zuko's;
the target is at most 1.0.

``batched``: ``models.BatchedFlow`` with S seeds against one ``models.Flow`` through ``fit``,
``--batched-steps`` steps, the S seeds' cost in units of one seed (S means batching gains
nothing).
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path

import torch
import zuko

from densitylab import distributions, models
from densitylab._runtime import atomic_write_json

BATCH = 256
WARMUP = 20
SIZE = {"num_layers": 4, "hidden": (64, 64), "count_bins": 8}
LR = 5e-3


def _densitylab_step(data: torch.Tensor, steps: int, seed: int) -> float:
    flow = models.Flow(data_dim=2, **SIZE, seed=seed)
    stamps: list[float] = []
    flow.fit(data, steps=steps, batch_size=BATCH, lr=LR, seed=seed, progress=False,
             callback=lambda *_: stamps.append(time.process_time()))
    return (stamps[-1] - stamps[WARMUP - 1]) / (steps - WARMUP)


def _zuko_step(data: torch.Tensor, steps: int, seed: int) -> float:
    torch.manual_seed(seed)
    flow = zuko.flows.NSF(2, transforms=SIZE["num_layers"], hidden_features=SIZE["hidden"],
                          bins=SIZE["count_bins"])
    opt = torch.optim.Adam(flow.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed)
    stamps: list[float] = []
    perm = torch.randperm(data.shape[0], generator=gen)
    for i in range(steps):
        start = (i * BATCH) % (data.shape[0] - BATCH)
        x = data[perm[start:start + BATCH]]
        loss = -flow().log_prob(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        float(loss.detach())
        stamps.append(time.process_time())
    return (stamps[-1] - stamps[WARMUP - 1]) / (steps - WARMUP)


def _batched(data: torch.Tensor, steps: int, repeats: int, num_seeds: int) -> dict:
    one, many = [], []
    for r in range(repeats):
        single = models.Flow(data_dim=2, **SIZE, seed=r)
        start = time.process_time()
        single.fit(data, steps=steps, batch_size=BATCH, lr=LR, seed=r, progress=False)
        one.append((time.process_time() - start) / steps)
        batched = models.BatchedFlow(seeds=list(range(num_seeds)), data_dim=2, **SIZE)
        start = time.process_time()
        batched.fit(data, steps=steps, batch_size=BATCH, lr=LR, progress=False)
        many.append((time.process_time() - start) / steps)
    one_s, many_s = statistics.median(one), statistics.median(many)
    return {"num_seeds": num_seeds, "steps": steps, "one_seed_ms_per_step": one_s * 1e3,
            "batched_ms_per_step": many_s * 1e3, "ratio_batched_vs_one": many_s / one_s,
            "raw_seconds_per_step": {"one": one, "many": many}}


def run(steps: int, repeats: int, threads: int | None, num_seeds: int,
        batched_steps: int) -> dict:
    if threads:
        torch.set_num_threads(threads)
    data = distributions.ring().sample(20_000, seed=0)
    results: dict = {
        "benchmark": "flow_perf",
        "host": socket.gethostname(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "zuko": zuko.__version__,
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "loadavg_start": os.getloadavg(),
        "size": {**SIZE, "hidden": list(SIZE["hidden"]), "batch_size": BATCH, "lr": LR},
        "steps_per_run": steps,
        "repeats": repeats,
        "warmup_steps_excluded": WARMUP,
        "clock": "time.process_time",
    }
    ours, theirs = [], []
    for r in range(repeats):  # alternated, so both see the same load
        theirs.append(_zuko_step(data, steps, r))
        ours.append(_densitylab_step(data, steps, r))
    results["seconds_per_step"] = {"densitylab_flow": statistics.median(ours),
                                   "zuko_nsf": statistics.median(theirs)}
    results["raw_seconds_per_step"] = {"densitylab_flow": ours, "zuko_nsf": theirs}
    results["ratio"] = statistics.median(ours) / statistics.median(theirs)
    results["ratio_per_repeat"] = [a / b for a, b in zip(ours, theirs, strict=True)]
    results["target_ratio_at_most"] = 1.0
    if num_seeds > 1:
        results["batched"] = _batched(data, batched_steps, max(1, repeats // 2), num_seeds)
    results["loadavg_end"] = os.getloadavg()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).parent / "results" / f"flow-{socket.gethostname()}.json"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (0: torch's default)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds of the batched flow (1: none)")
    parser.add_argument("--batched-steps", type=int, default=100)
    args = parser.parse_args(argv)
    results = run(args.steps, args.repeats, args.threads or None, args.seeds, args.batched_steps)
    atomic_write_json(args.out, results)
    sps = results["seconds_per_step"]
    print(f"densitylab Flow {sps['densitylab_flow'] * 1e3:.2f} ms/step, zuko NSF "
          f"{sps['zuko_nsf'] * 1e3:.2f} ms/step: {results['ratio']:.3f}x "
          f"(per repeat {', '.join(f'{r:.3f}' for r in results['ratio_per_repeat'])})")
    if "batched" in results:
        b = results["batched"]
        print(f"batched: 1 seed {b['one_seed_ms_per_step']:.2f} ms/step, {b['num_seeds']} seeds "
              f"{b['batched_ms_per_step']:.2f} ms/step: {b['ratio_batched_vs_one']:.2f}x one seed")
    print(f"load average {results['loadavg_start']} -> {results['loadavg_end']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
