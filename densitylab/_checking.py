"""A declarative checker for TOML tables: one generic walk of a table against a declaration.

A declaration is a dataclass whose fields are the table's keys. Each field's annotation is the
key's type (``str``, ``bool``, ``int``, ``float``, ``Any``, ``list[T]``, ``dict[str, Any]`` for a
free-form table, another declaration for a nested table, and unions such as ``int | None``), and
:func:`option` / :func:`required` give its default and its constraints (``minimum``, ``above``,
``choices``, ``min_items``, ``min_length``, a ``check`` function for anything else)::

    @dataclass(frozen=True, kw_only=True)
    class Train:
        steps: int = option(2000, minimum=1)
        lr_schedule: str = option("constant", choices=("constant", "cosine"))

    errors = Errors()
    written = check({"steps": 0, "lr_shedule": "cosine"}, Train, "train", errors)
    errors.messages == ["train.lr_shedule: unknown key; expected one of lr_schedule, steps",
                        "train.steps: expected an integer >= 1, got 0"]

:func:`check` records every error, each starting with its key path (``models[1].train.lr``) and
saying what was expected (with the allowed values where there is a choice), and returns the
valid part of the table: the keys it writes, converted (an integer written for a ``float`` key
becomes a float), without defaults; :func:`defaults` gives the defaults. The same ideas as JSON
Schema's ``type``/``minimum``/``enum``/``additionalProperties``, declared in Python.
:func:`read_toml` reads the file itself, a syntax error naming the line to fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["Errors", "Field", "REQUIRED", "option", "required", "fields_of", "defaults", "check",
           "check_fields", "check_value", "describe", "markdown_table", "read_toml",
           "expected_one_of", "fields_like"]


class Errors:
    """The errors found in one document, collected so that all of them are reported at once.

    ``with errors:`` runs a block and records a TypeError/ValueError it raises (the block stops,
    the caller carries on); an exception with an ``errors`` list contributes each of its
    messages. ``errors.value(fn, fallback)`` does the same for one call and returns ``fallback``
    when it failed.
    """

    def __init__(self):
        self.messages: list[str] = []

    def __len__(self) -> int:
        return len(self.messages)

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if isinstance(err, TypeError | ValueError):
            self.messages.extend(getattr(err, "errors", None) or [str(err)])
            return True
        return False

    def value(self, fn, fallback):
        """``fn()``, or ``fallback`` after recording the TypeError/ValueError it raised."""
        with self:
            return fn()
        return fallback

    def add(self, message: str) -> None:
        """Record one error (a message that starts with its key path)."""
        self.messages.append(message)


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML file ``path`` parsed; a syntax error is a ValueError naming the file, the line
    to fix and that line's text.

    ``tomllib`` notices an unclosed array or inline table at the start of the next statement
    (column 1 of a later line): the line to fix is then the last non-blank one before it.
    """
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        found = re.search(r" \(at line (\d+), column (\d+)\)$", message)
        if found is None:  # e.g. "(at end of document)"
            raise ValueError(f"{path}: not valid TOML: {message}") from err
        line, column = int(found[1]), int(found[2])
        what = message[:found.start()]
        lines = text.splitlines()
        if what.startswith("Unclosed") and column == 1 and line > 1:
            line -= 1
            while line > 1 and not lines[line - 1].strip():
                line -= 1
            what += " (the line ends before it is closed)"
        else:
            what += f" (column {column})"
        shown = lines[line - 1] if 0 < line <= len(lines) else ""
        raise ValueError(f"{path}, line {line}: not valid TOML: {what}\n    {line} | {shown}"
                         ) from err


def expected_one_of(value: str, valid: Iterable[str]) -> str:
    """``did you mean 'x'? expected one of a, b, c``: the allowed names, after the one closest to
    ``value`` when one is close."""
    valid = list(valid)
    close = difflib.get_close_matches(value, valid, n=1)
    return (f"did you mean {close[0]!r}? " if close else "") + "expected one of " + ", ".join(valid)


#: The default of a key that must be written.
REQUIRED = dataclasses.MISSING


@dataclasses.dataclass(frozen=True)
class Field:
    """One key of a declared table: its type, default (``REQUIRED`` when it must be written) and
    constraints (see :func:`option`)."""

    name: str
    type: Any
    default: Any = None
    minimum: float | None = None
    above: float | None = None
    choices: tuple[Any, ...] | Callable[[], Iterable[Any]] | None = None
    noun: str | None = None
    min_items: int = 0
    min_length: int = 0
    check: Callable[[Any], Any] | None = None
    partial: bool = False
    doc: str = ""

    @property
    def required(self) -> bool:
        """True when the key must be written (it has no default)."""
        return self.default is REQUIRED


