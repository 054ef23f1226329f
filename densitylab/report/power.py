"""What a seed count can decide: the smallest p-value a design allows after the suite's
correction, and the seeds needed for 80 % power at stated effects (``densitylab plan``, the
warning of ``densitylab run --dry-run``, and the section "What these seeds can decide" of every
report).

Two kinds of comparison, as the report tests them (:mod:`densitylab.report.inference`):

* a metric value between two models: the exact permutation test on the difference of means
  (:func:`densitylab.stats.permutation_test`); Holm's correction over the primary family of
  ``m`` tests. No adjusted p-value can be below ``m`` times the smallest raw one (Holm's first
  step), so a design whose smallest p times ``m`` exceeds alpha can never reject. Power is for
  a shift of :data:`EFFECT_SD` seed standard deviations, by the two-sample t-test's power at
  level ``alpha / m`` (:func:`densitylab.stats.t_test_power`, noncentral t, an approximation to
  the permutation test's; set to 0 where the permutation test cannot reach that level);
* failure counts between two models: Fisher's exact test, its own family under Holm; power
  against failure rates :data:`FAILURE_RATES` (20 % against 0 %), exact by enumerating the
  binomial outcomes (:func:`densitylab.stats.fisher_power`) at level ``alpha / m``.

``alpha / m`` is the level the first rejection of Holm's procedure needs (Bonferroni's level):
the power it gives is that of a comparison when it is the only real difference in its family,
a lower bound otherwise.
"""

from __future__ import annotations

import functools
import itertools
import math
import textwrap
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .. import stats
from ..suite import registry
from ..suite.references import is_reference
from .inference import ALPHA
from .primary import primary_for, suite_values

__all__ = ["EFFECT_SD", "FAILURE_RATES", "TARGET_POWER", "ShiftDesign", "FailureDesign",
           "shift_design", "failure_design", "SuitePlan", "plan_suite", "format_plan",
           "dry_run_warning", "report_power_lines", "shift_sentence", "failure_sentence"]

#: The shift of a value between two models that the power is stated for, in seed standard
#: deviations (the spread of the value over one model's seeds).
EFFECT_SD = 1.0
#: The failure rates (of seeds) that Fisher's power is stated for: 20 % against 0 %.
FAILURE_RATES = (0.2, 0.0)
#: The power the seed counts are planned for.
TARGET_POWER = 0.8
_MAX_SEEDS = 500  # the search for a seed count stops here


@dataclass(frozen=True)
class ShiftDesign:
    """What ``n_a`` against ``n_b`` seeds can decide about one value, in a family of
    ``family`` tests under Holm's correction at ``alpha``."""

    n_a: int
    n_b: int
    family: int
    alpha: float
    min_p: float  # the smallest permutation p-value
    min_p_adjusted: float  # min(1, family * min_p): no Holm-adjusted p can be smaller
    seeds_to_reach: int | None  # fewest seeds per side whose smallest adjusted p is <= alpha
    power: float  # power against a shift of EFFECT_SD at alpha / family (t approximation)
    seeds_for_power: int | None  # fewest seeds per side with power >= TARGET_POWER

    @property
    def can_reject(self) -> bool:
        """Whether any outcome of the seeds could hold after the correction."""
        return self.min_p_adjusted <= self.alpha


@dataclass(frozen=True)
class FailureDesign:
    """What ``n_a`` against ``n_b`` seeds can decide about failure counts (Fisher), in a
    family of ``family`` tests under Holm's correction at ``alpha``."""

    n_a: int
    n_b: int
    family: int
    alpha: float
    min_p: float  # Fisher's p of the extreme table (all of one side fail, none of the other)
    min_p_adjusted: float
    seeds_to_reach: int | None
    power: float  # exact power against FAILURE_RATES at alpha / family
    seeds_for_power: int | None

    @property
    def can_reject(self) -> bool:
        """Whether any outcome of the seeds could hold after the correction."""
        return self.min_p_adjusted <= self.alpha


