"""Laws that GAN losses and variational bounds must obey, as one assertion call each.

Public through :mod:`densitylab.testing`. Every law is checked on fixed, seeded inputs (no
Hypothesis needed), so a call is deterministic and fast; combine it with the strategies of
:mod:`densitylab.testing` to search further. A failure raises ``AssertionError`` whose message
starts with the name of the law and says by how much it failed.

GAN losses follow :mod:`densitylab.losses`' conventions: functions of raw logits (critic outputs)
that return a scalar to be minimised; a generator loss ``g(fake_logits)``, a discriminator loss
``d(real_logits, fake_logits)``.

The optimal-discriminator laws use two discrete distributions ``p`` and ``q`` on a few support
points. A loss that is a mean over its batch then evaluates the population objective exactly:
support point ``k`` appears ``counts_p[k]`` times in the real batch and ``counts_q[k]`` times in
the fake batch. The optimum of each loss family is a closed form:

* cross-entropy (``minimax``, ``non_saturating``): ``D* = p / (p + q)``, i.e. logits
  ``log(p / q)``, where the loss ``-V(D)`` attains ``log 4 - 2 JSD(p, q)`` (Goodfellow et al.,
  NeurIPS 2014, Prop. 1 and Thm. 1: ``max_D V = 2 JSD - log 4``);
* hinge: logits ``sign(p - q)`` and minimum ``2 sum_k min(p_k, q_k) = 2 - 2 TV(p, q)``
  (Lim and Ye, 2017);
* least squares with targets ``a = 0``, ``b = 1``: ``D* = p / (p + q)`` as the raw output and
  minimum ``1/4 - Delta(p, q) / 8`` with ``Delta = sum (p - q)^2 / (p + q)`` (Mao et al.,
  ICCV 2017, Prop. 1);
* wasserstein: unbounded below over free logits; over 1-Lipschitz critics on the support points
  (unit spacing) the minimum is ``-W1(p, q)`` (Kantorovich-Rubinstein duality; Arjovsky et al.,
  ICML 2017), attained by ``l_k = sum_{j<k} sign(F_q(j) - F_p(j))``. Every Lipschitz critic with
  steps in ``{-1, 0, 1}`` is tried by brute force.

The variational laws use a linear-Gaussian model ``z ~ N(0, I)``, ``x | z ~ N(W z + b, s^2 I)``
whose marginal ``N(b, W W^T + s^2 I)`` and posterior are known (probabilistic PCA, Tipping and
Bishop 1999): the ELBO equals ``log p(x) - KL(q || p(z | x))`` (Kingma and Welling, ICLR 2014),
and the expected IWAE bound rises with K towards ``log p(x)`` (Burda et al., ICLR 2016).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributions as D

__all__ = [
    "OPTIMA",
    "assert_generator_loss_laws",
    "assert_discriminator_loss_laws",
    "assert_optimal_discriminator",
    "LinearGaussianModel",
    "linear_gaussian_model",
    "assert_elbo_laws",
    "assert_iwae_monotone",
]

#: Loss families whose optimal discriminator (critic) :func:`assert_optimal_discriminator` knows.
OPTIMA = ("cross_entropy", "hinge", "least_squares", "wasserstein")

_SPECIALS = (0.0, 1.0, -1.0, 30.0, -30.0, 100.0, -100.0)


def _fail(law: str, message: str) -> None:
    raise AssertionError(f"law '{law}' failed: {message}")


def _call_scalar(fn: Callable[..., torch.Tensor], law: str, *args: torch.Tensor) -> torch.Tensor:
    out = fn(*args)
    if not isinstance(out, torch.Tensor):
        _fail(law, f"the loss returned {type(out).__name__}, expected a torch.Tensor")
    if out.numel() != 1 or out.ndim > 0:
        shapes = ", ".join(str(tuple(a.shape)) for a in args)
        _fail(law, f"on logits of shape {shapes} the loss returned shape {tuple(out.shape)}, "
                   "expected a 0-dim scalar: reduce over every axis (a mean over the batch)")
    return out


def _probe_logits(max_abs: float, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """The special logits (0, +-1, +-30, +-100, +-max_abs) and 7 seeded ones in [-10, 10]."""
    gen = torch.Generator().manual_seed(seed)
    specials = [v for v in _SPECIALS if abs(v) <= max_abs] + [max_abs, -max_abs]
    moderate = (torch.rand(7, generator=gen, dtype=torch.float64) * 20 - 10).tolist()
    return torch.tensor(specials + moderate, dtype=dtype)


def _ulps(value: torch.Tensor, n: int = 8) -> float:
    return n * torch.finfo(value.dtype).eps * max(1.0, abs(float(value)))


def _check_mean_over_batch(law: str, value_of: Callable[[torch.Tensor], torch.Tensor],
                           v: torch.Tensor, what: str) -> None:
    """``value_of(v)`` is the mean of ``value_of`` on each entry alone, for shapes (n,), (n, 1)."""
    whole = float(_call_scalar(value_of, law, v))
    column = float(_call_scalar(value_of, law, v[:, None]))
    singles = [float(_call_scalar(value_of, law, v[i:i + 1])) for i in range(len(v))]
    mean = math.fsum(singles) / len(singles)
    tol = 64 * torch.finfo(v.dtype).eps * (1 + max(abs(s) for s in singles))
    for label, got in ((f"{what} of shape (n,)", whole), (f"{what} of shape (n, 1)", column)):
        if not abs(got - mean) <= tol:
            _fail(law, f"on {label} the loss is {got!r}, but the mean of its values on each "
                       f"logit alone is {mean!r} (gap {abs(got - mean):.3g} > {tol:.3g}): it "
                       "must be a mean of one term per example (not a sum, not reduced over "
                       "the wrong axis, not coupled across the batch)")


def _gradient(fn: Callable[..., torch.Tensor], args: Sequence[torch.Tensor], law: str
              ) -> tuple[torch.Tensor, ...]:
    leaves = [a.detach().clone().requires_grad_(True) for a in args]
    out = _call_scalar(fn, law, *leaves)
    if not out.requires_grad:
        _fail(law, "the loss is not differentiable in the logits (its result has no grad_fn)")
    grads = torch.autograd.grad(out, leaves, allow_unused=True)
    return tuple(torch.zeros_like(a) if g is None else g
                 for a, g in zip(leaves, grads, strict=True))


def _check_finite(law: str, what: str, value: torch.Tensor, at: torch.Tensor) -> None:
    bad = ~torch.isfinite(value.detach())
    if bool(bad.any()):
        idx = int(bad.reshape(-1).nonzero()[0]) if value.ndim else 0
        where = float(at.reshape(-1)[idx]) if value.ndim else "the probe logits"
        _fail(law, f"{what} is {value.detach().reshape(-1)[idx].item()} at logit {where} "
                   f"({int(bad.sum())} non-finite of {value.numel()})")


def _raise_towards(v: torch.Tensor, i: int, step: float, target: float) -> torch.Tensor | None:
    """``v`` with entry ``i`` raised by ``step`` but not past ``target`` (None if nothing moves)."""
    if not float(v[i]) < target:
        return None
    out = v.clone()
    out[i] = min(float(v[i]) + step, target, float(torch.finfo(v.dtype).max))
    return None if float(out[i]) == float(v[i]) else out


_STEPS = (1e-3, 1.0, 100.0)


# --------------------------------------------------------------------------------------------
# generator losses
# --------------------------------------------------------------------------------------------


def assert_generator_loss_laws(
    generator_loss: Callable[[torch.Tensor], torch.Tensor],
    *,
    saturating: bool = False,
    target: float = math.inf,
    max_abs: float = 1e4,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> None:
    """Assert the laws of a GAN generator loss ``g(fake_logits)`` (a scalar to minimise).

    On fixed probe logits (``0``, ``+-1``, ``+-30``, ``+-100``, ``+-max_abs`` and 7 seeded values
    in ``[-10, 10]``, in ``dtype``), with ``n`` the batch size:

    * **mean over the batch**: a 0-dim scalar for logits of shape ``(n,)`` and ``(n, 1)``, equal
      to the mean of ``g`` on each logit alone (catches a sum, a reduction over the wrong axis,
      coupling across the batch);
    * **finite at extreme logits**: the value and its gradient are finite;
    * **gradient sign**: ``d g / d f_i <= 0`` for every logit below ``target`` and ``>= 0``
      above it, and ``< 0`` at the undecided logit 0: a gradient step raises the fake logits,
      i.e. moves the generator towards fooling the discriminator;
    * **monotone in the logits**: raising any one logit (by 1e-3, 1 or 100, not past
      ``target``) never raises the loss beyond 8 ulps, and neither does raising all of them
      together along ``-max_abs, ..., target``;
    * **no saturation**: where the discriminator rejects the fakes (logit ``-max_abs``) the
      gradient is at least half its size at logit 0 (true of any convex decreasing loss).
      The minimax loss ``log(1 - D(G(z)))`` saturates there by design (Goodfellow et al. 2014,
      Sec. 3): pass ``saturating=True`` and the law is checked where the discriminator is
      fooled (logit ``+max_abs``) instead.

    Which options fit :mod:`densitylab.losses`: ``minimax``: ``saturating=True``;
    ``least_squares``: ``target=1`` (the generator's target ``c = 1``, Mao et al. 2017);
    ``non_saturating``, ``hinge``, ``wasserstein``: the defaults.

    Raises:
        AssertionError: naming the law that failed, the logit and the size of the violation.
    """
    g = generator_loss
    v = _probe_logits(max_abs, dtype, seed)
    n = len(v)
    # finite at extreme logits (the probe includes +-max_abs), and on all-extreme batches
    for batch in (v, torch.full((n,), max_abs, dtype=dtype), torch.full((n,), -max_abs,
                                                                      dtype=dtype)):
        leaf = batch.detach().clone().requires_grad_(True)
        value = _call_scalar(g, "finite at extreme logits", leaf)
        _check_finite("finite at extreme logits", "the loss", value, batch)
        (grad,) = _gradient(g, (batch,), "finite at extreme logits")
        _check_finite("finite at extreme logits", "d loss / d fake_logits", grad, batch)

    _check_mean_over_batch("mean over the batch", g, v, "fake logits")

    (grad,) = _gradient(g, (v,), "gradient sign")
    for i in range(n):
        z, gi = float(v[i]), float(grad[i])
        if (z < target and gi > 0) or (z > target and gi < 0):
            way = "lower" if gi > 0 else "raise"
            _fail("gradient sign", f"d loss / d fake_logits = {gi:+.6g} at logit {z:g}: a "
                                   f"gradient descent step would {way} the discriminator's "
                                   f"logit on the fakes (the wrong way"
                                   f"{'' if math.isinf(target) else f' for target {target:g}'};"
                                   f" off by {abs(gi):.3g})")
    zero = torch.zeros(n, dtype=dtype)
    (g0,) = _gradient(g, (zero,), "gradient sign")
    if not float(g0.max()) < 0:
        _fail("gradient sign", f"at logit 0 (an undecided discriminator) d loss / d fake_logits "
                               f"= {float(g0.max()):+.6g}, expected < 0")

    with torch.no_grad():
        before = _call_scalar(g, "monotone in the logits", v)
        for i in range(n):
            for step in _STEPS:
                raised = _raise_towards(v, i, step, target)
                if raised is None:
                    continue
                after = _call_scalar(g, "monotone in the logits", raised)
                if float(after) > float(before) + _ulps(before):
                    _fail("monotone in the logits",
                          f"raising fake logit {i} from {float(v[i]):g} to {float(raised[i]):g} "
                          f"raised the loss from {float(before)!r} to {float(after)!r} "
                          f"(by {float(after) - float(before):.3g})")
        top = min(target, max_abs)
        levels = sorted({-max_abs, -100.0, -30.0, -1.0, 0.0, 0.5, 1.0, 30.0, 100.0, max_abs})
        levels = [c for c in levels if c <= top]
        values = [float(_call_scalar(g, "monotone in the logits",
                                     torch.full((n,), c, dtype=dtype))) for c in levels]
        for j in range(1, len(levels)):
            (c0, a), (c1, b) = (levels[j - 1], values[j - 1]), (levels[j], values[j])
            if b > a + _ulps(torch.tensor(a, dtype=dtype)):
                _fail("monotone in the logits", f"all fake logits at {c1:g} give loss {b!r}, "
                                                f"more than {a!r} at {c0:g} (by {b - a:.3g})")

    side = max_abs if saturating else -max_abs
    (g_far,) = _gradient(g, (torch.full((n,), side, dtype=dtype),), "no saturation")
    (g_mid,) = _gradient(g, (zero,), "no saturation")
    far, mid = float(g_far.abs().min()), float(g_mid.abs().max())
    if not far >= 0.5 * mid:
        where = ("is fooled (saturating=True)" if saturating
                 else "confidently rejects the fakes")
        _fail("no saturation", f"where the discriminator {where} (logit {side:g}) the "
                               f"gradient is {far:.3g}, less than half of {mid:.3g} at logit 0: "
                               "the generator gets no signal there (a clamped log does this)")


# --------------------------------------------------------------------------------------------
# discriminator losses
# --------------------------------------------------------------------------------------------


def _targets(optimum: str | None) -> tuple[float, float]:
    """Real and fake targets of a discriminator: loss falls as real logits rise up to the first
    and as fake logits fall down to the second."""
    return (1.0, 0.0) if optimum == "least_squares" else (math.inf, -math.inf)


def assert_discriminator_loss_laws(
    discriminator_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    optimum: str | None = "cross_entropy",
    max_abs: float = 1e4,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> None:
    """Assert the laws of a GAN discriminator (critic) loss ``d(real_logits, fake_logits)``.

    On fixed probe logits (as in :func:`assert_generator_loss_laws`):

    * **mean over the batch**: a 0-dim scalar, the mean over the real logits of its value on
      each real logit alone (likewise for the fake logits), for shapes ``(n,)`` and ``(n, 1)``;
    * **finite at extreme logits**: value and both gradients finite, ``max_abs`` included;
    * **gradient sign** and **monotone in the logits**: raising a real logit never raises the
      loss, raising a fake logit never lowers it (for ``least_squares``: up to the real target
      1 and from the fake target 0; Mao et al. 2017);
    * **optimal discriminator**: :func:`assert_optimal_discriminator` with ``optimum``, one of
      :data:`OPTIMA` (``None`` skips it, for a loss whose optimum is not one of those).

    Which optimum fits :mod:`densitylab.losses`: ``minimax`` and ``non_saturating`` (the same
    cross-entropy): ``"cross_entropy"``; ``hinge``: ``"hinge"``; ``wasserstein``:
    ``"wasserstein"``; ``least_squares``: ``"least_squares"``.

    Raises:
        AssertionError: naming the law that failed and the size of the violation.
    """
    if optimum is not None and optimum not in OPTIMA:
        raise ValueError(f"optimum must be one of {OPTIMA} or None, got {optimum!r}")
    d = discriminator_loss
    v = _probe_logits(max_abs, dtype, seed)
    w = v.flip(0)  # the other batch: same magnitudes in another order
    n = len(v)
    law = "finite at extreme logits"
    big = torch.full((n,), max_abs, dtype=dtype)
    for real, fake in ((v, w), (big, -big), (-big, big), (big, big)):
        value = _call_scalar(d, law, real, fake)
        _check_finite(law, "the loss", value, real)
        g_real, g_fake = _gradient(d, (real, fake), law)
        _check_finite(law, "d loss / d real_logits", g_real, real)
        _check_finite(law, "d loss / d fake_logits", g_fake, fake)

    law = "mean over the batch"
    _check_mean_over_batch(law, lambda r: d(r, w if r.ndim == 1 else w[:, None]), v,
                           "real logits")
    _check_mean_over_batch(law, lambda f: d(w if f.ndim == 1 else w[:, None], f), v,
                           "fake logits")

    real_target, fake_target = _targets(optimum)
    g_real, g_fake = _gradient(d, (v, w), "gradient sign")
    for i in range(n):
        r, gr = float(v[i]), float(g_real[i])
        if (r < real_target and gr > 0) or (r > real_target and gr < 0):
            _fail("gradient sign", f"d loss / d real_logits = {gr:+.6g} at real logit {r:g}: a "
                                   "gradient step moves the real logit away from its target "
                                   f"{real_target:g} (off by {abs(gr):.3g})")
        f, gf = float(w[i]), float(g_fake[i])
        if (f > fake_target and gf < 0) or (f < fake_target and gf > 0):
            _fail("gradient sign", f"d loss / d fake_logits = {gf:+.6g} at fake logit {f:g}: a "
                                   "gradient step moves the fake logit away from its target "
                                   f"{fake_target:g} (off by {abs(gf):.3g})")

    with torch.no_grad():
        before = _call_scalar(d, "monotone in the logits", v, w)
        for i in range(n):
            for step in _STEPS:
                raised = _raise_towards(v, i, step, real_target)
                if raised is not None:
                    after = _call_scalar(d, "monotone in the logits", raised, w)
                    if float(after) > float(before) + _ulps(before):
                        _fail("monotone in the logits",
                              f"raising real logit {i} from {float(v[i]):g} to "
                              f"{float(raised[i]):g} raised the loss from {float(before)!r} to "
                              f"{float(after)!r} (by {float(after) - float(before):.3g})")
                lowered = _raise_towards(-w, i, step, -fake_target)
                if lowered is not None:
                    after = _call_scalar(d, "monotone in the logits", v, -lowered)
                    if float(after) > float(before) + _ulps(before):
                        _fail("monotone in the logits",
                              f"lowering fake logit {i} from {float(w[i]):g} to "
                              f"{float(-lowered[i]):g} raised the loss from {float(before)!r} "
                              f"to {float(after)!r} (by {float(after) - float(before):.3g})")

    if optimum is not None:
        assert_optimal_discriminator(d, optimum)


def _distributions(counts_p: Sequence[int], counts_q: Sequence[int]):
    cp = [int(c) for c in counts_p]
    cq = [int(c) for c in counts_q]
    if len(cp) != len(cq) or len(cp) < 2 or min(cp + cq) < 1:
        raise ValueError("counts_p and counts_q must be two equally long sequences (>= 2) of "
                         f"positive integers, got {counts_p!r} and {counts_q!r}")
    p = [c / sum(cp) for c in cp]
    q = [c / sum(cq) for c in cq]
    return cp, cq, p, q


def _batch(logits: Sequence[float], counts: Sequence[int]) -> torch.Tensor:
    """Support point k's logit repeated counts[k] times (float64)."""
    return torch.tensor([z for z, c in zip(logits, counts, strict=True) for _ in range(c)],
                        dtype=torch.float64)


def _jsd(p: Sequence[float], q: Sequence[float]) -> float:
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    kl = lambda a, b: math.fsum(x * math.log(x / y) for x, y in zip(a, b, strict=True) if x > 0)  # noqa: E731
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def _optimum(family: str, p: Sequence[float], q: Sequence[float]) -> tuple[list[float], float]:
    """The optimal logits on the support and the minimal loss (see the module docstring)."""
    if family == "cross_entropy":
        return [math.log(a / b) for a, b in zip(p, q, strict=True)], \
            math.log(4) - 2 * _jsd(p, q)
    if family == "hinge":
        logits = [math.copysign(1.0, a - b) for a, b in zip(p, q, strict=True)]
        return logits, 2 * math.fsum(min(a, b) for a, b in zip(p, q, strict=True))
    if family == "least_squares":
        delta = math.fsum((a - b) ** 2 / (a + b) for a, b in zip(p, q, strict=True))
        return [a / (a + b) for a, b in zip(p, q, strict=True)], 0.25 - delta / 8
    # wasserstein: steps sign(F_q - F_p) between unit-spaced support points
    logits, level, fp, fq, w1 = [0.0], 0.0, 0.0, 0.0, 0.0
    for a, b in zip(p[:-1], q[:-1], strict=True):
        fp, fq = fp + a, fq + b
        level += (fq > fp) - (fq < fp)
        logits.append(level)
        w1 += abs(fp - fq)
    return logits, -w1


def assert_optimal_discriminator(
    discriminator_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimum: str = "cross_entropy",
    *,
    counts_p: Sequence[int] = (6, 3, 2, 1),
    counts_q: Sequence[int] = (1, 2, 3, 6),
    rtol: float = 1e-9,
) -> float:
    """Assert that a discriminator loss is minimised by its family's optimal discriminator.

    ``p`` and ``q`` are discrete on ``K`` support points with probabilities proportional to
    ``counts_p`` and ``counts_q`` (positive integers): the real batch holds the logit of support
    point ``k`` ``counts_p[k]`` times, the fake batch ``counts_q[k]`` times, so the loss (a mean
    over each batch) is the population objective exactly. Checked in float64:

    * **optimal value**: the loss at the optimal logits equals the closed form within
      ``rtol`` (``cross_entropy``: ``log 4 - 2 JSD(p, q)``, Goodfellow et al. 2014, Prop. 1;
      ``hinge``: ``2 - 2 TV``; ``least_squares``: ``1/4 - Delta / 8``; ``wasserstein``:
      ``-W1``; see the module docstring of :mod:`densitylab._loss_laws`);
    * **minimum**: moving any one optimal logit by ``+-0.5`` or ``+-2`` never lowers the loss;
      for ``wasserstein`` no critic with steps in ``{-1, 0, 1}`` between support points (every
      1-Lipschitz critic of that kind, by brute force) does better.

    Returns the minimal loss.

    Example:
        >>> from densitylab import losses
        >>> round(assert_optimal_discriminator(losses.discriminator_loss), 6)
        1.039312
    """
    if optimum not in OPTIMA:
        raise ValueError(f"optimum must be one of {OPTIMA}, got {optimum!r}")
    cp, cq, p, q = _distributions(counts_p, counts_q)
    best, expected = _optimum(optimum, p, q)

    def loss(logits: Sequence[float]) -> float:
        return float(_call_scalar(discriminator_loss, "optimal discriminator",
                                  _batch(logits, cp), _batch(logits, cq)))

    at_best = loss(best)
    tol = rtol * max(1.0, abs(expected))
    if not abs(at_best - expected) <= tol:
        _fail("optimal discriminator", f"at the {optimum} optimum (logits "
              f"{[round(z, 4) for z in best]}) the loss is {at_best!r}, expected {expected!r} "
              f"(off by {abs(at_best - expected):.3g}, tolerance {tol:.3g})")
    if optimum == "wasserstein":
        import itertools

        for steps in itertools.product((-1.0, 0.0, 1.0), repeat=len(p) - 1):
            critic = [0.0] + list(itertools.accumulate(steps))
            value = loss(critic)
            if value < at_best - tol:
                _fail("optimal discriminator", f"the 1-Lipschitz critic {critic} has loss "
                      f"{value!r}, below the optimum -W1 = {expected!r} (by "
                      f"{at_best - value:.3g})")
        return at_best
    for k in range(len(p)):
        for delta in (-2.0, -0.5, 0.5, 2.0):
            moved = list(best)
            moved[k] += delta
            value = loss(moved)
            if value < at_best - tol:
                _fail("optimal discriminator", f"moving the optimal logit of support point {k} "
                      f"by {delta:+g} lowers the loss from {at_best!r} to {value!r} (by "
                      f"{at_best - value:.3g}): the minimum is not at the {optimum} optimum")
    return at_best


# --------------------------------------------------------------------------------------------
# variational bounds
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinearGaussianModel:
    """``z ~ N(0, I_L)``, ``x | z ~ N(W z + b, s^2 I_D)`` with points ``x`` to score (float64).

    ``log_joint(x, z)`` broadcasts over leading sample dims of ``z`` (shape ``(..., n, L)``);
    ``log_marginal()`` is the exact ``log p(x)``; ``posterior()`` the exact ``p(z | x)``.
    """

    w: torch.Tensor  # (D, L)
    b: torch.Tensor  # (D,)
    s: float
    x: torch.Tensor  # (n, D)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x, z) = log N(z; 0, I) + log N(x; W z + b, s^2 I)``, shape ``z.shape[:-1]``."""
        prior = D.Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(-1)
        mean = z @ self.w.T + self.b
        lik = D.Normal(mean, torch.full_like(mean, self.s)).log_prob(x).sum(-1)
        return prior + lik

    def log_marginal(self) -> torch.Tensor:
        """Exact ``log p(x) = log N(x; b, W W^T + s^2 I)`` per row, shape ``(n,)``."""
        cov = self.w @ self.w.T + self.s**2 * torch.eye(len(self.b), dtype=torch.float64)
        return D.MultivariateNormal(self.b, cov).log_prob(self.x)

    def posterior(self) -> D.MultivariateNormal:
        """Exact ``p(z | x) = N(S W^T (x - b) / s^2, S)``, ``S = (I + W^T W / s^2)^-1``."""
        latent = self.w.shape[1]
        cov = torch.linalg.inv(torch.eye(latent, dtype=torch.float64) + self.w.T @ self.w
                               / self.s**2)
        mean = (self.x - self.b) @ self.w @ cov / self.s**2  # cov is symmetric
        return D.MultivariateNormal(mean, covariance_matrix=cov.expand(len(self.x), -1, -1))

    def mismatched_guide(self) -> D.Distribution:
        """A diagonal Gaussian guide, shifted by 0.5 and 1.5 times wider than the posterior's
        marginals: ``KL(q || p(z | x)) > 0``, and importance weights of finite variance."""
        post = self.posterior()
        std = post.covariance_matrix.diagonal(dim1=-2, dim2=-1).sqrt()
        return D.Independent(D.Normal(post.mean + 0.5, 1.5 * std), 1)


def linear_gaussian_model(data_dim: int = 2, latent_dim: int = 2, n: int = 3, *, s: float = 0.5,
                          seed: int = 0) -> LinearGaussianModel:
    """A seeded :class:`LinearGaussianModel` with ``W`` and ``b`` standard normal and ``n``
    points drawn from its marginal."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(data_dim, latent_dim, generator=gen, dtype=torch.float64)
    b = torch.randn(data_dim, generator=gen, dtype=torch.float64)
    z = torch.randn(n, latent_dim, generator=gen, dtype=torch.float64)
    x = z @ w.T + b + s * torch.randn(n, data_dim, generator=gen, dtype=torch.float64)
    return LinearGaussianModel(w, b, float(s), x)


#: A bound estimator: ``(log_joint, guide, x, num_samples) -> (n,)`` tensor, drawing
#: ``z ~ guide`` (batch shape ``(n,)``, event ``(L,)``) with torch's global RNG.
BoundFn = Callable[[Callable, D.Distribution, torch.Tensor, int], torch.Tensor]


def _estimates(bound: BoundFn, model: LinearGaussianModel, guide: D.Distribution,
               num_samples: int, replicates: int, seed: int, law: str) -> torch.Tensor:
    """``replicates`` independent estimates per point, shape ``(replicates, n)``."""
    n = len(model.x)
    x = model.x.repeat(replicates, 1)
    rep = type(guide)  # rebuild the guide's batch for the repeated points
    if isinstance(guide, D.MultivariateNormal):
        big = D.MultivariateNormal(guide.mean.repeat(replicates, 1),
                                   scale_tril=guide.scale_tril.repeat(replicates, 1, 1))
    elif isinstance(guide, D.Independent) and isinstance(guide.base_dist, D.Normal):
        big = D.Independent(D.Normal(guide.base_dist.loc.repeat(replicates, 1),
                                     guide.base_dist.scale.repeat(replicates, 1)), 1)
    else:
        raise TypeError(f"guide must be a MultivariateNormal or an Independent Normal, got {rep}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = bound(model.log_joint, big, x, num_samples)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x),):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        _fail(law, f"the bound returned {shape} for {len(x)} points, expected shape "
                   f"({len(x)},): one value per point")
    _check_finite(law, "the bound", out, x[:, 0])
    return out.detach().to(torch.float64).reshape(replicates, n)


def assert_elbo_laws(
    elbo: BoundFn,
    model: LinearGaussianModel | None = None,
    *,
    num_samples: int = 1,
    replicates: int = 2000,
    z_tol: float = 6.0,
    seed: int = 0,
) -> None:
    """Assert the ELBO laws of an estimator ``elbo(log_joint, guide, x, num_samples) -> (n,)``.

    On a linear-Gaussian model (``model``, by default :func:`linear_gaussian_model`), whose
    ``log p(x)`` and posterior are exact:

    * **exact at the true posterior**: with the guide ``q = p(z | x)`` every importance weight is
      ``p(x)``, so the estimate equals ``log p(x)`` to round-off (1e-8 relative), whatever the
      draws;
    * **below the log-likelihood**: with a mismatched diagonal guide the mean of ``replicates``
      independent estimates is below ``log p(x)`` and equals ``log p(x) - KL(q || p(z | x))``
      (closed form, Kingma and Welling 2014) within ``z_tol`` standard errors, for each point.

    The draws come from torch's global RNG, seeded with ``seed`` inside ``fork_rng`` (the
    caller's RNG state is left as it was), so the check is deterministic.
    """
    model = linear_gaussian_model() if model is None else model
    truth = model.log_marginal()
    law = "ELBO exact at the true posterior"
    at_post = _estimates(elbo, model, model.posterior(), num_samples, 1, seed, law)[0]
    tol = 1e-8 * (1 + truth.abs())
    gap = (at_post - truth).abs()
    if bool((gap > tol).any()):
        i = int((gap - tol).argmax())
        _fail(law, f"with the true posterior as guide the ELBO of point {i} is "
                   f"{float(at_post[i])!r}, but log p(x) = {float(truth[i])!r} "
                   f"(off by {float(gap[i]):.3g})")
    guide = model.mismatched_guide()
    kl = D.kl_divergence(D.MultivariateNormal(guide.mean, torch.diag_embed(guide.variance)),
                         model.posterior())
    est = _estimates(elbo, model, guide, num_samples, replicates, seed, "ELBO below log p(x)")
    mean, se = est.mean(0), est.std(0) / math.sqrt(replicates)
    slack = z_tol * se + 1e-10 * (1 + truth.abs())
    for i in range(len(truth)):
        if float(mean[i]) > float(truth[i]) + float(slack[i]):
            _fail("ELBO below log p(x)", f"point {i}: mean ELBO {float(mean[i])!r} exceeds "
                  f"log p(x) = {float(truth[i])!r} by {float(mean[i] - truth[i]):.3g} "
                  f"(> {z_tol:g} standard errors = {float(slack[i]):.3g})")
        expected = float(truth[i] - kl[i])
        if abs(float(mean[i]) - expected) > float(slack[i]):
            _fail("ELBO below log p(x)", f"point {i}: mean ELBO {float(mean[i])!r} differs from "
                  f"log p(x) - KL(q || posterior) = {expected!r} by "
                  f"{abs(float(mean[i]) - expected):.3g} (> {z_tol:g} standard errors = "
                  f"{float(slack[i]):.3g})")


def assert_iwae_monotone(
    iwae: BoundFn,
    model: LinearGaussianModel | None = None,
    *,
    ks: Sequence[int] = (1, 2, 5, 20, 100),
    replicates: int = 1000,
    z_tol: float = 6.0,
    seed: int = 0,
) -> list[float]:
    """Assert that an IWAE estimator ``iwae(log_joint, guide, x, K) -> (n,)`` rises with K.

    With the mismatched guide of a linear-Gaussian model (see :func:`assert_elbo_laws`), the
    means over ``replicates`` independent estimates, for each K in the increasing ``ks``,
    summed over the points (Burda, Grosse and Salakhutdinov, ICLR 2016, Thm. 1):

    * **IWAE non-decreasing in K**: no mean falls below the one before by more than ``z_tol``
      standard errors of the difference;
    * **IWAE below log p(x)**: every mean is at most ``log p(x)`` plus ``z_tol`` standard
      errors; at ``K = 1`` it is the ELBO ``log p(x) - KL(q || p(z | x))`` within that;
    * **IWAE tightens**: the mean at the largest K is above the one at the smallest K by more
      than ``z_tol`` standard errors (a mean of log-weights instead of a log-mean-exp is flat).

    Returns the means (nats, summed over the points), one per K.
    """
    model = linear_gaussian_model() if model is None else model
    ks = [int(k) for k in ks]
    if len(ks) < 2 or any(ks[j] <= ks[j - 1] for j in range(1, len(ks))) or ks[0] < 1:
        raise ValueError(f"ks must be at least two increasing positive integers, got {ks}")
    truth = float(model.log_marginal().sum())
    guide = model.mismatched_guide()
    kl = D.kl_divergence(D.MultivariateNormal(guide.mean, torch.diag_embed(guide.variance)),
                         model.posterior())
    means, ses = [], []
    for j, k in enumerate(ks):
        est = _estimates(iwae, model, guide, k, replicates, seed + j, "IWAE non-decreasing in K")
        per_rep = est.sum(1)
        means.append(float(per_rep.mean()))
        ses.append(float(per_rep.std()) / math.sqrt(replicates))
    for k, m, se in zip(ks, means, ses, strict=True):
        if m > truth + z_tol * se + 1e-10 * (1 + abs(truth)):
            _fail("IWAE below log p(x)", f"K = {k}: mean {m!r} exceeds log p(x) = {truth!r} by "
                  f"{m - truth:.3g} (> {z_tol:g} standard errors = {z_tol * se:.3g})")
    if ks[0] == 1:
        elbo = truth - float(kl.sum())
        if abs(means[0] - elbo) > z_tol * ses[0] + 1e-10 * (1 + abs(elbo)):
            _fail("IWAE below log p(x)", f"K = 1: mean {means[0]!r} is not the ELBO {elbo!r} "
                  f"(off by {abs(means[0] - elbo):.3g} > {z_tol:g} standard errors)")
    for j in range(1, len(ks)):
        (k0, m0, s0), (k1, m1, s1) = (ks[j - 1], means[j - 1], ses[j - 1]), (ks[j], means[j],
                                                                               ses[j])
        se = math.hypot(s0, s1)
        if m1 < m0 - z_tol * se:
            _fail("IWAE non-decreasing in K", f"mean at K = {k1} is {m1!r}, below {m0!r} at "
                  f"K = {k0} by {m0 - m1:.3g} (> {z_tol:g} standard errors = {z_tol * se:.3g})")
    se = math.hypot(ses[0], ses[-1])
    if not means[-1] - means[0] > z_tol * se:
        _fail("IWAE tightens", f"mean at K = {ks[-1]} ({means[-1]!r}) is not above the mean at "
              f"K = {ks[0]} ({means[0]!r}) by more than {z_tol:g} standard errors "
              f"({z_tol * se:.3g}); the gap to log p(x) = {truth!r} should shrink with K")
    return means
