"""A regex rule skips the search when the text holds none of the literals every match
contains (patterns.required_literals); it must never skip a search that would match."""

from __future__ import annotations

import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_failmodes.detectors.rules import Regex
from pytest_failmodes.patterns import compile_pattern, required_literals
from pytest_failmodes.trace import Trace
from pytest_failmodes.verdict import PASS

LEAK = r"(?i)(my (system )?instructions (say|tell)|as an ai language model|internal policy doc)"


def test_literals_read_from_the_pattern() -> None:
    assert required_literals(LEAK) == (("as an ai language model", "instructions ", "internal policy doc"), True)
    # the longest required run: an optional group breaks it
    assert required_literals("refund(ed)? now") == (("refund",), False)
    assert required_literals("(?:hello)+ there") == ((" there",), False)
    assert required_literals("(?:hello)+ th") == (("hello",), False)


def test_patterns_outside_the_plain_subset_are_always_searched() -> None:
    # classes, escapes, braces, lookarounds, local flags: re and regex may read them differently
    for pattern in (r"[[:alpha:]]xyz", r"\bfoo\b", "ab{2}cde", "(?=abc)abc", "(?i:abc)def", "(?s)abcd", "(a+)+$", "ab|c"):
        assert required_literals(pattern) == (None, False), pattern


def test_case_blind_prefilter_only_on_ascii_text() -> None:
    # under (?i) the long s matches s but does not lower to it: such text is searched
    pattern = compile_pattern("(?i)system")
    text = "my \u017fystem"
    assert pattern.search(text) is not None
    assert not pattern.cannot_match(text)
    assert pattern.cannot_match("nothing here")
    assert not pattern.cannot_match("the SYSTEM said")


def test_a_skipped_search_is_a_pass_and_a_match_still_fails() -> None:
    rule = Regex(compile_pattern(LEAK))
    assert rule(Trace(id="a", output="Have a nice day.")).status == PASS
    verdict = rule(Trace(id="b", output="As an AI language model, I can't."))
    assert verdict.status == "fail"
    assert verdict.evidence == "As an AI language model"


_ALPHABET = "abcAB .|()?*+:'"


@settings(max_examples=400, deadline=None)
@given(st.text(_ALPHABET, min_size=1, max_size=14), st.booleans(), st.text("abcABs\u017f\u212a .", max_size=30))
def test_prefilter_never_skips_a_match(body: str, blind: bool, text: str) -> None:
    pattern = ("(?i)" if blind else "") + body
    try:
        compiled = compile_pattern(pattern)
    except ValueError:
        return
    if compiled.cannot_match(text):
        assert regex.compile(pattern, regex.VERSION0).search(text) is None, (pattern, text, compiled.literals)