def _first(predicate, start: int = 2) -> int | None:
    return next((n for n in range(start, _MAX_SEEDS + 1) if predicate(n)), None)


@functools.lru_cache(maxsize=256)
def shift_design(n_a: int, n_b: int, family: int, alpha: float = ALPHA,
                 effect: float = EFFECT_SD) -> ShiftDesign:
    """The permutation test's design numbers (see the module docstring)."""
    family = max(1, int(family))
    level = alpha / family

    def power(n_a: int, n_b: int) -> float:
        if min(n_a, n_b) < 2 or stats.min_permutation_pvalue(n_a, n_b) > level:
            return 0.0
        return stats.t_test_power(n_a, n_b, effect, alpha=level)

    min_p = stats.min_permutation_pvalue(n_a, n_b)
    return ShiftDesign(
        n_a, n_b, family, alpha, min_p, min(1.0, family * min_p),
        _first(lambda n: family * stats.min_permutation_pvalue(n, n) <= alpha, 1),
        power(n_a, n_b), _first(lambda n: power(n, n) >= TARGET_POWER))


@functools.lru_cache(maxsize=256)
def failure_design(n_a: int, n_b: int, family: int, alpha: float = ALPHA,
                   rates: tuple[float, float] = FAILURE_RATES) -> FailureDesign:
    """Fisher's test's design numbers (see the module docstring)."""
    family = max(1, int(family))
    level = alpha / family
    min_p = stats.min_fisher_pvalue(n_a, n_b)
    return FailureDesign(
        n_a, n_b, family, alpha, min_p, min(1.0, family * min_p),
        _first(lambda n: family * stats.min_fisher_pvalue(n, n) <= alpha, 1),
        stats.fisher_power(n_a, n_b, *rates, alpha=level),
        _first(lambda n: stats.fisher_power(n, n, *rates, alpha=level) >= TARGET_POWER))


# ---------------------------------------------------------------- sentences


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _seeds(n: int | None) -> str:
    return f"{n}" if n is not None else f"more than {_MAX_SEEDS}"


def _min_p_text(d: ShiftDesign) -> str:
    total = math.comb(d.n_a + d.n_b, d.n_a)
    if total > stats.MAX_EXACT:
        return (f"{_p(d.min_p)} (the Monte Carlo floor 1 / ({stats.NUM_RESAMPLES:,} + 1): "
                f"{total:,} relabellings are more than the {stats.MAX_EXACT:,} enumerated)")
    ties = 2 if d.n_a == d.n_b else 1
    return f"{ties} / C({d.n_a + d.n_b}, {d.n_a}) = {_p(d.min_p)} (exact permutation test)"


def shift_sentence(d: ShiftDesign) -> str:
    """One comparison's design, in words."""
    after = (f"{_p(d.min_p_adjusted)} after Holm over {d.family} test"
             f"{'s' if d.family > 1 else ''}")
    head = (f"{d.n_a} against {d.n_b} seeds: the smallest p-value is {_min_p_text(d)}, "
            f"{after}. ")
    if d.can_reject:
        head += f"It can reach {d.alpha:g}. "
    else:
        head += (f"**It cannot reach {d.alpha:g}: no difference can hold with these seeds, "
                 f"whatever the models do**; {_seeds(d.seeds_to_reach)} seeds a side would let "
                 f"the smallest p reach {d.alpha:g}. ")
    return head + (
        f"Power against a shift of {EFFECT_SD:g} seed standard deviation: "
        f"{100 * d.power:.0f} %; {_seeds(d.seeds_for_power)} seeds a side give "
        f"{100 * TARGET_POWER:.0f} % (two-sample t-test approximation at {d.alpha:g} / "
        f"{d.family}).")


