"""The whole GPU benchmark in one script: batched seeds, MMD and k-NN KL at 10^6, toy2d. JSON out.

Usage:
    python benchmarks/perf/gpu_benchmark.py                 # on a CUDA machine (<= 10 minutes)
    python benchmarks/perf/gpu_benchmark.py --quick         # small sizes, any machine (CPU)
    python benchmarks/perf/gpu_benchmark.py --only seeds,mmd --out some.json

It measures on the device present (CUDA when available, else the CPU) and writes one JSON per
machine, ``benchmarks/perf/results/gpu-<hostname>.json`` by default, recording the torch
version, the device name and the CPU count. Sections:

* ``seeds``: wall time of ``steps`` training steps of one seed (``models.GAN`` / ``models.VAE``,
  hidden (128, 128), batch 256, the toy2d settings) against S = 10 seeds in one batched model
  (``models.BatchedGAN`` / ``models.BatchedVAE``), on ring and grid. ``ratio_batched_vs_one``
  is the cost of 10 seeds in units of one; 10 would mean no gain from batching.
* ``mmd``: exact unbiased RBF MMD^2 (``metrics.mmd``, median-heuristic bandwidth), n = m =
  10^6 in 2D on the GPU (target <= 10 s on one H100-class card), after a small warm-up call.
* ``toy2d``: the published toy protocol (ring and grid, VAE and GAN, 10 seeds, 5,000 steps,
  2,500 evaluation samples, its metrics) run end to end by the suite runner with
  ``batch_seeds = true`` (target <= 5 minutes on one H100).
* ``kl_knn``: ``metrics.kl_knn`` at n = m = 10^6 in 2D by the CPU k-d tree path and by the GPU
  brute-force path, and which of the two ``method="auto"`` picks for CUDA input.

The whole run keeps to ``--budget-s`` (570 s by default): the two quadratic metrics first run
at n / 10 and the full size only when the projection (x100) fits half the remaining budget,
and toy2d only when the ``seeds`` section's step times project it to fit; a skipped step
records its projection. The JSON is rewritten after every section.

``--quick`` shrinks every size (steps, n, seeds) so that the script runs on a 2-core CPU in a
few minutes; its numbers say how the code paths behave, not what the GPU targets are.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import sys
import tempfile
import time
import traceback
from functools import partial
from pathlib import Path

import torch

from densitylab import distributions, metrics, models
from densitylab._runtime import atomic_write_json

SECTIONS = ("seeds", "mmd", "toy2d", "kl_knn")
HIDDEN = (128, 128)
BATCH = 256


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> tuple[float, object]:
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - start, out


def environment(device: torch.device) -> dict:
    """Where the numbers were measured."""
    import densitylab

    env = {
        "hostname": socket.gethostname(), "platform": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__,
        "densitylab": densitylab.__version__, "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else _cpu_name()),
        "cuda": torch.version.cuda, "load_average_start": _loadavg(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["device_memory_gib"] = round(props.total_memory / 2**30, 1)
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def bench_seeds(device: torch.device, steps: int, num_seeds: int) -> list[dict]:
    """One seed against ``num_seeds`` batched seeds, ``steps`` steps each, GAN and VAE."""
    rows = []
    for dataset in ("ring", "grid"):
        target = distributions.make(dataset)
        for kind, single_cls, batched_cls in (("gan", models.GAN, models.BatchedGAN),
                                              ("vae", models.VAE, models.BatchedVAE)):
            kwargs = {"data_dim": 2, "latent_dim": 2, "hidden": HIDDEN}
            # warm-up: CUDA context, kernels, allocator (not timed)
            single_cls(**kwargs, seed=0).fit(target, steps=3, batch_size=BATCH, seed=0,
                                             device=device, progress=False)
            one = single_cls(**kwargs, seed=0)
            t_one, _ = _timed(partial(one.fit, target, steps=steps, batch_size=BATCH, seed=0,
                                      device=device, progress=False), device)
            batched_cls(seeds=list(range(num_seeds)), **kwargs).fit(
                target, steps=3, batch_size=BATCH, device=device, progress=False)  # warm-up
            many = batched_cls(seeds=list(range(num_seeds)), **kwargs)
            t_many, _ = _timed(partial(many.fit, target, steps=steps, batch_size=BATCH,
                                       device=device, progress=False), device)
            rows.append({
                "dataset": dataset, "model": kind, "steps": steps, "batch_size": BATCH,
                "hidden": list(HIDDEN), "num_seeds": num_seeds,
                "one_seed_s": t_one, "batched_s": t_many,
                "one_seed_ms_per_step": 1e3 * t_one / steps,
                "batched_ms_per_step": 1e3 * t_many / steps,
                "ratio_batched_vs_one": t_many / t_one,
                "speedup_vs_sequential_seeds": num_seeds * t_one / t_many,
            })
            print(f"  seeds {dataset}/{kind}: one {t_one:.2f} s, {num_seeds} batched "
                  f"{t_many:.2f} s (x{t_many / t_one:.2f})", flush=True)
    return rows


def _pilot_then_full(fn, n: int, remaining: float, label: str) -> dict:
    """Time ``fn(n // 10)``, project ``fn(n)`` (cost ~ n^2), run it only if it fits the budget.

    Both pair-sum metrics are quadratic in n, so the projection is the pilot time times 100.
    """
    pilot_n = max(2, n // 10)
    t_pilot, v_pilot = fn(pilot_n)
    projected = t_pilot * (n / pilot_n) ** 2
    out = {"pilot": {"n": pilot_n, "seconds": t_pilot, "value": v_pilot},
           "projected_s": projected}
    if projected > 0.5 * remaining:
        out["skipped"] = (f"projected {projected:.0f} s exceeds half the remaining budget "
                          f"({remaining:.0f} s)")
        print(f"  {label} n={n}: skipped, projected {projected:.0f} s", flush=True)
        return out
    t, value = fn(n)
    out.update({"n": n, "seconds": t, "value": value})
    print(f"  {label} n={n}: {t:.2f} s (projected {projected:.1f} s)", flush=True)
    return out


def bench_mmd(device: torch.device, n: int, remaining: float) -> dict:
    """Exact unbiased MMD^2 at n = m in 2D (float32 on the device), median bandwidth."""
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(n, 2, generator=gen, device=device)
    y = torch.randn(n, 2, generator=gen, device=device) + 0.05
    metrics.mmd(x[:4096], y[:4096])  # warm-up

    def timed(k: int):
        return _timed(lambda: metrics.mmd(x[:k], y[:k]), device)

    out = {"m": "same as n", "dim": 2, "dtype": "float32", "bandwidth": "median heuristic",
           "estimator": "unbiased", "device": str(device)}
    out.update(_pilot_then_full(timed, n, remaining, "mmd"))
    return out


def bench_kl_knn(device: torch.device, n: int, n_brute: int, remaining: float) -> dict:
    """k-NN KL (k = 1) by the k-d tree (CPU) and by brute force on ``device``."""
    from densitylab.metrics import divergence

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(max(n, n_brute), 2, generator=gen)
    y = torch.randn(max(n, n_brute), 2, generator=gen) * 1.1
    t_tree, v_tree = _timed(lambda: metrics.kl_knn(x[:n], y[:n], method="kdtree"),
                            torch.device("cpu"))
    print(f"  kl_knn kdtree (CPU) n={n}: {t_tree:.2f} s", flush=True)
    out = {"dim": 2, "k": 1, "kdtree_cpu": {"n": n, "seconds": t_tree, "value": v_tree}}
    xd, yd = x[:n_brute].to(device), y[:n_brute].to(device)
    metrics.kl_knn(xd[:2048], yd[:2048], method="brute")  # warm-up

    def timed(k: int):
        return _timed(lambda: metrics.kl_knn(xd[:k], yd[:k], method="brute"), device)

    out[f"brute_{device.type}"] = _pilot_then_full(timed, n_brute, remaining - t_tree,
                                                   f"kl_knn brute ({device.type})")
    out["auto_choice_for_this_device_2d"] = divergence._choose_method("auto", xd)
    print(f"  kl_knn auto picks {out['auto_choice_for_this_device_2d']} for 2D input on "
          f"{device.type}", flush=True)
    return out


def bench_toy2d(device: torch.device, steps: int, seeds: int, eval_samples: int,
                remaining: float, seed_rows: list[dict] | None) -> dict:
    """The toy2d suite (ring, grid x VAE, GAN) with batch_seeds = true, end to end.

    Skipped, with its projected training time recorded, when the ``seeds`` section's batched
    step times project more than the remaining budget.
    """
    import tomllib

    from densitylab.suite import RunStore, parse_suite, run_suite
    from densitylab.suite import config as suite_config

    if seed_rows and seeds == seed_rows[0]["num_seeds"]:
        projected = sum(steps * r["batched_ms_per_step"] / 1e3 for r in seed_rows)
        if 1.5 * projected > remaining:
            print(f"  toy2d: skipped, projected training {projected:.0f} s", flush=True)
            return {"skipped": f"projected training {projected:.0f} s (x1.5 for evaluation) "
                    f"exceeds the remaining budget ({remaining:.0f} s)",
                    "projected_train_s": projected}
    path = suite_config.resolve_suite_path("toy2d")
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    data["suite"].update({"seeds": seeds, "eval_samples": eval_samples, "batch_seeds": True,
                          "device": device.type})
    data["train"]["steps"] = steps
    data["models"] = [m for m in data["models"] if m["name"] in ("vae", "gan")]
    cfg = parse_suite(data, default_name="toy2d", source=str(path))
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = run_suite(cfg, out, show_progress=False)
        wall = time.perf_counter() - start
        records = [r for r in (RunStore(out).load_record(spec.run_id) for spec in cfg.runs)
                   if r is not None]
    # each batch records its training time once per seed; count it once
    train_s = sum(r.batched.train_s_total / len(r.batched.seeds) if r.batched is not None
                  else r.train_s or 0.0 for r in records)
    eval_s = sum(r.eval_s or 0.0 for r in records)
    print(f"  toy2d: {len(result.ok)} runs ok, {len(result.failed)} failed in {wall:.1f} s "
          f"(training {train_s:.1f} s, evaluation {eval_s:.1f} s)", flush=True)
    return {"datasets": ["ring", "grid"], "models": ["vae", "gan"], "seeds": seeds,
            "steps": steps, "eval_samples": eval_samples,
            "metrics": [m["name"] for m in data["metrics"]],
            "runs": result.total, "ok": len(result.ok), "failed": len(result.failed),
            "errors": sorted({r["error"] for r in result.failed if r.get("error")}),
            "batched_runs": sum(r.batched is not None for r in records),
            "train_s": train_s, "eval_s": eval_s, "wall_s": wall}


def run(quick: bool, only: tuple[str, ...], device: torch.device, out: Path,
        budget_s: float) -> dict:
    """Every selected section on ``device`` within ``budget_s``; JSON written after each one.

    A failing section records its error; the file on disk always holds what has been measured.
    """
    sizes = ({"steps": 60, "seeds": 10, "mmd_n": 20_000, "knn_n": 100_000,
              "knn_brute_n": 10_000, "toy_steps": 40, "toy_seeds": 3, "toy_eval": 500}
             if quick else
             {"steps": 500, "seeds": 10, "mmd_n": 1_000_000, "knn_n": 1_000_000,
              "knn_brute_n": 1_000_000, "toy_steps": 5000, "toy_seeds": 10, "toy_eval": 2500})
    results: dict = {"benchmark": "gpu_benchmark", "quick": quick, "sizes": sizes,
                     "budget_s": budget_s, "environment": environment(device), "sections": {}}
    start = time.perf_counter()

    def remaining() -> float:
        return budget_s - (time.perf_counter() - start)

    def seed_rows():
        rows = results["sections"].get("seeds")
        return rows if isinstance(rows, list) else None

    jobs = {
        "seeds": lambda: bench_seeds(device, sizes["steps"], sizes["seeds"]),
        "mmd": lambda: bench_mmd(device, sizes["mmd_n"], remaining()),
        "toy2d": lambda: bench_toy2d(device, sizes["toy_steps"], sizes["toy_seeds"],
                                     sizes["toy_eval"], remaining(), seed_rows()),
        "kl_knn": lambda: bench_kl_knn(device, sizes["knn_n"], sizes["knn_brute_n"],
                                       remaining()),
    }
    for name in SECTIONS:
        if name not in only:
            continue
        print(f"[{name}] {remaining():.0f} s of the budget left", flush=True)
        t0 = time.perf_counter()
        try:
            results["sections"][name] = jobs[name]()
        except Exception as err:  # one broken section must not lose the others' numbers
            traceback.print_exc()
            results["sections"][name] = {"error": f"{type(err).__name__}: {err}"}
        results["sections"][name + "_section_s"] = time.perf_counter() - t0
        results["total_s"] = time.perf_counter() - start
        atomic_write_json(out, results)
    results["environment"]["load_average_end"] = _loadavg()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).parent / "results" / f"gpu-{socket.gethostname()}.json"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, for a CPU or a smoke test")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections among {', '.join(SECTIONS)}")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--budget-s", type=float, default=570.0,
                        help="wall-time budget: a large step projected past it is skipped")
    args = parser.parse_args(argv)
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"--only: unknown section(s) {sorted(unknown)}; expected {SECTIONS}")
    from densitylab._runtime import resolve_device

    device = resolve_device(args.device)
    if device.type != "cuda" and not args.quick:
        print("no CUDA device: the full sizes are meant for a GPU; running anyway "
              "(use --quick on a CPU)", file=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run(args.quick, only, device, args.out, args.budget_s)
    atomic_write_json(args.out, results)
    print(f"wrote {args.out} ({results['total_s']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
