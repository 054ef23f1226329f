"""Published results on the synthetic 2D protocol, to set beside ours when the protocol matches,
and the published stacked-MNIST mode counts, to set beside our stacked digits for context.

Sources:

* VEEGAN: A. Srivastava, L. Valkov, C. Russell, M. U. Gutmann, C. Sutton, "VEEGAN: Reducing
  Mode Collapse in GANs using Implicit Variational Learning", NIPS 2017, Table 1 (modes captured
  and % high-quality samples; 5 trials).
* PacGAN: Z. Lin, A. Khetan, G. Fanti, S. Oh, "PacGAN: The power of two samples in generative
  adversarial networks", NeurIPS 2018, Table 1 (modes, % high-quality, reverse KL of the mode
  histogram, mean +- standard error over 10 trials).

Protocol (both papers): ring of 8 Gaussians (radius 1, std 0.01), grid of 25 on
{-4, -2, 0, 2, 4}^2 (std 0.05); 2,500 generated samples; a sample is high quality when within 3
standard deviations of its nearest mode; a mode is covered by at least one high-quality sample.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from ..metrics.modes import HIGH_QUALITY_STDS
from ..results.records import RunRecord

__all__ = ["PublishedRow", "PUBLISHED", "CITATIONS", "protocol_of", "published_for",
           "PublishedSetup", "published_setup", "PublishedCell", "published_check",
           "check_records", "format_check",
           "PUBLISHED_TRAINING_SAMPLES", "training_samples", "budget_mismatch",
           "StackedRow", "STACKED_MNIST", "STACKED_CITATIONS", "STACKED_PROTOCOL_SAMPLES"]

CITATIONS = {
    "VEEGAN": "Srivastava et al., \"VEEGAN: Reducing Mode Collapse in GANs using Implicit "
              "Variational Learning\", NIPS 2017, Table 1",
    "PacGAN": "Lin et al., \"PacGAN: The power of two samples in generative adversarial "
              "networks\", NeurIPS 2018, Table 1",
}

NAN = math.nan


@dataclass(frozen=True)
class PublishedRow:
    """One published model on one protocol dataset; ``*_se`` is NaN where none was reported."""

    source: str
    model: str
    dataset: str  # "ring" or "grid"
    modes: float
    modes_se: float
    high_quality_pct: float
    high_quality_pct_se: float
    kl_modes: float = NAN
    kl_modes_se: float = NAN


def _pacgan_row(model, dataset, m, mse, hq, hqse, kl, klse):
    """A row of PacGAN's Table 1: modes, high-quality % and mode KL, each with its s.e."""
    return PublishedRow("PacGAN", model, dataset, m, mse, hq, hqse, kl, klse)


def _veegan_row(model, dataset, m, hq):
    """A row of VEEGAN's Table 1: modes and high-quality %, reported without s.e."""
    return PublishedRow("VEEGAN", model, dataset, m, NAN, hq, NAN)


PUBLISHED: tuple[PublishedRow, ...] = (
    _veegan_row("GAN", "ring", 1, 99.3), _veegan_row("GAN", "grid", 3.3, 0.5),
    _veegan_row("ALI", "ring", 2.8, 0.13), _veegan_row("ALI", "grid", 15.8, 1.6),
    _veegan_row("Unrolled GAN", "ring", 7.6, 35.6), _veegan_row("Unrolled GAN", "grid", 23.6, 16),
    _veegan_row("VEEGAN", "ring", 8, 52.9), _veegan_row("VEEGAN", "grid", 24.6, 40),
    _pacgan_row("GAN", "ring", 6.3, 0.5, 98.2, 0.2, 0.45, 0.09),
    _pacgan_row("GAN", "grid", 17.3, 0.8, 94.8, 0.7, 0.70, 0.07),
    _pacgan_row("ALI", "ring", 6.6, 0.3, 97.6, 0.4, 0.36, 0.04),
    _pacgan_row("ALI", "grid", 24.1, 0.4, 95.7, 0.6, 0.14, 0.03),
    _pacgan_row("PacGAN2", "ring", 7.9, 0.1, 95.6, 2.0, 0.07, 0.03),
    _pacgan_row("PacGAN2", "grid", 23.8, 0.7, 91.3, 0.8, 0.13, 0.04),
    _pacgan_row("PacGAN3", "ring", 7.8, 0.1, 97.7, 0.3, 0.10, 0.02),
    _pacgan_row("PacGAN3", "grid", 24.6, 0.4, 94.2, 0.4, 0.06, 0.02),
    _pacgan_row("PacGAN4", "ring", 7.8, 0.1, 95.9, 1.4, 0.07, 0.02),
    _pacgan_row("PacGAN4", "grid", 24.8, 0.2, 93.6, 0.6, 0.04, 0.01),
)

