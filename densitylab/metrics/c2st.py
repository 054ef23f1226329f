"""Classifier two-sample test (Lopez-Paz and Oquab, "Revisiting classifier two-sample tests",
ICLR 2017), in the form used by simulation-based inference (sbi's ``c2st``: features
standardised inside each fold, stratified k-fold cross-validation, an MLP by default).

The default classifier is a torch MLP whose folds train as one computation (their weights
stacked along a fold dimension, one backward pass and one Adam step for all), full-batch, with a
validation-based early stop per fold; scikit-learn's classifiers are the other options.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import torch
from scipy.stats import binom

from .._runtime import fused_adam
from .._validation import as_samples, check_choice, check_int, check_positive, check_same_dim
from .witness import map_grid

__all__ = ["C2STMap", "C2STResult", "CLASSIFIERS", "c2st", "c2st_map"]

CLASSIFIERS = ("mlp", "sklearn_mlp", "logistic", "knn", "forest")


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
    if name == "sklearn_mlp":
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


#: The torch MLP's settings (classifier="mlp"): hidden widths per input dimension d, Adam's
#: learning rate, the epoch budget, and the early stop (validation share of each fold's training
#: part, how often it is scored, how many epochs without improvement end a fold).
MLP_SETTINGS = {"width": 32, "width_per_dim": 10, "max_width": 256, "depth": 2, "lr": 1e-2,
                "max_epochs": 200, "val_fraction": 0.1, "check_every": 10, "patience": 50}


def _stack_rows(data: torch.Tensor, rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(F, L, d)`` rows of each fold padded to the longest (with copies of its first row), and
    ``(F, L)`` weights: 1 on a fold's own rows, 0 on padding."""
    longest = max(len(r) for r in rows)
    idx = torch.zeros(len(rows), longest, dtype=torch.long)
    weight = torch.zeros(len(rows), longest, dtype=data.dtype)
    for f, r in enumerate(rows):
        idx[f] = int(r[0])
        idx[f, :len(r)] = torch.as_tensor(r, dtype=torch.long)
        weight[f, :len(r)] = 1.0
    return data[idx.to(data.device)], weight.to(data.device)


