"""``where:`` filters: data, never evaluated code."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import did_you_mean
from .trace import MISSING, Trace
from .values import value_key

__all__ = ["Where", "compile_where", "WhereError", "OPERATORS"]

OPERATORS = ("eq", "ne", "in", "not_in", "exists", "gt", "gte", "lt", "lte")


class WhereError(ValueError):
    """Invalid filter; ``path`` locates the offending key inside ``where:``."""

    def __init__(self, message: str, path: tuple[str, ...]) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class _Cond:
    field: str
    op: str
    value: Any
    #: the values as written (eq, ne, in, not_in), for messages
    given: tuple[Any, ...] = ()

    def shown(self) -> Any:
        """The value as written."""
        if self.op in ("in", "not_in"):
            return list(self.given)
        return self.given[0] if self.given else self.value

    def __call__(self, trace: Trace) -> bool:
        actual = trace.get(self.field)
        return _TESTS[self.op](actual, self.value)


@dataclass(frozen=True)
class Where:
    """All conditions must hold (AND)."""

    conditions: tuple[_Cond, ...]

    def values(self) -> list[tuple[str, str, tuple[Any, ...]]]:
        """``(field, operator, values)`` of the conditions that name values (eq, ne, in, not_in),
        the values as written: a run notes any that no trace has."""
        return [(c.field, c.op, c.given) for c in self.conditions if c.given]

    def __call__(self, trace: Trace) -> bool:
        # a plain loop: all() over a generator cost more than the usual one condition
        for c in self.conditions:
            if not c(trace):
                return False
        return True

    def __repr__(self) -> str:
        return "Where(" + ", ".join(f"{c.field} {c.op} {c.shown()!r}" for c in self.conditions) + ")"


def compile_where(spec: Mapping[str, Any]) -> Where:
    """Build a filter from ``{field: value}``, ``{field: [any, of]}`` or ``{field: {operator: value}}``.

    Values compare by what they mean (:func:`pytest_failmodes.values.value_key`):
    ``{reward: 0}`` matches 0, 0.0, "0" and "0.0". A list means any of its values.
    """
    if not isinstance(spec, Mapping):
        raise WhereError("expected a mapping of field -> value or {operator: value}", ())
    conds: list[_Cond] = []
    for fieldname, cond in spec.items():
        fieldname = str(fieldname)
        if isinstance(cond, Mapping):
            if not cond:
                raise WhereError("empty condition", (fieldname,))
            for op, value in cond.items():
                conds.append(_make(fieldname, str(op), value))
        elif isinstance(cond, (list, tuple)):
            if not cond:
                raise WhereError("an empty list matches no trace; give at least one value", (fieldname,))
            conds.append(_make(fieldname, "in", cond))
        else:
            conds.append(_make(fieldname, "eq", cond))
    return Where(tuple(conds))


def _make(fieldname: str, op: str, value: Any) -> _Cond:
    path = (fieldname, op)
    if op not in _TESTS:
        raise WhereError(f"unknown operator {op!r}{did_you_mean(op, OPERATORS)}", path)
    if op in ("in", "not_in") and not isinstance(value, (list, tuple)):
        raise WhereError(f"{op!r} takes a list of values", path)
    if op == "exists" and not isinstance(value, bool):
        raise WhereError("'exists' takes true or false", path)
    if op in ("gt", "gte", "lt", "lte") and _num(value) is None:
        raise WhereError(f"{op!r} takes a number, got {value!r}", path)
    given: tuple[Any, ...] = ()
    if op in ("in", "not_in"):
        given = tuple(value)
        value = frozenset(value_key(v) for v in value)
    elif op in ("eq", "ne"):
        given = (value,)
        value = value_key(value)
    elif op in ("gt", "gte", "lt", "lte"):
        value = _num(value)
    return _Cond(fieldname, op, value, given)


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _cmp(test: Callable[[float, float], bool]) -> Callable[[Any, Any], bool]:
    def run(actual: Any, limit: Any) -> bool:
        x = _num(actual)
        return x is not None and test(x, limit)

    return run


_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, v: a is not MISSING and value_key(a) == v,
    "ne": lambda a, v: a is MISSING or value_key(a) != v,
    "in": lambda a, v: a is not MISSING and value_key(a) in v,
    "not_in": lambda a, v: a is MISSING or value_key(a) not in v,
    "exists": lambda a, v: (a is not MISSING and a is not None) == v,
    "gt": _cmp(lambda x, y: x > y),
    "gte": _cmp(lambda x, y: x >= y),
    "lt": _cmp(lambda x, y: x < y),
    "lte": _cmp(lambda x, y: x <= y),
}