_RING = {"n_modes": 8, "radius": 1.0, "std": 0.01}
_GRID = {"side": 5, "spacing": 2.0, "std": 0.05}


def protocol_of(config: dict[str, Any]) -> str | None:
    """``"ring"`` or ``"grid"`` when a run's resolved config follows the published protocol.

    That is: the dataset is the protocol's ring or grid (defaults filled in), 2,500 evaluation
    samples, and a ``mode_coverage`` metric with threshold 3 and min_count 1. Otherwise None.
    """
    ds = config.get("dataset", {})
    name = ds.get("name")
    if name not in ("ring", "grid") or config.get("eval_samples") != 2500:
        return None
    wanted = _RING if name == "ring" else _GRID
    params = {**wanted, **ds.get("params", {})}
    if any(not math.isclose(float(params[k]), float(v)) for k, v in wanted.items()):
        return None
    if set(params) != set(wanted):
        return None
    for m in config.get("metrics", []):
        if m.get("name") == "mode_coverage":
            p = m.get("params", {})
            threshold = float(p.get("threshold", HIGH_QUALITY_STDS))
            if threshold == HIGH_QUALITY_STDS and int(p.get("min_count", 1)) == 1:
                return name
    return None


#: Training samples behind the published 2D numbers: PacGAN trains 400 epochs over a training
#: set of 100,000 samples (the authors' config.py), i.e. 40 million samples seen per model.
PUBLISHED_TRAINING_SAMPLES = 400 * 100_000


def training_samples(config: dict[str, Any]) -> int:
    """Samples a run's training saw: ``steps * batch_size`` of its resolved ``train``."""
    train = config.get("train", {})
    return int(train.get("steps", 0)) * int(train.get("batch_size", 0))


def budget_mismatch(configs: list[dict[str, Any]]) -> str | None:
    """None when every run trained on at least the published budget
    (:data:`PUBLISHED_TRAINING_SAMPLES`), else why its numbers cannot be set beside ours."""
    least = min(training_samples(c) for c in configs)
    if least >= PUBLISHED_TRAINING_SAMPLES:
        return None
    same = [published_setup(c.get("model", {}), c.get("train", {})) is not None for c in configs]
    architectures = ("with the published architecture" if all(same) else
                     "with other architectures" if not any(same) else
                     "some with other architectures")
    return (f"these runs trained on {least:,} samples (steps x batch size) or more, "
            f"{100 * least / PUBLISHED_TRAINING_SAMPLES:.2g}% of the "
            f"{PUBLISHED_TRAINING_SAMPLES:,} behind the published numbers (PacGAN: 400 epochs "
            f"of 100,000 samples), {architectures}")


def published_for(dataset: str) -> list[PublishedRow]:
    """The published rows for ``"ring"`` or ``"grid"``."""
    return [r for r in PUBLISHED if r.dataset == dataset]


# ---------------------------------------------------------------- the published setup as a check

