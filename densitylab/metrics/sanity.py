"""Sanity checks for sample metrics: a seeded battery every metric goes through.

Each *score* (one number from a metric, e.g. PRDC's recall) is computed between a target
sample ("real") and a manipulated sample ("fake") on 2D Gaussian mixtures (the VEEGAN / PacGAN
ring and grid). Each check compares scores with the score's *noise* (the standard deviation
of the score between independent draws of the target) and returns pass, fail or n/a:

* ``identical``: the score of a set against itself is the ideal value within 3 noise.
* ``independent``: two independent target draws score the ideal value within 3 noise (the
  mean over ``reps`` pairs).
* ``drop_modes``: dropping k of K modes (k = 1, 2, K/2) never improves the score by more than
  1 noise per step and worsens it by more than 3 noise overall (n/a for fidelity scores: the
  remaining samples are all realistic).
* ``invent_modes``: adding K/4 modes the target lacks (at midpoints between modes, 1/(4+1)
  of the mass) is worse by more than 3 noise (n/a for diversity scores: every target mode is
  still covered).
* ``sharp_blurry``: modes 4 times too narrow vs 3 times too wide: fidelity scores prefer the
  sharp set and diversity scores the blurry one (by more than 3 noise); discrepancies call
  both worse than two target draws.
* ``translate``: shifting every sample by 0.5, 2, 6, 16 mode stds never improves the score
  by more than 1 noise per step, and worsens it by more than 3 noise overall.
* ``outliers``: replacing 1 % of the fake sample by points ten times the data's radius away
  moves the score by no more than dropping one whole mode does (or 3 noise); for fidelity
  scores (bounded, blind to dropped modes) by no more than 0.03 + 3 noise.
* ``half_n``: the mean null score at n/2 is within 3 noise of the one at n (sample-size bias).
* ``reweight``: weights 3:1 on two halves of the modes are worse by more than 3 noise for
  discrepancies; fidelity scores stay within 3 noise; n/a for support-based diversity scores.
* ``swap``: an asymmetric score on a mode-dropped fake, in its documented argument order,
  differs from the swapped call in the documented direction by more than 3 noise (n/a for
  symmetric scores).

The data-copying tests (three sets: training, held-out, generated) have their own controls,
:func:`copying_controls` (columns ``copier`` and ``oracle``): a memorising KDE must be flagged,
fresh target samples must not be flagged more often than the test's level.

Run it as :func:`run` or ``densitylab check-metrics --out DIR``. A score failing a check is a
finding (see ``docs/metrics.md``), not something to tune away. Everything is seeded; on one
CPU core the default battery takes a couple of minutes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .. import distributions
from .._runtime import atomic_write_text
from .._validation import check_int
from ..distributions import GaussianMixture
from .c2st import c2st
from .copying import authenticity, data_copying, nn_distance_ratio
from .divergence import kl_knn
from .fidelity import frechet_distance, kid, prdc
from .mmd import mmd
from .modes import mode_coverage
from .transport import energy_distance, sliced_wasserstein

__all__ = ["CHECKS", "CONTROL_CHECKS", "LIMITATIONS", "Score", "CheckResult", "SanityReport",
           "copying_controls", "default_scores", "declared_limitations", "run"]

CHECKS = ("identical", "independent", "drop_modes", "invent_modes", "sharp_blurry",
          "translate", "outliers", "half_n", "reweight", "swap")

#: Controls of the data-copying tests (three sets: training, held-out, generated), run by
#: :func:`copying_controls`: a copier must be flagged, fresh target samples must not.
CONTROL_CHECKS = ("copier", "oracle")

#: A score's role decides what each check expects of it.
ROLES = ("discrepancy", "fidelity", "diversity")

#: Documented limitations, check by check: a score listed under a check is known not to pass
#: it, for the reason given (the findings of ``docs/metrics.md``, measured on the committed
#: table ``docs/metric-checks.md``). A failure there is reported as a documented limitation;
#: any other failure is unexpected and makes ``densitylab check-metrics`` exit non-zero. A
#: score of one's own declares its limitations in :attr:`Score.limitations`.
LIMITATIONS: dict[str, dict[str, str]] = {
    "identical": {
        "mmd": "the unbiased estimator of a set against itself is negative: its cross term "
               "keeps the k(x_i, x_i) = 1 pairs that the within-sample terms drop",
        "mmd_modes": "the unbiased estimator of a set against itself is negative (as for mmd)",
        "kl_modes": "a one-sample score of the fake's mode histogram, biased upwards by about "
                    "(K - 1) / (2 N): identical sets do not give 0",
        "kid": "an unbiased polynomial-kernel MMD: negative for a set against itself, and its "
               "cubic kernel on raw coordinates makes it noisy",
        "c2st": "each held-out point's copy sits in the training folds with the opposite label, "
                "so a set against itself scores below 0.5",
    },
    "independent": {
        "kl_modes": "biased upwards by about (K - 1) / (2 N), as large as its noise",
        "precision": "k-NN balls (k = 5) miss part of the support: two target draws score "
                     "0.96-0.99, not 1",
        "recall": "k-NN balls (k = 5) miss part of the support: two target draws score "
                  "0.96-0.99, not 1",
        "coverage": "k-NN balls (k = 5) miss part of the support: two target draws score "
                    "0.96-0.99, not 1",
        "kid": "a cubic polynomial kernel on raw coordinates: a few large-norm points dominate "
               "it, so its mean over target pairs strays from 0 by more than its noise",
        "sliced_wasserstein": "biased upwards: SW_2^2 between two finite draws is positive "
                              "(about 5 noise on the grid)",
    },
    "drop_modes": {
        "mmd": "not monotone in dropped modes at the median bandwidth: which modes go matters "
               "more than how many",
    },
    "invent_modes": {
        "kl_modes": "counts only samples within 3 std of a target mode: invented modes between "
                    "them leave its histogram almost unchanged",
        "kid": "its noise on raw grid coordinates (cubed) is larger than the effect",
        "frechet": "compares means and covariances only: on the grid invented modes stay under "
                   "3 noise",
    },
    "sharp_blurry": {
        "mmd": "blind to mode width at the median bandwidth (the data's scale, far above the "
               "modes')",
        "mmd_modes": "at bandwidth 0.05 it sees blur but not 4x sharper ring modes",
        "modes_covered_fraction": "every mode stays covered when modes get sharper or "
                                  "blurrier: a count cannot see width",
        "kl_modes": "a width change moves samples into or out of every mode's ball alike, so "
                    "the histogram over modes stays near uniform",
        "kid": "its noise on raw coordinates hides width changes",
        "frechet": "compares means and covariances only: a mode's width changes the covariance "
                   "far less than the spread between modes",
        "c2st": "the MLP (inputs standardised, 2 x 32 units, full-batch) does not resolve mode "
                "widths at 1 % of the data's scale with n = 1,000 (ring: sharp 0.53, blurry "
                "0.56, two target draws 0.49, 3 noise 0.07)",
        "sliced_wasserstein": "1D projections of well-separated modes barely change with the "
                              "modes' width",
        "energy_distance": "distances at the data's scale dominate: 3x blurrier ring modes stay "
                           "within 3 noise",
    },
    "translate": {
        "kid": "its noise on raw coordinates is larger than small shifts, and it is not "
               "monotone in them",
    },
    "outliers": {
        "mmd": "on the grid each far point loses all its kernel mass, so 1 % outliers move it "
               "more than a dropped mode does",
        "kid": "a cubic polynomial kernel: far points dominate it",
        "frechet": "means and covariances are not robust: 1 % far outliers dominate them",
        "sliced_wasserstein": "p = 2 weighs far points quadratically",
        "energy_distance": "far points weigh linearly: on the grid 1 % outliers move it more "
                           "than a dropped mode does",
    },
    "reweight": {
        "kl_knn_target_model": "its noise at n = 1,000 (3 noise of 0.1-0.25 nats) hides a 3:1 "
                               "reweighting (true KL 0.14 nats)",
        "kl_knn_model_target": "its noise at n = 1,000 (3 noise of 0.1-0.25 nats) hides a 3:1 "
                               "reweighting (true KL 0.14 nats)",
    },
}


@dataclass(frozen=True)
class Score:
    """One number a metric produces from ``fn(real, fake, target)``.

    ``role``: ``"discrepancy"`` (lower is better, ``ideal`` when P = Q), ``"fidelity"`` or
    ``"diversity"`` (higher is better, ``ideal`` when P = Q). ``asymmetric``: the argument order
    matters; ``swap_worse`` then says whether, on a fake that lacks modes, the documented order
    gives the worse value of the two orders (KL(target || model), recall, coverage) or the
    better one (KL(model || target), precision, density). ``group``: scores computed by one
    call share it (the call is made once per sample pair).
    """

    name: str
    fn: Callable[..., dict[str, float]]
    group: str
    role: str
    ideal: float
    asymmetric: bool = False
    swap_worse: bool = True
    #: ``{check: reason}``: checks this score is known not to pass (a documented limitation);
    #: the battery's own scores are listed in :data:`LIMITATIONS`.
    limitations: dict[str, str] = field(default_factory=dict, compare=False)

    def limitation(self, check: str) -> str | None:
        """Why this score is known to fail ``check``, or None when it is expected to pass."""
        return self.limitations.get(check) or LIMITATIONS.get(check, {}).get(self.name)

    def badness(self, value: float) -> float:
        """How far ``value`` is on the bad side (larger is worse)."""
        return value - self.ideal if self.role == "discrepancy" else self.ideal - value


def _mmd(bandwidth=None):
    def fn(real, fake, target):
        return {"mmd" if bandwidth is None else "mmd_modes": mmd(fake, real, bandwidth=bandwidth)}
    return fn


def _kl(real, fake, target):
    return {"kl_knn_target_model": kl_knn(real, fake), "kl_knn_model_target": kl_knn(fake, real)}


def _modes(real, fake, target):
    mc = mode_coverage(fake, target)
    out = {"modes_covered_fraction": mc.modes_covered / mc.num_modes,
           "high_quality_fraction": float(mc.high_quality_fraction)}
    out["kl_modes"] = math.inf if mc.kl_to_uniform is None else float(mc.kl_to_uniform)
    return out


def _prdc(real, fake, target):
    return {k: float(v) for k, v in prdc(real, fake).to_dict().items() if k != "k"}


def _kid(real, fake, target):
    n = min(len(real), len(fake))
    return {"kid": float(kid(real, fake, num_subsets=20, subset_size=n // 2).mean)}


def _frechet(real, fake, target):
    return {"frechet": frechet_distance(real, fake)}


def _c2st(real, fake, target):
    return {"c2st": c2st(real, fake).accuracy}


def _sw(real, fake, target):
    return {"sliced_wasserstein": sliced_wasserstein(real, fake)}


def _energy(real, fake, target):
    return {"energy_distance": energy_distance(real, fake)}


#: Expected fraction of a 2D isotropic Gaussian within 3 standard deviations of its mean.
_HQ_IDEAL = 1.0 - math.exp(-4.5)


def default_scores() -> list[Score]:
    """Every sample score the battery checks, with its role and ideal value.

    MMD at the median bandwidth and at the modes' scale (0.05), k-NN KL in both directions, the
    mode-coverage fields (modes covered as a fraction of K, high-quality fraction, KL of the
    mode histogram to uniform), PRDC, KID (polynomial kernel), the Frechet distance of the
    points themselves, C2ST (MLP), sliced Wasserstein and energy distance.
    """
    return [
        Score("mmd", _mmd(), "mmd", "discrepancy", 0.0),
        Score("mmd_modes", _mmd(0.05), "mmd_modes", "discrepancy", 0.0),
        Score("kl_knn_target_model", _kl, "kl_knn", "discrepancy", 0.0, True, True),
        Score("kl_knn_model_target", _kl, "kl_knn", "discrepancy", 0.0, True, False),
        Score("modes_covered_fraction", _modes, "mode_coverage", "diversity", 1.0),
        Score("high_quality_fraction", _modes, "mode_coverage", "fidelity", _HQ_IDEAL),
        Score("kl_modes", _modes, "mode_coverage", "discrepancy", 0.0),
        Score("precision", _prdc, "prdc", "fidelity", 1.0, True, False),
        Score("recall", _prdc, "prdc", "diversity", 1.0, True, True),
        Score("density", _prdc, "prdc", "fidelity", 1.0, True, False),
        Score("coverage", _prdc, "prdc", "diversity", 1.0, True, True),
        Score("kid", _kid, "kid", "discrepancy", 0.0),
        Score("frechet", _frechet, "frechet", "discrepancy", 0.0),
        Score("c2st", _c2st, "c2st", "discrepancy", 0.5),
        Score("sliced_wasserstein", _sw, "sliced_wasserstein", "discrepancy", 0.0),
        Score("energy_distance", _energy, "energy_distance", "discrepancy", 0.0),
    ]


def declared_limitations(scores: Sequence[Score] | None = None) -> dict[tuple[str, str], str]:
    """``{(score, check): reason}`` for every documented limitation of ``scores`` (default:
    :func:`default_scores`)."""
    out = {}
    for sc in default_scores() if scores is None else scores:
        for check in CHECKS:
            why = sc.limitation(check)
            if why:
                out[sc.name, check] = why
    return out


@dataclass(frozen=True)
class CheckResult:
    """One cell of the table: ``status`` is ``"pass"``, ``"fail"`` or ``"n/a"``."""

    target: str
    score: str
    check: str
    status: str
    detail: str
    #: For a ``"fail"``: the documented limitation that explains it ("" when unexpected).
    limitation: str = ""


@dataclass
class SanityReport:
    """The battery's outcome: one :class:`CheckResult` per target x score x check."""

    results: list[CheckResult]
    settings: dict = field(default_factory=dict)

    def status(self, score: str, check: str, target: str | None = None) -> str:
        """The combined status of ``score`` on ``check``: fail if any target fails."""
        cells = [r.status for r in self.results
                 if r.score == score and r.check == check and target in (None, r.target)]
        if "fail" in cells:
            return "fail"
        return "pass" if "pass" in cells else "n/a"

    def unexpected(self) -> list[CheckResult]:
        """The failures no documented limitation explains (a broken metric, or a new finding)."""
        return [r for r in self.results if r.status == "fail" and not r.limitation]

    def documented(self) -> list[CheckResult]:
        """The failures that a documented limitation of the score explains."""
        return [r for r in self.results if r.status == "fail" and r.limitation]

    def cell(self, score: str, check: str) -> str:
        """The table's cell: ``pass``, ``n/a``, ``limitation`` (every failure on a target is a
        documented limitation) or ``FAIL`` (an unexpected failure on some target)."""
        cells = [r for r in self.results if r.score == score and r.check == check]
        if any(r.status == "fail" and not r.limitation for r in cells):
            return "**FAIL**"
        if any(r.status == "fail" for r in cells):
            return "limitation"
        return self.status(score, check)

    def verdict(self) -> list[str]:
        """The verdict as Markdown lines: unexpected failures (each one named) set apart from
        documented limitations."""
        bad, known = self.unexpected(), self.documented()
        cells = len(self.results)
        if bad:
            head = (f"**{len(bad)} unexpected failure(s)** of {cells} cells: a metric broke, or "
                    "a new finding to document (a limitation declared in "
                    "`densitylab.metrics.sanity.LIMITATIONS` with its reason, never a tuned "
                    "threshold). ")
        else:
            head = f"**OK: no unexpected failure** in {cells} cells. "
        lines = [head + f"{len(known)} documented limitation(s): failures that the score's "
                 "documented limitations explain (listed below with their reasons).", ""]
        lines += [f"- unexpected: `{r.score}` / {r.check} / {r.target}: {r.detail}"
                  for r in bad]
        return lines + ([""] if bad else [])

    def to_dict(self) -> dict:
        """JSON-ready: the settings, the verdict's counts and every cell."""
        return {"settings": self.settings,
                "verdict": {"unexpected": len(self.unexpected()),
                            "documented": len(self.documented())},
                "results": [asdict(r) for r in self.results]}

    def to_markdown(self) -> str:
        """The verdict, the pass / limitation / FAIL / n/a table (a score fails a check if it
        fails on any target), then every failure: unexpected ones first, then the documented
        limitations with their reasons."""
        scores = list(dict.fromkeys(r.score for r in self.results))
        checks = [c for c in CHECKS + CONTROL_CHECKS if any(r.check == c for r in self.results)]
        s = self.settings
        lines = ["# Metric sanity checks", "",
                 "Generated by `densitylab check-metrics` (`densitylab.metrics.sanity.run()`); "
                 "do not edit by hand. Definitions of the checks: `densitylab/metrics/sanity.py`;"
                 " what the failures mean: `docs/metrics.md`.", "",
                 f"Targets: {', '.join(s.get('targets', []))}; n = {s.get('n')} per sample, "
                 f"{s.get('reps')} independent null pairs for the noise; seed {s.get('seed')}; "
                 f"{s.get('seconds', 0):.0f} s wall, {s.get('cpu_seconds', 0):.0f} s CPU "
                 f"({s.get('torch_threads')} torch thread(s)).", "",
                 "## Verdict", "", *self.verdict(),
                 "| score | " + " | ".join(checks) + " |",
                 "|---|" + "---|" * len(checks)]
        for sc in scores:
            lines.append(f"| {sc} | " + " | ".join(self.cell(sc, c) for c in checks) + " |")
        lines += ["", "## Unexpected failures", ""]
        lines += [f"- `{r.score}` / {r.check} / {r.target}: {r.detail}"
                  for r in self.unexpected()] or ["None."]
        lines += ["", "## Failures that are documented limitations", ""]
        lines += [f"- `{r.score}` / {r.check} / {r.target}: {r.detail}. Limitation: "
                  f"{r.limitation}" for r in self.documented()] or ["None."]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- samples


