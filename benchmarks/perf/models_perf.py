"""Speed of model training: VAE SVI steps (Trace_ELBO, JitTrace_ELBO) against a plain torch loop
with the analytic-KL ELBO on the same networks, and GAN steps per second. Writes JSON.

Usage:
    python benchmarks/perf/models_perf.py [--out PATH] [--steps 300] [--repeats 3] [--threads 1]
        [--seeds 10] [--batched-steps 100] [--only batched|single]

Every figure is the median over ``--repeats`` runs of ``--steps`` steps each, batch 256, 2D
ring data, through the public ``fit`` (data drawn by the ring's sampler each step, divergence
guard on). ``seconds_per_step`` is the steady state after the first 20 steps (which absorb the
JIT compilation), in process CPU time on the CPU (with one thread the work done; a shared
machine's other load barely moves it) and wall time on a GPU; ``seconds_per_step_whole_fit``
is wall time and includes the first steps. The plain torch loop draws its
batches the same way and uses the same Adam (multi-tensor) on the same networks. CUDA figures
are added when a GPU is present.

Batched seeds (``batched``): one seed (``models.GAN`` / ``models.VAE``, hidden (128, 128), batch
256, ring; ``models.Diffusion`` with hidden (128, 128, 128)) against ``--seeds`` seeds in one
batched model (``models.BatchedGAN`` / ``models.BatchedVAE`` / ``models.BatchedDiffusion``),
``--batched-steps`` steps each, median over repeats of the whole fit.
``ratio_batched_vs_one`` is the cost of the S seeds in units of one (S means batching gains
nothing), from process CPU time (``time.process_time``: with one torch thread it is the work
done, and other load on a shared machine barely moves it); the wall-clock figures are recorded
beside it. The batched model is what the suite's ``batch_seeds = true`` trains.
"""

from __future__ import annotations

import argparse
import platform
import socket
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch

from densitylab import distributions, losses, models
from densitylab._runtime import atomic_write_json

BATCH = 256


WARMUP = 20  # steps excluded from the steady-state figure (JIT compilation, allocator warm-up)


def _clock(device: str):
    return time.process_time if device == "cpu" else time.perf_counter


def _time_fit(make_model, data, steps: int, repeats: int, device: str) -> dict[str, list[float]]:
    """Seconds per step through ``fit``: steady state (after WARMUP steps) and whole-fit average."""
    steady, whole = [], []
    clock = _clock(device)
    for r in range(repeats):
        model = make_model()
        model.to(device)
        stamps: list[float] = []

        def stamp(*_, stamps=stamps):
            stamps.append(clock())

        start = time.perf_counter()
        model.fit(data, steps=steps, batch_size=BATCH, seed=r, device=device, progress=False,
                  callback=stamp)
        whole.append((time.perf_counter() - start) / steps)
        steady.append((stamps[-1] - stamps[WARMUP - 1]) / (steps - WARMUP))
    return {"steady": steady, "whole_fit": whole}


def _plain_torch_vae(data, steps: int, repeats: int, device: str) -> dict[str, list[float]]:
    """The same encoder/decoder, trained by hand: loss = -E_q[log p(x|z)] + KL(q || N(0, I))."""
    steady, whole = [], []
    clock = _clock(device)
    for r in range(repeats):
        vae = models.VAE(data_dim=2, seed=0).to(device)
        enc, dec = vae.encoder, vae.decoder
        opt = torch.optim.Adam(list(vae.parameters()), lr=1e-3, foreach=True)  # as fit uses
        gen = torch.Generator().manual_seed(r)
        stamps = []
        start = time.perf_counter()
        for _ in range(steps):
            x = data.sample(BATCH, seed=int(torch.randint(0, 2**62, (1,), generator=gen)))
            x = x.to(device)
            loc, scale = enc(x)
            z = loc + scale * torch.randn_like(loc)
            rec = torch.distributions.Normal(dec(z), dec.scale()).log_prob(x).sum(-1)
            loss = (losses.gaussian_kl(loc, scale) - rec).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            float(loss.detach())  # one sync per step, as fit records every loss
            stamps.append(clock())
        whole.append((time.perf_counter() - start) / steps)
        steady.append((stamps[-1] - stamps[WARMUP - 1]) / (steps - WARMUP))
    return {"steady": steady, "whole_fit": whole}