#: PacGAN's published 2D architecture (the ``pacgan2d`` preset), key by key as a resolved config.
_PACGAN2D_ARCH = {"latent_dim": 2, "g_hidden": [400] * 4, "d_hidden": [200] * 3,
                  "g_norm": "batch", "d_activation": "maxout", "maxout_pieces": 5,
                  "betas": [0.8, 0.999], "init_std": 0.02, "loss": "non_saturating"}
#: The published budget: lr 1e-4, 100 packed examples a step, 100,000 points, 400 epochs.
_PACGAN2D_BUDGET = {"lr": 1e-4, "train_size": 100_000, "steps": 400_000}
#: Headline metrics of PacGAN's Table 1: (our value name, published field, scale to ours).
_CHECKED = (("modes_covered", "modes", 1.0), ("high_quality_fraction", "high_quality_pct", 100.0),
            ("kl_modes", "kl_modes", 1.0))


@dataclass(frozen=True)
class PublishedSetup:
    """A run's model matched to a published row: ``model`` is the row's name (``"PacGAN2"``);
    ``budget_matches`` tells whether training followed the published budget, and ``budget``
    says how it differs when it does not."""

    model: str
    budget_matches: bool
    budget: str


def published_setup(model: dict[str, Any], train: dict[str, Any]) -> PublishedSetup | None:
    """The PacGAN Table 1 row a run's resolved model and train configs follow, or None.

    A run matches when its model is a GAN with PacGAN's published 2D architecture (the
    ``pacgan2d`` preset: 4 x 400 batch-norm generator, 3 x 200 maxout discriminator with 5 pieces,
    N(0, 0.02^2) weights, Adam betas (0.8, 0.999)); packing degree m names the row (``"GAN"`` for
    m = 1, ``"PacGAN<m>"`` otherwise). The budget matches at lr 1e-4, a fixed set of 100,000
    points and 400,000 steps (400 epochs of 1,000 steps).
    """
    if model.get("kind") != "gan":
        return None
    params = model.get("params", {})
    for key, value in _PACGAN2D_ARCH.items():
        got = params.get(key)
        if isinstance(value, list):
            if got is None or [float(v) for v in got] != [float(v) for v in value]:
                return None
        elif isinstance(value, float):
            if got is None or not math.isclose(float(got), value):
                return None
        elif got != value:
            return None
    pack = int(params.get("pack", 1))
    name = "GAN" if pack == 1 else f"PacGAN{pack}"
    differs = []
    for key, value in _PACGAN2D_BUDGET.items():
        got = train.get(key)
        if got is None or not math.isclose(float(got), float(value)):
            differs.append(f"{key} {got if got is not None else 'unset'} (published {value:g})")
    return PublishedSetup(name, not differs, "; ".join(differs) or "as published")


@dataclass(frozen=True)
class PublishedCell:
    """One published cell beside ours: ``difference = ours - published`` and its combined
    standard error ``sqrt(ours_se^2 + published_se^2)``; ``within`` is True when
    ``|difference| <= 2 combined_se`` (None when a standard error is missing)."""

    dataset: str
    model: str
    published_model: str
    metric: str
    ours: float
    ours_se: float
    n: int
    published: float
    published_se: float
    difference: float
    combined_se: float
    within: bool | None
    budget: str = "as published"  # how the run's training differed from the published budget


