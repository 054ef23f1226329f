"""Short training curves of the images suite's families on dequantised digits, with their cost.

Trains one family (seed 0, batch 64, one torch thread) until ``--budget`` CPU seconds of
training have passed, scoring every ``--every`` steps the Frechet distance of ``--samples``
samples against the 450 test digits and, for the flow and the VAE, bits per dimension on them
(VAE: IWAE with K = 100). Costs are CPU time (``time.process_time``), which a loaded machine
inflates less than wall time. Writes JSON (default ``benchmarks/perf/results/images-curve-
<family>-<hostname>.json``). docs/images.md ("Budgets") reports the numbers behind the suite's
budgets.

    python benchmarks/perf/images_curves.py flow --budget 45 --every 150
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from pathlib import Path

import torch

from densitylab import images, models

FAMILIES = ("vae", "gan", "pacgan2", "flow", "diffusion")


def build(family: str):
    """The family as the images suite builds it for digits."""
    shape = (1, 8, 8)
    if family == "vae":
        return models.VAE(data_shape=shape, latent_dim=16, network="conv", likelihood="gaussian",
                          seed=0)
    if family in ("gan", "pacgan2"):
        return models.GAN(data_shape=shape, latent_dim=16, network="conv",
                          pack=2 if family == "pacgan2" else 1, seed=0)
    if family == "flow":
        return models.Flow(data_shape=shape, hidden=(256, 256), num_layers=4, seed=0)
    return models.Diffusion(data_shape=shape, network="conv", seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", choices=FAMILIES)
    parser.add_argument("--budget", type=float, default=45.0, help="CPU seconds of training")
    parser.add_argument("--every", type=int, default=150)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cpu = time.process_time
    train = images.Digits("train", dequantize=True)
    test = images.Digits("test", dequantize=True).sample(450, seed=123)
    images.get_classifier(seed=0)  # trained or loaded before the clock starts
    model = build(args.family)
    rows: list[dict[str, float]] = []
    spent = {"eval": 0.0}
    start = cpu()

    def score(step: int, m) -> None:
        e0 = cpu()
        with torch.no_grad():
            opts = {"sampler": "ddim", "steps": 50} if args.family == "diffusion" else {}
            s = m.sample(args.samples, seed=1, **opts)
        row = {"step": step + 1,
               "frechet_distance": images.feature_metrics(test, s.clamp(0, 1))["frechet_distance"]}
        if args.family == "flow":
            row["bits_per_dim"] = images.bits_per_dim(float(m.log_prob(test).mean()), 64, 17)
        if args.family == "vae":
            lp = m.log_prob(test, num_samples=100, seed=0)
            row["bits_per_dim_iwae100"] = images.bits_per_dim(float(lp.mean()), 64, 17)
        spent["eval"] += cpu() - e0
        row["train_cpu_s"] = cpu() - start - spent["eval"]
        rows.append(row)
        print(json.dumps(row), flush=True)

    def callback(step, losses, m):
        if (step + 1) % args.every == 0:
            score(step, m)
        return (cpu() - start - spent["eval"]) > args.budget

    history = model.fit(train, steps=10**6, batch_size=64, seed=0, num_threads=1,
                        callback=callback, progress=False)
    train_s = cpu() - start - spent["eval"]
    out = {"family": args.family, "steps": history.steps, "train_cpu_s": train_s,
           "cpu_s_per_step": train_s / history.steps, "curve": rows,
           "torch": torch.__version__, "host": socket.gethostname()}
    path = args.out or (Path(__file__).parent / "results" /
                        f"images-curve-{args.family}-{socket.gethostname()}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "curve"}))


if __name__ == "__main__":
    main()
