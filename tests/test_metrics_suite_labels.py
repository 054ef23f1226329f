"""Suite metric labels (one metric twice with different parameters) and the suite metrics
c2st, sliced_wasserstein and energy_distance."""

from __future__ import annotations

import copy

import pytest
import torch

from densitylab import distributions, metrics
from densitylab.report.explain import column_explanations
from densitylab.suite import parse_suite
from densitylab.suite.evaluate import EvalContext, evaluate_metrics, labelled_value

pytestmark = pytest.mark.usefixtures("one_torch_thread")

_SUITE = {
    "suite": {"name": "labels", "device": "cpu", "seeds": [0], "eval_samples": 100,
              "references": False},  # runs[0] is the VAE's run
    "datasets": [{"name": "ring"}],
    "models": [{"name": "vae", "kind": "vae"}],
    "metrics": [{"name": "mmd"},
                {"name": "mmd", "label": "mmd_modes", "params": {"bandwidth": 0.05}}],
}


def _parse(metrics_list):
    data = copy.deepcopy(_SUITE)
    data["metrics"] = metrics_list
    return parse_suite(data)


def test_one_metric_twice_under_two_labels():
    cfg = parse_suite(copy.deepcopy(_SUITE))
    first, second = cfg.runs[0].config["metrics"]
    assert "label" not in first  # an unlabelled entry resolves as before: same run ids
    assert first["params"]["bandwidth"] is None
    assert second == {"name": "mmd", "label": "mmd_modes",
                      "params": {"kernel": "rbf", "bandwidth": 0.05, "estimator": "unbiased"}}


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ([{"name": "mmd"}, {"name": "mmd"}], r"metrics\[1\]\.name: 'mmd' is used twice"),
        ([{"name": "mmd", "label": "a"}, {"name": "kl_knn", "label": "a"}],
         r"metrics\[1\]\.label: 'a' is used twice"),
        ([{"name": "kl_knn", "label": "mmd"}, {"name": "mmd"}],
         r"metrics\[1\]\.name: 'mmd' is used twice"),
        ([{"name": "mmd", "label": 3}], r"metrics\[0\]\.label: expected a string"),
        ([{"name": "mmd", "label": ""}], r"metrics\[0\]\.label: expected a non-empty"),
        ([{"name": "c2st", "params": {"classifier": "svm"}}], r"metrics\[0\]\.params: unknown"),
        ([{"name": "c2st", "params": {"folds": 1}}], r"metrics\[0\]\.params: folds"),
        ([{"name": "sliced_wasserstein", "params": {"p": 0.5}}], r"metrics\[0\]\.params: p"),
        ([{"name": "energy_distance", "params": {"estimator": "x"}}],
         r"metrics\[0\]\.params: unknown estimator"),
    ],
)
def test_label_and_parameter_errors(entries, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _parse(entries)


def test_labelled_value_names():
    assert labelled_value("mmd", "mmd", "mmd") == "mmd"
    assert labelled_value("mmd", "mmd_modes", "mmd") == "mmd_modes"
    assert labelled_value("c2st", "c2st_knn", "c2st_pvalue") == "c2st_knn_pvalue"
    assert labelled_value("prdc", "prdc_k10", "precision") == "prdc_k10_precision"


def _context(n=300):
    target = distributions.ring()
    samples = target.sample(n, seed=1)
    reference = target.sample(n, seed=2)
    return EvalContext(target, None, samples, reference, 0, n, torch.device("cpu"))


def test_labelled_results_are_named_by_their_label_and_explained():
    cfg = _parse(copy.deepcopy(_SUITE["metrics"]) + [
        {"name": "c2st", "params": {"classifier": "logistic"}},
        {"name": "c2st", "label": "c2st_knn", "params": {"classifier": "knn", "folds": 3}},
        {"name": "sliced_wasserstein"}, {"name": "energy_distance"}])
    ctx = _context()
    run_metrics = cfg.runs[0].config["metrics"]
    out = evaluate_metrics(ctx, run_metrics)
    x, y = ctx.samples, ctx.reference
    assert out["mmd"]["values"] == {"mmd": metrics.mmd(x, y)}
    assert out["mmd_modes"]["values"] == {"mmd_modes": metrics.mmd(x, y, bandwidth=0.05)}
    assert out["mmd_modes"]["metric"] == "mmd"
    assert set(out["c2st_knn"]["values"]) == {"c2st_knn", "c2st_knn_stderr", "c2st_knn_pvalue"}
    assert set(out["c2st"]["values"]) == {"c2st", "c2st_stderr", "c2st_pvalue"}
    assert 0.3 < out["c2st"]["values"]["c2st"] < 0.7  # two draws of one target
    assert out["energy_distance"]["values"]["energy_distance"] == metrics.energy_distance(x, y)
    assert out["sliced_wasserstein"]["values"]["sliced_wasserstein"] > 0
    record = {"dataset": "ring", "config": {"metrics": run_metrics}, "metrics": out}
    lines = column_explanations([record], ["mmd", "mmd_modes", "c2st_knn", "energy_distance"])
    assert "median-heuristic bandwidth" in lines[0] and "bandwidth 0.05" in lines[1]
    assert "knn classifier, 3-fold" in lines[2] and "energy distance" in lines[3]
