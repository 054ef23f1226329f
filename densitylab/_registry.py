"""Build objects by name from a ``name -> factory`` table: the one lookup behind the ``make`` /
``available`` pairs of :mod:`densitylab.distributions`, :mod:`densitylab.images` and
:mod:`densitylab.models`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["names", "build"]


def names(factories: Mapping[str, Callable[..., Any]]) -> list[str]:
    """The names a factory table accepts, sorted."""
    return sorted(factories)


def build(
    factories: Mapping[str, Callable[..., Any]],
    name: str,
    params: Mapping[str, Any],
    *,
    kind: str,
    signature_errors_only: bool = False,
) -> Any:
    """Call ``factories[name](**params)``; errors name the ``kind`` of object and the ``name``.

    Raises:
        ValueError: ``name`` is not in ``factories`` (the message lists the accepted names).
        TypeError: the factory rejected ``params``; its message is prefixed with
            ``"{kind} {name!r}: "``. With ``signature_errors_only`` only errors about unexpected
            or missing arguments are prefixed; other ``TypeError`` s pass through unchanged.
    """
    if name not in factories:
        raise ValueError(f"unknown {kind} {name!r}; expected one of {', '.join(names(factories))}")
    try:
        return factories[name](**params)
    except TypeError as err:
        text = str(err)
        if signature_errors_only and not (
            "unexpected keyword" in text or "positional argument" in text
        ):
            raise
        raise TypeError(f"{kind} {name!r}: {err}") from err
