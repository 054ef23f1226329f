"""What each column of the report means, worded for the metric and parameters that produced it.

The same value name can mean different things: ``high_quality_fraction`` is a share of samples
near a mode centre on a 2D Gaussian mixture (``mode_coverage``), but on stacked digits
(``stacked_modes``) it is the mean classifier confidence unless a confidence threshold was set.
So the explanation is chosen from the value's metric (its ``group``) and that metric's resolved
parameters in the run's config, and a value explained differently on two datasets is listed once
per meaning, naming the datasets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..metrics.modes import HIGH_QUALITY_STDS
from ..suite.records import RunRecord

__all__ = ["explain", "column_explanations"]

_LOGLIK = {
    "heldout_loglik": "mean model log-density on held-out target points (VAE: importance-weighted "
                      "bound, Burda et al. 2016; flow: exact)",
    "heldout_loglik_median": "median of the same per-point log-densities: far above the mean "
                             "when a few held-out points dominate it",
    "target_loglik": "mean target log-density on the same points (the ceiling)",
}
_KL_MC = {
    "kl_mc_target_model": "Monte Carlo estimate of KL(target || model) from target samples",
    "kl_mc_stderr": "standard error of that Monte Carlo estimate",
}
_KL_KNN = {
    "kl_knn_model_target": "k-NN estimate of KL(model || target) (Wang, Kulkarni, Verdu 2009): "
                           "punishes samples off the target (blur)",
    "kl_knn_target_model": "k-NN estimate of KL(target || model): punishes missed target mass "
                           "(collapse)",
}
_PRDC = {
    "precision": "share of generated points inside the k-NN balls of real points (fidelity)",
    "recall": "share of real points inside the k-NN balls of generated points (diversity)",
    "density": "mean number of real k-NN balls containing a generated point, divided by k",
    "coverage": "share of real points whose k-NN ball contains a generated point",
}
_FEATURES = {
    "kid_mean": "KID: unbiased polynomial-kernel MMD^2 between digit-classifier features of real "
                "and generated images, mean over random subsets (Binkowski et al., ICLR 2018)",
    "kid_std": "standard deviation of KID over those subsets",
    "frechet_distance": "Frechet distance between Gaussians fitted to the classifier features of "
                        "real and generated images (the FID formula, Heusel et al. 2017)",
    "confidence_real": "mean classifier confidence (max softmax probability) on real images",
    "confidence_fake": "mean classifier confidence (max softmax probability) on generated images",
}


def _mixture(name: str, params: dict[str, Any]) -> str | None:
    threshold = float(params.get("threshold", HIGH_QUALITY_STDS))
    min_count = int(params.get("min_count", 1))
    return {
        "modes_covered": f"mixture components with at least {min_count} high-quality sample(s)",
        "high_quality_fraction": f"share of samples within {threshold:g} standard deviations "
                                 "(of the target's component std) of their nearest mode centre",
        "kl_modes": "KL of the high-quality samples' mode histogram to uniform (PacGAN's reverse "
                    "KL): 0 when every mode gets its share, log K when all fall on one mode",
    }.get(name)


def _stacked(name: str, params: dict[str, Any]) -> str | None:
    threshold = params.get("threshold")
    min_count = int(params.get("min_count", 1))
    if threshold is None:
        counted = "every sample counts, as in the stacked-MNIST protocol"
        quality = ("mean classifier confidence (max softmax probability) over the three channel "
                   "images of every sample: a soft analogue of the 2D high-quality fraction, not "
                   "a share of samples")
    else:
        counted = (f"a sample counts when each of its three channels is classified with "
                   f"confidence >= {float(threshold):g}")
        quality = (f"share of samples whose three channels are each classified with confidence "
                   f">= {float(threshold):g}")
    return {
        "modes_covered": f"digit triples (of 1,000) with at least {min_count} counted sample(s), "
                         f"each channel labelled by the digit classifier; {counted}",
        "high_quality_fraction": quality,
        "kl_modes": "KL of the counted samples' histogram over the 1,000 triples to uniform (the "
                    "VEEGAN / PacGAN stacked-MNIST KL); sampling noise alone gives about "
                    "999 / (2 N) for N samples",
    }.get(name)


def _mmd(params: dict[str, Any]) -> str:
    bandwidth = params.get("bandwidth")
    bw = "median-heuristic bandwidth" if bandwidth is None else f"bandwidth {bandwidth:g}"
    return (f"MMD^2 ({params.get('kernel', 'rbf')} kernel, {bw}, "
            f"{params.get('estimator', 'unbiased')} estimator) between the model's samples and "
            "a fresh target sample (Gretton et al. 2012)")


def _c2st(name: str, params: dict[str, Any]) -> str | None:
    what = {"c2st": "held-out accuracy of a classifier telling model samples from target "
                    "samples (0.5: indistinguishable, 1: separable)",
            "c2st_stderr": "binomial standard error of the C2ST accuracy",
            "c2st_pvalue": "one-sided binomial p-value of the C2ST accuracy against 0.5"}.get(name)
    if what is None:
        return None
    return (f"{what}; {params.get('classifier', 'mlp')} classifier, "
            f"{params.get('folds', 5)}-fold (Lopez-Paz and Oquab 2017)")


_TRANSPORT = {
    "c2st": _c2st,
    "sliced_wasserstein": lambda name, params: (
        f"sliced Wasserstein SW_p^p, p = {params.get('p', 2.0):g}, "
        f"{params.get('num_projections', 128)} random directions, between the model's samples "
        "and a fresh target sample (Bonneel et al. 2015)") if name == "sliced_wasserstein"
    else None,
    "energy_distance": lambda name, params: (
        f"squared energy distance ({params.get('estimator', 'biased')} estimator) between the "
        "model's samples and a fresh target sample (Szekely and Rizzo 2013)")
    if name == "energy_distance" else None,
}


def explain(name: str, group: str, params: dict[str, Any] | None = None) -> str | None:
    """One-line meaning of value ``name`` produced by suite metric ``group`` with ``params``.

    None for values the report does not explain (a user's own metric).
    """
    params = params or {}
    if group == "mode_coverage":
        return _mixture(name, params)
    if group == "stacked_modes":
        return _stacked(name, params)
    if group == "mmd" and name == "mmd":
        return _mmd(params)
    if group == "kl_knn":
        return _KL_KNN.get(name)
    if group == "log_likelihood":
        return _LOGLIK.get(name)
    if group == "kl_mc":
        return _KL_MC.get(name)
    if group == "prdc" and name in _PRDC:
        return f"{_PRDC[name]}, on the raw points, k = {params.get('k', 5)} (Naeem et al. 2020)"
    if group in _TRANSPORT:
        return _TRANSPORT[group](name, params)
    if group == "feature_metrics":
        if name in _PRDC:
            return f"{_PRDC[name]}, in digit-classifier features, k = 5 (Naeem et al. 2020)"
        return _FEATURES.get(name)
    return None


def column_explanations(records: Iterable[RunRecord | dict[str, Any]],
                        order: list[str]) -> list[str]:
    """Markdown bullet lines explaining the value names in ``order`` for the finished ``records``.

    A value with one meaning across the datasets gets one line; a value whose meaning differs
    (``high_quality_fraction`` on a mixture and on stacked digits) gets one line per meaning,
    naming its datasets.
    """
    meanings: dict[str, dict[str, list[str]]] = {}
    for r in map(RunRecord.of, records):  # typed, or their JSON mappings
        params = r.metric_params()
        for group, result in r.metrics.items():
            for name in list(result.values) + result.undefined:
                text = explain(result.own_name(name), result.metric or group, params.get(group))
                if text is None:
                    continue
                datasets = meanings.setdefault(name, {}).setdefault(text, [])
                if r.dataset not in datasets:
                    datasets.append(r.dataset)
    lines = []
    for name in order:
        variants = meanings.get(name, {})
        if len(variants) == 1:
            lines.append(f"- `{name}`: {next(iter(variants))}")
        else:
            lines += [f"- `{name}` ({', '.join(map(str, ds))}): {text}"
                      for text, ds in variants.items()]
    return lines
