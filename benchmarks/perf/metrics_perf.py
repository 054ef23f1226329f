"""Speed and memory of the metrics, measured against naive baselines in the same run. Writes JSON.

Usage:
    python benchmarks/perf/metrics_perf.py [--out PATH] [--quick] [--repeats 3]

Figures (median of ``--repeats`` runs unless noted):

* exact unbiased RBF MMD^2, n = m = 10,000, 2D: ``metrics.mmd`` in float64 and float32 against a
  naive full-matrix torch version (``cdist``, square, ``exp`` on the three n x n matrices);
* the same at n = m = 100,000 (float64), once, in a fresh subprocess that reports its peak extra
  resident memory (``ru_maxrss`` after the call minus before; torch allocations are invisible to
  tracemalloc);
* ``metrics.kl_knn`` at n = m = 100,000 against the bare scipy ``cKDTree`` builds and queries it
  needs (k = 1, all cores); n = m = 10^6 once;
* ``metrics.mode_coverage`` on 10^6 samples of the 25-mode grid;
* ``metrics.c2st`` with the MLP at n = m = 10,000 (2D, mean shift 1), on ``--threads`` threads;
* ``metrics.sliced_wasserstein`` at n = m = 10^6 (2D, float32) with 128 projections;
* ``metrics.energy_distance`` against ``metrics.mmd`` (RBF, median bandwidth) at n = m = 10,000;
* with CUDA: MMD^2 at n = m = 10^6 on the GPU (float32), once after a warm-up call.

``--only c2st,sliced_wasserstein,energy_vs_mmd`` runs a subset of the steps.

The machine's load average at start and end is recorded: on a shared machine the timings of
both sides of each comparison are affected alike, but absolute numbers are noisy.
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
import time
from pathlib import Path

import numpy as np
import torch

from densitylab import distributions, metrics
from densitylab._runtime import atomic_write_json

ROOT = Path(__file__).resolve().parent


def _timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def naive_mmd(x: torch.Tensor, y: torch.Tensor, bw: float) -> float:
    """Unbiased RBF MMD^2 from full matrices: cdist, then exp (the baseline)."""
    n, m = len(x), len(y)

    def ksum(a, b, drop_diag):
        k = torch.exp(-torch.cdist(a, b) ** 2 / (2 * bw**2))
        s = k.sum()
        return s - k.diagonal().sum() if drop_diag else s

    return float(ksum(x, x, True) / (n * (n - 1)) + ksum(y, y, True) / (m * (m - 1))
                 - 2 * ksum(x, y, False) / (n * m))


def bench_mmd(n: int, repeats: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(n, 2, generator=gen, dtype=torch.float64) + 0.1
    bw = 1.0
    t_naive, v_naive = _timed(lambda: naive_mmd(x, y, bw), max(1, repeats - 1))
    t64, v64 = _timed(lambda: metrics.mmd(x, y, bandwidth=bw), repeats)
    x32, y32 = x.float(), y.float()
    t32, v32 = _timed(lambda: metrics.mmd(x32, y32, bandwidth=bw), repeats)
    return {
        "n": n, "dim": 2, "kernel": "rbf", "estimator": "unbiased",
        "naive_full_matrix_float64_s": t_naive,
        "blockwise_float64_s": t64,
        "blockwise_float32_s": t32,
        "speedup_float64_vs_naive": t_naive / t64,
        "speedup_float32_vs_float64": t64 / t32,
        "value_naive": v_naive, "value_float64": v64, "value_float32": v32,
        "relative_difference_float64_vs_naive": abs(v64 - v_naive) / abs(v_naive),
    }


_MEMORY_CHILD = r"""
import json, os, resource, sys, threading, time, torch
from densitylab import metrics

def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

n = int(sys.argv[1])
gen = torch.Generator().manual_seed(0)
x = torch.randn(n, 2, generator=gen, dtype=torch.float64)
y = torch.randn(n, 2, generator=gen, dtype=torch.float64) + 0.1
metrics.mmd(x[:1000], y[:1000], bandwidth=1.0)  # load code paths before the baseline
base_rss = rss_mb()
peak = [base_rss]
done = threading.Event()

def poll():
    while not done.is_set():
        peak[0] = max(peak[0], rss_mb())
        time.sleep(0.002)

watcher = threading.Thread(target=poll, daemon=True)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
watcher.start()
t = time.perf_counter()
v = metrics.mmd(x, y, bandwidth=1.0)
t = time.perf_counter() - t
done.set()
watcher.join()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": n, "seconds": t, "value": v,
                  "peak_extra_mb_polled_rss": peak[0] - base_rss,
                  "peak_extra_mb_maxrss_delta": (after - before) / 1024}))