def _fit_torch_mlps(data: torch.Tensor, labels: torch.Tensor,
                    splits: list[tuple[np.ndarray, np.ndarray]], seed: int):
    """One ReLU MLP per fold, the folds trained as one computation; returns
    ``fold_logits(fold, points)``, fold ``fold``'s logit of class 1 at ``points`` (a tensor on
    the data's device, standardised as that fold's training part was).

    Each fold's training part is standardised by its own mean and std and split into a fit set
    and a validation set (``val_fraction``, seeded); the network minimises the mean logistic
    loss on the fit set by full-batch Adam and keeps the weights of its lowest validation loss,
    stopping after ``patience`` epochs without improvement. The folds' weights are stacked along
    a leading fold dimension (each fold's layer one ``torch.addmm`` on its slice: on a CPU
    that is faster than one ``baddbmm`` over the folds, 1.07 against 1.38 s for the benchmark
    of ``benchmarks/perf/c2st_perf.py``); one Adam step updates every fold, each entry
    from its own moments and each fold's loss depends on its own weights only, so a fold's
    classifier is the one it would be if trained alone (its stop, too: a stopped fold's kept
    weights never change). Runs on the data's device with torch's thread setting.
    """
    cfg = MLP_SETTINGS
    gen = torch.Generator().manual_seed(seed)
    dim = data.shape[1]
    fit_rows, val_rows = [], []
    for train, _ in splits:
        order = train[torch.randperm(len(train), generator=gen).numpy()]
        n_val = max(1, int(round(cfg["val_fraction"] * len(order))))
        val_rows.append(order[:n_val])
        fit_rows.append(order[n_val:])
    mean = torch.stack([data[torch.as_tensor(t, device=data.device)].mean(0) for t, _ in splits])
    std = torch.stack([data[torch.as_tensor(t, device=data.device)].std(0) for t, _ in splits])
    std = torch.where(std > 0, std, torch.ones_like(std))
    mean, std = mean[:, None, :], std[:, None, :]
    labelled = torch.cat([data, labels[:, None].to(data.dtype)], dim=1)
    fit, fit_w = _stack_rows(labelled, fit_rows)
    val, val_w = _stack_rows(labelled, val_rows)
    x_fit, y_fit = (fit[..., :dim] - mean) / std, fit[..., dim]
    x_val, y_val = (val[..., :dim] - mean) / std, val[..., dim]
    folds = len(splits)
    width = min(max(cfg["width"], cfg["width_per_dim"] * dim), cfg["max_width"])
    sizes = [dim] + [width] * cfg["depth"] + [1]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):  # nn.Linear's default init
        bound = 1.0 / math.sqrt(fan_in)
        for shape in ((folds, fan_in, fan_out), (folds, 1, fan_out)):
            w = (torch.rand(shape, generator=gen, dtype=data.dtype) * 2 - 1) * bound
            params.append(w.to(data.device).requires_grad_())

    def logits(x: torch.Tensor, fold: int) -> torch.Tensor:
        h = x
        for i in range(0, len(params), 2):
            h = torch.addmm(params[i + 1][fold], h, params[i][fold])
            if i + 2 < len(params):
                h = torch.relu(h)
        return h.squeeze(-1)

    def loss(x, y, w) -> torch.Tensor:  # (F,): each fold's mean logistic loss on its own rows
        out = torch.stack([logits(x[f], f) for f in range(folds)])
        per_point = torch.nn.functional.binary_cross_entropy_with_logits(out, y, reduction="none")
        return (per_point * w).sum(1) / w.sum(1)

    opt = fused_adam(params, lr=cfg["lr"])
    best = torch.full((folds,), math.inf, device=data.device)
    kept = [p.detach().clone() for p in params]
    waited = torch.zeros(folds, dtype=torch.long, device=data.device)
    live = torch.ones(folds, dtype=torch.bool, device=data.device)
    for epoch in range(1, cfg["max_epochs"] + 1):
        opt.zero_grad(set_to_none=True)
        loss(x_fit, y_fit, fit_w).sum().backward()
        opt.step()
        if epoch % cfg["check_every"] and epoch != cfg["max_epochs"]:
            continue
        with torch.no_grad():
            val_loss = loss(x_val, y_val, val_w)
            better = live & (val_loss < best)
            best = torch.where(better, val_loss, best)
            for p, k in zip(params, kept, strict=True):
                k.copy_(torch.where(better.view(-1, 1, 1), p, k))
            waited = torch.where(better, torch.zeros_like(waited), waited + cfg["check_every"])
            live &= waited < cfg["patience"]
            if not bool(live.any()):
                break
    with torch.no_grad():
        for p, k in zip(params, kept, strict=True):
            p.requires_grad_(False).copy_(k)

    def fold_logits(fold: int, points: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return logits((points.to(data.dtype) - mean[fold]) / std[fold], fold)

    return fold_logits


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


@dataclass(frozen=True)
class _CrossFit:
    """The C2ST's classifiers, one per fold, fitted on balanced, standardised training parts
    (``data`` rows: the ``n_per_class`` points of x, labelled 0, then those of y, labelled 1)."""

    data: np.ndarray
    labels: np.ndarray
    splits: list
    n_per_class: int
    folds: int
    name: str
    seed: int
    device: torch.device
    fitted: object  # the torch MLPs' fold_logits, or one scikit-learn pipeline per fold

    def predict(self, fold: int, points: np.ndarray) -> np.ndarray:
        """Fold ``fold``'s class (0: x, 1: y) at ``points``."""
        if self.name == "mlp":
            pts = torch.as_tensor(points, dtype=torch.float32, device=self.device)
            return (self.fitted(fold, pts) > 0).long().cpu().numpy()
        return self.fitted[fold].predict(points)

    def probability(self, fold: int, points: np.ndarray) -> np.ndarray:
        """Fold ``fold``'s probability that ``points`` come from y (classes balanced)."""
        if self.name == "mlp":
            pts = torch.as_tensor(points, dtype=torch.float32, device=self.device)
            return torch.sigmoid(self.fitted(fold, pts)).double().cpu().numpy()
        return self.fitted[fold].predict_proba(points)[:, 1]


def _cross_fit(x, y, classifier: str, folds: int, seed: int, *,
               needs_2d: str | None = None) -> _CrossFit:
    """Check the inputs, balance the classes, split into stratified folds and fit one
    classifier per fold (the steps :func:`c2st` documents). ``needs_2d`` names a caller that
    only takes 2D points: other inputs are refused before anything is trained."""
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    name = check_choice(classifier, "classifier", CLASSIFIERS)
    k = check_int(folds, "folds", minimum=2)
    seed = check_int(seed, "seed", minimum=0)
    xs = as_samples(x, "x", min_rows=k)
    ys = as_samples(y, "y", min_rows=k)
    check_same_dim(xs, ys)
    if needs_2d is not None and xs.shape[1] != 2:
        raise ValueError(f"{needs_2d} draws a 2D map: x and y need 2 columns, got "
                         f"{xs.shape[1]}")
    a, b = _to_numpy(xs), _to_numpy(ys)
    rng = np.random.default_rng(seed)
    size = min(len(a), len(b))
    if len(a) > size:
        a = a[np.sort(rng.choice(len(a), size, replace=False))]
    if len(b) > size:
        b = b[np.sort(rng.choice(len(b), size, replace=False))]
    data = np.concatenate([a, b])
    labels = np.concatenate([np.zeros(size, dtype=np.int64), np.ones(size, dtype=np.int64)])
    splits = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(data,
                                                                                     labels))
    if name == "mlp":
        as_torch = partial(torch.as_tensor, device=xs.device)
        fitted = _fit_torch_mlps(as_torch(data, dtype=torch.float32), as_torch(labels), splits,
                                 seed)
    else:
        fitted = []
        for train, _ in splits:
            model = make_pipeline(StandardScaler(),
                                  _classifier(name, data.shape[1], len(train), seed))
            fitted.append(model.fit(data[train], labels[train]))
    return _CrossFit(data, labels, splits, size, k, name, seed, xs.device, fitted)


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

    Classifiers: ``"mlp"`` (default; torch): two ReLU layers of ``min(max(10 d, 32), 256)``
    units, trained full-batch by Adam (lr 0.01) for at most 200 epochs, keeping each fold's
    weights of lowest logistic loss on 10 % of its training part held out for validation and
    stopping a fold after 50 epochs without improvement (:data:`MLP_SETTINGS`); the folds train
    as one computation. Wide, full-batch and long enough to resolve modes at 1 % of the data's
    scale: on the ring of 8 (std 0.01) against the same ring shifted by 0.01 in each coordinate
    (Bayes accuracy 0.760) it scores 0.729 at 2,500 points a side
    (``benchmarks/perf/c2st_perf.py``), where the previous default, scikit-learn's MLP with
    minibatch early stopping, scored 0.524.
    scikit-learn: ``"sklearn_mlp"`` (sbi's: two ReLU layers of ``max(10 d, 20)`` units, Adam,
    minibatches, early stopping), ``"logistic"`` (linear: detects mean shifts only), ``"knn"``
    (``k`` about ``sqrt(n_train)``, odd), ``"forest"`` (100 trees, leaves of >= 5 points).

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
    folds`` points (MLPs: ``O(epochs N (d w + w^2))`` for width ``w``; k-NN:
    ``O(N^2 d / folds)``). Inputs may live on
    any device; the torch MLP trains there in float32 with torch's thread setting, and for
    scikit-learn they are copied to the CPU as float64.

    Arguments:
        x, y: samples ``(n, d)`` and ``(m, d)``; each set needs at least ``folds`` points.
        classifier: one of ``"mlp"``, ``"logistic"``, ``"knn"``, ``"forest"``.
        folds: number of cross-validation folds, ``>= 2``.
        seed: seeds the subsampling, the fold split and the classifier's initialisation.
    """
    return _result(_cross_fit(x, y, classifier, folds, seed))


def _result(fit: _CrossFit) -> C2STResult:
    """Accuracy and first-fold exact test of the held-out predictions of ``fit``'s folds."""
    per_fold = []
    for f, (_, test) in enumerate(fit.splits):
        predicted = fit.predict(f, fit.data[test])
        per_fold.append((int((predicted == fit.labels[test]).sum()), len(test)))
    correct = sum(c for c, _ in per_fold)
    test_correct, test_size = per_fold[0]
    total = 2 * fit.n_per_class
    acc = correct / total
    return C2STResult(
        accuracy=acc,
        stderr=math.sqrt(acc * (1.0 - acc) / total),
        pvalue=float(binom.sf(test_correct - 1, test_size, 0.5)),
        correct=correct,
        n_total=total,
        test_correct=test_correct,
        test_size=test_size,
        n_per_class=fit.n_per_class,
        classifier=fit.name,
        folds=fit.folds,
        seed=fit.seed,
    )


