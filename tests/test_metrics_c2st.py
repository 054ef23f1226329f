"""C2ST against the Bayes accuracy Phi(delta / 2) of N(0, I_2) vs N(delta e_1, I_2), its null
calibration, the ring check at the modes' scale, the folds' independence, and its input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from densitylab import distributions, metrics
from densitylab.metrics.c2st import _fit_torch_mlps

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _shifted(n, delta, seed, m=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = rng.normal(size=(m or n, 2))
    y[:, 0] += delta
    return x, y


@pytest.mark.parametrize("classifier", [pytest.param("mlp", marks=pytest.mark.slow),
                                        "logistic", "knn"])
def test_c2st_small_sample_near_bayes_accuracy(classifier):
    x, y = _shifted(1500, 2.0, seed=0)
    res = metrics.c2st(x, y, classifier=classifier)
    bayes = norm.cdf(1.0)
    # N = 3000 held-out predictions: s.e. ~0.007; a classifier cannot beat Bayes by much
    assert abs(res.accuracy - bayes) < 0.03
    assert res.stderr == pytest.approx(np.sqrt(res.accuracy * (1 - res.accuracy) / 3000))
    assert res.pvalue < 1e-10 and res.reject()


def test_c2st_result_fields_and_determinism():
    x, y = _shifted(200, 0.0, seed=1, m=260)
    a = metrics.c2st(x, y, classifier="logistic", folds=4, seed=3)
    b = metrics.c2st(torch.as_tensor(x), torch.as_tensor(y), classifier="logistic", folds=4,
                     seed=3)
    assert a == b
    d = a.to_dict()
    assert d["n_per_class"] == 200 and d["n_total"] == 400  # the larger set was subsampled
    assert d["accuracy"] == d["correct"] / 400
    assert d["classifier"] == "logistic" and d["folds"] == 4
    assert 0 < a.pvalue <= 1


def test_c2st_pvalue_is_the_binomial_tail():
    x, y = _shifted(100, 0.7, seed=2)
    res = metrics.c2st(x, y, classifier="logistic")
    from scipy.stats import binomtest

    assert res.test_size == 40 and 0 <= res.test_correct <= 40  # the first of 5 folds
    want = binomtest(res.test_correct, res.test_size, 0.5, alternative="greater").pvalue
    assert res.pvalue == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("classifier", ["sklearn_mlp", "forest"])
def test_c2st_other_classifiers_run(classifier):
    x, y = _shifted(150, 3.0, seed=3)
    res = metrics.c2st(x, y, classifier=classifier, folds=2)
    assert res.accuracy > 0.85  # Bayes accuracy Phi(1.5) = 0.933


def test_c2st_torch_mlp_is_deterministic_and_leaves_the_thread_setting():
    x, y = _shifted(300, 1.0, seed=5, m=340)
    threads = torch.get_num_threads()
    a = metrics.c2st(x, y, seed=3)
    b = metrics.c2st(torch.as_tensor(x), torch.as_tensor(y), seed=3)
    assert a == b and a.classifier == "mlp" and a.n_per_class == 300
    assert torch.get_num_threads() == threads
    assert a.accuracy > 0.6  # Bayes accuracy Phi(0.5) = 0.69


def _held_out_predictions(data, labels, splits):
    fold_logits = _fit_torch_mlps(data, labels, splits, seed=0)
    return [(fold_logits(f, data[torch.as_tensor(test)]) > 0).numpy()
            for f, (_, test) in enumerate(splits)]


def test_torch_mlp_folds_train_independently():
    # The exact test needs the first fold's classifier to depend on its own training rows only:
    # giving the other folds different rows (of the same sizes) must leave its predictions as
    # they were, early stop included.
    rng = np.random.default_rng(6)
    data = torch.as_tensor(rng.normal(size=(400, 2)), dtype=torch.float32)
    labels = torch.as_tensor(rng.integers(0, 2, size=400))
    data[labels == 1, 0] += 1.0
    rows = rng.permutation(400)
    first = (rows[:300], rows[300:])
    others = [(rng.permutation(400)[:300], rows[:100]) for _ in range(2)]
    others_b = [(rng.permutation(400)[:300], rows[:100]) for _ in range(2)]
    a = _held_out_predictions(data, labels, [first, *others])
    b = _held_out_predictions(data, labels, [first, *others_b])
    np.testing.assert_array_equal(a[0], b[0])
    assert not all(np.array_equal(u, v) for u, v in zip(a[1:], b[1:], strict=True))


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"classifier": "svm"}, ValueError, "classifier"),
        ({"folds": 1}, ValueError, "folds"),
        ({"folds": 2.0}, TypeError, "folds"),
        ({"seed": -1}, ValueError, "seed"),
        ({"folds": 50}, ValueError, "at least 50"),
    ],
)
def test_c2st_rejects_bad_options(kwargs, err, match):
    x, y = _shifted(20, 0.0, seed=4)
    with pytest.raises(err, match=match):
        metrics.c2st(x, y, **kwargs)


def test_c2st_rejects_bad_samples():
    with pytest.raises(ValueError, match="same feature shape"):
        metrics.c2st(np.zeros((10, 2)), np.zeros((10, 3)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.c2st(np.full((10, 2), np.inf), np.zeros((10, 2)))


@pytest.mark.slow
@pytest.mark.parametrize("delta", [0.0, 0.5, 1.0, 2.0])
def test_c2st_mlp_matches_bayes_accuracy(delta):
    x, y = _shifted(10_000, delta, seed=10)
    res = metrics.c2st(x, y)
    assert abs(res.accuracy - norm.cdf(delta / 2)) < 0.02


@pytest.mark.slow
def test_c2st_sees_a_one_std_shift_of_the_ring_modes():
    # ring of 8 (std 0.01) against the same ring shifted by one mode std in each coordinate:
    # within a mode the Bayes rule is linear, accuracy Phi(0.01 sqrt(2) / (2 0.01)) = 0.760
    # (the modes are 77 stds apart, so their overlap adds nothing)
    ring = distributions.ring()
    x = ring.sample(2500, seed=0)
    y = ring.sample(2500, seed=1) + 0.01
    bayes = norm.cdf(np.sqrt(2) / 2)
    res = metrics.c2st(x, y)
    assert 0.70 <= res.accuracy <= bayes + 3 * res.stderr
    assert res.reject()


@pytest.mark.slow
@pytest.mark.parametrize("classifier", ["mlp", "logistic", "knn"])
def test_c2st_null_rejection_rate(classifier):
    # 200 pairs of two draws of one distribution, n = 500 per side: at alpha = 0.05 the
    # binomial test must reject at most 8 % of them (5 % plus Monte Carlo error: the count's
    # standard deviation is about 3 of 200).
    rejections = 0
    for seed in range(200):
        x, y = _shifted(500, 0.0, seed=1000 + seed)
        rejections += metrics.c2st(x, y, classifier=classifier, seed=seed).reject(0.05)
    assert rejections <= 16
