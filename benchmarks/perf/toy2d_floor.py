"""How fast a suite could run at this machine's matrix-product peak: its floor. Writes JSON.

Usage:
    python benchmarks/perf/toy2d_floor.py [--suite toy2d] [--seeds 2] [--records DIR]
                                          [--workers 2] [--out PATH]

Each (dataset, model) unit of the suite, reference rows included, is computed for its first
``--seeds`` seeds exactly as the suite computes it (``execute_batched_runs``, batched seeds,
one torch thread) under ``torch.utils.flop_counter.FlopCounterMode``, which counts the
floating-point operations of every matrix product and convolution (``mm``, ``bmm``,
``addmm``, ...) it dispatches. The count is split into training, each metric's evaluation
and the rest (mostly drawing the evaluation samples: a diffusion model's 1,000 ancestral
steps). Training is the same work for every seed of a batched model, and evaluation is taken
per seed (the mean over the seeds computed), so the suite's count is the per-seed count
times its seeds.

The floor of a unit is its count divided by the best single-thread float32 rate measured here
on the products these models make (a 128-wide MLP on 2,500 points, 10 seeds of 256 points as
one batched product): what the unit would take if every other operation (activations, the
optimiser, sampling, Python) were free and every product ran at the peak. The suite's floor on
``--workers`` cores is the sum over units divided by the workers: no schedule beats it. With
``--records DIR`` (the run records of a full run of the same suite) each unit's measured
run-seconds stand beside its floor, and their ratio is the share of the peak the suite reached.

The counted runs go to a temporary folder; the counter slows them, so their times are not used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from densitylab import __version__
from densitylab._runtime import atomic_write_json, keep_freed_memory
from densitylab.scoring import BUILTIN_METRICS
from densitylab.suite import evaluate
from densitylab.suite.config import load_suite
from densitylab.suite.plan import group_runs, select_runs

#: (rows, inner, outer, batch) of the products timed for the peak: toy2d's MLPs are 128 wide,
#: evaluated on 2,500 points (metrics) and trained as 10 seeds of 256 points (bmm).
GEMM_SHAPES = ((2500, 128, 128, 1), (256, 128, 128, 10), (25000, 128, 128, 1))
#: The phase of a unit's products outside training and the metrics (its evaluation samples).
OTHER = "sampling and other"


def gemm_rates(repeats: int = 5) -> list[dict]:
    """Single-thread float32 GFLOP/s of ``torch.matmul`` on :data:`GEMM_SHAPES` (best of
    ``repeats`` timings of 20 products each)."""
    out = []
    for rows, inner, outer, batch in GEMM_SHAPES:
        a = torch.randn(batch, rows, inner)
        b = torch.randn(batch, inner, outer)
        flops = 2 * batch * rows * inner * outer
        for _ in range(5):
            torch.matmul(a, b)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(20):
                torch.matmul(a, b)
            best = min(best, (time.perf_counter() - start) / 20)
        out.append({"shape": [batch, rows, inner, outer], "gflops": round(flops / best / 1e9, 1)})
    return out


class PhaseCounter:
    """FLOPs of a unit split into ``train`` and one entry per metric name (two entries of one
    metric, such as ``mmd`` and ``mmd_modes``, add up), by wrapping the suite's training stage
    and each built-in metric's function while it is active."""

    def __init__(self):
        self.flops: dict[str, float] = defaultdict(float)
        self._saved: list = []

    def __enter__(self):
        self._wrap(evaluate, "train_unit", "train")
        for spec in BUILTIN_METRICS:
            self._wrap(spec, "fn", spec.name)
        return self

    def _wrap(self, owner, attr: str, phase: str) -> None:
        """Replace ``owner.attr`` by the same function adding its FLOPs to ``phase``."""
        fn = getattr(owner, attr)

        def counted(*args, **kwargs):
            with FlopCounterMode(display=False) as fc:
                out = fn(*args, **kwargs)
            self.flops[phase] += fc.get_total_flops()
            return out

        self._saved.append((owner, attr, fn))
        object.__setattr__(owner, attr, counted)  # a frozen MetricSpec too

    def __exit__(self, *exc):
        for owner, attr, value in reversed(self._saved):
            object.__setattr__(owner, attr, value)
        self._saved.clear()