def published_check(summary, setups: dict[str, PublishedSetup],
                    protocols: dict[str, str]) -> list[PublishedCell]:
    """Our mean +- s.e. over seeds against every PacGAN Table 1 cell our runs follow.

    ``summary`` has columns ``dataset, model, metric, mean, se, n`` (one row per cell; ``se`` is
    the sample standard deviation over seeds / sqrt(n), as PacGAN reports); ``setups`` maps our
    model names to :func:`published_setup`; ``protocols`` maps our dataset labels to
    :func:`protocol_of` (``"ring"`` or ``"grid"``; datasets off the protocol are left out).
    High-quality fractions are compared in percent.
    A cell is "within" when the difference is at most twice the combined standard error.
    """
    cells: list[PublishedCell] = []
    for row in PUBLISHED:
        if row.source != "PacGAN":
            continue
        labels = [label for label, protocol in protocols.items() if protocol == row.dataset]
        for label, (ours_name, setup) in itertools.product(labels, setups.items()):
            if setup.model != row.model:
                continue
            for metric, field_name, scale in _CHECKED:
                hit = summary[(summary["dataset"] == label) & (summary["model"] == ours_name)
                              & (summary["metric"] == metric)]
                if hit.empty:
                    continue
                mean = float(hit.iloc[0]["mean"]) * scale
                se = float(hit.iloc[0]["se"]) * scale
                pub = float(getattr(row, field_name))
                pub_se = float(getattr(row, field_name + "_se"))
                combined = math.sqrt(se**2 + pub_se**2)
                diff = mean - pub
                within = None if not math.isfinite(combined) else abs(diff) <= 2 * combined
                cells.append(PublishedCell(label, ours_name, row.model, metric, mean, se,
                                           int(hit.iloc[0]["n"]), pub, pub_se, diff, combined,
                                           within, setup.budget))
    return cells


def check_records(records: list[RunRecord], summary) -> list[PublishedCell]:
    """:func:`published_check` for a suite's run records: the datasets on the published protocol
    (:func:`protocol_of`) and the models with PacGAN's published setup (:func:`published_setup`),
    scored from ``summary`` (:func:`densitylab.report.table.summarize` of the same runs)."""
    protocols: dict[str, str] = {}
    setups: dict[str, PublishedSetup] = {}
    for rec in records:
        protocol = protocol_of(rec.config)
        if protocol is None:
            continue
        setup = published_setup(rec.model_config, rec.train)
        if setup is not None:
            protocols[str(rec.dataset)] = protocol
            setups[str(rec.model)] = setup
    return published_check(summary, setups, protocols) if setups else []


def format_check(cells: list[PublishedCell]) -> str:
    """One line: how many published cells our runs reproduce within 2 combined s.e."""
    judged = [c for c in cells if c.within is not None]
    within = sum(bool(c.within) for c in judged)
    return (f"published PacGAN Table 1 cells within 2 combined s.e.: {within} of {len(judged)}"
            + (f" ({len(cells) - len(judged)} without a standard error)"
               if len(judged) < len(cells) else ""))


# ---------------------------------------------------------------- stacked MNIST

STACKED_CITATIONS = {
    "VEEGAN": "Srivastava et al., \"VEEGAN: Reducing Mode Collapse in GANs using Implicit "
              "Variational Learning\", NIPS 2017, Table 2",
    "PacGAN": "Lin et al., \"PacGAN: The power of two samples in generative adversarial "
              "networks\", NeurIPS 2018",
}

#: Generated samples per evaluation in the stacked-MNIST protocol of VEEGAN and PacGAN.
STACKED_PROTOCOL_SAMPLES = 26_000


@dataclass(frozen=True)
class StackedRow:
    """One published model on stacked MNIST (three 28x28 MNIST digits as channels, 1,000 modes):
    modes covered and KL of the mode histogram to uniform; ``*_se`` NaN where none was given."""

    source: str
    model: str
    modes: float
    modes_se: float
    kl_modes: float
    kl_modes_se: float


STACKED_MNIST: tuple[StackedRow, ...] = (
    StackedRow("VEEGAN", "DCGAN", 99, NAN, 3.4, NAN),
    StackedRow("VEEGAN", "ALI", 16, NAN, 5.4, NAN),
    StackedRow("VEEGAN", "Unrolled GAN", 48.7, NAN, 4.32, NAN),
    StackedRow("VEEGAN", "VEEGAN", 150, NAN, 2.95, NAN),
    StackedRow("PacGAN", "DCGAN", 78.9, 6.46, 4.50, 0.127),
    StackedRow("PacGAN", "PacDCGAN2", 1000, NAN, 0.06, NAN),
)
