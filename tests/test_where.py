"""``where:`` filters: every operator, CSV strings, missing fields."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_failmodes.trace import Trace
from pytest_failmodes.where import OPERATORS, WhereError, compile_where


def t(**metadata: Any) -> Trace:
    return Trace(id="t", input="in", output="out", metadata=metadata)


def matches(spec: dict[str, Any], trace: Trace) -> bool:
    return compile_where(spec)(trace)


def test_plain_value_is_equality() -> None:
    assert matches({"route": "billing"}, t(route="billing"))
    assert not matches({"route": "billing"}, t(route="tech"))
    assert not matches({"route": "billing"}, t())


def test_equality_compares_scalars_as_text() -> None:
    # CSV cells are strings; YAML gives numbers and booleans
    assert matches({"turns": 3}, t(turns="3"))
    assert matches({"turns": "3"}, t(turns=3))
    assert matches({"vip": True}, t(vip="true"))
    assert matches({"vip": "true"}, t(vip=True))
    assert matches({"score": 0.5}, t(score="0.5"))


def test_eq_and_ne() -> None:
    assert matches({"route": {"eq": "a"}}, t(route="a"))
    assert not matches({"route": {"eq": "a"}}, t(route="b"))
    assert matches({"route": {"ne": "a"}}, t(route="b"))
    assert not matches({"route": {"ne": "a"}}, t(route="a"))
    # a missing field is not equal to anything
    assert not matches({"route": {"eq": "a"}}, t())
    assert matches({"route": {"ne": "a"}}, t())


def test_in_and_not_in() -> None:
    spec_in = {"route": {"in": ["billing", "tech", 7]}}
    assert matches(spec_in, t(route="tech"))
    assert matches(spec_in, t(route="7"))
    assert not matches(spec_in, t(route="sales"))
    assert not matches(spec_in, t())
    spec_out = {"route": {"not_in": ["billing", "tech"]}}
    assert matches(spec_out, t(route="sales"))
    assert not matches(spec_out, t(route="billing"))
    assert matches(spec_out, t())


def test_exists() -> None:
    assert matches({"persona": {"exists": True}}, t(persona="new"))
    assert matches({"persona": {"exists": True}}, t(persona=""))  # present, though empty
    assert not matches({"persona": {"exists": True}}, t())
    assert not matches({"persona": {"exists": True}}, t(persona=None))
    assert matches({"persona": {"exists": False}}, t())
    assert matches({"persona": {"exists": False}}, t(persona=None))
    assert not matches({"persona": {"exists": False}}, t(persona="x"))


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("gt", 3, [False, False, True]),
        ("gte", 3, [False, True, True]),
        ("lt", 3, [True, False, False]),
        ("lte", 3, [True, True, False]),
        ("gt", "2.5", [False, True, True]),
        ("lte", 2.5, [True, False, False]),
    ],
)
def test_numeric_comparisons(op: str, value: Any, expected: list[bool]) -> None:
    for actual, want in zip((2, 3, 4), expected):
        assert matches({"turns": {op: value}}, t(turns=actual)) is want, (op, value, actual)
        # the same on CSV strings
        assert matches({"turns": {op: value}}, t(turns=str(actual))) is want, (op, value, str(actual))
        assert matches({"turns": {op: value}}, t(turns=float(actual))) is want


@pytest.mark.parametrize("actual", [None, "n/a", "", True, [3], {"n": 3}])
def test_numeric_comparison_on_non_numbers_does_not_match(actual: Any) -> None:
    for op in ("gt", "gte", "lt", "lte"):
        assert not matches({"turns": {op: 0}}, t(turns=actual)), (op, actual)


def test_numeric_comparison_on_a_missing_field_does_not_match() -> None:
    for op in ("gt", "gte", "lt", "lte"):
        assert not matches({"turns": {op: 0}}, t())


def test_conditions_are_anded() -> None:
    spec = {"route": "billing", "turns": {"gte": 2, "lt": 5}}
    assert matches(spec, t(route="billing", turns=3))
    assert not matches(spec, t(route="billing", turns=5))
    assert not matches(spec, t(route="tech", turns=3))
    assert matches({}, t())  # no condition: everything


def test_fields_resolve_like_trace_get() -> None:
    trace = Trace(id="x7", input="hello", output="out", metadata={"user": {"tier": "gold"}}, labels={"verdict": "bad"})
    assert matches({"id": "x7"}, trace)
    assert matches({"input": "hello"}, trace)
    assert matches({"user.tier": {"in": ["gold", "silver"]}}, trace)
    assert matches({"metadata.user.tier": "gold"}, trace)
    assert matches({"verdict": "bad"}, trace)
    assert matches({"labels.verdict": "bad"}, trace)
    assert not matches({"labels.tier": {"exists": True}}, trace)


@pytest.mark.parametrize(
    ("spec", "path", "fragment"),
    [
        ({"turns": {"gtt": 3}}, ("turns", "gtt"), "unknown operator 'gtt'; did you mean 'gt'?"),
        ({"route": {"notin": ["a"]}}, ("route", "notin"), "did you mean 'not_in'?"),
        ({"route": {"zzz": 1}}, ("route", "zzz"), "unknown operator 'zzz'"),
        ({"route": {"in": "billing"}}, ("route", "in"), "'in' takes a list of values"),
        ({"route": {"not_in": 3}}, ("route", "not_in"), "'not_in' takes a list of values"),
        ({"route": {"exists": "yes"}}, ("route", "exists"), "'exists' takes true or false"),
        ({"turns": {"gt": "three"}}, ("turns", "gt"), "'gt' takes a number"),
        ({"turns": {"lte": True}}, ("turns", "lte"), "'lte' takes a number"),
        ({"turns": {"lt": None}}, ("turns", "lt"), "'lt' takes a number"),
        ({"route": {}}, ("route",), "empty condition"),
    ],
)
def test_invalid_filters(spec: dict[str, Any], path: tuple[str, ...], fragment: str) -> None:
    with pytest.raises(WhereError) as info:
        compile_where(spec)
    assert info.value.path == path
    assert fragment in str(info.value)


def test_not_a_mapping() -> None:
    with pytest.raises(WhereError, match="expected a mapping") as info:
        compile_where(["route"])  # type: ignore[arg-type]
    assert info.value.path == ()


def test_operators_constant_lists_every_operator() -> None:
    for op in OPERATORS:
        value: Any = [1] if op in ("in", "not_in") else True if op == "exists" else 1
        compile_where({"f": {op: value}})


def test_repr_is_readable() -> None:
    assert repr(compile_where({"route": "a", "turns": {"gt": 2}})) == "Where(route eq 'a', turns gt 2.0)"
