"""Classifier two-sample test (Lopez-Paz and Oquab, "Revisiting classifier two-sample tests",
ICLR 2017), in the form used by simulation-based inference (sbi's ``c2st``: features
standardised inside each fold, stratified k-fold cross-validation, an MLP by default).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.stats import binom

from .._validation import as_samples, check_choice, check_int, check_same_dim

__all__ = ["C2STResult", "CLASSIFIERS", "c2st"]

CLASSIFIERS = ("mlp", "logistic", "knn", "forest")


@dataclass(frozen=True)
class C2STResult:
    """Outcome of :func:`c2st`.

    ``accuracy``: pooled held-out accuracy (every point predicted once, by the fold that held it
    out); 0.5 when the two samples are indistinguishable, 1 when perfectly separable.
    ``stderr``: its binomial standard error ``sqrt(acc (1 - acc) / N)`` (a lower bound: the
    folds' classifiers share training points, see :func:`c2st`).
    ``pvalue``: exact one-sided binomial test of ``P = Q`` on the first fold's held-out
    predictions: ``P(Binomial(test_size, 1/2) >= test_correct)``.
    ``n_per_class``: points used from each set (the larger set is subsampled to the smaller).
    """

    accuracy: float
    stderr: float
    pvalue: float
    correct: int
    n_total: int
    test_correct: int
    test_size: int
    n_per_class: int
    classifier: str
    folds: int
    seed: int

    def reject(self, alpha: float = 0.05) -> bool:
        """True when the test rejects ``P = Q`` at level ``alpha`` (``pvalue <= alpha``)."""
        return self.pvalue <= alpha

    def to_dict(self) -> dict:
        """Plain-Python dictionary (JSON-ready)."""
        return asdict(self)


def _classifier(name: str, dim: int, n_train: int, seed: int):
    """The scikit-learn estimator for ``name`` (standardisation is added by the caller)."""
    if name == "mlp":
        from sklearn.neural_network import MLPClassifier

        # sbi's choice: two hidden layers of 10 d ReLU units, Adam. From 1,000 training points
        # on, early stopping on a 10 % validation split bounds the cost and limits
        # overfitting; below, that split is too coarse to judge progress, and Adam runs until
        # the training loss stalls.
        width = max(10 * dim, 20)
        return MLPClassifier(hidden_layer_sizes=(width, width), activation="relu",
                             solver="adam", max_iter=1000, early_stopping=n_train >= 1000,
                             validation_fraction=0.1, n_iter_no_change=10, random_state=seed)
    if name == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=1000)
    if name == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        # k ~ sqrt(n_train), odd: consistent (k -> inf, k/n -> 0) and no ties between 2 classes
        k = max(1, int(math.sqrt(n_train)) // 2 * 2 + 1)
        return KNeighborsClassifier(n_neighbors=min(k, max(1, n_train - 1)))
    from sklearn.ensemble import RandomForestClassifier

    # leaves of >= 5 points: fully grown trees interpolate noise and score below chance at P = Q
    return RandomForestClassifier(n_estimators=100, min_samples_leaf=5, random_state=seed,
                                  n_jobs=1)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def c2st(x, y, classifier: str = "mlp", folds: int = 5, seed: int = 0) -> C2STResult:
    r"""Classifier two-sample test: how well a classifier tells samples of P from samples of Q.

    Lopez-Paz and Oquab (ICLR 2017): train a classifier to label points x ~ P as 0 and y ~ Q as
    1; under ``P = Q`` its held-out accuracy is 1/2. Here, as in sbi's ``c2st``:

    * classes are balanced: when ``n != m`` the larger set is subsampled (without replacement,
      seeded by ``seed``) to the size of the smaller, so chance level is exactly 1/2;
    * ``folds``-fold stratified cross-validation (shuffled, seeded): every point is predicted
      once by a classifier that never saw it, and the accuracy pools all ``N = 2 min(n, m)``
      held-out predictions;
    * features are standardised inside each fold (a scikit-learn ``Pipeline`` of
      ``StandardScaler`` and the classifier, fit on the training part only).

    Classifiers (scikit-learn): ``"mlp"`` (two ReLU layers of ``max(10 d, 20)`` units, Adam,
    early stopping), ``"logistic"`` (linear: detects mean shifts only), ``"knn"`` (``k`` about
    ``sqrt(n_train)``, odd), ``"forest"`` (100 trees, leaves of >= 5 points).

    Test: the p-value is the exact one-sided binomial tail ``P(Binomial(N_1, 1/2) >= c_1)`` of
    the ``c_1`` correct predictions among the ``N_1 = N / folds`` points of the first fold, as
    in Lopez-Paz and Oquab's single train/test split: under ``P = Q`` and given its classifier,
    each of those predictions is right with probability 1/2 independently of the others (and
    the count's variance is at most the binomial one), so the test is valid. Pooling all folds'
    predictions into one binomial test is not: the folds' classifiers share training points,
    which spreads the pooled count wider than a binomial (measured with the logistic classifier
    at n = 500: standard deviation 0.0195 against the binomial 0.0158 over 400 null pairs, and
    8.3 % rejections at alpha = 0.05).

    Estimator and bias: the accuracy estimates the accuracy of the chosen classifier trained on
    ``(folds - 1) / folds`` of the data, which is at most the Bayes accuracy
    ``1/2 + TV(P, Q)/2``: a weak or under-trained classifier biases it towards 1/2. ``stderr``
    is the binomial ``sqrt(acc (1 - acc) / N)``, which the correlation between folds makes
    about 20 % too small under ``P = Q``. Cost: ``folds`` trainings on ``(folds - 1) N /
    folds`` points (MLP: ``O(epochs N d w)``; k-NN: ``O(N^2 d / folds)``). Inputs may live on
    any device; they are copied to the CPU as float64 for scikit-learn.

    Arguments:
        x, y: samples ``(n, d)`` and ``(m, d)``; each set needs at least ``folds`` points.
        classifier: one of ``"mlp"``, ``"logistic"``, ``"knn"``, ``"forest"``.
        folds: number of cross-validation folds, ``>= 2``.
        seed: seeds the subsampling, the fold split and the classifier's initialisation.
    """
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    name = check_choice(classifier, "classifier", CLASSIFIERS)
    k = check_int(folds, "folds", minimum=2)
    seed = check_int(seed, "seed", minimum=0)
    xs = as_samples(x, "x", min_rows=k)
    ys = as_samples(y, "y", min_rows=k)
    check_same_dim(xs, ys)
    a, b = _to_numpy(xs), _to_numpy(ys)
    rng = np.random.default_rng(seed)
    size = min(len(a), len(b))
    if len(a) > size:
        a = a[np.sort(rng.choice(len(a), size, replace=False))]
    if len(b) > size:
        b = b[np.sort(rng.choice(len(b), size, replace=False))]
    data = np.concatenate([a, b])
    labels = np.concatenate([np.zeros(size, dtype=np.int64), np.ones(size, dtype=np.int64)])
    per_fold = []
    split = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for train, test in split.split(data, labels):
        model = make_pipeline(StandardScaler(), _classifier(name, data.shape[1], len(train), seed))
        model.fit(data[train], labels[train])
        per_fold.append((int((model.predict(data[test]) == labels[test]).sum()), len(test)))
    correct = sum(c for c, _ in per_fold)
    test_correct, test_size = per_fold[0]
    total = 2 * size
    acc = correct / total
    return C2STResult(
        accuracy=acc,
        stderr=math.sqrt(acc * (1.0 - acc) / total),
        pvalue=float(binom.sf(test_correct - 1, test_size, 0.5)),
        correct=correct,
        n_total=total,
        test_correct=test_correct,
        test_size=test_size,
        n_per_class=size,
        classifier=name,
        folds=k,
        seed=seed,
    )
