"""Typed values: one value, however YAML, JSON or CSV spells it (pytest_failmodes.values)."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pytest_failmodes.trace import MISSING
from pytest_failmodes.values import (
    MISSING_VALUE,
    canonical_cohort,
    cohort_part,
    split_cohort,
    value_key,
    value_text,
)


@pytest.mark.parametrize("spelling", [0, 0.0, -0.0, "0", "0.0", "0.00", "0e5", yaml.safe_load("0.0"), json.loads("0.0")])
def test_the_spellings_of_zero_are_one_value(spelling: object) -> None:
    assert value_key(spelling) == value_key(0)
    assert value_text(spelling) == "0"


@pytest.mark.parametrize("spelling", [True, "true", "True", "TRUE", yaml.safe_load("true"), json.loads("true")])
def test_the_spellings_of_true_are_one_value(spelling: object) -> None:
    assert value_key(spelling) == value_key(True)
    assert value_text(spelling) == "true"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, True),  # a number is not a boolean, though Python says 1 == True
        (0, False),
        ("007", 7),  # leading zeros: an identifier, not a number
        ("1,5", 1.5),
        ("yes", True),  # YAML 1.1 words stay text in data
        ("0.1", 0.10000001),
        ("billing", "Billing"),
        ([1, 2], "[1, 2]"),
    ],
)
def test_different_values_stay_different(a: object, b: object) -> None:
    assert value_key(a) != value_key(b)


def test_numbers_print_canonically() -> None:
    assert [value_text(v) for v in (1, 1.0, "1.0", "1e0", 2.50, "10", 1e3, 0.1, 2**70)] == [
        "1", "1", "1", "1", "2.5", "10", "1000", "0.1", str(2**70)
    ]
    assert value_text(None) == value_text("") == value_text(MISSING) == MISSING_VALUE


# a value and the ways a dataset or a definition may write it
def _spellings(x: Fraction) -> list[object]:
    out: list[object] = [str(Decimal(x.numerator) / Decimal(x.denominator))]
    if x.denominator == 1:
        out += [int(x), f"{int(x)}.0", str(int(x))]
    f = float(x)
    if Fraction(f) == x:
        out += [f, repr(f)]
    return out


_exact = st.fractions(min_value=-10**6, max_value=10**6, max_denominator=1).map(Fraction) | st.decimals(
    min_value=-10**6, max_value=10**6, places=3, allow_nan=False
).map(Fraction)
_words = st.text(min_size=1, max_size=8)


@given(x=_exact, data=st.data())
def test_equal_numbers_match_whatever_the_spelling(x: Fraction, data: st.DataObject) -> None:
    a = data.draw(st.sampled_from(_spellings(x)))
    b = data.draw(st.sampled_from(_spellings(x)))
    assert value_key(a) == value_key(b), (a, b)
    assert value_text(a) == value_text(b)


@given(x=_exact, y=_exact, data=st.data())
def test_different_numbers_do_not_match(x: Fraction, y: Fraction, data: st.DataObject) -> None:
    a = data.draw(st.sampled_from(_spellings(x)))
    b = data.draw(st.sampled_from(_spellings(y)))
    assert (value_key(a) == value_key(b)) == (x == y), (a, b)


@given(a=st.one_of(_words, st.booleans(), st.integers()), b=st.one_of(_words, st.booleans(), st.integers()))
def test_the_key_agrees_with_the_canonical_text_for_scalars(a: object, b: object) -> None:
    # equal keys print alike; text prints alike only if it means the same scalar
    if value_key(a) == value_key(b):
        assert value_text(a) == value_text(b)


_cohort_values = st.text(st.characters(exclude_categories=("Cs",)), max_size=12) | st.integers() | st.booleans()


@given(fields=st.lists(st.sampled_from(["route", "tier", "a=b", "x & y"]), min_size=1, max_size=3, unique=True), data=st.data())
def test_cohort_labels_read_back_to_their_values(fields: list[str], data: st.DataObject) -> None:
    values = [data.draw(_cohort_values) for _ in fields]
    label = " & ".join(cohort_part(f, v) for f, v in zip(fields, values))
    assert split_cohort(label) == [(f, value_text(v)) for f, v in zip(fields, values)]
    assert canonical_cohort(label) == label


def test_cohort_labels_quote_only_awkward_values() -> None:
    assert cohort_part("route", "billing") == "route=billing"
    assert cohort_part("route", "x & persona=y") == 'route="x & persona=y"'
    assert cohort_part("route", "(missing)") == 'route="(missing)"'
    assert cohort_part("route", None) == "route=(missing)"
    assert cohort_part("reward", 1.0) == cohort_part("reward", "1") == "reward=1"
    assert canonical_cohort("reward=1.0 & tier=gold") == "reward=1 & tier=gold"