def failure_sentence(d: FailureDesign) -> str:
    """The failure-count design, in words."""
    head = (f"{d.n_a} against {d.n_b} seeds: the smallest Fisher p-value is {_p(d.min_p)} "
            f"({d.n_a} of {d.n_a} failing against 0 of {d.n_b}), {_p(d.min_p_adjusted)} after "
            f"Holm over {d.family} test{'s' if d.family > 1 else ''}. ")
    if d.can_reject:
        head += f"It can reach {d.alpha:g}. "
    else:
        head += (f"**It cannot reach {d.alpha:g}: no difference in failure counts can hold "
                 f"with these seeds**; {_seeds(d.seeds_to_reach)} seeds a side would let the "
                 f"smallest p reach {d.alpha:g}. ")
    a, b = FAILURE_RATES
    return head + (
        f"Power against failure rates of {100 * a:.0f} % and {100 * b:.0f} %: "
        f"{100 * d.power:.1f} %; {_seeds(d.seeds_for_power)} seeds a side give "
        f"{100 * TARGET_POWER:.0f} % (exact, by enumerating the binomial outcomes, at "
        f"{d.alpha:g} / {d.family}).")


# ---------------------------------------------------------------- a suite before it runs


@dataclass(frozen=True)
class SuitePlan:
    """What a suite's design can decide, before it runs."""

    suite: str
    seeds: int
    alpha: float
    declared: tuple[str, ...] | None  # the suite's ``primary``, None for the defaults
    #: (dataset, primary values, model pairs) per dataset
    datasets: tuple[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]], ...]
    shift: ShiftDesign | None  # None when no pair of models can be compared
    failures: FailureDesign | None
    failure_family: int

    @property
    def family(self) -> int:
        """Tests in the primary family."""
        return sum(len(values) * len(pairs) for _, values, pairs in self.datasets)


def _dataset_values(entry: dict[str, Any], metrics) -> tuple[tuple[str, ...], bool]:
    """The values the suite's metrics produce on a dataset, and whether it has known modes."""
    target = registry.make_dataset(entry["name"], dict(entry["params"]))
    shape = getattr(target, "data_shape", None)
    image = shape is not None and len(tuple(shape)) > 1
    mixture = hasattr(target, "means") and hasattr(target, "stds")
    applies = {"mode_coverage": mixture, "feature_metrics": image,
               "stacked_modes": image and tuple(shape)[0] == 3}
    kept = [m for m in metrics if applies.get(m["name"], True)]
    return suite_values(kept), mixture


def plan_suite(config, alpha: float = ALPHA) -> SuitePlan:
    """The design of a :class:`~densitylab.suite.SuiteConfig`: per dataset its primary values
    and the pairs of (non-reference) models, the primary family's size, and what its seed
    count can decide (:func:`shift_design`, :func:`failure_design`). The failure family is
    taken as two counts per pair and dataset with modes (failed runs, seeds missing a mode),
    one elsewhere; a report tests only the pairs with a failure, so its family may be smaller.
    """
    models = [m["label"] for m in config.models if not is_reference(m.get("kind"))]
    pairs = tuple(itertools.combinations(models, 2))
    datasets, failure_family = [], 0
    for entry in config.datasets:
        values, mixture = _dataset_values(entry, config.metrics)
        datasets.append((entry["label"], primary_for(values, config.primary), pairs))
        failure_family += len(pairs) * (2 if mixture else 1)
    n = len(config.seeds)
    plan = SuitePlan(config.name, n, alpha, config.primary, tuple(datasets), None, None,
                     failure_family)
    if not pairs:
        return plan
    shift = shift_design(n, n, plan.family, alpha) if plan.family else None
    failures = failure_design(n, n, failure_family, alpha) if failure_family else None
    return SuitePlan(config.name, n, alpha, config.primary, tuple(datasets), shift, failures,
                     failure_family)


