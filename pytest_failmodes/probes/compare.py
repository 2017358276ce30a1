"""Comparators: are two outputs of the application "the same answer"?

Each reads the original input's output and a variant's output and returns a
:class:`Comparison`. A comparator that cannot read the *original* output
(no number in it, no match, not JSON) raises :class:`CannotCompare`: the
variant is an error, since nothing can be said about it. A variant's output
that lacks what the original had is a changed answer.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..patterns import UserPattern, compile_pattern

__all__ = ["Comparison", "CannotCompare", "Comparator", "exact", "normalized", "numeric", "extract", "json_field", "from_callable"]


class CannotCompare(Exception):
    """The original output has nothing this comparator can compare."""


@dataclass(frozen=True)
class Comparison:
    same: bool
    #: what was compared, shown in reports: "'APPROVED' vs 'DENIED'"
    detail: str
    #: numeric comparators: variant value - original value (for directional expectations)
    delta: float | None = None


@dataclass(frozen=True)
class Comparator:
    """A named, frozen comparison function with a readable repr."""

    kind: str
    describe: str
    func: Callable[[str, str], Comparison]
    numeric: bool = False

    def __call__(self, original: str, variant: str) -> Comparison:
        return self.func(original, variant)

    def __repr__(self) -> str:
        return self.describe


def _short(text: Any, width: int = 80) -> str:
    s = repr(text)
    return s if len(s) <= width else s[: width - 2] + "…" + s[-1]


def exact() -> Comparator:
    def cmp(a: str, b: str) -> Comparison:
        return Comparison(a == b, "identical" if a == b else f"{_short(a)} vs {_short(b)}")

    return Comparator("exact", "exact", cmp)


_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Case, accents' composition, punctuation and runs of whitespace do not count."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", _PUNCT.sub(" ", text)).strip()


def normalized() -> Comparator:
    def cmp(a: str, b: str) -> Comparison:
        na, nb = normalize(a), normalize(b)
        return Comparison(na == nb, "equal after normalising" if na == nb else f"{_short(na)} vs {_short(nb)}")

    return Comparator("normalized", "normalized", cmp)


_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+")


def _number(text: str, pattern: UserPattern | None) -> float | None:
    if pattern is not None:
        m = pattern.search(text)
        if not m:
            return None
        text = m.group(1) if m.groups() else m.group()
    m = _NUMBER.search(text)
    if not m:
        return None
    try:
        return float(m.group().replace(",", ""))
    except ValueError:
        return None


def numeric(tolerance: float = 0.0, relative: float = 0.0, pattern: str | None = None) -> Comparator:
    """The first number of each output (or of ``pattern``'s group 1) within a tolerance."""
    rx = compile_pattern(pattern) if pattern else None

    def cmp(a: str, b: str) -> Comparison:
        va, vb = _number(a, rx), _number(b, rx)
        if va is None:
            raise CannotCompare(f"no number in the original output {_short(a)}")
        if vb is None:
            return Comparison(False, f"{va:g} vs no number in {_short(b)}")
        allowed = max(tolerance, relative * abs(va))
        same = abs(vb - va) <= allowed
        return Comparison(same, f"{va:g} vs {vb:g}", delta=vb - va)

    parts = [f"tolerance={tolerance:g}"] + ([f"relative={relative:g}"] if relative else []) + ([f"pattern=/{pattern}/"] if pattern else [])
    return Comparator("numeric", f"numeric({', '.join(parts)})", cmp, numeric=True)


def extract(pattern: str, group: int | str = 1) -> Comparator:
    """The text a regex captures (``group``, default 1; the whole match without groups)."""
    rx = compile_pattern(pattern)

    def grab(text: str) -> str | None:
        m = rx.search(text)
        if not m:
            return None
        return m.group(group) if rx.groups else m.group()

    def cmp(a: str, b: str) -> Comparison:
        va, vb = grab(a), grab(b)
        if va is None:
            raise CannotCompare(f"/{pattern}/ does not match the original output {_short(a)}")
        return Comparison(va == vb, f"{_short(va)} vs {_short(vb) if vb is not None else 'no match'}")

    return Comparator("extract", f"extract(/{pattern}/)", cmp)


def _dig(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.lstrip("-").isdigit() and -len(data) <= int(part) < len(data):
            data = data[int(part)]
        else:
            raise KeyError(part)
    return data


def json_field(path: str) -> Comparator:
    """A field of JSON outputs (dotted path, list indices as numbers: ``items.0.sku``)."""

    def read(text: str) -> Any:
        return _dig(json.loads(text), path)

    def cmp(a: str, b: str) -> Comparison:
        try:
            va = read(a)
        except (ValueError, KeyError) as exc:
            what = "not JSON" if isinstance(exc, ValueError) else f"no field {path!r}"
            raise CannotCompare(f"the original output is {what}: {_short(a)}") from None
        try:
            vb = read(b)
        except (ValueError, KeyError) as exc:
            what = "not JSON" if isinstance(exc, ValueError) else f"has no field {path!r}"
            return Comparison(False, f"{_short(va)} vs variant output {what}")
        return Comparison(va == vb, f"{path}: {_short(va)} vs {_short(vb)}")

    return Comparator("json_field", f"json_field({path})", cmp)


def from_callable(name: str, func: Callable[[str, str], Any]) -> Comparator:
    """A user's comparator (a fixture's value): ``(original, variant) -> bool`` (True: same)."""

    def cmp(a: str, b: str) -> Comparison:
        value = func(a, b)
        if isinstance(value, Comparison):
            return value
        if not isinstance(value, bool):
            raise TypeError(f"comparator {name!r} returned {type(value).__name__}; expected a bool (True: same answer)")
        return Comparison(value, f"{name}: {'same' if value else 'different'}")

    return Comparator("fixture", f"fixture({name})", cmp)
