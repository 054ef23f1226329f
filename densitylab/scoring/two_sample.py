"""Two-sample metrics of the model's samples against a fresh target sample: MMD, k-NN KL, PRDC,
the classifier two-sample test, the PRD curve, sliced Wasserstein and the energy distance."""

from __future__ import annotations

from typing import Any

from .. import metrics
from ..metrics.c2st import CLASSIFIERS
from ..metrics.kernels import KERNELS
from ..metrics.mmd import ESTIMATORS
from ..metrics.prd import PRD_CLASSIFIERS
from ._common import flat
from .constraints import Choice, Integer, NoneValue, Number, Positive
from .context import EvalContext, derive_seed
from .spec import HIGHER, LOWER, TARGET, MetricSpec, Param, ValueInfo

__all__ = ["MMD", "KL_KNN", "PRDC", "C2ST", "PRD_CURVE", "SLICED_WASSERSTEIN", "ENERGY_DISTANCE",
           "PRDC_MEANINGS"]

_FRESH = "between the model's samples and a fresh target sample"


def _mmd(ctx: EvalContext, kernel: str, bandwidth, estimator: str) -> dict[str, Any]:
    value = metrics.mmd(flat(ctx.samples), flat(ctx.reference), kernel=kernel,
                        bandwidth=bandwidth, estimator=estimator)
    return {"mmd": float(value)}


def _describe_mmd(params: dict[str, Any]) -> str:
    bandwidth = params.get("bandwidth")
    bw = "median-heuristic bandwidth" if bandwidth is None else f"bandwidth {bandwidth:g}"
    return (f"MMD^2 ({params.get('kernel', 'rbf')} kernel, {bw}, "
            f"{params.get('estimator', 'unbiased')} estimator) {_FRESH} (Gretton et al. 2012)")


MMD = MetricSpec(
    "mmd", _mmd,
    description="MMD^2 between model samples and a fresh target sample (Gretton et al. 2012)",
    min_samples=lambda **_: 2,
    params=(Param.of(metrics.mmd, "kernel", (Choice(KERNELS),)),
            Param.of(metrics.mmd, "bandwidth", (Positive(), NoneValue()),
                     "kernel bandwidth; None: the median heuristic"),
            Param.of(metrics.mmd, "estimator", (Choice(ESTIMATORS),))),
    values={"mmd": ValueInfo(LOWER, _describe_mmd, sanity="mmd", headline=True)})


def _kl_knn(ctx: EvalContext, k: int) -> dict[str, Any]:
    x, y = flat(ctx.samples), flat(ctx.reference)
    # kl_knn(x, y) estimates KL(P||Q) with x ~ P: the model's samples first gives KL(model||target)
    return {"kl_knn_model_target": float(metrics.kl_knn(x, y, k=k)),
            "kl_knn_target_model": float(metrics.kl_knn(y, x, k=k))}


KL_KNN = MetricSpec(
    "kl_knn", _kl_knn,
    description="k-NN KL estimates in both directions (Wang, Kulkarni, Verdu 2009)",
    min_samples=lambda k: k + 1,
    params=(Param.of(metrics.kl_knn, "k", (Integer(minimum=1),), "neighbours"),),
    values={
        "kl_knn_model_target": ValueInfo(
            LOWER, "k-NN estimate of KL(model || target) (Wang, Kulkarni, Verdu 2009): punishes "
                   "samples off the target (blur)", sanity="kl_knn_model_target",
            headline=True),
        "kl_knn_target_model": ValueInfo(
            LOWER, "k-NN estimate of KL(target || model): punishes missed target mass "
                   "(collapse)", sanity="kl_knn_target_model", headline=True),
    })


#: What each PRDC value measures (raw points here, classifier features for image sets).
PRDC_MEANINGS = {
    "precision": "share of generated points inside the k-NN balls of real points (fidelity)",
    "recall": "share of real points inside the k-NN balls of generated points (diversity)",
    "density": "mean number of real k-NN balls containing a generated point, divided by k",
    "coverage": "share of real points whose k-NN ball contains a generated point",
}
_PRDC_DIRECTIONS = {"precision": HIGHER, "recall": HIGHER, "density": TARGET, "coverage": HIGHER}


def _prdc(ctx: EvalContext, k: int) -> dict[str, Any]:
    res = metrics.prdc(flat(ctx.reference), flat(ctx.samples), k=k)
    d = res.to_dict() if hasattr(res, "to_dict") else dict(res._asdict())
    return {name: float(d[name]) for name in ("precision", "recall", "density", "coverage")}


def _prdc_value(name: str) -> ValueInfo:
    return ValueInfo(_PRDC_DIRECTIONS[name],
                     lambda params: f"{PRDC_MEANINGS[name]}, on the raw points, "
                                    f"k = {params.get('k', 5)} (Naeem et al. 2020)",
                     sanity=name)


PRDC = MetricSpec(
    "prdc", _prdc, description="precision, recall, density, coverage (Naeem et al. 2020)",
    min_samples=lambda k: k + 1,
    params=(Param.of(metrics.prdc, "k", (Integer(minimum=1),),
                     "neighbours of each ball's radius"),),
    values={name: _prdc_value(name) for name in PRDC_MEANINGS})


