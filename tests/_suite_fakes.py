"""A tiny model with a closed-form fit, used to test the suite machinery without training.

``GaussianFit`` fits one Gaussian (mean and covariance of the target samples it is given), so its
results are known in advance: on a single Gaussian target it recovers the target.
"""

from __future__ import annotations

import math

import torch

from densitylab.suite import MetricSpec, register_metric, register_model, unregister

CALLS = {"fit": 0}


class GaussianFit:
    """Fits N(mean, cov) to ``steps * batch_size`` target samples; has an exact density."""

    has_density = True

    def __init__(self, data_dim: int, seed: int | None = None, fail: bool = False):
        self.data_dim, self.fail = data_dim, fail
        self.mean = torch.zeros(data_dim)
        self.chol = torch.eye(data_dim)

    def fit(self, data, steps, batch_size, seed, lr=None, progress=False):
        CALLS["fit"] += 1
        if self.fail:
            raise RuntimeError("fake model asked to fail")
        x = data.sample(steps * batch_size, seed=seed).double()
        self.mean = x.mean(0)
        cov = torch.cov(x.T).reshape(self.data_dim, self.data_dim)
        self.chol = torch.linalg.cholesky(cov + 1e-9 * torch.eye(self.data_dim, dtype=cov.dtype))
        return {"loss": [float(-i) for i in range(steps)]}

    def sample(self, n, seed=None):
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.data_dim, generator=gen, dtype=torch.float64)
        return (self.mean + z @ self.chol.T).float()

    def log_prob(self, x):
        d = self.data_dim
        z = torch.linalg.solve_triangular(self.chol, (x.double() - self.mean).T, upper=False).T
        logdet = torch.log(torch.diagonal(self.chol)).sum()
        return -0.5 * (z**2).sum(1) - logdet - 0.5 * d * math.log(2 * math.pi)


def mean_gap(ctx):
    """Distance between the model-sample mean and the reference-sample mean."""
    return {"mean_gap": float((ctx.samples.double().mean(0) - ctx.reference.double().mean(0))
                              .norm())}


def broken(ctx, scale: float = 1.0):
    raise ArithmeticError("this metric always fails")


class SlowGaussianFit(GaussianFit):
    """GaussianFit that sleeps in fit, so that a suite can be killed while it runs."""

    def fit(self, data, steps, batch_size, seed, lr=None, progress=False):
        import time

        time.sleep(0.4)
        return super().fit(data, steps, batch_size, seed, lr, progress)


class CrashingFit(GaussianFit):
    """GaussianFit whose third fit in this process is interrupted, like a suite killed mid-way."""

    def fit(self, data, steps, batch_size, seed, lr=None, progress=False):
        if CALLS["fit"] == 2:
            CALLS["fit"] += 1
            raise KeyboardInterrupt
        return super().fit(data, steps, batch_size, seed, lr, progress)


class DivergingFit(GaussianFit):
    """GaussianFit whose training hits a non-finite loss at step 1 (as ``lr = 1e4`` does)."""

    def fit(self, data, steps, batch_size, seed, lr=None, progress=False):
        from densitylab import TrainingDiverged

        raise TrainingDiverged(1, float("inf"))


class MarkedSlowFit(GaussianFit):
    """GaussianFit that writes ``<dir>/started/<seed>-<pid>`` when its fit starts, then sleeps
    ``sleep`` seconds: a test can see which runs were started and interrupt them mid-way."""

    def __init__(self, data_dim: int, seed: int | None = None, marks: str = "",
                 sleep: float = 1.0):
        super().__init__(data_dim, seed)
        self.marks, self.sleep = marks, sleep

    def fit(self, data, steps, batch_size, seed, lr=None, progress=False):
        import os
        import time
        from pathlib import Path

        folder = Path(self.marks)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{seed}-{os.getpid()}-{time.monotonic_ns()}").write_text("")
        time.sleep(self.sleep)
        return super().fit(data, steps, batch_size, seed, lr, progress)


class StepwiseFit(GaussianFit):
    """Moves its mean from 0 to the target's sample mean in ``steps`` equal steps, calling
    ``callback(step, losses, model)`` after each; records the ``train_size`` it was given."""

    fit_options = frozenset({"callback", "train_size"})

    def fit(self, data, steps, batch_size, seed, lr=None, progress=False, callback=None,
            train_size=None):
        CALLS["train_size"] = train_size
        super().fit(data, steps, batch_size, seed, lr, progress)
        goal = self.mean.clone()
        for step in range(steps):
            self.mean = goal * (step + 1) / steps
            if callback is not None and callback(step, {"loss": 0.0}, self):
                break
        return {"loss": [0.0] * steps}


class NoDensityFit(StepwiseFit):
    """GaussianFit that, like a GAN, offers no density (likelihood metrics are skipped)."""

    has_density = False


def install():
    """Register the fakes (done on import, so the module also works as a suite plugin)."""
    register_model("gaussfit", GaussianFit)
    register_model("slowfit", SlowGaussianFit)
    register_model("crashfit", CrashingFit)
    register_model("divergefit", DivergingFit)
    register_model("markedfit", MarkedSlowFit)
    register_model("stepfit", StepwiseFit)
    register_model("nodensityfit", NoDensityFit)
    register_metric(MetricSpec("mean_gap", mean_gap, {}, description="test metric"))
    register_metric(MetricSpec("broken", broken, {"scale": 1.0}, description="test metric"))


def uninstall():
    for name in ("gaussfit", "slowfit", "crashfit", "divergefit", "markedfit", "stepfit",
                 "nodensityfit", "mean_gap", "broken"):
        unregister(name)


TINY_SUITE = """
[suite]
name = "tiny"
device = "cpu"
seeds = [0, 1]
eval_samples = 400
density_grid = 16
references = false  # these tests count their own runs; test_references.py tests the rows

[train]
steps = 4
batch_size = 64

[[datasets]]
name = "ring"
params = { n_modes = 4, radius = 1.0, std = 0.05 }

[[datasets]]
label = "blob"
name = "ring"
params = { n_modes = 1, radius = 1.0, std = 0.3 }

[[models]]
name = "g"
kind = "gaussfit"

[[models]]
name = "bad"
kind = "gaussfit"
params = { fail = true }

[[metrics]]
name = "mean_gap"

[[metrics]]
name = "broken"
"""


install()
