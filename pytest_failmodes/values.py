"""Typed values: how a definition's values meet a dataset's values.

YAML, JSON and CSV spell one value several ways (``0``, ``0.0``, ``"0"``,
``"0.0"``; ``true``, ``"true"``, ``True``). Label values, ``where:`` values
and cohort values compare by the value they mean, through :func:`value_key`,
and print in one canonical spelling, through :func:`value_text`
(see docs/definitions.md, "Typed values").

Cohort labels are built here too: ``route=billing & tier=gold`` reads well,
so a value is quoted only where it would make a label ambiguous.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from .trace import MISSING

__all__ = [
    "value_key",
    "value_text",
    "is_absent",
    "MISSING_VALUE",
    "cohort_part",
    "split_cohort",
    "canonical_cohort",
]

#: a cohort's value for a trace without the field (or with null / empty text)
MISSING_VALUE = "(missing)"

# a decimal number as people write one: no leading zeros (so "007" stays text),
# no "nan"/"inf"/"1_000", which float() would take
_NUMBER = re.compile(r"[+-]?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|[+-]?\.[0-9]+")
_BOOLS = {"true": True, "false": False}


def is_absent(value: Any) -> bool:
    """No value: the path is missing, null, or empty text."""
    return value is MISSING or value is None or (type(value) is str and not value)


def value_key(value: Any) -> tuple[str, Any]:
    """A hashable key under which values that mean the same compare equal.

    Numbers (and text that spells a decimal number) compare by numeric value,
    booleans (and the text ``true``/``false`` in any case) by truth, other
    text exactly, anything else (lists, mappings) by its JSON text. A number
    never equals a boolean: ``1`` is not ``true``.
    """
    kind = type(value)
    if kind is str:
        return _text_key(value)
    if kind is float or kind is int or kind is bool:
        return _scalar_key(value)
    return _key(value)


@lru_cache(maxsize=4096, typed=True)  # typed: 1, 1.0 and True are one cache key otherwise
def _scalar_key(value: float | int | bool) -> tuple[str, Any]:
    return _key(value)


def _key(value: Any) -> tuple[str, Any]:
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int):
        return ("n", Decimal(value))
    if isinstance(value, float):
        if math.isfinite(value):
            return ("n", Decimal(repr(value)))
        return ("s", repr(value))
    if isinstance(value, str):
        return _text_key(str(value))
    return ("j", json.dumps(value, sort_keys=True, default=str, ensure_ascii=False))


@lru_cache(maxsize=4096)
def _text_key(text: str) -> tuple[str, Any]:
    # cohort and where values repeat across traces: the few distinct texts are parsed once
    if len(text) <= 40 and _NUMBER.fullmatch(text):
        try:
            return ("n", Decimal(text))
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            pass
    flag = _BOOLS.get(text.lower()) if len(text) <= 5 else None
    if flag is not None:
        return ("b", flag)
    return ("s", text)


def value_text(value: Any) -> str:
    """The canonical spelling of a value: ``1`` for 1, 1.0 and "1.0"; ``true`` for True and "True"."""
    if is_absent(value):
        return MISSING_VALUE
    kind, v = value_key(value)
    if kind == "n":
        return _number_text(v)
    if kind == "b":
        return "true" if v else "false"
    return v  # type: ignore[no-any-return]


def _number_text(d: Decimal) -> str:
    if d == 0:
        return "0"  # also -0 and 0E+3
    n = d.normalize()
    exponent = n.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent >= 0 and n.adjusted() < 30:
        return str(int(n))  # whole numbers exactly: two ids must not print alike
    if -12 <= exponent <= 15 and abs(n.adjusted()) <= 15:
        return format(n, "f")
    return repr(float(n)) if math.isfinite(float(n)) else str(n)


# -- cohort labels ---------------------------------------------------------------------

_SEP = " & "


def _needs_quotes(text: str) -> bool:
    return (
        _SEP in text
        or "=" in text
        or '"' in text
        or text != text.strip()
        or text == MISSING_VALUE
        or not text.isprintable()
    )


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False) if _needs_quotes(text) else text


def cohort_part(field: str, value: Any) -> str:
    """``field=value`` for one field of a cohort label; a value (or field name) that holds
    `` & ``, ``=``, a quote, outer spaces or control characters, or the text ``(missing)``
    itself, is written as a JSON string, so every label reads back to one set of values."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool:
        return _scalar_part(field, value)
    text = value_text(value)
    shown = text if is_absent(value) else _quote(text)
    return f"{_quote(field)}={shown}"


@lru_cache(maxsize=4096, typed=True)
def _scalar_part(field: str, value: str | float | bool) -> str:
    # built for every trace and cohort field; the distinct (field, value) pairs are few
    shown = MISSING_VALUE if value == "" else _quote(value_text(value))
    return f"{_quote(field)}={shown}"


def split_cohort(label: str) -> list[tuple[str, str]]:
    """``route=billing & tier="a & b"`` -> ``[("route", "billing"), ("tier", "a & b")]``.

    The inverse of joining :func:`cohort_part` with `` & `` (a missing value reads
    back as ``(missing)``). A label that does not parse is one (label, "") pair.
    """
    out: list[tuple[str, str]] = []
    i, n = 0, len(label)
    decoder = json.JSONDecoder()
    while i < n:
        name, i = _read(label, i, "=", decoder)
        if i >= n or label[i] != "=":
            return [(label, "")]
        value, i = _read(label, i + 1, _SEP, decoder)
        out.append((name, value))
        if i < n:
            if not label.startswith(_SEP, i):
                return [(label, "")]
            i += len(_SEP)
    return out or [(label, "")]


def _read(label: str, i: int, stop: str, decoder: json.JSONDecoder) -> tuple[str, int]:
    if label.startswith('"', i):
        try:
            text, end = decoder.raw_decode(label, i)
        except ValueError:
            pass
        else:
            if isinstance(text, str):
                return text, end
    end = label.find(stop, i)
    end = len(label) if end < 0 else end
    return label[i:end], end


def canonical_cohort(label: str) -> str:
    """A cohort label as the engine spells it (``reward=1.0`` -> ``reward=1``), so a
    label written by hand (``cohort_limits``) names the cohort the run computes."""
    if label == "all":
        return label
    pairs = split_cohort(label)
    if len(pairs) == 1 and pairs[0] == (label, ""):
        return label
    return _SEP.join(
        f"{_quote(name)}={value}" if value == MISSING_VALUE else cohort_part(name, value) for name, value in pairs
    )