def _time_batched(steps: int, repeats: int, num_seeds: int, device: str) -> dict:
    """Whole-fit seconds of one seed and of ``num_seeds`` batched seeds: GAN, VAE, diffusion."""
    ring = distributions.ring()
    ring = ring.to(device) if device == "cuda" else ring
    cases = {
        "gan": (models.GAN, models.BatchedGAN, {"data_dim": 2, "hidden": (128, 128)}),
        "vae": (models.VAE, models.BatchedVAE, {"data_dim": 2, "hidden": (128, 128)}),
        "gan_pack2": (models.GAN, models.BatchedGAN,
                      {"data_dim": 2, "hidden": (128, 128), "pack": 2}),
        # PacGAN's published 2D architecture (batch-norm generator, maxout critic), PacGAN2
        "pacgan2d_pack2": (models.GAN, models.BatchedGAN,
                           {"data_dim": 2, "latent_dim": 2, "g_hidden": (400,) * 4,
                            "d_hidden": (200,) * 3, "g_norm": "batch", "d_activation": "maxout",
                            "pack": 2, "betas": (0.8, 0.999), "init_std": 0.02}),
        # toy2d's diffusion column (DDPM noise predictor, hidden (128, 128, 128))
        "diffusion": (models.Diffusion, models.BatchedDiffusion,
                      {"data_dim": 2, "hidden": (128, 128, 128)}),
    }
    out: dict = {}
    for name, (single_cls, batched_cls, kwargs) in cases.items():
        one, many, one_cpu, many_cpu = [], [], [], []
        try:
            batched_cls(seeds=list(range(num_seeds)), **kwargs)
        except (ValueError, TypeError) as err:  # an architecture this version cannot batch
            out[name] = {"unsupported": str(err)}
            continue
        bs = 100 * kwargs.get("pack", 1) if name.startswith("pacgan2d") else BATCH
        # untimed warm-up: first calls of each operator, allocator, vmap set-up
        single_cls(**kwargs, seed=0).fit(ring, steps=3, batch_size=bs, seed=0, device=device,
                                         progress=False)
        batched_cls(seeds=list(range(num_seeds)), **kwargs).fit(
            ring, steps=3, batch_size=bs, device=device, progress=False)
        for r in range(repeats):
            model = single_cls(**kwargs, seed=r)
            start, cpu = time.perf_counter(), time.process_time()
            model.fit(ring, steps=steps, batch_size=bs, seed=r, device=device, progress=False)
            one.append(time.perf_counter() - start)
            one_cpu.append(time.process_time() - cpu)
            batched = batched_cls(seeds=[r * num_seeds + i for i in range(num_seeds)], **kwargs)
            start, cpu = time.perf_counter(), time.process_time()
            batched.fit(ring, steps=steps, batch_size=bs, device=device, progress=False)
            many.append(time.perf_counter() - start)
            many_cpu.append(time.process_time() - cpu)
        # on a GPU the work is the device's: wall time is the measure there
        t_one, t_many = statistics.median(one), statistics.median(many)
        c_one, c_many = statistics.median(one_cpu), statistics.median(many_cpu)
        use_cpu = device == "cpu"
        m_one, m_many = (c_one, c_many) if use_cpu else (t_one, t_many)
        out[name] = {"one_seed_s": t_one, "batched_s": t_many, "one_seed_cpu_s": c_one,
                     "batched_cpu_s": c_many, "num_seeds": num_seeds, "steps": steps,
                     "batch_size": bs, "measure": "process CPU time" if use_cpu else "wall time",
                     "one_seed_ms_per_step": 1e3 * m_one / steps,
                     "batched_ms_per_step": 1e3 * m_many / steps,
                     "ratio_batched_vs_one": m_many / m_one,
                     "raw": {"one": one, "many": many, "one_cpu": one_cpu, "many_cpu": many_cpu}}
    return out


