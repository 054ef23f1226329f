"""Where one suite unit spends its time: cProfile over train, score and store of the runs of a
suite that match a pattern (one run, or the seeds of one model trained as one batched model).

Writes a JSON summary: the unit's wall and CPU time, each run's training and evaluation seconds
from its record, the top functions by own time and by cumulative time, and own time grouped by
library (densitylab, torch, sklearn, numpy/scipy, Python). The run is computed into a temporary
folder; nothing is resumed.

    python benchmarks/perf/profile_run.py toy2d 'ring/gan/0' --out profile-toy2d-gan.json
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import tempfile
import time
from pathlib import Path

import torch

from densitylab import __version__
from densitylab.results.store import RunStore
from densitylab.suite.config import load_suite
from densitylab.suite.evaluate import execute_batched_runs
from densitylab.suite.plan import group_runs, select_runs

LIBRARIES = (("densitylab", "/densitylab/"), ("torch", "/torch/"), ("sklearn", "/sklearn/"),
             ("pyro", "/pyro/"), ("zuko", "/zuko/"), ("numpy/scipy", "/numpy/"),
             ("numpy/scipy", "/scipy/"))


def library_of(filename: str) -> str:
    """The library a profiled function's file belongs to (``builtins`` for C functions)."""
    if filename == "~":
        return "builtins (C functions: torch ops, numpy, ...)"
    for name, marker in LIBRARIES:
        if marker in filename:
            return name
    return "other Python"


def summarize(stats: pstats.Stats, top: int) -> dict:
    """Top functions by own and cumulative time, and own time by library."""
    rows = []
    for (filename, line, func), (_, calls, own, cum, _) in stats.stats.items():
        rows.append({"function": f"{Path(filename).name}:{line}:{func}",
                     "library": library_of(filename), "calls": calls,
                     "own_s": round(own, 4), "cumulative_s": round(cum, 4)})
    by_library: dict[str, float] = {}
    for r in rows:
        by_library[r["library"]] = by_library.get(r["library"], 0.0) + r["own_s"]
    total = sum(by_library.values())
    return {"total_own_s": round(total, 3),
            "own_by_library": {k: {"s": round(v, 3), "share": round(v / total, 4)}
                               for k, v in sorted(by_library.items(), key=lambda kv: -kv[1])},
            "top_own": sorted(rows, key=lambda r: -r["own_s"])[:top],
            "top_cumulative": sorted(rows, key=lambda r: -r["cumulative_s"])[:top]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", help="suite file or built-in name")
    parser.add_argument("pattern", help="--only pattern: the runs of one unit, e.g. 'ring/gan/0'")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="profile-run.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_suite(args.suite, device="cpu")
    runs = select_runs(config.runs, args.pattern)
    units = group_runs(runs) if config.batch_seeds else [[r] for r in runs]
    if len(units) != 1:
        raise SystemExit(f"{args.pattern!r} selects {len(runs)} run(s) in {len(units)} units; "
                         "name the runs of one unit")
    load = os.getloadavg()
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory() as folder:
        wall, cpu = time.perf_counter(), time.process_time()
        profiler.enable()
        summaries = execute_batched_runs(units[0], folder)
        profiler.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        records = [RunStore(folder).load_record(s["run_id"]) for s in summaries]
    stats = pstats.Stats(profiler)
    result = {"suite": config.name, "pattern": args.pattern, "densitylab": __version__,
              "torch": torch.__version__, "threads": args.threads, "cpu": platform.processor()
              or platform.machine(), "cpu_count": os.cpu_count(), "load_start": load,
              "load_end": os.getloadavg(), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
              "runs": [{"label": s["label"], "status": s["status"],
                        "train_s": r.train_s if r else None, "eval_s": r.eval_s if r else None}
                       for s, r in zip(summaries, records, strict=True)],
              **summarize(stats, args.top)}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("wall_s", "cpu_s", "runs", "own_by_library")},
                     indent=1))


if __name__ == "__main__":
    main()