def _c2st(ctx: EvalContext, classifier: str, folds: int) -> dict[str, Any]:
    res = metrics.c2st(flat(ctx.samples), flat(ctx.reference), classifier=classifier,
                       folds=folds, seed=derive_seed(ctx.seed, "c2st"))
    return {"c2st": res.accuracy, "c2st_stderr": res.stderr, "c2st_pvalue": res.pvalue}


def _c2st_text(what: str):
    return lambda params: (f"{what}; {params.get('classifier', 'mlp')} classifier, "
                           f"{params.get('folds', 5)}-fold (Lopez-Paz and Oquab 2017)")


C2ST = MetricSpec(
    "c2st", _c2st,
    description="classifier two-sample test: held-out accuracy telling model samples from target "
    "samples (0.5 = indistinguishable), its s.e. and binomial p-value (Lopez-Paz and Oquab 2017)",
    params=(Param.of(metrics.c2st, "classifier", (Choice(CLASSIFIERS),)),
            Param.of(metrics.c2st, "folds", (Integer(minimum=2),), "cross-validation folds")),
    values={
        "c2st": ValueInfo(TARGET, _c2st_text(
            "held-out accuracy of a classifier telling model samples from target samples (0.5: "
            "indistinguishable, 1: separable)"), sanity="c2st", headline=True),
        "c2st_pvalue": ValueInfo(None, _c2st_text(
            "one-sided binomial p-value of the C2ST accuracy against 0.5")),
        "c2st_stderr": ValueInfo(None, _c2st_text(
            "binomial standard error of the C2ST accuracy")),
    })


def _prd_curve(ctx: EvalContext, classifier: str, folds: int) -> dict[str, Any]:
    """PRD curve (Simon et al. 2019) of the model's samples against a fresh target sample from
    a cross-fitted classifier: F_8 (recall-weighted) and F_1/8 (precision-weighted) as values,
    the curve at 101 angles in the details."""
    res = metrics.prd_curve(flat(ctx.reference), flat(ctx.samples), classifier=classifier,
                            folds=folds, seed=derive_seed(ctx.seed, "prd"), num_angles=101)
    return {"prd_f8": res.f_beta, "prd_f1_8": res.f_beta_inv,
            "prd_precision": list(res.precision), "prd_recall": list(res.recall)}


PRD_CURVE = MetricSpec(
    "prd_curve", _prd_curve,
    description="precision-recall curve for distributions from a cross-fitted classifier (Simon "
    "et al. 2019): F_8 (recall) and F_1/8 (precision) summaries",
    params=(Param.of(metrics.prd_curve, "classifier", (Choice(PRD_CLASSIFIERS),)),
            Param.of(metrics.prd_curve, "folds", (Integer(minimum=2),), "cross-fitting folds")),
    values={
        "prd_f8": ValueInfo(HIGHER, "F_8 of the PRD curve: recall-weighted, low when the model "
                                    "misses part of the target (Simon et al. 2019)", 1.0),
        "prd_f1_8": ValueInfo(HIGHER, "F_1/8 of the PRD curve: precision-weighted, low when "
                                      "the model puts mass off the target", 1.0),
    })


def _sliced_wasserstein(ctx: EvalContext, num_projections: int, p: float) -> dict[str, Any]:
    value = metrics.sliced_wasserstein(flat(ctx.samples), flat(ctx.reference),
                                       num_projections=num_projections, p=p,
                                       seed=derive_seed(ctx.seed, "sliced_wasserstein"))
    return {"sliced_wasserstein": value}


SLICED_WASSERSTEIN = MetricSpec(
    "sliced_wasserstein", _sliced_wasserstein,
    description="sliced Wasserstein SW_p^p between model samples and a fresh target sample "
    "(Bonneel et al. 2015)",
    params=(Param.of(metrics.sliced_wasserstein, "num_projections", (Integer(minimum=1),),
                     "random directions"),
            # a float here (the function's is 2): the suite's run ids hash the written value
            Param("p", 2.0, (Number(minimum=1),), "order of the distance")),
    values={"sliced_wasserstein": ValueInfo(
        LOWER, lambda params: f"sliced Wasserstein SW_p^p, p = {params.get('p', 2.0):g}, "
                              f"{params.get('num_projections', 128)} random directions, {_FRESH} "
                              "(Bonneel et al. 2015)",
        sanity="sliced_wasserstein", headline=True)})


def _energy_distance(ctx: EvalContext, estimator: str) -> dict[str, Any]:
    value = metrics.energy_distance(flat(ctx.samples), flat(ctx.reference), estimator)
    return {"energy_distance": value}


ENERGY_DISTANCE = MetricSpec(
    "energy_distance", _energy_distance,
    description="squared energy distance between model samples and a fresh target sample "
    "(Szekely and Rizzo 2013)",
    params=(Param.of(metrics.energy_distance, "estimator", (Choice(("biased", "unbiased")),)),),
    values={"energy_distance": ValueInfo(
        LOWER, lambda params: f"squared energy distance ({params.get('estimator', 'biased')} "
                              f"estimator) {_FRESH} (Szekely and Rizzo 2013)",
        sanity="energy_distance", headline=True)})
