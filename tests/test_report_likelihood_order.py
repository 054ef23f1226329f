"""Ordering rules for likelihoods of different estimator kinds, checked against true values
that the kinds allow: an order is stated only when every admissible truth agrees with it."""

from __future__ import annotations

import itertools
import math

import pytest

from densitylab.report.likelihood_order import (
    KINDS,
    likelihood_order,
    likelihood_order_section,
    truth_interval,
)
from densitylab.results.records import MetricResult, RunRecord


@pytest.mark.parametrize("a, kind_a, b, kind_b, higher", [
    (3.10, "exact", 2.43, "lower bound", None),      # the bounded model may be higher
    (2.43, "lower bound", 3.10, "exact", None),
    (3.50, "lower bound", 3.10, "exact", "a"),       # a bound above an exact value orders
    (3.10, "exact", 2.00, "exact", "a"),
    (2.43, "lower bound", 2.00, "lower bound", None),  # two lower bounds never order
    (2.43, "bound in expectation", 2.00, "bound in expectation", None),
    (4.00, "approximation", 1.00, "exact", None),    # an approximation orders nothing
    (3.00, "quadrature", 2.00, "exact", "a"),
    (2.0005, "quadrature", 2.0, "quadrature", None),  # within the quadrature's tolerance
])
def test_the_stated_pairs_follow_the_rules(a, kind_a, b, kind_b, higher):
    assert likelihood_order(a, kind_a, b, kind_b).higher == higher


def _inside(interval):
    """Points of an interval of true values: its finite ends, and points 1 and 10 inside it."""
    lo, hi = interval
    points = [t for t in (lo, hi) if math.isfinite(t)]
    if math.isinf(hi):
        points += [(lo if math.isfinite(lo) else 0.0) + d for d in (1.0, 10.0)]
    if math.isinf(lo):
        points += [(hi if math.isfinite(hi) else 0.0) - d for d in (1.0, 10.0)]
    return points


def test_a_stated_order_holds_for_every_truth_the_kinds_admit():
    # brute force: sample true values inside each admissible interval; whenever an order is
    # stated, no admissible pair of truths contradicts it
    values = [-1.0, 0.0, 0.5, 2.0]
    for (va, ka), (vb, kb) in itertools.product(itertools.product(values, KINDS), repeat=2):
        o = likelihood_order(va, ka, vb, kb, stderr_a=0.1, stderr_b=0.1)
        if not o.guaranteed:
            continue
        ia = truth_interval(va, ka, stderr=0.1, tolerance=1e-3)
        ib = truth_interval(vb, kb, stderr=0.1, tolerance=1e-3)
        for ta, tb in itertools.product(_inside(ia), _inside(ib)):
            assert (ta > tb) == (o.higher == "a"), (va, ka, vb, kb)


def test_bound_in_expectation_allows_its_noise_above_the_truth():
    # an AIS mean 0.05 above an exact value with stderr 0.04: within 2 s.e., not ordered
    assert not likelihood_order(2.05, "bound in expectation", 2.0, "exact",
                                stderr_a=0.04).guaranteed
    assert likelihood_order(2.2, "bound in expectation", 2.0, "exact", stderr_a=0.04).higher == "a"


def test_unknown_kind_and_nonfinite_value_are_refused():
    with pytest.raises(ValueError, match="kind"):
        likelihood_order(1.0, "guess", 0.0, "exact")
    with pytest.raises(ValueError, match="finite"):
        likelihood_order(math.inf, "exact", 0.0, "exact")


def _record(model, seed, value, estimator, kind=None):
    details = {"loglik_estimator": estimator}
    if kind:
        details["loglik_kind"] = kind
    return RunRecord(run_id=f"{model}{seed}", dataset="ring", model=model, seed=seed,
                     status="ok", metrics={"log_likelihood": MetricResult(
                         values={"heldout_loglik": value}, details=details)})


def test_the_report_section_orders_only_guaranteed_pairs_and_reads_old_records():
    records = [_record("flow", 0, 3.1, "exact"), _record("flow", 1, 3.1, "exact"),
               _record("vae", 0, 2.43, "IWAE bound"),  # an old record: kind from its name
               _record("gan", 0, 3.5, "latent quadrature, sigma = 0.05", "quadrature")]
    text = "\n".join(likelihood_order_section(records))
    assert "| flow (exact) | vae (bound in expectation) | 3.100 vs 2.430 | cannot be ordered |" \
        in text
    assert "| flow (exact) | gan (quadrature) | 3.100 vs 3.500 | gan higher (guaranteed) |" in text
    assert likelihood_order_section(records[:2]) == []
    # a VAE whose exact value is known by quadrature is compared by it
    vae = _record("vae", 1, 2.43, "IWAE bound", "bound in expectation")
    vae.metrics["log_likelihood"].values["heldout_loglik_quadrature"] = 2.47
    text = "\n".join(likelihood_order_section([records[0], vae]))
    assert "| flow (exact) | vae (quadrature) | 3.100 vs 2.470 | flow higher (guaranteed) |" \
        in text
