"""C2ST at the modes' scale: accuracy and cost of ``metrics.c2st``'s classifiers on the ring
against the same ring shifted by one mode std, side by side in one process. Writes JSON.

Usage:
    python benchmarks/perf/c2st_perf.py [--out PATH] [--n 2500] [--repeats 3] [--threads 1]

The task: 2,500 points a side of ``distributions.ring()`` (8 modes, std 0.01) against a second
draw shifted by 0.01 in each coordinate, whose Bayes accuracy is ``Phi(sqrt(2) / 2) = 0.760``.
Compared, alternated within each repeat so that all see the same load: the default
(``classifier="mlp"``, the torch MLP), the previous default (``"sklearn_mlp"``), and a plain
reference loop: a 2 x 20-unit torch MLP per fold trained full-batch by Adam (lr 0.01) for 300
epochs on inputs standardised inside the fold, the folds one after another, on the same folds.
Times are process CPU seconds (with one torch thread, the work done) and wall seconds, median
over repeats, after one warm-up call; the target for the default is at least 0.70 accuracy in
at most 1.2 s on one thread.
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

import numpy as np
import torch
from scipy.stats import norm
from sklearn.model_selection import StratifiedKFold

from densitylab import distributions, metrics
from densitylab._runtime import atomic_write_json

SHIFT = 0.01


def _samples(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    ring = distributions.ring()
    return ring.sample(n, seed=seed), ring.sample(n, seed=seed + 1) + SHIFT


def _plain_reference(x: torch.Tensor, y: torch.Tensor, seed: int) -> float:
    """The reference: one 2 x 20 MLP per fold, full-batch Adam for 300 epochs, folds in turn."""
    data = torch.cat([x, y]).float()
    labels = torch.cat([torch.zeros(len(x)), torch.ones(len(y))])
    torch.manual_seed(seed)
    correct = 0
    split = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    for train, test in split.split(data.numpy(), labels.numpy()):
        xt, yt = data[train], labels[train]
        mean, std = xt.mean(0), xt.std(0)
        net = torch.nn.Sequential(torch.nn.Linear(2, 20), torch.nn.ReLU(), torch.nn.Linear(20, 20),
                                  torch.nn.ReLU(), torch.nn.Linear(20, 1))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        xs = (xt - mean) / std
        for _ in range(300):
            opt.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(net(xs).squeeze(-1),
                                                                 yt).backward()
            opt.step()
        with torch.no_grad():
            pred = net((data[test] - mean) / std).squeeze(-1) > 0
        correct += int((pred.float() == labels[test]).sum())
    return correct / len(data)


def _timed(fn) -> tuple[float, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    acc = fn()
    return acc, time.process_time() - cpu, time.perf_counter() - wall


def run(n: int, repeats: int, threads: int | None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    x, y = _samples(n, seed=0)
    candidates = {
        "mlp_default": lambda: metrics.c2st(x, y, seed=0).accuracy,
        "sklearn_mlp_previous_default": lambda: metrics.c2st(x, y, classifier="sklearn_mlp",
                                                             seed=0).accuracy,
        "plain_torch_2x20_300_epochs": lambda: _plain_reference(x, y, seed=0),
    }
    metrics.c2st(x[:200], y[:200])  # warm-up: first torch and scikit-learn calls
    raw: dict[str, dict[str, list[float]]] = {k: {"accuracy": [], "cpu_s": [], "wall_s": []}
                                              for k in candidates}
    load = [os.getloadavg()]
    for _ in range(repeats):
        for name, fn in candidates.items():
            acc, cpu, wall = _timed(fn)
            raw[name]["accuracy"].append(acc)
            raw[name]["cpu_s"].append(cpu)
            raw[name]["wall_s"].append(wall)
        load.append(os.getloadavg())
    summary = {name: {"accuracy": statistics.median(r["accuracy"]),
                      "cpu_s": statistics.median(r["cpu_s"]),
                      "wall_s": statistics.median(r["wall_s"])} for name, r in raw.items()}
    ref = summary["plain_torch_2x20_300_epochs"]["cpu_s"]
    for entry in summary.values():
        entry["cpu_ratio_to_plain_reference"] = entry["cpu_s"] / ref
    return {
        "benchmark": "c2st_perf",
        "host": socket.gethostname(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "n_per_side": n,
        "shift_per_coordinate": SHIFT,
        "bayes_accuracy": float(norm.cdf(np.sqrt(2) * SHIFT / (2 * 0.01))),
        "repeats": repeats,
        "loadavg": load,
        "summary": summary,
        "raw": raw,
        "target": {"accuracy_at_least": 0.70, "cpu_s_at_most": 1.2},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).parent / "results" / f"c2st-{socket.gethostname()}.json"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--n", type=int, default=2500, help="points a side")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    results = run(args.n, args.repeats, args.threads or None)
    atomic_write_json(args.out, results)
    for name, entry in results["summary"].items():
        print(f"{name:30s} accuracy {entry['accuracy']:.3f}  cpu {entry['cpu_s']:.2f} s  "
              f"wall {entry['wall_s']:.2f} s  ({entry['cpu_ratio_to_plain_reference']:.2f}x the "
              f"plain reference's cpu)")
    print(f"Bayes accuracy {results['bayes_accuracy']:.3f}; load average {results['loadavg'][0]} "
          f"-> {results['loadavg'][-1]}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
