"""The digit classifier, its cache, stacked-digit mode counts and feature-space metrics."""

from __future__ import annotations

import math

import pytest
import torch

from densitylab import images, metrics
from densitylab.images import classifier as clf_module

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cache(classifier_cache):
    return classifier_cache


@pytest.fixture(scope="module")
def clf(cache):
    """The seed-0 classifier, trained once for the whole test run (see ``conftest.py``)."""
    return images.get_classifier(seed=0, cache=cache)


@pytest.fixture(scope="module")
def stacked_test():
    """26,000 stacked digits drawn from the held-out split, with their true labels."""
    return images.StackedDigits("test").sample(26_000, seed=1)


# ------------------------------------------------------------------------------ classifier


def test_classifier_reaches_97_percent_on_held_out_digits(clf):
    x, y = images.load_digits("test")
    with torch.no_grad():
        pred = clf(x).argmax(1)
    acc = float((pred == y).double().mean())
    assert acc >= 0.97
    assert clf.test_accuracy == pytest.approx(acc)


def test_classifier_is_loaded_from_the_cache_file(clf, cache, monkeypatch):
    files = list(cache.glob("digit-classifier-v*-seed0-*.pt"))
    assert len(files) == 1
    monkeypatch.setattr(clf_module, "_memo", {})
    monkeypatch.setattr(
        clf_module, "train_classifier", lambda *a, **k: pytest.fail("retrained despite cache")
    )
    loaded = images.get_classifier(seed=0, cache=cache)
    assert loaded is not clf
    for (name, a), (_, b) in zip(
        clf.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_corrupted_or_foreign_cache_file_is_retrained(clf, cache, tmp_path, monkeypatch):
    target = tmp_path / next(cache.glob("*.pt")).name
    calls = []

    def fake_train(seed, *, config=None):
        calls.append(seed)
        return images.DigitClassifier(config)

    monkeypatch.setattr(clf_module, "_memo", {})
    monkeypatch.setattr(clf_module, "train_classifier", fake_train)
    target.write_bytes(b"not a torch file")
    images.get_classifier(seed=0, cache=tmp_path)
    assert calls == [0]
    # The retrained model was written back, atomically, as a readable file.
    blob = torch.load(target, weights_only=True)
    assert blob["seed"] == 0 and set(blob["state_dict"]) == set(clf.state_dict())
    # A readable file whose metadata does not match (another seed) is not trusted either.
    blob["seed"] = 7
    torch.save(blob, target)
    monkeypatch.setattr(clf_module, "_memo", {})
    images.get_classifier(seed=0, cache=tmp_path)
    assert calls == [0, 0]


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DENSITYLAB_CACHE", str(tmp_path / "c"))
    assert images.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("DENSITYLAB_CACHE")
    assert images.cache_dir().name == "densitylab"


@pytest.mark.slow
def test_same_seed_trains_identical_weights():
    a = images.train_classifier(0)
    b = images.train_classifier(0)
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(p, q), name


# ------------------------------------------------------------------------------ mode counts


def test_real_stacked_digits_cover_the_modes_with_near_zero_kl(clf, stacked_test):
    x, labels = stacked_test
    mc = images.count_stacked_modes(x, clf, return_assignments=True)
    assert isinstance(mc, metrics.ModeCoverage)
    assert mc.num_modes == 1000 and mc.num_samples == 26_000 and sum(mc.counts) == 26_000
    assert mc.modes_covered >= 990
    # A perfect sampler's histogram of N = 26,000 draws has 2 N KL ~ chi2(999): KL ~ 0.0192 with
    # sd 0.0009. Misread channels (about 1-2% of digits) move counts between modes but keep them
    # near uniform, so 0.03 leaves room for them and still rejects any real imbalance (one
    # missing digit in one channel alone gives KL = log(10/9) = 0.105).
    assert mc.kl_to_uniform < 0.03
    truth = images.mode_index(labels)
    true_kl = metrics.mode_histogram_kl(torch.bincount(truth, minlength=1000))
    assert abs(true_kl - 999 / (2 * 26_000)) < 0.004
    # Per-sample, the classifier reads the full triple right about as often as acc^3.
    triple_acc = float((mc.assignments == truth).double().mean())
    assert triple_acc >= 0.97**3
    assert 0.9 < mc.high_quality_fraction <= 1.0


def test_a_generator_of_one_digit_triple_covers_one_mode(clf, stacked_test):
    x, labels = stacked_test
    mc_all = images.count_stacked_modes(x[:500], clf, return_assignments=True)
    i = int(torch.nonzero(mc_all.assignments == images.mode_index(labels[:500]))[0])
    collapsed = x[i : i + 1].expand(2600, 3, 8, 8)
    mc = images.count_stacked_modes(collapsed, clf)
    assert mc.modes_covered == 1
    assert mc.counts[int(images.mode_index(labels[i : i + 1]))] == 2600
    assert mc.kl_to_uniform == pytest.approx(math.log(1000), rel=1e-12)


def test_threshold_counts_only_confident_samples(clf, stacked_test):
    x, _ = stacked_test
    x = x[:2000]
    noise = torch.rand(2000, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    real = images.count_stacked_modes(x, clf, threshold=0.9)
    junk = images.count_stacked_modes(noise, clf, threshold=0.9)
    _, conf = clf.predict(x.reshape(-1, 1, 8, 8))
    expected = float((conf.reshape(-1, 3) >= 0.9).all(1).double().mean())
    assert real.high_quality_fraction == pytest.approx(expected)
    assert sum(real.counts) == round(expected * 2000)
    assert junk.high_quality_fraction < real.high_quality_fraction
    # threshold=None counts everything and reports the mean confidence instead.
    soft = images.count_stacked_modes(x, clf)
    assert sum(soft.counts) == 2000
    assert soft.high_quality_fraction == pytest.approx(images.classifier_confidence(x, clf))


def test_mode_count_input_errors(clf):
    with pytest.raises(ValueError, match=r"\(n, 3, 8, 8\)"):
        images.count_stacked_modes(torch.rand(4, 1, 8, 8), clf)
    with pytest.raises(ValueError, match="8x8"):
        images.count_stacked_modes(torch.rand(4, 3, 28, 28), clf)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        images.count_stacked_modes(torch.rand(4, 3, 8, 8) * 2 - 1, clf)
    with pytest.raises(ValueError, match="threshold"):
        images.count_stacked_modes(torch.rand(4, 3, 8, 8), clf, threshold=1.5)
    with pytest.raises(TypeError, match="classifier"):
        images.count_stacked_modes(torch.rand(4, 3, 8, 8), classifier="cnn")


# ------------------------------------------------------------------------------ features


def test_features_are_per_channel_penultimate_activations(clf):
    x, _ = images.StackedDigits("test").sample(10, seed=0)
    f = images.features(x, clf)
    assert f.shape == (10, 3 * clf.num_features) and f.dtype == torch.float64
    with torch.no_grad():
        direct = clf.features(x[:, 1:2])
    # Batched float32 convolutions may round differently from the single-channel call.
    torch.testing.assert_close(
        f[:, clf.num_features : 2 * clf.num_features], direct.double(), rtol=1e-5, atol=1e-5
    )


def test_feature_metrics_separate_real_from_noise(clf):
    real, _ = images.load_digits("test")  # 450 held-out digits
    other, _ = images.load_digits("train")
    other = other[:450]
    noise = torch.rand(450, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    same = images.feature_metrics(real, other, classifier=clf, kid_subset_size=200, kid_subsets=50)
    far = images.feature_metrics(real, noise, classifier=clf, kid_subset_size=200, kid_subsets=50)
    assert set(same) == {
        "kid_mean", "kid_std", "frechet_distance", "precision", "recall", "density", "coverage",
        "confidence_real", "confidence_fake",
    }
    for res in (same, far):
        for key in ("precision", "recall", "coverage"):
            assert 0.0 <= res[key] <= 1.0
        assert res["kid_std"] > 0  # subsets of 200 out of 450 differ
    # Two samples of the same distribution: KID is an unbiased MMD^2 estimate of 0, so it stays
    # near 0 (it may be negative); noise is far away on every distance.
    assert abs(same["kid_mean"]) < 0.01 * far["kid_mean"]
    assert same["frechet_distance"] < 0.1 * far["frechet_distance"]
    assert same["precision"] > 0.8 and same["recall"] > 0.8 and same["coverage"] > 0.8
    # Precision is not asserted small for noise: a few real outliers with wide k-NN balls swallow
    # the noise features (the failure of precision that density was designed to fix, Naeem et
    # al. 2020, Sec. 3); density, recall and coverage all see it.
    assert far["density"] < 0.3 * same["density"]
    assert far["recall"] < 0.2 and far["coverage"] < 0.2
    assert far["confidence_fake"] < same["confidence_fake"]


def test_feature_metrics_compose_the_metrics_on_classifier_features(clf):
    real, _ = images.load_digits("test")
    fake = images.synthetic_blobs(300, seed=1)[0]
    fr, ff = images.features(real, clf), images.features(fake, clf)
    res = images.feature_metrics(real, fake, classifier=clf, kid_subset_size=100, kid_subsets=10)
    pr = metrics.prdc(fr, ff, k=5)
    assert (res["precision"], res["recall"], res["density"], res["coverage"]) == (
        pr.precision, pr.recall, pr.density, pr.coverage
    )
    assert res["frechet_distance"] == metrics.frechet_distance(fr, ff)
    assert res["kid_mean"] == metrics.kid(fr, ff, num_subsets=10, subset_size=100).mean
    # Above prdc_samples, PRDC sees a seeded subset of that size of each set.
    capped = images.feature_metrics(real, fake, classifier=clf, prdc_samples=100, kid_subsets=2)
    again = images.feature_metrics(real, fake, classifier=clf, prdc_samples=100, kid_subsets=2)
    assert capped == again
    assert capped["precision"] != res["precision"] or capped["recall"] != res["recall"]


def test_feature_metrics_errors(clf):
    with pytest.raises(ValueError, match="same number of channels"):
        images.feature_metrics(torch.rand(20, 1, 8, 8), torch.rand(20, 3, 8, 8), classifier=clf)
    with pytest.raises(ValueError, match="real"):
        images.feature_metrics(torch.rand(20, 1, 7, 7), torch.rand(20, 1, 8, 8), classifier=clf)
    with pytest.raises(ValueError, match="NaN"):
        images.feature_metrics(
            torch.rand(20, 1, 8, 8), torch.full((20, 1, 8, 8), math.nan), classifier=clf
        )
    with pytest.raises(ValueError, match="prdc_samples"):
        images.feature_metrics(torch.rand(20, 1, 8, 8), torch.rand(20, 1, 8, 8), classifier=clf,
                               prdc_samples=3)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mode_count_on_gpu_matches_cpu(clf, cache, stacked_test):
    x, _ = stacked_test
    cpu = images.count_stacked_modes(x, clf, return_assignments=True)
    gpu_clf = images.get_classifier(seed=0, device="cuda", cache=cache)
    gpu = images.count_stacked_modes(x.cuda(), gpu_clf, return_assignments=True)
    # Float32 convolutions may round differently on the GPU; a label flips only at a near tie.
    agree = float((gpu.assignments.cpu() == cpu.assignments).double().mean())
    assert agree > 0.999
    assert abs(gpu.modes_covered - cpu.modes_covered) <= 2
    assert gpu.kl_to_uniform == pytest.approx(cpu.kl_to_uniform, abs=1e-3)