def option(default: Any = None, *, minimum: float | None = None, above: float | None = None,
           choices: tuple[Any, ...] | Callable[[], Iterable[Any]] | None = None,
           noun: str | None = None, min_items: int = 0, min_length: int = 0,
           check: Callable[[Any], Any] | None = None, partial: bool = False, doc: str = ""):
    """A declared key with its ``default`` and constraints, as a dataclass field.

    ``minimum`` / ``above``: a number must be ``>= minimum`` / ``> above``. ``choices``: the
    allowed values, or a function returning them (names registered at run time); ``noun`` words
    the error (``unknown model 'vea'; expected one of ...``). ``min_items``: the fewest items of
    an array; ``min_length``: the shortest string. ``check(value)`` returns the value to keep
    (converted if need be) or raises TypeError/ValueError with what was expected. ``partial``:
    a nested table keeps its valid keys when some are wrong (otherwise the whole table is
    invalid, and an invalid table in an array of tables becomes None, so that the others keep
    their index). ``doc`` says what the key means.
    """
    meta = {"minimum": minimum, "above": above, "choices": choices, "noun": noun,
            "min_items": min_items, "min_length": min_length, "check": check,
            "partial": partial, "doc": doc}
    if isinstance(default, list | dict | set):
        raise TypeError("option: a mutable default is shared between instances; use a tuple")
    return dataclasses.field(default=default, metadata={"rule": meta})


def required(**constraints):
    """A key that must be written, with the constraints of :func:`option`."""
    field = option(**constraints)
    return dataclasses.field(metadata=field.metadata)


@functools.cache
def fields_of(declaration: type) -> dict[str, Field]:
    """The keys of a declaration (a dataclass made with :func:`option` / :func:`required`)."""
    hints = typing.get_type_hints(declaration)
    out = {}
    for f in dataclasses.fields(declaration):
        rule = f.metadata.get("rule", {})
        default = REQUIRED if f.default is dataclasses.MISSING else f.default
        out[f.name] = Field(f.name, hints[f.name], default, **rule)
    return out


def defaults(declaration: type) -> dict[str, Any]:
    """``{key: default}`` for every key of ``declaration`` that has a default."""
    return {k: f.default for k, f in fields_of(declaration).items() if not f.required}


def fields_like(defaults_: dict[str, Any]) -> dict[str, Field]:
    """A declaration (for :func:`check_fields`) of a table whose keys are those of
    ``defaults_``: each key takes values of its default's kind (a number for a number, so 3 and
    3.0 are one setting; anything for None)."""
    out = {}
    for name, default in defaults_.items():
        if default is None:
            tp: Any = Any
        elif isinstance(default, bool):
            tp = bool
        elif isinstance(default, float):
            tp = float
        elif isinstance(default, int):
            tp = int | float
        else:
            tp = type(default)
        out[name] = Field(name, tp, default)
    return out


def check(value: Any, declaration: type, path: str, errors: Errors) -> dict[str, Any] | None:
    """Check the table ``value`` against ``declaration``; returns its valid keys, converted.

    Every error is added to ``errors`` with its key path (``path`` names the table; ``""`` for
    the top of a document). Returns None when ``value`` is not a table.
    """
    return check_fields(value, fields_of(declaration), path, errors)


def check_fields(value: Any, fields: dict[str, Field], path: str, errors: Errors
                 ) -> dict[str, Any] | None:
    """:func:`check` against keys given as ``{name: Field}`` (a declaration built at run time,
    such as a registered metric's parameters)."""
    if not isinstance(value, dict):
        errors.add(f"{path or 'document'}: expected a table, got {_got(value)}")
        return None
    allowed = ", ".join(sorted(fields)) or "(no keys)"
    for key in value:
        if key not in fields:
            errors.add(f"{_join(path, key)}: unknown key; expected one of {allowed}")
    out = {}
    for name, field in fields.items():
        where = _join(path, name)
        if name not in value:
            if field.required:
                errors.add(f"{where}: missing; expected {_sized(field.type, field, where)}")
            continue
        converted = _convert(value[name], field.type, field, where, errors)
        if converted is not _INVALID:
            out[name] = converted
    return out


def check_value(declaration: type, name: str, value: Any, path: str, errors: Errors) -> Any:
    """``value`` checked as the key ``name`` of ``declaration`` (a default filled in by the
    caller, or an override from outside the document); None after recording an error."""
    field = fields_of(declaration)[name]
    converted = _convert(value, field.type, field, path, errors)
    return None if converted is _INVALID else converted


def describe(tp: Any, path: str = "") -> str:
    """What a value of type ``tp`` is, in words: ``"an integer"``, ``"an array of strings"``."""
    if tp is Any:
        return "a value"
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if _is_union(tp):
        if set(args) == {int, float}:
            return "a number"
        return " or ".join(describe(a, path) for a in args)
    origin = typing.get_origin(tp)
    if origin is list:
        items = describe(args[0]) if args else "a value"
        text = "an array of " + items.split(" ", 1)[1] + "s"
        if args and dataclasses.is_dataclass(args[0]) and path.isidentifier():
            text += f" ([[{path}]])"
        return text
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a table"
    return _NAMES.get(tp, f"a {getattr(tp, '__name__', tp)}")