@dataclass(frozen=True)
class C2STMap:
    """Outcome of :func:`c2st_map` (arrays are numpy, ``(grid_size, grid_size)`` with ``[i, j]``
    at ``(grid_x[j], grid_y[i])``, the layout of ``matplotlib``'s ``pcolormesh``).

    ``probability``: the folds' mean probability that a point at each grid node comes from the
    model (``y``) rather than the target (``x``), classes balanced: an estimate of
    ``q / (p + q)``, 0.5 where the two densities agree, near 0 where the target has mass the
    model lacks (a missed mode), near 1 where the model puts mass the target lacks (a leak).
    ``log_ratio``: its logit, an estimate of ``log q / p``. ``test``: the C2ST of the same
    cross-fitted classifiers (:func:`c2st`'s result).
    """

    grid_x: np.ndarray
    grid_y: np.ndarray
    probability: np.ndarray
    log_ratio: np.ndarray
    test: C2STResult

    def to_dict(self) -> dict:
        """JSON-ready: the grid axes and the maps as nested lists, the test as a dictionary."""
        return {"grid_x": self.grid_x.tolist(), "grid_y": self.grid_y.tolist(),
                "probability": self.probability.tolist(), "log_ratio": self.log_ratio.tolist(),
                "test": self.test.to_dict()}


