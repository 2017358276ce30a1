"""Perturbations: each kind's edits, protected entities, determinism (property tests)."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_failmodes.probes.perturb import (
    COUNTERFACTUAL_KINDS,
    INVARIANT_KINDS,
    KINDS,
    Variant,
    apply_edits,
    lexicon,
    parse_kinds,
    perturb,
    realize,
    sites,
)

#: words that give every kind somewhere to edit
WORDS = [
    "I", "can't", "cannot", "get", "a", "refund", "for", "my", "order", "Maria", "Mohammed", "from", "Lagos",
    "Japan", "it", "is", "not", "broken", "please", "help", "don't", "want", "12", "49.99", "3", "item",
    "the", "package", "never", "arrived", "quickly", "I'm", "do", "not", "will",
]
PROTECTED = ["order HG-1234", "Maria", "49.99 EUR"]

texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=14).map(" ".join)
punctuated = st.tuples(texts, st.sampled_from(["", ".", "?", "!", ", thanks."])).map("".join)


@st.composite
def with_protected(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A text with one to three protected entities spliced into it."""
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12))
    chosen = draw(st.lists(st.sampled_from(PROTECTED), min_size=1, max_size=3, unique=True))
    for entity in chosen:
        words.insert(draw(st.integers(0, len(words))), entity)
    return " ".join(words) + draw(st.sampled_from(["", "?", "."])), chosen


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=60, derandomize=True, database=None)
@given(case=with_protected(), seed=st.integers(0, 2**32 - 1), max_edits=st.integers(1, 4))
def test_protected_entities_survive_every_kind(kind: str, case: tuple[str, list[str]], seed: int, max_edits: int) -> None:
    text, protected = case
    v = perturb(text, kind, seed, protected, max_edits=max_edits)
    if v is None:
        return
    for entity in protected:
        assert v.text.count(entity) >= text.count(entity), (entity, v)
    for edit in v.edits:
        for entity in protected:
            for m in re.finditer(re.escape(entity), text):
                inside = edit.start < m.end() and m.start() < edit.end
                splits = edit.start == edit.end and m.start() < edit.start < m.end()
                assert not inside and not splits, (edit, entity)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, derandomize=True, database=None)
@given(text=punctuated, seed=st.integers(0, 2**32 - 1))
def test_the_same_seed_gives_the_same_variant(kind: str, text: str, seed: int) -> None:
    first = perturb(text, kind, seed, max_edits=3)
    again = perturb(text, kind, random.Random(seed), max_edits=3)
    assert first == again
    if first is not None:
        # the variant is its edits applied to the original, nothing else
        assert first.text == apply_edits(text, first.edits)
        assert first.text != text or all(e.before == e.after for e in first.edits)
        assert {e.kind for e in first.edits} == {kind}
        assert 1 <= len(first.edits) <= 3


@settings(max_examples=100, derandomize=True, database=None)
@given(text=texts, seed=st.integers(0, 2**32 - 1), lo=st.integers(1, 50))
def test_a_number_edit_keeps_every_other_token(text: str, seed: int, lo: int) -> None:
    for number_range in (None, (float(lo), float(lo + 100))):
        v = perturb(text, "number", seed, number_range=number_range)
        if v is None:
            assert not re.search(r"\d", text)
            continue
        before, after = text.split(" "), v.text.split(" ")
        assert len(before) == len(after)
        changed = [(a, b) for a, b in zip(before, after) if a != b]
        assert len(changed) == 1
        old, new = changed[0]
        assert re.fullmatch(r"\d+(\.\d+)?", old) and re.fullmatch(r"\d+(\.\d+)?", new)
        if number_range is None:
            assert abs(float(new) - float(old)) <= 0.2 * float(old) + (1 if "." not in old else 0.01)
        else:
            assert number_range[0] <= float(new) <= number_range[1]
        assert new.count(".") == old.count(".")  # as many decimals as the original


def test_typos_swap_drop_and_slip_but_keep_the_first_letter() -> None:
    found = sites("refund", "typo")
    assert len(found) == 1
    options = dict(found[0].options)
    assert options["erfund"] == "adjacent swap"
    assert options["refnd"] == "dropped letter"
    assert options["refumd"] == "keyboard slip"  # n -> m
    assert all(o[0] == "r" for o, how in found[0].options if how == "dropped letter")  # never the first letter
    assert not sites("a ok", "typo")  # words of fewer than three letters are left alone


