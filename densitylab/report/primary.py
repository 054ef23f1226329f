"""A suite's primary metrics: the values whose differences between models form the one family
that Holm's correction runs over; every other value is reported as exploratory.

A suite file may declare them (``primary = ["modes_covered", ...]`` in ``[suite]``); otherwise
each dataset gets a default from the values its metrics produce (:func:`default_primary`):

* an image dataset (it has the feature metrics ``frechet_distance`` / ``kid_mean``): the modes
  covered and the mode-histogram KL where stacked digits are counted, and the Frechet distance
  (KID says much the same as the Frechet distance, so it is left exploratory);
* a mixture with known modes (``modes_covered``): the three numbers of the VEEGAN / PacGAN
  protocol, ``modes_covered``, ``high_quality_fraction`` and ``kl_modes``;
* anything else: ``mmd`` where the suite scores it, else the first value of
  :data:`FALLBACK_ORDER` that is there.

Fewer primary values make a smaller family and so a less severe correction: choose them before
the runs, as the question the suite is built to answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..scoring import labelled_value

__all__ = ["MIXTURE_PRIMARY", "IMAGE_PRIMARY", "FALLBACK_ORDER", "METRIC_VALUES",
           "default_primary", "primary_for", "suite_values"]

#: Default primary values of a mixture with known modes (the published protocol's three).
MIXTURE_PRIMARY = ("modes_covered", "high_quality_fraction", "kl_modes")
#: Default primary values of an image dataset (those the suite scores).
IMAGE_PRIMARY = ("modes_covered", "kl_modes", "frechet_distance")
#: Values that mark an image dataset (only the image feature metrics produce them).
_IMAGE_MARKERS = ("frechet_distance", "kid_mean")
#: Where neither rule applies: the first of these the dataset has is its primary value.
FALLBACK_ORDER = ("mmd", "energy_distance", "sliced_wasserstein", "c2st",
                  "kl_knn_model_target", "heldout_loglik")

#: The values each built-in metric produces under its own name (what ``densitylab plan``
#: counts before any run; a plugin metric is taken to produce one value named by its label).
METRIC_VALUES: dict[str, tuple[str, ...]] = {
    "mode_coverage": ("modes_covered", "num_modes", "high_quality_fraction", "kl_modes"),
    "stacked_modes": ("modes_covered", "num_modes", "high_quality_fraction", "kl_modes"),
    "mmd": ("mmd",),
    "kl_knn": ("kl_knn_model_target", "kl_knn_target_model"),
    "log_likelihood": ("heldout_loglik", "heldout_loglik_median", "target_loglik"),
    "kl_mc": ("kl_mc_target_model", "kl_mc_stderr"),
    "prdc": ("precision", "recall", "density", "coverage"),
    "feature_metrics": ("kid_mean", "frechet_distance"),
    "c2st": ("c2st", "c2st_stderr", "c2st_pvalue"),
    "sliced_wasserstein": ("sliced_wasserstein",),
    "energy_distance": ("energy_distance",),
}


def default_primary(values: Iterable[str]) -> tuple[str, ...]:
    """The default primary values of a dataset whose metrics produce ``values`` (see the
    module docstring for the rule); empty when none of the candidates is there."""
    present = set(values)
    if present & set(_IMAGE_MARKERS):
        return tuple(v for v in IMAGE_PRIMARY if v in present)
    if "modes_covered" in present:
        return tuple(v for v in MIXTURE_PRIMARY if v in present)
    return next(((v,) for v in FALLBACK_ORDER if v in present), ())


def primary_for(values: Iterable[str], declared: Sequence[str] | None) -> tuple[str, ...]:
    """A dataset's primary values: the ``declared`` ones it has (in their order), or, when the
    suite declares none, :func:`default_primary`."""
    present = list(dict.fromkeys(values))
    if declared is None:
        return default_primary(present)
    return tuple(v for v in dict.fromkeys(declared) if v in set(present))


def suite_values(metrics: Iterable[dict[str, Any]]) -> tuple[str, ...]:
    """Every value name the suite's ``[[metrics]]`` entries (resolved: ``name``, optional
    ``label``) can produce, renamed under their labels as results name them."""
    out: dict[str, None] = {}
    for m in metrics:
        name = m["name"]
        label = m.get("label", name)
        for value in METRIC_VALUES.get(name, (name,)):
            out[labelled_value(name, label, value)] = None
    return tuple(out)
