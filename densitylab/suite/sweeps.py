"""Sweeps: one ``[[models]]`` entry expanded into one model per combination of settings.

An entry's ``sweep`` table lists values of constructor parameters (``sweep.params.KEY``) and of
training options (``sweep.train.KEY``); written explicitly, so that an array-valued parameter
(``hidden = [128, 128]``) is never mistaken for one. The entry becomes one model per
combination (the Cartesian product, in the order the keys are written), named
``vae[latent_dim=2,lr=0.001]``, before runs and run ids are made; each is then validated like
any other model. ``docs/user-guide.md`` ("Sweeps") shows the syntax and the errors.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any

from .._checking import Errors, check_value, fields_of
from .schema import TrainSection

__all__ = ["expand_sweeps", "setting_text", "SWEEP_SECTIONS"]

#: The parts of a ``[[models]]`` entry a sweep may vary.
SWEEP_SECTIONS = ("params", "train")


def expand_sweeps(items: list[dict[str, Any] | None], errs: Errors
                  ) -> list[dict[str, Any] | None]:
    """The checked ``[[models]]`` entries with each sweep expanded; an entry whose sweep is
    malformed is left out, its errors added to ``errs``. Every entry gets ``_key``, its location
    for later errors (``models[i]``, plus a swept one's setting); a swept one also ``_name``, the
    entry's own name (the model kind when ``kind`` is not written)."""
    out: list[dict[str, Any] | None] = []
    for i, item in enumerate(items):
        key = f"models[{i}]"
        if item is None:
            out.append(None)
            continue
        if "sweep" not in item:
            out.append({**item, "_key": key})
            continue
        axes = _axes(item, key, errs)
        if axes is None:
            continue
        names = _display_names(axes)
        for combo in itertools.product(*(values for _, _, values in axes)):
            entry = {k: v for k, v in item.items() if k != "sweep"}
            sections = {s: dict(item.get(s) or {}) for s in SWEEP_SECTIONS}
            for (section, name, _), value in zip(axes, combo, strict=True):
                sections[section][name] = value
            entry.update({s: v for s, v in sections.items() if v})
            text = setting_text(zip(names, combo, strict=True))
            entry["name"], entry["_name"] = f"{item['name']}[{text}]", item["name"]
            entry["_key"] = f"{key} (sweep {text})"
            out.append(entry)
    return out


def setting_text(pairs) -> str:
    """``key=value,...`` for a setting: numbers as written by ``%g`` (``0.001``), strings bare,
    arrays and tables as compact JSON."""
    return ",".join(f"{name}={_value_text(value)}" for name, value in pairs)


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _display_names(axes: list[tuple[str, str, list[Any]]]) -> list[str]:
    """Each swept key's name in labels: the bare key, or ``train.KEY`` when ``KEY`` is swept in
    both sections."""
    counts = Counter(name for _, name, _ in axes)
    return [name if counts[name] == 1 else f"{section}.{name}" for section, name, _ in axes]


def _axes(item: dict[str, Any], key: str, errs: Errors
          ) -> list[tuple[str, str, list[Any]]] | None:
    """``[(section, key, values), ...]`` of an entry's sweep, checked; None after an error."""
    sweep, where = item["sweep"], f"{key}.sweep"
    before = len(errs)
    axes: list[tuple[str, str, list[Any]]] = []
    example = "e.g. sweep = { params.latent_dim = [2, 8], train.lr = [1e-3, 1e-4] }"
    if not sweep:
        errs.add(f"{where}: expected at least one key to sweep, {example}")
    for section, table in sweep.items():
        if section not in SWEEP_SECTIONS:
            errs.add(f"{where}.{section}: unknown key; expected params or train, {example}")
            continue
        if not isinstance(table, dict) or not table:
            errs.add(f"{where}.{section}: expected a table of keys to sweep, each with an array "
                     f"of values, {example}; got {table!r}")
            continue
        written = item.get(section) or {}
        for name, values in table.items():
            path = f"{where}.{section}.{name}"
            if name in written:
                errs.add(f"{path}: also written in {key}.{section}; write it in one place (the "
                         f"sweep's values, or one fixed value)")
                continue
            if not isinstance(values, list) or not values:
                errs.add(f"{path}: expected a non-empty array of the values to sweep, got "
                         f"{values!r} (a fixed value belongs in {key}.{section})")
                continue
            if section == "train":
                values = _checked_train(name, values, path, errs)
                if values is None:
                    continue
            texts = [json.dumps(v, sort_keys=True) for v in values]
            if len(set(texts)) != len(texts):
                errs.add(f"{path}: expected distinct values, got {values!r}")
                continue
            axes.append((section, name, values))
    return None if len(errs) > before else axes


def _checked_train(name: str, values: list[Any], path: str, errs: Errors) -> list[Any] | None:
    """The swept values of training option ``name``, each checked as ``[train]`` checks it."""
    known = fields_of(TrainSection)
    if name not in known:
        errs.add(f"{path}: unknown key; expected one of {', '.join(sorted(known))}")
        return None
    before = len(errs)
    out = [check_value(TrainSection, name, v, f"{path}[{j}]", errs) for j, v in enumerate(values)]
    return None if len(errs) > before else out