def c2st_map(x, y, classifier: str = "mlp", folds: int = 5, seed: int = 0, *,
             grid_size: int = 64, padding: float = 0.1) -> C2STMap:
    """Where the C2ST's classifier tells a 2D model ``y`` from target ``x``: its probability of
    "model" on a grid, from the cross-fitted classifiers :func:`c2st` trains.

    A classifier trained on balanced classes estimates the posterior ``q(t) / (p(t) + q(t))``
    (Lopez-Paz and Oquab, ICLR 2017, use it to say where two samples differ; the same
    density-ratio reading underlies the PRD curves of Simon et al., ICML 2019). The map averages
    the ``folds`` classifiers' probabilities at each grid node, so no training point is needed
    twice, and the returned ``test`` is the C2ST of the same classifiers (one fit serves both).
    Far from both samples the classifier extrapolates: read the map where there is data (the
    witness map, :func:`~densitylab.metrics.witness_map`, gives family-wise significance).

    The grid spans the pooled data's bounding box widened by ``padding`` of its range on each
    side. Arguments as :func:`c2st`; x and y need 2 columns.
    """
    size = check_int(grid_size, "grid_size", minimum=2)
    pad = check_positive(padding, "padding", allow_zero=True)
    fit = _cross_fit(x, y, classifier, folds, seed, needs_2d="c2st_map")
    axes, grid = map_grid(torch.as_tensor(fit.data), size, pad)
    points = grid.numpy()
    prob = np.mean([fit.probability(f, points) for f in range(fit.folds)], axis=0)
    prob = prob.reshape(size, size)
    clipped = np.clip(prob, 1e-12, 1 - 1e-12)
    return C2STMap(grid_x=axes[0].numpy(), grid_y=axes[1].numpy(), probability=prob,
                   log_ratio=np.log(clipped) - np.log1p(-clipped),
                   test=_result(fit))