def format_plan(plan: SuitePlan) -> str:
    """The text ``densitylab plan`` prints."""
    lines = [f"suite {plan.suite!r}: {plan.seeds} seed(s) per model; tests at a family-wise "
             f"level of {plan.alpha:g}"]
    if not any(pairs for _, _, pairs in plan.datasets):
        return "\n".join(lines + ["fewer than two models (reference rows are not tested): "
                                  "nothing to compare"]) + "\n"
    source = ("declared in [suite] primary" if plan.declared is not None
              else "the default for each dataset's kind")
    lines += _wrapped(f"primary family ({source}): {plan.family} test(s), Holm's correction "
                      "over them; every other value is exploratory (unadjusted p)")
    for dataset, values, pairs in plan.datasets:
        names = ", ".join(values) if values else "no primary value"
        models = list(dict.fromkeys(m for pair in pairs for m in pair))
        which = ("; ".join(f"{a} vs {b}" for a, b in pairs) if len(pairs) <= 3 else
                 f"every pair of {', '.join(models)}")
        lines += ["  " + line for line in _wrapped(
            f"{dataset}: {names}, for {len(pairs)} pair(s) of models ({which}): "
            f"{len(values) * len(pairs)} test(s)")]
    missing = [v for v in plan.declared or () if all(v not in values
                                                     for _, values, _ in plan.datasets)]
    if missing:
        lines += _wrapped("note: no metric of this suite produces " + ", ".join(missing)
                          + " on any dataset; they are not tested")
    if plan.shift is not None:
        lines += _wrapped("each primary comparison: " + shift_sentence(plan.shift))
    if plan.failures is not None:
        lines += _wrapped(f"failure counts (Fisher's exact test, their own family of up to "
                          f"{plan.failure_family}: failed runs per pair, and seeds missing a "
                          "mode where the modes are known): " + failure_sentence(plan.failures))
    return "\n".join(lines) + "\n"


def _wrapped(text: str) -> list[str]:
    """``text`` without Markdown emphasis, wrapped at 100 columns, continued lines indented."""
    return textwrap.wrap(text.replace("**", ""), 100, subsequent_indent="  ",
                         break_on_hyphens=False)


def dry_run_warning(plan: SuitePlan) -> list[str]:
    """Lines ``densitylab run --dry-run`` prints when the design cannot reject (empty when it
    can): the primary comparisons' smallest adjusted p and the seeds that would do."""
    out = []
    for name, d in (("primary comparison", plan.shift), ("failure-count comparison",
                                                         plan.failures)):
        if d is not None and not d.can_reject:
            out.append(f"warning: with {plan.seeds} seeds per model no {name} can reach "
                       f"{d.alpha:g} after Holm's correction over {d.family} test(s) (smallest "
                       f"p {_p(d.min_p)}, adjusted {_p(d.min_p_adjusted)}); "
                       f"{_seeds(d.seeds_to_reach)} seeds per model would (80 % power: "
                       f"{_seeds(d.seeds_for_power)}); `densitylab plan` on the suite says "
                       "more")
    return out


# ---------------------------------------------------------------- a report's results


def report_power_lines(pairs: pd.DataFrame, fails: pd.DataFrame) -> list[str]:
    """The report's "What these seeds can decide": for each seed count among the primary
    comparisons of ``pairs`` (:func:`~densitylab.report.inference.pairwise_tests`) and the
    failure tests ``fails`` (:func:`~densitylab.report.inference.failure_tests`), what it can
    decide in its family."""
    lines = ["### What these seeds can decide", ""]
    primary = pairs[(pairs["family"] == "primary") & pairs["p"].notna()]
    if primary.empty:
        lines.append("No primary comparison was tested.")
    else:
        m = len(primary)
        for (n_a, n_b), group in primary.groupby(["n_a", "n_b"], sort=True):
            d = shift_design(int(n_a), int(n_b), m)
            lines.append(f"- Primary comparisons ({len(group)} of the family of {m}): "
                         + shift_sentence(d))
    if not fails.empty:
        m = len(fails)
        for (n_a, n_b), group in fails.groupby(["n_a", "n_b"], sort=True):
            d = failure_design(int(n_a), int(n_b), m)
            lines.append(f"- Failure counts ({len(group)} of their own family of {m}): "
                         + failure_sentence(d))
    return lines + [""]

