"""How a suite metric is declared: :class:`MetricSpec`, its parameters (:class:`Param`, each
with its default and constraints) and the values it reports (:class:`ValueInfo`).

Everything the rest of the package says about a metric is read from here: the suite's checker
validates parameters against the declared constraints (and lists the valid keys on a typo), and
the report takes each value's direction, ideal, description and headline status from its
:class:`ValueInfo` (in the manner of torchmetrics' ``higher_is_better`` on the metric itself).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..metrics import sanity
from .constraints import Constraint, validate

__all__ = ["HIGHER", "LOWER", "TARGET", "DIRECTIONS", "ValueInfo", "Param", "MetricSpec"]

#: A value's direction: higher is better, lower is better, or best at its ideal value (neither
#: end is good: PRDC's density is 1 when the model matches the target).
HIGHER, LOWER, TARGET = "higher", "lower", "target"
DIRECTIONS = (HIGHER, LOWER, TARGET, None)
#: ``ValueInfo.ideal`` not given: the ideal of the value's sanity-battery score.
_FROM_BATTERY: Any = object()


@dataclass(frozen=True)
class ValueInfo:
    """What one value a metric reports means.

    ``direction``: :data:`HIGHER`, :data:`LOWER`, :data:`TARGET` (best at ``ideal``) or None (a
    value that is not a score: a standard error, a p-value, a count of the target's modes).
    ``ideal``: the value when the model is the target; by default the ideal its sanity-battery
    score declares (None without one); None when it depends on the target.
    ``description``: one line, or ``description(params)`` for a line that names the metric's
    resolved parameters. ``sanity``: the name of the score the metric sanity battery
    (:mod:`densitylab.metrics.sanity`) checks for this value, or None when the battery does not
    check it; its role there (discrepancy, fidelity, diversity) is :attr:`sanity_role`.
    ``headline``: the report tests every pair of models on it.
    """

    direction: str | None
    description: str | Callable[[dict[str, Any]], str]
    ideal: float | None = _FROM_BATTERY  # type: ignore[assignment]
    sanity: str | None = None
    headline: bool = False

    def __post_init__(self) -> None:
        if self.ideal is _FROM_BATTERY:
            battery = _battery().get(self.sanity) if self.sanity is not None else None
            object.__setattr__(self, "ideal", None if battery is None else battery.ideal)
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction: expected one of {DIRECTIONS}, got {self.direction!r}")
        if self.direction == TARGET and self.ideal is None:
            raise ValueError("direction 'target' needs the ideal value")
        if self.sanity is not None and self.sanity not in _battery():
            raise ValueError(f"sanity: {self.sanity!r} is not a score of the metric sanity "
                             f"battery; expected one of {', '.join(sorted(_battery()))}")

    @property
    def sanity_role(self) -> str | None:
        """The value's role in the sanity battery (``discrepancy``, ``fidelity`` or
        ``diversity``, from the battery's own declaration), or None when it is not checked."""
        return None if self.sanity is None else _battery()[self.sanity].role

    def describe(self, params: Mapping[str, Any] | None = None) -> str:
        """The one-line description for the metric's resolved ``params``."""
        text = self.description
        return text(dict(params or {})) if callable(text) else text

    def direction_text(self) -> str | None:
        """How a figure says the direction: ``"higher is better"``, ``"lower is better"``,
        ``"1 = as the target"``; None for a value without one."""
        if self.direction == TARGET:
            return f"{self.ideal:g} = as the target"
        return None if self.direction is None else f"{self.direction} is better"


@functools.cache
def _battery() -> dict[str, sanity.Score]:
    """The sanity battery's scores by name (their role and ideal are declared there)."""
    return {score.name: score for score in sanity.default_scores()}


@dataclass(frozen=True)
class Param:
    """One parameter of a metric: its ``default`` and the ``constraints`` a value must meet
    (any one of them); ``doc`` says what it sets."""

    name: str
    default: Any
    constraints: tuple[Constraint, ...]
    doc: str = ""

    def __post_init__(self) -> None:
        if not self.constraints:
            raise ValueError(f"parameter {self.name!r}: declare at least one constraint")
        validate(self.default, self.name, self.constraints)  # a declaration must hold itself

    def check(self, value: Any) -> None:
        """Raise TypeError/ValueError naming the parameter unless ``value`` is valid."""
        validate(value, self.name, self.constraints)

    @classmethod
    def of(cls, fn: Callable[..., Any], name: str, constraints: tuple[Constraint, ...],
           doc: str = "") -> Param:
        """The parameter ``name`` of the pure metric function ``fn`` with the default its
        signature declares (so the suite's default is the function's own, declared once)."""
        default = inspect.signature(fn).parameters[name].default
        if default is inspect.Parameter.empty:
            raise ValueError(f"{fn.__name__} declares no default for {name!r}")
        return cls(name, default, constraints, doc)


@dataclass(frozen=True)
class MetricSpec:
    """A suite metric: ``fn(context, **params) -> {value_name: float}``.

    ``params`` declares every parameter once (:class:`Param`: default and constraints);
    ``defaults`` and the parameter check :meth:`check_params` are derived from it. A metric
    written before parameters were declared may give ``defaults`` (every parameter with its
    default) and a ``check(**params)`` instead; otherwise ``check`` is derived from ``params``
    (a ``check`` given beside them adds a check across parameters).
    ``applies(context, **params)`` (called with the metric's resolved parameters) returns None
    when the metric applies, else the reason it is skipped.
    ``values``: a :class:`ValueInfo` for each value the metric reports (the report's tables,
    explanations, figures and headline tests read them).
    ``min_samples(**params)``: the smallest evaluation sample the metric is defined on (e.g.
    k + 1 points for a k-nearest-neighbour radius); the suite refuses a smaller
    ``eval_samples`` when it loads. None: no minimum beyond one point.
    """

    name: str
    fn: Callable[..., dict[str, Any]]
    defaults: dict[str, Any] = field(default_factory=dict)
    applies: Callable[..., str | None] = lambda context, **params: None
    description: str = ""
    check: Callable[..., None] | None = None
    min_samples: Callable[..., int] | None = None
    params: tuple[Param, ...] = ()
    values: Mapping[str, ValueInfo] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.params and self.defaults:
            raise ValueError(f"metric {self.name!r}: give params or defaults, not both")
        if self.params or not self.defaults:  # declared (a metric without parameters too)
            object.__setattr__(self, "defaults", {p.name: p.default for p in self.params})
            object.__setattr__(self, "check", self._checker(self.check))

    def _checker(self, extra: Callable[..., None] | None) -> Callable[..., None]:
        def check(**params: Any) -> None:
            self.check_params(params)
            if extra is not None:
                extra(**params)

        check.__doc__ = f"Validate the parameters of metric {self.name!r} (declared once)."
        return check

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise a TypeError/ValueError naming the parameter when ``params`` has a key the
        metric does not declare (listing the valid ones) or a value its constraints refuse."""
        declared = {p.name: p for p in self.params}
        for key in params:
            if key not in declared:
                raise ValueError(f"{key}: unknown parameter of metric {self.name!r}; expected "
                                 f"one of {', '.join(sorted(declared)) or '(none)'}")
        for key, value in params.items():
            declared[key].check(value)

    def value_info(self, value: str) -> ValueInfo | None:
        """The declaration of ``value`` (a value name this metric reports), or None."""
        return self.values.get(value)