def _targets(names: Sequence[str]):
    made = {"ring": lambda: distributions.ring(dtype=torch.float64),
            "grid": lambda: distributions.grid(dtype=torch.float64)}
    for name in names:
        if name not in made:
            raise ValueError(f"unknown target {name!r}; expected 'ring' or 'grid'")
    return {name: made[name]() for name in names}


def _mixture(target, means=None, stds=None, weights=None):
    return GaussianMixture(target.means if means is None else means,
                           target.stds if stds is None else stds,
                           target.weights if weights is None else weights, dtype=torch.float64)


def _order(k: int, seed: int) -> torch.Tensor:
    return torch.randperm(k, generator=torch.Generator().manual_seed(seed))


def _fakes(target, n: int, seed: int) -> dict[str, torch.Tensor]:
    """The manipulated samples of every check, each drawn with its own seed."""
    means, stds, w = target.means, target.stds, target.weights
    k = means.shape[0]
    order = _order(k, seed)
    out = {}
    for i, drop in enumerate(sorted({1, 2, k // 2})):
        keep = torch.ones(k, dtype=torch.bool)
        keep[order[:drop]] = False
        out[f"drop_{drop}"] = _mixture(target, means[keep], stds[keep], w[keep]).sample(
            n, seed=seed + 100 + i)
    # invented modes: midpoints between K/4 modes and their nearest other mode
    d = torch.cdist(means, means).fill_diagonal_(math.inf)
    picks = order[: max(1, k // 4)]
    new = (means[picks] + means[d[picks].argmin(1)]) / 2
    out["invent"] = _mixture(target, torch.cat([means, new]),
                             torch.cat([stds, stds[picks]]),
                             torch.ones(k + len(picks), dtype=torch.float64)).sample(n, seed + 200)
    out["sharp"] = _mixture(target, stds=stds * 0.25).sample(n, seed=seed + 300)
    out["blurry"] = _mixture(target, stds=stds * 3.0).sample(n, seed=seed + 301)
    base = target.sample(n, seed=seed + 400)
    sigma = float(stds.reshape(-1)[0])
    direction = torch.full((means.shape[1],), 1.0 / math.sqrt(means.shape[1]), dtype=base.dtype)
    for c in (0.5, 2.0, 6.0, 16.0):
        out[f"shift_{c:g}"] = base + c * sigma * direction
    far = base.clone()
    m = max(1, n // 100)
    radius = 10.0 * float((means - means.mean(0)).norm(dim=1).max() + 3 * sigma)
    angle = torch.rand(m, generator=torch.Generator().manual_seed(seed + 500)) * 2 * math.pi
    far[:m, 0] = means.mean(0)[0] + radius * torch.cos(angle)
    far[:m, 1] = means.mean(0)[1] + radius * torch.sin(angle)
    out["outliers"] = far
    weights = torch.ones(k, dtype=torch.float64)
    weights[order[: k // 2]] = 3.0
    out["reweight"] = _mixture(target, weights=weights / weights.sum()).sample(n, seed + 600)
    return out


# ---------------------------------------------------------------- evaluation


class _Evaluator:
    """Scores of every group for a (real, fake) pair; a failing call records its error."""

    def __init__(self, scores: list[Score], target):
        self.scores = scores
        self.target = target
        self.groups = {s.group: s.fn for s in scores}

    def __call__(self, real, fake) -> dict[str, float | str]:
        out: dict[str, float | str] = {}
        for group, fn in self.groups.items():
            names = [s.name for s in self.scores if s.group == group]
            try:
                values = fn(real, fake, self.target)
                for nm in names:
                    v = float(values[nm])
                    out[nm] = f"NaN value for {nm}" if math.isnan(v) else v
            except Exception as err:  # a metric that raises fails the check, with its message
                for nm in names:
                    out[nm] = f"{type(err).__name__}: {err}"
        return out


def _sd(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1))


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _monotone(badness: list[float], noise: float) -> bool:
    """Worse overall by more than 3 noise, and no step better by more than 1 noise."""
    steps = zip(badness, badness[1:], strict=False)
    return all(b2 >= b1 - noise for b1, b2 in steps) and badness[-1] - badness[0] > 3 * noise


class _Undefined(Exception):
    """A value a check needs could not be computed."""


def _judge(sc: Score, check: str, vals: dict[str, dict], null: list, half: list,
           noise: float, drops: list[str]) -> tuple[str, str]:
    """Status and detail of one score on one check (see the module docstring)."""
    def v(key):
        value = vals[key][sc.name]
        if isinstance(value, str):  # the metric raised on this sample pair
            raise _Undefined(f"on the {key} sample: {value}")
        return value

    mean0 = sum(null) / len(null)
    tol = 3 * noise
    bad = sc.badness

    def worsens(seq: list[float], what: str) -> tuple[str, str]:
        """Pass when the score gets no better, beyond noise, along ``seq`` (a growing defect)."""
        return ("pass" if _monotone([bad(x) for x in seq], noise) else "fail",
                f"{what}: {', '.join(f'{x:.4g}' for x in seq)}; 3 noise = {tol:.3g}")
    if check == "identical":
        x = v("identical")
        return ("pass" if abs(x - sc.ideal) <= tol else "fail",
                f"score(x, x) = {_fmt(x)}, ideal {sc.ideal:.4g}, 3 noise = {tol:.3g}")
    if check == "independent":
        return ("pass" if abs(mean0 - sc.ideal) <= tol else "fail",
                f"mean over {len(null)} target pairs {mean0:.4g}, ideal {sc.ideal:.4g}, "
                f"3 noise = {tol:.3g}")
    if check == "half_n":
        mh = sum(half) / len(half)
        t = 3 * max(noise, _sd(half))
        return ("pass" if abs(mh - mean0) <= t else "fail",
                f"mean null score at n/2 {mh:.4g} vs at n {mean0:.4g}, 3 noise = {t:.3g}")
    if check == "drop_modes":
        if sc.role == "fidelity":
            return "n/a", "fidelity: the remaining samples are all realistic"
        return worsens([mean0] + [v(d) for d in drops],
                       f"scores for k = 0, {', '.join(d[5:] for d in drops)} dropped")
    if check == "invent_modes":
        if sc.role == "diversity":
            return "n/a", "diversity: every target mode is still covered"
        x = v("invent")
        return ("pass" if bad(x) - bad(mean0) > tol else "fail",
                f"invented modes {x:.4g} vs null {mean0:.4g}; 3 noise = {tol:.3g}")
    if check == "sharp_blurry":
        s_, b_ = v("sharp"), v("blurry")
        if sc.role == "fidelity":
            ok = s_ - b_ > tol
        elif sc.role == "diversity":
            ok = b_ - s_ > tol
        else:
            ok = min(bad(s_), bad(b_)) - bad(mean0) > tol
        return ("pass" if ok else "fail",
                f"sharp {s_:.4g}, blurry {b_:.4g}, null {mean0:.4g}; 3 noise = {tol:.3g}")
    if check == "translate":
        return worsens([mean0] + [v(f"shift_{c:g}") for c in (0.5, 2.0, 6.0, 16.0)],
                       "shifts 0, 0.5, 2, 6, 16 stds")
    if check == "outliers":
        x = v("outliers")
        delta = abs(x - mean0)
        if sc.role == "fidelity":
            limit, why = 0.03 + tol, "0.03 + 3 noise"
        else:
            limit = max(abs(v(drops[0]) - mean0), tol)
            why = "max(|change for 1 dropped mode|, 3 noise)"
        return ("pass" if delta <= limit else "fail",
                f"1 % far outliers move it by {delta:.4g} (to {x:.4g}); limit {why} = {limit:.3g}")
    if check == "reweight":
        x = v("reweight")
        if sc.role == "diversity":
            return "n/a", "support-based diversity: mode weights are invisible by design"
        if sc.role == "fidelity":
            return ("pass" if abs(x - mean0) <= tol else "fail",
                    f"reweighted {x:.4g} vs null {mean0:.4g}; fidelity should stay, "
                    f"3 noise = {tol:.3g}")
        return ("pass" if bad(x) - bad(mean0) > tol else "fail",
                f"reweighted {x:.4g} vs null {mean0:.4g}; 3 noise = {tol:.3g}")
    # swap
    if not sc.asymmetric:
        return "n/a", "symmetric in its arguments"
    x, y = v(drops[-1]), vals["swapped"][sc.name]
    diff = bad(x) - bad(y)
    ok = diff > tol if sc.swap_worse else -diff > tol
    word = "worse" if sc.swap_worse else "better"
    return ("pass" if ok else "fail",
            f"mode-dropped fake: documented order {x:.4g}, swapped {y:.4g}; expected the "
            f"documented order {word} by > 3 noise = {tol:.3g}")


def _copier(train: torch.Tensor, m: int, bandwidth: float, seed: int) -> torch.Tensor:
    """``m`` draws of a Gaussian kernel density estimate of ``train`` (a memorising model)."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, train.shape[0], (m,), generator=gen)
    noise = torch.randn(m, train.shape[1], generator=gen, dtype=train.dtype)
    return train[idx] + bandwidth * noise


def _copying_pvalues(train, held, gen) -> dict[str, float]:
    return {"data_copying": data_copying(train, held, gen, num_cells=5).pvalue,
            "authenticity": authenticity(train, held, gen).pvalue,
            "nn_distance_ratio": nn_distance_ratio(train, held, gen).pvalue}


def copying_controls(targets: Sequence[str] = ("ring", "grid"), *, n: int = 500,
                     null_reps: int = 200, alpha: float = 0.05, seed: int = 0
                     ) -> list[CheckResult]:
    """Positive and negative controls of the data-copying tests (:mod:`.copying`).

    * ``copier``: a KDE of the ``n``-point training set with a bandwidth of 1/100 of the modes'
      std (a model that memorised it) must be flagged at p < 0.01 by each test.
    * ``oracle``: over ``null_reps`` repeats with fresh training, held-out and "generated"
      target draws (a model that does not copy), each test's rejection rate at ``alpha`` must
      not be significantly above ``alpha`` (one-sided binomial p >= 0.01; with 200 repeats: at
      most 18 rejections). A bound of exactly ``alpha`` would fail a test of exact level about
      4 times in 10 from binomial noise alone, so it is not the criterion; the rate is in the
      detail.
    """
    from scipy.stats import binom

    results = []
    for t_i, (tname, target) in enumerate(_targets(targets).items()):
        base = seed * 1000 + t_i * 10_000 + 7_000
        train = target.sample(n, seed=base)
        held = target.sample(n, seed=base + 1)
        bandwidth = 0.01 * float(target.stds.min())
        copied = _copying_pvalues(train, held, _copier(train, n, bandwidth, base + 2))
        for name, p in copied.items():
            results.append(CheckResult(tname, name, "copier", "pass" if p < 0.01 else "fail",
                                       f"KDE of the training set, bandwidth {bandwidth:.2g}: "
                                       f"p = {p:.3g} (must be < 0.01)"))
        counts = dict.fromkeys(copied, 0)
        for r in range(null_reps):
            s = base + 100 + 3 * r
            pvals = _copying_pvalues(target.sample(n, seed=s), target.sample(n, seed=s + 1),
                                     target.sample(n, seed=s + 2))
            for name, p in pvals.items():
                counts[name] += p <= alpha
        for name, count in counts.items():
            tail = float(binom.sf(count - 1, null_reps, alpha))
            results.append(CheckResult(
                tname, name, "oracle", "pass" if tail >= 0.01 else "fail",
                f"fresh target samples rejected {count} of {null_reps} times at alpha {alpha:g} "
                f"({count / null_reps:.1%}; binomial tail p = {tail:.3g}, must be >= 0.01)"))
    return results


def run(out: str | Path | None = None, *, scores: list[Score] | None = None,
        targets: Sequence[str] = ("ring", "grid"), n: int = 1000, reps: int = 5, seed: int = 0,
        checks: Sequence[str] = CHECKS, controls: bool | None = None) -> SanityReport:
    """Run the battery and return a :class:`SanityReport`.

    ``out``: a folder that receives ``metric-checks.md`` (the table) and ``metric-checks.json``.
    ``scores``: the scores to check (default :func:`default_scores`); ``targets``: ``"ring"``
    and/or ``"grid"`` (the VEEGAN / PacGAN mixtures); ``n``: points per sample; ``reps``:
    independent target pairs that measure each score's noise; ``checks``: a subset of
    :data:`CHECKS`; ``controls``: add :func:`copying_controls` (None: with the default scores
    only). Seeded: the same arguments give the same table on CPU.
    """
    n = check_int(n, "n", minimum=20)
    reps = check_int(reps, "reps", minimum=2)
    for c in checks:
        if c not in CHECKS:
            raise ValueError(f"unknown check {c!r}; expected some of {', '.join(CHECKS)}")
    scores_given = scores
    scores = default_scores() if scores is None else list(scores)
    start, cpu = time.perf_counter(), time.process_time()
    results: list[CheckResult] = []
    for t_i, (tname, target) in enumerate(_targets(targets).items()):
        base = seed * 1000 + t_i * 10_000
        evaluate = _Evaluator(scores, target)
        real = target.sample(n, seed=base)
        null = [evaluate(target.sample(n, seed=base + 1 + 2 * r),
                         target.sample(n, seed=base + 2 + 2 * r)) for r in range(reps)]
        half = []
        if "half_n" in checks:
            half = [evaluate(target.sample(n // 2, seed=base + 50 + 2 * r),
                             target.sample(n // 2, seed=base + 51 + 2 * r)) for r in range(reps)]
        fakes = _fakes(target, n, base + 1000)
        drops = sorted((k for k in fakes if k.startswith("drop_")), key=lambda s: int(s[5:]))
        needed = set()
        wanted = {"identical": [], "drop_modes": drops, "invent_modes": ["invent"],
                  "sharp_blurry": ["sharp", "blurry"], "outliers": ["outliers", drops[0]],
                  "translate": [k for k in fakes if k.startswith("shift_")],
                  "reweight": ["reweight"], "swap": [drops[-1]]}
        for c in checks:
            needed.update(wanted.get(c, []))
        vals = {key: evaluate(real, fakes[key]) for key in sorted(needed)}
        if "identical" in checks:
            vals["identical"] = evaluate(real, real.clone())
        if "swap" in checks:
            vals["swapped"] = evaluate(fakes[drops[-1]], real)
        for sc in scores:
            nulls = [p[sc.name] for p in null]
            halves = [p[sc.name] for p in half]
            errors = [x for x in nulls + halves if isinstance(x, str)]
            for c in checks:
                if errors:  # no noise level without the null scores
                    results.append(CheckResult(tname, sc.name, c, "fail",
                                               f"on target draws: {errors[0]}"))
                    continue
                try:
                    status, detail = _judge(sc, c, vals, nulls, halves, _sd(nulls), drops)
                    known = (sc.limitation(c) or "") if status == "fail" else ""
                except _Undefined as err:  # a metric that raises is never a known limitation
                    status, detail, known = "fail", str(err), ""
                results.append(CheckResult(tname, sc.name, c, status, detail, known))
    if controls or (controls is None and scores_given is None):
        results += copying_controls(targets, seed=seed)
    settings = {"targets": list(targets), "n": n, "reps": reps, "seed": seed,
                "seconds": time.perf_counter() - start,
                "cpu_seconds": time.process_time() - cpu, "torch_threads": torch.get_num_threads()}
    report = SanityReport(results, settings)
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "metric-checks.md", report.to_markdown())
        atomic_write_text(folder / "metric-checks.json", json.dumps(report.to_dict(), indent=1))
    return report