def count_unit(runs, folder: str) -> dict[str, float]:
    """FLOPs of computing ``runs`` (one suite unit) by phase: ``train``, each metric, and
    ``sampling and other`` (what the unit computes outside both: the evaluation samples, the
    scoring's own work); raises if a run failed."""
    with FlopCounterMode(display=False) as whole, PhaseCounter() as counter:
        summaries = evaluate.execute_batched_runs(runs, folder)
    bad = [s["label"] for s in summaries if s["status"] != "ok"]
    if bad:
        raise SystemExit(f"counted runs did not finish: {bad}")
    phases = dict(counter.flops)
    phases[OTHER] = whole.get_total_flops() - sum(phases.values())
    return phases


def measured_run_seconds(records: Path) -> dict[tuple[str, str], dict[str, float]]:
    """Run-seconds (training, evaluation, per metric) and run counts per (dataset, model) of the
    run records in ``records/runs``."""
    out: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for path in sorted((records / "runs").glob("*.json")):
        r = json.loads(path.read_text())
        if r.get("status") != "ok":
            continue
        row = out[(r["dataset"], r["model"])]
        row["runs"] += 1
        row["train"] += r["train_s"]
        row["eval"] += r["eval_s"]
        for label, s in (r.get("metric_s") or {}).items():
            row["metric:" + label] += s
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="toy2d")
    parser.add_argument("--seeds", type=int, default=2, help="seeds counted per unit")
    parser.add_argument("--records", type=Path, help="run records of a full run of the suite")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results"
                        / f"toy2d-floor-{socket.gethostname()}.json")
    args = parser.parse_args()
    if not 1 <= args.seeds <= 10:  # a glob digit range names seeds 0 to 9
        parser.error(f"--seeds must be between 1 and 10, got {args.seeds}")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    torch.set_num_threads(1)
    keep_freed_memory()
    load_start = os.getloadavg()
    rates = gemm_rates()
    peak = max(r["gflops"] for r in rates) * 1e9
    config = load_suite(args.suite, device="cpu")
    suite_seeds = len({r.seed for r in config.runs})
    measured = measured_run_seconds(args.records) if args.records else {}
    units = []
    started = time.perf_counter()
    pairs = sorted({(r.dataset, r.model) for r in config.runs}, key=str)
    for dataset, model in pairs:
        pattern = f"{dataset}/{model}/[0-{args.seeds - 1}]"
        runs = select_runs(config.runs, pattern)
        groups = group_runs(runs) if config.batch_seeds else [[r] for r in runs]
        flops: dict[str, float] = defaultdict(float)
        with tempfile.TemporaryDirectory() as folder:
            for group in groups:
                for phase, value in count_unit(group, folder).items():
                    flops[phase] += value
        per_seed = {phase: value / len(runs) for phase, value in flops.items()}
        suite_flops = {phase: value * suite_seeds for phase, value in per_seed.items()}
        row = {"dataset": dataset, "model": model, "seeds_counted": len(runs),
               "gflop_per_seed": {k: round(v / 1e9, 2) for k, v in sorted(per_seed.items())},
               "floor_run_s": {k: round(v / peak, 2) for k, v in sorted(suite_flops.items())}}
        seen = measured.get((dataset, model))
        if seen:
            row["measured_run_s"] = {k: round(v, 1) for k, v in sorted(seen.items())}
            floor = sum(suite_flops.values()) / peak
            row["share_of_peak"] = round(floor / (seen["train"] + seen["eval"]), 3)
        units.append(row)
        print(f"{dataset}/{model}: {json.dumps(row['floor_run_s'])}", flush=True)
    floor_total = sum(sum(u["floor_run_s"].values()) for u in units)
    floor_train = sum(u["floor_run_s"].get("train", 0.0) for u in units)
    result = {
        "suite": config.name, "densitylab": __version__, "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "load_start": load_start, "load_end": os.getloadavg(),
        "seconds": round(time.perf_counter() - started, 1), "gemm_rates": rates,
        "peak_gflops": peak / 1e9, "suite_seeds": suite_seeds, "workers": args.workers,
        "floor_run_s": round(floor_total, 1), "floor_train_run_s": round(floor_train, 1),
        "floor_wall_s": round(floor_total / args.workers, 1),
        "units": units,
    }
    if measured:
        total = sum(v["train"] + v["eval"] for v in measured.values())
        result["records"] = str(args.records)
        result["measured_run_s"] = round(total, 1)
        result["share_of_peak"] = round(floor_total / total, 3)
        result["median_unit_share_of_peak"] = statistics.median(
            u["share_of_peak"] for u in units if "share_of_peak" in u)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "units"}, indent=1))


if __name__ == "__main__":
    main()
