"""Which differences of held-out log-likelihood have a guaranteed direction.

Each estimator's value relates to the true mean log-likelihood in a known way, its *kind*:

* ``"exact"``: the value is the truth (a flow's change of variables);
* ``"quadrature"``: the truth up to the quadrature's stated tolerance (latent quadrature);
* ``"lower bound"``: never above the truth;
* ``"bound in expectation"``: a stochastic lower bound, above the truth by no more than its
  noise (IWAE, AIS: ``E[estimate] <= truth``), taken as a lower bound less ``z`` standard
  errors;
* ``"approximation"``: either side of the truth, by an unknown amount (a diffusion model's
  probability-flow ODE with a learned score).

Two rows are ordered only when the interval of true values one admits lies entirely above the
other's: an exact value above a lower bound says nothing (the bounded model may be higher),
while a lower bound above an exact value does order them; two lower bounds never do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["KINDS", "LikelihoodOrder", "likelihood_order", "likelihood_order_section",
           "truth_interval"]

KINDS = ("exact", "quadrature", "lower bound", "bound in expectation", "approximation")


@dataclass(frozen=True)
class LikelihoodOrder:
    """``higher``: ``"a"`` or ``"b"`` when the order of the true likelihoods is guaranteed,
    else None; ``reason``: one sentence saying why (or why not)."""

    higher: str | None
    reason: str

    @property
    def guaranteed(self) -> bool:
        """True when the direction of the difference is guaranteed by the kinds."""
        return self.higher is not None


def truth_interval(value: float, kind: str, *, stderr: float = 0.0, tolerance: float = 0.0,
                   z: float = 2.0) -> tuple[float, float]:
    """The interval of true mean log-likelihoods an estimate ``value`` of ``kind`` admits."""
    if kind not in KINDS:
        raise ValueError(f"unknown estimator kind {kind!r}; expected one of "
                         f"{', '.join(map(repr, KINDS))}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"value must be finite, got {value!r}")
    if kind == "exact":
        return value, value
    if kind == "quadrature":
        return value - tolerance, value + tolerance
    if kind == "lower bound":
        return value, math.inf
    if kind == "bound in expectation":
        return value - z * stderr, math.inf
    return -math.inf, math.inf


def likelihood_order(a: float, kind_a: str, b: float, kind_b: str, *, stderr_a: float = 0.0,
                     stderr_b: float = 0.0, tolerance: float = 1e-3,
                     z: float = 2.0) -> LikelihoodOrder:
    """Whether the true likelihood of row ``a`` is above or below that of row ``b``, given
    each estimate and its kind (see the module docstring); ``stderr_*`` serve the
    ``"bound in expectation"`` kind (``z`` of them), ``tolerance`` the quadrature kind."""
    lo_a, hi_a = truth_interval(a, kind_a, stderr=stderr_a, tolerance=tolerance, z=z)
    lo_b, hi_b = truth_interval(b, kind_b, stderr=stderr_b, tolerance=tolerance, z=z)
    if lo_a > hi_b:
        return LikelihoodOrder("a", f"{kind_a} {a:.3g} lies above every value the {kind_b} "
                               f"{b:.3g} admits")
    if lo_b > hi_a:
        return LikelihoodOrder("b", f"{kind_b} {b:.3g} lies above every value the {kind_a} "
                               f"{a:.3g} admits")
    return LikelihoodOrder(None, f"cannot be ordered: a {kind_a} of {a:.3g} and a {kind_b} of "
                           f"{b:.3g} admit overlapping true values")


#: Kinds of records written before the suite stated them, from their estimator's name.
_KIND_OF_ESTIMATOR = (("exact", "exact"), ("IWAE", "bound in expectation"),
                      ("probability-flow", "approximation"), ("AIS", "bound in expectation"),
                      ("quadrature", "quadrature"))


def _kind(details: dict) -> str | None:
    kind = details.get("loglik_kind")
    if kind in KINDS:
        return kind
    name = str(details.get("loglik_estimator", ""))
    return next((k for key, k in _KIND_OF_ESTIMATOR if key in name), None)


def likelihood_order_section(records) -> list[str]:
    """Markdown lines (a heading and a table per dataset) saying, for every pair of models with
    a held-out log-likelihood, whether the kinds of their estimators guarantee the order of
    their mean values over seeds, or that they cannot be ordered; empty when fewer than two
    models of a dataset have one. A model with a latent quadrature beside its own estimator
    (a VAE with a 2D latent) is compared by the quadrature."""
    rows: dict[str, dict[str, dict]] = {}
    for r in records:
        res = (getattr(r, "metrics", None) or {}).get("log_likelihood")
        if res is None or "heldout_loglik" not in (res.values or {}):
            continue
        kind = _kind(res.details or {})
        value = res.values["heldout_loglik"]
        if "heldout_loglik_quadrature" in res.values:  # the exact value beside a bound
            kind, value = "quadrature", res.values["heldout_loglik_quadrature"]
        if kind is None:
            continue
        entry = rows.setdefault(r.dataset, {}).setdefault(
            r.model, {"values": [], "stderr": [], "kinds": set()})
        entry["values"].append(value)
        entry["stderr"].append(res.values.get("heldout_loglik_stderr", 0.0))
        entry["kinds"].add(kind)
    lines: list[str] = []
    for dataset, models in rows.items():
        names = [m for m, e in models.items() if len(e["kinds"]) == 1]
        if len(names) < 2:
            continue
        if not lines:
            lines += ["## Which likelihoods can be ordered", "",
                      "A difference of held-out log-likelihood is stated only when the kinds "
                      "of the two estimators guarantee its direction (exact, quadrature, lower "
                      "bound, bound in expectation, approximation; "
                      "`densitylab.report.likelihood_order`).", ""]
        lines += [f"**{dataset}**", "", "| model | model | mean log-likelihoods | order |",
                  "|---|---|---|---|"]
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                ea, eb = models[a], models[b]
                va = sum(ea["values"]) / len(ea["values"])
                vb = sum(eb["values"]) / len(eb["values"])
                sa = max(ea["stderr"]) if ea["stderr"] else 0.0
                sb = max(eb["stderr"]) if eb["stderr"] else 0.0
                (ka,), (kb,) = ea["kinds"], eb["kinds"]
                o = likelihood_order(va, ka, vb, kb, stderr_a=sa, stderr_b=sb)
                verdict = (f"{a if o.higher == 'a' else b} higher (guaranteed)" if o.guaranteed
                           else "cannot be ordered")
                lines.append(f"| {a} ({ka}) | {b} ({kb}) | {va:.3f} vs {vb:.3f} | {verdict} |")
        lines.append("")
    return lines
