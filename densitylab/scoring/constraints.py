"""Constraints on a metric's parameters, declared once and turned into checks and messages (in
the manner of scikit-learn's ``_param_validation``).

A parameter lists one or more constraints; a value is valid when it satisfies any of them. A
value of a kind no constraint takes raises a TypeError listing what each one takes; a value of
the right kind outside its constraint raises that constraint's ValueError. Every message names
the parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .._validation import check_choice, check_int, check_positive, check_probability

__all__ = ["Constraint", "Integer", "Number", "Positive", "Probability", "Choice", "Keyword",
           "NoneValue", "ListOf", "validate"]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Constraint:
    """What a parameter's value may be: ``accepts(value)`` says whether the value is of the
    kind this constraint takes, ``check(value, name)`` raises ValueError (naming ``name``) when
    it is of that kind but not valid, and ``str(constraint)`` says what is valid, in words."""

    def accepts(self, value: Any) -> bool:  # pragma: no cover - every constraint overrides it
        raise NotImplementedError

    def check(self, value: Any, name: str) -> None:
        """Raise ValueError naming ``name`` unless ``value`` (of an accepted kind) is valid."""

    def satisfied_by(self, value: Any, name: str = "value") -> bool:
        """Whether ``value`` is valid under this constraint."""
        if not self.accepts(value):
            return False
        try:
            self.check(value, name)
        except (TypeError, ValueError):
            return False
        return True

    def example_invalid(self) -> Any:
        """A value of an accepted kind that the constraint refuses (for generated tests), or
        None when every value of its kind is valid."""
        return None


@dataclass(frozen=True)
class Integer(Constraint):
    """An integer (not a boolean) ``>= minimum`` (and ``<= maximum``) when they are given."""

    minimum: int | None = None
    maximum: int | None = None

    def accepts(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def check(self, value: Any, name: str) -> None:
        check_int(value, name, minimum=self.minimum, maximum=self.maximum)

    def example_invalid(self) -> Any:
        return None if self.minimum is None else self.minimum - 1

    def __str__(self) -> str:
        bounds = [f">= {self.minimum}"] if self.minimum is not None else []
        bounds += [f"<= {self.maximum}"] if self.maximum is not None else []
        return "an integer" + (" " + " and ".join(bounds) if bounds else "")


@dataclass(frozen=True)
class Number(Constraint):
    """A finite real number ``>= minimum`` when given (an integer counts as a number)."""

    minimum: float | None = None

    def accepts(self, value: Any) -> bool:
        return _is_number(value)

    def check(self, value: Any, name: str) -> None:
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{name} must be >= {self.minimum:g}, got {value!r}")

    def example_invalid(self) -> Any:
        return math.nan if self.minimum is None else self.minimum - 0.5

    def __str__(self) -> str:
        return "a number" + (f" >= {self.minimum:g}" if self.minimum is not None else "")


@dataclass(frozen=True)
class Positive(Constraint):
    """A finite real number > 0."""

    def accepts(self, value: Any) -> bool:
        return _is_number(value)

    def check(self, value: Any, name: str) -> None:
        check_positive(value, name)

    def example_invalid(self) -> Any:
        return -1.0

    def __str__(self) -> str:
        return "a positive number"


@dataclass(frozen=True)
class Probability(Constraint):
    """A number in the open interval (0, 1)."""

    def accepts(self, value: Any) -> bool:
        return _is_number(value)

    def check(self, value: Any, name: str) -> None:
        check_probability(value, name)

    def example_invalid(self) -> Any:
        return 1.5

    def __str__(self) -> str:
        return "a number in (0, 1)"


@dataclass(frozen=True)
class Choice(Constraint):
    """One of a set of strings; ``options`` may be a callable returning them (a set known only
    when the metric's module is loaded, such as the classifiers)."""

    options: Iterable[str] | Callable[[], Iterable[str]]

    def allowed(self) -> tuple[str, ...]:
        """The valid strings."""
        return tuple(self.options() if callable(self.options) else self.options)

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str)

    def check(self, value: Any, name: str) -> None:
        check_choice(value, name, self.allowed())

    def example_invalid(self) -> Any:
        return "no-such-option"

    def __str__(self) -> str:
        return "one of " + ", ".join(map(repr, self.allowed()))


@dataclass(frozen=True)
class Keyword(Constraint):
    """One string with a meaning of its own beside other kinds of value (``sigma = "validated"``
    beside a number): any other string is of the wrong kind."""

    word: str

    def accepts(self, value: Any) -> bool:
        return value == self.word

    def __str__(self) -> str:
        return repr(self.word)


@dataclass(frozen=True)
class NoneValue(Constraint):
    """None (the parameter omitted, e.g. a bandwidth left to the median heuristic)."""

    def accepts(self, value: Any) -> bool:
        return value is None

    def __str__(self) -> str:
        return "None"


@dataclass(frozen=True)
class ListOf(Constraint):
    """A list (or tuple) of at least ``min_items`` items, each valid under ``item``."""

    item: Constraint
    min_items: int = 1

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list | tuple) and len(value) >= self.min_items

    def check(self, value: Any, name: str) -> None:
        for entry in value:
            validate(entry, name, (self.item,))

    def example_invalid(self) -> Any:
        bad = self.item.example_invalid()
        return None if bad is None else [bad]

    def __str__(self) -> str:
        size = "a non-empty list" if self.min_items == 1 else f"a list of {self.min_items}+"
        return f"{size} of {self.item}s" if not str(self.item).startswith("a ") else \
            f"{size} of {str(self.item)[2:]}s"


def validate(value: Any, name: str, constraints: Iterable[Constraint]) -> None:
    """Raise unless ``value`` satisfies one of ``constraints``: a TypeError when no constraint
    takes a value of its kind, else the ValueError of the constraint that takes it."""
    constraints = tuple(constraints)
    if any(c.satisfied_by(value, name) for c in constraints):
        return
    taking = [c for c in constraints if c.accepts(value)]
    if not taking:
        expected = " or ".join(str(c) for c in constraints)
        raise TypeError(f"{name}: expected {expected}, got {type(value).__name__} {value!r}")
    taking[0].check(value, name)
    raise ValueError(f"{name}: expected {taking[0]}, got {value!r}")  # pragma: no cover