"""


def bench_mmd_memory(n: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(n)], check=True,
                         capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["method"] = ("fresh subprocess: resident set polled every 2 ms during the call minus the "
                     "RSS before it; and the ru_maxrss delta (0 if below an earlier peak)")
    return res


def bench_kl(n: int, repeats: int) -> dict:
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + 0.5

    def bare():
        tx, ty = cKDTree(x), cKDTree(y)
        tx.query(x, k=2, workers=-1)
        ty.query(x, k=1, workers=-1)

    t_bare, _ = _timed(bare, repeats)
    t_ours, v = _timed(lambda: metrics.kl_knn(x, y), repeats)
    return {"n": n, "dim": 2, "k": 1, "bare_ckdtree_s": t_bare, "kl_knn_s": t_ours,
            "ratio": t_ours / t_bare, "value": v, "analytic": 0.25}


def bench_kl_once(n: int) -> dict:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + 0.5
    t, v = _timed(lambda: metrics.kl_knn(x, y), 1)
    return {"n": n, "kl_knn_s": t, "value": v, "analytic": 0.25}


def bench_modes(n: int, repeats: int) -> dict:
    grid = distributions.grid()
    x = grid.sample(n, seed=0)
    metrics.mode_coverage(x[:1000], grid)
    t, res = _timed(lambda: metrics.mode_coverage(x, grid), repeats)
    return {"n": n, "num_modes": 25, "seconds": t, "modes_covered": res.modes_covered,
            "high_quality_fraction": res.high_quality_fraction}


def bench_c2st(n: int, repeats: int) -> dict:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + [1.0, 0.0]
    t, res = _timed(lambda: metrics.c2st(x, y), repeats)
    return {"n": n, "classifier": "mlp", "folds": 5, "seconds": t, "accuracy": res.accuracy,
            "bayes_accuracy": 0.6914624612740131}


def bench_sliced_wasserstein(n: int, repeats: int) -> dict:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(n, 2, generator=gen)
    y = torch.randn(n, 2, generator=gen) + torch.tensor([1.0, 0.5])
    t, v = _timed(lambda: metrics.sliced_wasserstein(x, y, num_projections=128), repeats)
    return {"n": n, "num_projections": 128, "dtype": "float32", "seconds": t, "value": v,
            "analytic": 1.25 / 2}


def bench_energy_vs_mmd(n: int, repeats: int) -> dict:
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(n, 2, generator=gen)
    y = torch.randn(n, 2, generator=gen) + 0.1
    t_e, e = _timed(lambda: metrics.energy_distance(x, y), repeats)
    t_m, m = _timed(lambda: metrics.mmd(x, y), repeats)
    return {"n": n, "dtype": "float32", "energy_distance_s": t_e, "mmd_s": t_m,
            "energy_distance": e, "mmd": m}


def bench_cuda_mmd(n: int) -> dict:
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(n, 2, generator=gen, device="cuda")
    y = torch.randn(n, 2, generator=gen, device="cuda") + 0.1
    metrics.mmd(x[:20000], y[:20000], bandwidth=1.0)
    torch.cuda.synchronize()
    start = time.perf_counter()
    v = metrics.mmd(x, y, bandwidth=1.0)
    torch.cuda.synchronize()
    return {"n": n, "dtype": "float32", "seconds": time.perf_counter() - start, "value": v,
            "device": torch.cuda.get_device_name(0)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path,
                    default=ROOT / "results" / f"metrics-{socket.gethostname()}.json")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--only", help="comma-separated step names to run (default: all)")
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    q = args.quick
    result = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "quick": q,
        "load_average_start": os.getloadavg(),
    }
    steps = [
        ("mmd_rbf_unbiased", lambda: bench_mmd(2000 if q else 10_000, args.repeats)),
        ("mmd_memory", lambda: bench_mmd_memory(20_000 if q else 100_000)),
        ("kl_knn", lambda: bench_kl(20_000 if q else 100_000, args.repeats)),
        ("kl_knn_large", lambda: bench_kl_once(100_000 if q else 1_000_000)),
        ("mode_coverage", lambda: bench_modes(100_000 if q else 1_000_000, max(5, args.repeats))),
        ("c2st", lambda: bench_c2st(2000 if q else 10_000, args.repeats)),
        ("sliced_wasserstein",
         lambda: bench_sliced_wasserstein(100_000 if q else 1_000_000, args.repeats)),
        ("energy_vs_mmd", lambda: bench_energy_vs_mmd(2000 if q else 10_000, args.repeats)),
    ]
    if torch.cuda.is_available():
        steps.append(("cuda_mmd", lambda: bench_cuda_mmd(100_000 if q else 1_000_000)))
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {name for name, _ in steps}
        if unknown:
            ap.error(f"--only: unknown step(s) {', '.join(sorted(unknown))}")
        steps = [(name, fn) for name, fn in steps if name in wanted]
    for name, fn in steps:
        print(f"[metrics_perf] {name} ...", file=sys.stderr, flush=True)
        result[name] = fn()
        print(json.dumps(result[name]), file=sys.stderr, flush=True)
    result["load_average_end"] = os.getloadavg()
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
