"""A short tour of densitylab: fit a VAE and a GAN to the ring of 8 Gaussians, score both.

Run it with ``python examples/tour.py`` (under a minute on two CPU cores). Progress shows as a
bar on a terminal and as log lines otherwise; the last step asks the GAN for a density, which
it does not have, and prints the error it raises.
"""

from __future__ import annotations

import logging

import torch

from densitylab import distributions, metrics, models


def main(steps: int = 1500) -> None:
    """Train both models for ``steps`` steps on the ring and print their scores."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # progress lines in logs
    torch.set_num_threads(1)  # small networks: one thread is fastest

    p = distributions.ring(n_modes=8, radius=1.0, std=0.01)  # the VEEGAN / PacGAN ring
    x = p.sample(2500, seed=0)  # (2500, 2) tensor

    vae = models.VAE(data_dim=2, latent_dim=2)  # Pyro model/guide, SVI on the ELBO
    vae.fit(p, steps=steps, batch_size=256, seed=0)  # fresh batches from p each step
    gan = models.GAN(data_dim=2, latent_dim=2, loss="non_saturating")
    gan.fit(p, steps=steps, batch_size=256, lr=1e-3, lr_schedule="cosine", seed=0)

    print("model  modes  high-quality  KL(modes||uniform)  MMD^2    KL_knn(model||target)")
    for name, model in [("vae", vae), ("gan", gan)]:
        y = model.sample(2500, seed=1)
        cov = metrics.mode_coverage(y, p)  # nearest mode, std-normalised distance < 3
        kl_modes = "undefined" if cov.kl_to_uniform is None else f"{cov.kl_to_uniform:.3f}"
        print(f"{name:<6} {cov.modes_covered:>5}  {cov.high_quality_fraction:>11.1%}  "
              f"{kl_modes:>18}  {metrics.mmd(x, y):.5f}  {metrics.kl_knn(y, x):.3f}")

    # importance-weighted (IWAE) lower bound on log p(x), and the target's own log-density
    print("VAE log p(x) (IWAE bound):", vae.log_prob(x[:5], num_samples=100).tolist())
    print("target log p(x):          ", p.log_prob(x[:5]).tolist())
    try:
        gan.log_prob(x[:5])
    except models.NoDensityError as err:  # a GAN defines no density: an error, not a guess
        print("GAN log p(x): NoDensityError:", err)


if __name__ == "__main__":
    main()
