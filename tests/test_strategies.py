"""pytest_failmodes.strategies: variants() and paraphrases() in users' @given tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakellm import fakellm_server
from hypothesis import find, given, settings
from hypothesis import strategies as st

from pytest_failmodes import strategies
from pytest_failmodes.probes import Variant
from pytest_failmodes.strategies import paraphrases, variants

TEXT = "I can't get a refund for order 1234, please help"
SETTINGS = settings(derandomize=True, database=None, max_examples=300)


def test_shrinking_finds_the_single_edit_that_breaks_an_app() -> None:
    # planted bug: the app misreads "cant"; variants carry up to 4 edits of three kinds
    strategy = variants(TEXT, kinds=["typo", "case", "contraction"], max_edits=4, protected=["order 1234"])

    found = find(strategy, lambda v: "cant" in v.text.split(), settings=SETTINGS)

    assert found.text == "I cant get a refund for order 1234, please help"
    assert [e.describe() for e in found.edits] == ["contraction: \"can't\" -> 'cant' (apostrophe dropped)"]


def test_shrinking_moves_to_fewer_and_earlier_edits() -> None:
    # any variant with a typo fails: the smallest is one typo, in the first word it can edit, first option
    found = find(variants(TEXT, kinds=["case", "typo"], max_edits=5), lambda v: any(e.kind == "typo" for e in v.edits), settings=SETTINGS)
    assert len(found.edits) == 1
    assert found.edits[0].before == "can" and found.edits[0].how == "adjacent swap"


@settings(max_examples=100, derandomize=True, database=None)
@given(data=st.data(), max_edits=st.integers(1, 4))
def test_drawn_variants_respect_kinds_edits_and_protection(data: st.DataObject, max_edits: int) -> None:
    kinds = data.draw(st.lists(st.sampled_from(["typo", "case", "whitespace", "punctuation", "synonym", "contraction"]), min_size=1, unique=True))
    v = data.draw(variants(TEXT, kinds=kinds, max_edits=max_edits, protected=["order 1234", "refund"]))
    assert isinstance(v, Variant) and v.original == TEXT
    assert 1 <= len(v.edits) <= max_edits
    assert {e.kind for e in v.edits} <= set(kinds)
    assert "order 1234" in v.text and "refund" in v.text
    assert "1234" not in [e.before for e in v.edits]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="none of the kinds name, location can edit"):
        variants("hello there", kinds=["name", "location"])
    with pytest.raises(ValueError, match="did you mean 'typo'"):
        variants(TEXT, kinds=["typos"])
    with pytest.raises(ValueError, match="non-empty text"):
        variants("  ")
    with pytest.raises(ValueError, match="max_edits must be at least 1"):
        variants(TEXT, max_edits=0)
    with pytest.raises(ValueError, match="n must be at least 1"):
        paraphrases(TEXT, n=0)


USER_TEST = """
    from hypothesis import given, settings
    from pytest_failmodes.strategies import variants

    def decide(text):
        # the bug: "cant" (no apostrophe) is not read as a negation
        return "DENIED" if " cant " in f" {text} " else "APPROVED"

    @settings(derandomize=True, database=None, max_examples=200)
    @given(v=variants("I can't get a refund for order 1234", kinds=["typo", "case", "contraction"],
                      max_edits=3, protected=["order 1234"]))
    def test_refund_decision_is_stable(v):
        assert decide(v.text) == decide(v.original), v.describe()
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["no-xdist", "n2"])
def test_a_users_given_test_reports_the_minimal_variant(pytester: pytest.Pytester, xdist: list[str]) -> None:
    pytester.makepyfile(test_user=USER_TEST)

    result = pytester.runpytest_subprocess(*xdist)

    assert result.ret == 1
    result.stdout.fnmatch_lines(["*: test_refund_decision_is_stable(*"])  # "Falsifying example" or "Failing test case"
    minimal = "v=Variant('I cant get a refund for order 1234', edits=[contraction: \"can't\" -> 'cant' (apostrophe dropped)]),"
    assert minimal in result.stdout.str()


PARAPHRASE_TEST = """
    from hypothesis import given, settings
    from pytest_failmodes.strategies import paraphrases

    def decide(text):
        return "DENIED" if "refused" in text else "APPROVED"

    @settings(derandomize=True, database=None, max_examples=20)
    @given(p=paraphrases("Can I get my money back?", n=3, style="terse", model="openai/fake-judge",
                         api_base=%(base)r, cache_dir=%(cache)r))
    def test_paraphrases_keep_the_decision(p):
        assert decide(p.text) == decide(p.original)
"""


def paraphrase_reply(request: dict[str, Any]) -> str:
    return json.dumps({"paraphrases": ["Money back possible?", "Could I be refused a refund?", "Refund me?"]})


def test_paraphrases_in_a_given_test_are_generated_once(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-strategy")
    with fakellm_server(responder=paraphrase_reply) as server:
        pytester.makepyfile(test_user=PARAPHRASE_TEST % {"base": server.base_url, "cache": str(tmp_path / "cache")})
        first = pytester.runpytest_subprocess()
        again = pytester.runpytest_subprocess()
        calls = server.call_count
    for result in (first, again):
        assert result.ret == 1
        assert "p=Variant('Could I be refused a refund?', edits=[paraphrase])," in result.stdout.str()
    assert calls == 1  # the second run read the paraphrases from the cache


def test_a_paraphrase_fault_fails_the_test_with_the_model_error(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-strategy")
    with fakellm_server(default_reply="not json") as server:
        pytester.makepyfile(test_user=PARAPHRASE_TEST % {"base": server.base_url, "cache": str(tmp_path / "cache")})
        result = pytester.runpytest_subprocess()
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*ModelError: openai/fake-judge: unusable reply after one repair request (it is not valid JSON)*"])


def test_the_strategies_module_is_public_and_lazy() -> None:
    assert strategies.__all__ == ["variants", "paraphrases", "KINDS"]