def run(steps: int, repeats: int, threads: int | None, num_seeds: int = 10,
        batched_steps: int = 100, only: str | None = None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    ring = distributions.ring()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results: dict = {
        "benchmark": "models_perf",
        "host": socket.gethostname(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "batch_size": BATCH,
        "steps_per_run": steps,
        "repeats": repeats,
        "note": "median seconds per step over repeats; shared machines make these noisy",
        "warmup_steps_excluded": WARMUP,
        "devices": {},
    }
    for device in devices:
        ring_d = ring.to(device) if device == "cuda" else ring
        entry: dict = {"name": torch.cuda.get_device_name(0) if device == "cuda"
                       else platform.processor() or platform.machine()}
        results["devices"][device] = entry
        if only != "single":
            entry["batched"] = _time_batched(batched_steps, repeats, num_seeds, device)
        if only == "batched":
            continue
        timings = {
            "vae_trace_elbo": _time_fit(lambda: models.VAE(data_dim=2, seed=0), ring_d, steps,
                                        repeats, device),
            "vae_jit_trace_elbo": _time_fit(lambda: models.VAE(data_dim=2, jit=True, seed=0),
                                            ring_d, steps, repeats, device),
            "vae_jit_mean_field_elbo": _time_fit(
                lambda: models.VAE(data_dim=2, jit=True, estimator="mean_field", seed=0),
                ring_d, steps, repeats, device),
            "vae_plain_torch_analytic_kl": _plain_torch_vae(ring_d, steps, repeats, device),
            "gan_non_saturating": _time_fit(lambda: models.GAN(data_dim=2, seed=0), ring_d, steps,
                                            repeats, device),
            "gan_pack2": _time_fit(lambda: models.GAN(data_dim=2, pack=2, seed=0), ring_d, steps,
                                   repeats, device),
            "gan_wgan_gp_ncritic5": _time_fit(
                lambda: models.GAN(data_dim=2, loss="wasserstein", n_critic=5, seed=0), ring_d,
                max(steps // 5, 2 * WARMUP), repeats, device),
        }
        entry["seconds_per_step"] = {k: statistics.median(v["steady"]) for k, v in timings.items()}
        entry["seconds_per_step_whole_fit"] = {
            k: statistics.median(v["whole_fit"]) for k, v in timings.items()
        }
        entry["raw"] = timings
        sps = entry["seconds_per_step"]
        entry["steps_per_second"] = {k: 1.0 / v for k, v in sps.items()}
        plain = sps["vae_plain_torch_analytic_kl"]
        entry["ratio_to_plain_torch"] = {
            k: sps[k] / plain for k in ("vae_trace_elbo", "vae_jit_trace_elbo",
                                        "vae_jit_mean_field_elbo")
        }
        entry["target_jit_over_plain_at_most"] = 1.5
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).parent / "results" / f"models-{socket.gethostname()}.json"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (0: torch's default)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds of the batched models")
    parser.add_argument("--batched-steps", type=int, default=100)
    parser.add_argument("--only", choices=("batched", "single"), default=None)
    args = parser.parse_args(argv)
    results = run(args.steps, args.repeats, args.threads or None, args.seeds,
                  args.batched_steps, args.only)
    atomic_write_json(args.out, results)
    for device, entry in results["devices"].items():
        print(f"[{device}: {entry['name']}]")
        for key, value in entry.get("batched", {}).items():
            if "unsupported" in value:
                print(f"  batched {key:24s} unsupported")
                continue
            print(f"  batched {key:24s} 1 seed {value['one_seed_ms_per_step']:7.2f} ms/step, "
                  f"{value['num_seeds']} seeds {value['batched_ms_per_step']:7.2f} ms/step: "
                  f"{value['ratio_batched_vs_one']:5.2f}x one seed")
        for key, value in entry.get("seconds_per_step", {}).items():
            print(f"  {key:32s} {value * 1e3:8.3f} ms/step  ({1 / value:8.1f} steps/s)")
        for key, value in entry.get("ratio_to_plain_torch", {}).items():
            print(f"  {key:32s} {value:8.2f}x plain torch")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