def test_case_whitespace_punctuation_filler() -> None:
    assert {o for o, _ in sites("Refund", "case")[0].options} == {"refund", "REFUND"}
    ws = sites("a b", "whitespace")
    assert ws[0].before == " " and "  " in dict(ws[0].options)
    assert ws[-1].start == ws[-1].end == 3  # a trailing space is a site too
    punct = sites("Why not?", "punctuation")
    assert [s.before for s in punct] == ["?"]
    assert dict(punct[0].options)[""] == "removed"
    assert sites("No stop", "punctuation")[0].options[0] == ("?", "added")
    filler = sites("Help me.", "filler")
    assert (filler[0].start, filler[1].start) == (0, 8)
    assert realize("Help me.", [filler[0].edit(0)]).text == "Hi, Help me."


def test_contractions_expand_and_contract() -> None:
    assert list(sites("I can't log in", "contraction")[0].options) == [
        ("cannot", "expanded"), ("can not", "expanded"), ("cant", "apostrophe dropped")
    ]
    assert [o for o, _ in sites("I do not know", "contraction")[0].options] == ["don't"]
    # the capital of a sentence's first word is kept
    assert [o for o, _ in sites("Do not go", "contraction")[0].options] == ["Don't"]


def test_synonyms_come_from_the_shipped_lexicon() -> None:
    found = sites("Please refund the broken item", "synonym")
    by_word = {s.before: [o for o, _ in s.options] for s in found}
    assert by_word["Please"] == ["Kindly"]
    assert "reimbursement" in by_word["refund"]
    assert "damaged" in by_word["broken"]
    assert any(["refund", "reimbursement"] == g for g in lexicon()["synonyms"])


def test_names_swap_across_genders_and_cultures() -> None:
    names = lexicon()["names"]
    options = [o for o, _ in sites("Maria wrote in", "name")[0].options]
    assert "Maria" not in options
    first = options[:3]
    # the first options already cross genders: a female, a male and a neutral name
    assert {any(n in names[g] for n in first) for g in ("female", "male", "neutral")} == {True}
    assert not sites("maria wrote in", "name")  # a name is capitalised; lower case is a word


def test_locations_swap_like_for_like() -> None:
    lx = lexicon()["locations"]
    city = sites("I live in Sao Paulo", "location")[0]
    assert city.before == "Sao Paulo" and all(o in lx["cities"] for o, _ in city.options)
    country = sites("Shipping to Japan", "location")[0]
    assert all(o in lx["countries"] for o, _ in country.options)


def test_negation_flips_the_meaning() -> None:
    assert dict(sites("I can log in", "negation")[0].options) == {"cannot": "negated"}
    assert realize("It is not broken", [sites("It is not broken", "negation")[1].edit(0)]).text == "It is broken"
    assert "negation" in COUNTERFACTUAL_KINDS and "negation" not in INVARIANT_KINDS


def test_numbers_skip_identifiers_and_honour_a_range() -> None:
    assert [s.before for s in sites("order HG-1234 cost 20 and 3.50", "number")] == ["20", "3.50"]
    assert all(10 <= float(o) <= 12 for o, _ in sites("pay 20", "number", number_range=(10, 12))[0].options)


def test_overlapping_edits_keep_the_first() -> None:
    case, typo = sites("Refund", "case")[0], sites("Refund", "typo")[0]
    v = realize("Refund", [case.edit(0), typo.edit(0)])
    assert v.edits == (case.edit(0),)
    assert v == Variant("Refund", "refund", (case.edit(0),))
    assert repr(v) == "Variant('refund', edits=[case: 'Refund' -> 'refund' (lower case)])"


def test_unknown_kinds_are_named_with_a_suggestion() -> None:
    with pytest.raises(ValueError, match="unknown perturbation kind 'typos'; did you mean 'typo'"):
        parse_kinds(["typos"])
    with pytest.raises(ValueError, match="unknown perturbation kind"):
        sites("x", "rot13")
    assert parse_kinds(None) == INVARIANT_KINDS


@settings(max_examples=60, derandomize=True, database=None)
@given(text=texts, kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32 - 1), order=st.integers(100000, 999999))
def test_a_protected_regex_keeps_every_match(text: str, kind: str, seed: int, order: int) -> None:
    full = f"Order HG-{order}: {text}"
    v = perturb(full, kind, seed, [re.compile(r"HG-\d+")], max_edits=4)
    if v is not None:
        assert f"HG-{order}" in v.text
        assert all(not (e.start < full.index("HG-") + 9 and full.index("HG-") < e.end) for e in v.edits)


def test_nothing_to_edit_gives_none() -> None:
    assert perturb("hello there", "number", 0) is None
    assert perturb("hello there", "name", 0) is None