def markdown_table(declaration: type) -> str:
    """The keys of ``declaration`` as a Markdown table: key, what a value must be (type and
    constraints), default (in TOML; "required" when it must be written) and meaning."""
    rows = ["| key | value | default | meaning |", "|---|---|---|---|"]
    for name, f in fields_of(declaration).items():
        value = describe(f.type, name)
        if f.minimum is not None:
            value += f" >= {f.minimum}"
        if f.above is not None:
            value += f" > {f.above}"
        if f.min_length == 1:
            value = "a non-empty string"
        if f.min_items == 1:
            value = "a non-empty " + value.split(" ", 1)[1]
        if isinstance(f.choices, tuple):
            value = "one of " + ", ".join(f"`{_toml(c)}`" for c in f.choices)
        elif f.choices is not None:
            value = f"a registered {f.noun or 'name'}"
        default = "required" if f.required else "" if f.default is None else f"`{_toml(f.default)}`"
        rows.append(f"| `{name}` | {value} | {default} | {f.doc} |")
    return "\n".join(rows)


def _toml(value: Any) -> str:
    """``value`` written as in a TOML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
          dict: "a table", list: "an array"}
_INVALID = object()


def _convert(value: Any, tp: Any, field: Field, path: str, errors: Errors) -> Any:
    """``value`` checked against ``tp`` and the field's constraints; ``_INVALID`` on error."""
    if _is_union(tp):
        if value is None and type(None) in typing.get_args(tp):
            return None
        for alt in typing.get_args(tp):
            if alt is not type(None) and _fits(value, alt):
                return _convert(value, alt, field, path, errors)
    if not _fits(value, tp):
        errors.add(f"{path}: expected {describe(tp, path)}, got {_got(value)}")
        return _INVALID
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    before = len(errors)
    if origin is list:
        value = _convert_items(value, args[0] if args else Any, path, errors)
        if value is _INVALID:
            return _INVALID
        if len(value) < field.min_items:
            errors.add(f"{path}: expected {_sized(tp, field, path)}, got {len(value)} item(s)")
            return _INVALID
    elif dataclasses.is_dataclass(tp):
        value = check(value, tp, path, errors)
        if len(errors) > before and not field.partial:
            return _INVALID
    elif origin is dict or tp is dict:
        value = dict(value)
    elif tp is float:
        value = float(value)
        if not math.isfinite(value):
            errors.add(f"{path}: expected a finite number, got {value!r}")
            return _INVALID
    return _constrained(value, tp, field, path, errors)


def _convert_items(items, tp: Any, path: str, errors: Errors) -> Any:
    """Each item of an array checked against ``tp``. A table with an error becomes None (the
    others keep their index); any other wrong item makes the whole array invalid."""
    out, bad = [], False
    for i, item in enumerate(items):
        converted = _convert(item, tp, Field("", tp), f"{path}[{i}]", errors)
        if converted is _INVALID:
            if not dataclasses.is_dataclass(tp):
                bad = True
            converted = None
        out.append(converted)
    return _INVALID if bad else out


def _constrained(value: Any, tp: Any, field: Field, path: str, errors: Errors) -> Any:
    what = describe(tp, path)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and field.minimum is not None and value < field.minimum:
        errors.add(f"{path}: expected {what} >= {field.minimum}, got {value!r}")
        return _INVALID
    if number and field.above is not None and value <= field.above:
        errors.add(f"{path}: expected {what} > {field.above}, got {value!r}")
        return _INVALID
    if tp is str and len(value) < field.min_length:
        errors.add(f"{path}: expected a non-empty string, got {value!r}" if field.min_length == 1
                   else f"{path}: expected a string of {field.min_length} characters or more, "
                   f"got {value!r}")
        return _INVALID
    if field.choices is not None:
        allowed = tuple(field.choices() if callable(field.choices) else field.choices)
        if value not in allowed:
            listed = ", ".join(map(repr, allowed)) if allowed else "(none registered)"
            errors.add(f"{path}: unknown {field.noun} {value!r}; expected one of {listed}"
                       if field.noun else f"{path}: expected one of {listed}, got {value!r}")
            return _INVALID
    if field.check is not None:
        try:
            return field.check(value)
        except (TypeError, ValueError) as err:
            errors.add(f"{path}: {err}")
            return _INVALID
    return value


def _fits(value: Any, tp: Any) -> bool:
    """Whether ``value`` has the shape of ``tp`` (constraints aside); a boolean is no number."""
    if tp is Any:
        return True
    if _is_union(tp):
        return any(_fits(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    origin = typing.get_origin(tp)
    if origin is list or tp is list:
        return isinstance(value, list | tuple)
    if origin is dict or dataclasses.is_dataclass(tp):
        return isinstance(value, dict)
    return isinstance(value, tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _sized(tp: Any, field: Field, path: str) -> str:
    """``describe(tp)`` with the field's smallest number of items, if any."""
    what = describe(tp, path)
    if field.min_items == 1:
        return "a non-empty " + what.split(" ", 1)[1]
    return f"{what} with at least {field.min_items} items" if field.min_items else what


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _got(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"
