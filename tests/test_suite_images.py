"""The stacked_modes suite metric: its threshold, its validation, and an undefined KL."""

from __future__ import annotations

import copy

import pytest
import torch

from densitylab import images
from densitylab.suite import parse_suite
from densitylab.suite.evaluate import EvalContext, evaluate_metrics

SUITE = {
    "suite": {"name": "stacked", "device": "cpu", "seeds": [0], "eval_samples": 100,
              "references": False},  # runs[0] is the GAN's run
    "datasets": [{"name": "stacked_digits", "params": {"split": "test"}}],
    "models": [{"name": "gan", "kind": "gan", "params": {"network": "conv"}}],
    "metrics": [{"name": "stacked_modes"}],
}


def _with_params(**params):
    data = copy.deepcopy(SUITE)
    data["metrics"][0]["params"] = params
    return data


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"threshold": 1.5}, ValueError, r"metrics\[0\]\.params: threshold must lie in \(0, 1\)"),
        ({"threshold": 0.0}, ValueError, r"metrics\[0\]\.params: threshold must be"),
        ({"threshold": "high"}, TypeError, r"metrics\[0\]\.params: threshold: expected a number"),
        ({"min_count": 0}, ValueError, r"metrics\[0\]\.params: min_count"),
        ({"treshold": 0.5}, ValueError, r"metrics\[0\]\.params\.treshold: unknown key"),
    ],
)
def test_stacked_modes_parameters_are_checked_when_the_suite_loads(params, error, match):
    with pytest.raises(error, match=match):
        parse_suite(_with_params(**params))


def test_threshold_is_resolved_into_the_run_config_and_id():
    protocol = parse_suite(SUITE).runs[0]
    strict = parse_suite(_with_params(threshold=0.9)).runs[0]
    assert protocol.config["metrics"][0]["params"] == {"threshold": None, "min_count": 1}
    assert strict.config["metrics"][0]["params"] == {"threshold": 0.9, "min_count": 1}
    assert strict.run_id != protocol.run_id


@pytest.fixture(scope="module")
def stacked(classifier_cache):  # the suite's metric reads the run's shared classifier cache
    target = images.StackedDigits("test")
    x, labels = target.sample(300, seed=0)
    return target, x, labels


def _score(target, samples, reference, **params):
    ctx = EvalContext(target, None, samples, reference, 0, len(samples), torch.device("cpu"))
    return evaluate_metrics(ctx, [{"name": "stacked_modes",
                                   "params": {"threshold": None, "min_count": 1, **params}}])


def test_threshold_counts_only_confident_samples(stacked):
    target, x, labels = stacked
    clf = images.get_classifier(seed=0)
    # brute force: classify every channel, keep samples confident on all three, count triples
    pred, conf = clf.predict(x.reshape(-1, 1, 8, 8))
    pred, conf = pred.reshape(-1, 3), conf.reshape(-1, 3)
    good = (conf >= 0.9).all(dim=1)
    triples = {tuple(t) for t in pred[good].tolist()}
    values = _score(target, x, x, threshold=0.9)["stacked_modes"]["values"]
    assert values["modes_covered"] == len(triples)
    assert values["high_quality_fraction"] == pytest.approx(float(good.double().mean()))
    protocol = _score(target, x, x)["stacked_modes"]["values"]
    assert protocol["modes_covered"] >= values["modes_covered"]
    # every real sample counts in the protocol; 300 draws of 1,000 triples are nearly distinct
    assert protocol["modes_covered"] >= 0.9 * len({tuple(t) for t in labels.tolist()})


def test_no_confident_sample_leaves_the_kl_undefined_not_nan(stacked):
    target, x, _ = stacked
    noise = torch.rand(200, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    result = _score(target, noise, x, threshold=0.9999)["stacked_modes"]
    assert "error" not in result
    assert result["values"]["modes_covered"] == 0.0
    assert result["values"]["high_quality_fraction"] == 0.0
    assert "kl_modes" not in result["values"]  # no value, hence no CSV row
    assert result["details"]["kl_modes_note"] == "undefined: no high-quality sample"


def test_samples_outside_the_pixel_range_are_scored_clipped_and_counted(stacked):
    # a Gaussian decoder's p(x) samples leave [0, 1]: the classifier metrics read them clipped
    # (the same numbers as clipping by hand) and say what share of values was clipped
    target, x, _ = stacked
    gen = torch.Generator().manual_seed(1)
    noisy = x + 0.3 * torch.randn(x.shape, generator=gen)
    outside = float(((noisy < 0) | (noisy > 1)).double().mean())
    assert 0.05 < outside < 0.95
    ctx = EvalContext(target, None, noisy, x, 0, len(noisy), torch.device("cpu"))
    scored = evaluate_metrics(ctx, [{"name": "stacked_modes",
                                     "params": {"threshold": None, "min_count": 1}},
                                    {"name": "feature_metrics", "params": {}}])
    assert "error" not in scored["stacked_modes"] and "error" not in scored["feature_metrics"]
    assert scored["feature_metrics"]["values"]["pixels_clipped"] == pytest.approx(outside)
    clipped = noisy.clamp(0, 1)
    by_hand = images.feature_metrics(x, clipped)
    assert scored["feature_metrics"]["values"]["frechet_distance"] == pytest.approx(
        float(by_hand["frechet_distance"]))
    mc = images.count_stacked_modes(clipped, threshold=None, min_count=1)
    assert scored["stacked_modes"]["values"]["modes_covered"] == mc.modes_covered
