"""Throughput of the classifier-based image diagnostics. Writes JSON.

Usage:
    python benchmarks/perf/images_perf.py [--out PATH] [--n 26000] [--repeats 3] [--quick]

Figures (median of ``--repeats`` runs, after one warm-up call):

* ``images.count_stacked_modes`` on ``--n`` stacked digits (3 classifier passes per image) in
  stacked images per second, on the CPU with torch's default thread count and with one thread;
* ``images.features`` on the same images (feature extraction for KID / FD / PRDC);
* the classifier's training time from scratch (CPU, one thread, as ``get_classifier`` does it);
* with CUDA: the same mode count and features on the GPU, with the device name.

The machine's load average at start and end is recorded: on a shared machine absolute numbers
are noisy.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from densitylab import __version__, images
from densitylab._runtime import atomic_write_json, torch_threads

ROOT = Path(__file__).resolve().parent


def _timed(fn, repeats: int, sync=None) -> float:
    fn()  # warm-up (allocator, kernels, lazy initialisation)
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_device(x: torch.Tensor, clf, device: torch.device, repeats: int) -> dict:
    xd = x.to(device)
    model = copy.deepcopy(clf).to(device)  # leave the cached CPU model where it is
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    t_modes = _timed(lambda: images.count_stacked_modes(xd, model), repeats, sync)
    t_feats = _timed(lambda: images.features(xd, model), repeats, sync)
    mc = images.count_stacked_modes(xd, model)
    return {
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
        ),
        "torch_threads": torch.get_num_threads(),
        "count_stacked_modes_s": t_modes,
        "count_stacked_modes_images_per_s": len(x) / t_modes,
        "channel_images_per_s": 3 * len(x) / t_modes,
        "features_s": t_feats,
        "features_images_per_s": len(x) / t_feats,
        "modes_covered": mc.modes_covered,
        "kl_to_uniform": mc.kl_to_uniform,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--n", type=int, default=26_000, help="stacked images per evaluation")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="n = 2,600 and 1 repeat (smoke run)")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.repeats = 2600, 1
    out = args.out or ROOT / "results" / f"images-{socket.gethostname()}.json"
    load_start = os.getloadavg()

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        clf = images.get_classifier(seed=0, cache=cache)
        train_s = time.perf_counter() - start

    x, _ = images.StackedDigits("test").sample(args.n, seed=1)
    runs = [bench_device(x, clf, torch.device("cpu"), args.repeats)]
    with torch_threads(1):
        runs.append(bench_device(x, clf, torch.device("cpu"), args.repeats))
    if torch.cuda.is_available():
        runs.append(bench_device(x, clf, torch.device("cuda"), args.repeats))

    result = {
        "benchmark": "images",
        "densitylab_version": __version__,
        "torch_version": torch.__version__,
        "python": sys.version.split()[0],
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "n_stacked_images": args.n,
        "repeats": args.repeats,
        "classifier_train_s": train_s,
        "classifier_test_accuracy": clf.test_accuracy,
        "runs": runs,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
    }
    atomic_write_json(out, result)
    for r in runs:
        print(
            f"{r['device']:>5} ({r['device_name']}, {r['torch_threads']} threads): "
            f"count_stacked_modes {r['count_stacked_modes_images_per_s']:,.0f} images/s, "
            f"features {r['features_images_per_s']:,.0f} images/s"
        )
    print(f"classifier training {train_s:.1f} s, test accuracy {clf.test_accuracy:.4f}; -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
