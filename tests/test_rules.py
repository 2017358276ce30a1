"""Built-in rule kinds, composition, and the label detector.

A rule describes the failure: its verdict is FAIL when the failure is present.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_failmodes.detectors import Detector, RuleError, RuleKind, build_rule, merge_rule_kinds
from pytest_failmodes.detectors.label import LabelDetector
from pytest_failmodes.detectors.rules import BUILTIN_RULE_KINDS
from pytest_failmodes.trace import Trace
from pytest_failmodes.verdict import ERROR, FAIL, PASS, SKIP, Verdict, to_verdict

KINDS = {k.name: k for k in BUILTIN_RULE_KINDS}


def rule(spec: Any) -> Detector:
    return build_rule(spec, KINDS)


def status(spec: Any, trace: Trace) -> str:
    return to_verdict(rule(spec)(trace)).status


def t(output: str = "", **kw: Any) -> Trace:
    return Trace(id=kw.pop("id", "t"), output=output, **kw)


def with_calls(*calls: tuple[str, Any]) -> Trace:
    items = [{"id": str(i), "function": {"name": n, "arguments": a}} for i, (n, a) in enumerate(calls)]
    return Trace(
        id="t",
        messages=[
            {"role": "user", "content": "where is my order"},
            {"role": "assistant", "content": None, "tool_calls": items},
            {"role": "assistant", "content": "done"},
        ],
    )


def test_builtin_kinds_and_their_options() -> None:
    assert set(KINDS) == {
        "regex", "contains", "not_contains", "tool_called", "json_valid", "json_schema",
        "max_chars", "min_chars", "any", "all", "not",
        "tool_order", "step_error", "max_steps", "max_tool_calls", "repeated_tool_call", "agent_spoke",
    }
    assert KINDS["regex"].options == ("field",)
    assert KINDS["contains"].options == ("field", "ignore_case")
    assert KINDS["tool_called"].options == ()
    assert KINDS["any"].nested and KINDS["any"].options == ()
    assert not KINDS["regex"].nested


# -- regex ----------------------------------------------------------------------


def test_regex_fails_when_found() -> None:
    detector = rule({"regex": r"(?i)my instructions (say|are)"})
    verdict = detector(t("Well, MY INSTRUCTIONS SAY no."))
    assert isinstance(verdict, Verdict)
    assert verdict.status == FAIL
    assert verdict.evidence == "MY INSTRUCTIONS SAY"
    assert "output matches" in verdict.reason
    assert detector(t("nothing here")) == Verdict.pass_()


def test_regex_on_another_field() -> None:
    spec = {"regex": r"\d{3}-\d{4}", "field": "input"}
    assert status(spec, Trace(id="t", input="call 555-1234", output="ok")) == FAIL
    assert status(spec, Trace(id="t", input="no number", output="555-1234")) == PASS


def test_regex_on_metadata_and_non_text_values() -> None:
    assert status({"regex": "gold", "field": "user.tier"}, t("x", metadata={"user": {"tier": "gold"}})) == FAIL
    # non-text values are matched against their JSON text
    assert status({"regex": r"\[1, 2\]", "field": "nums"}, t("x", metadata={"nums": [1, 2]})) == FAIL
    assert status({"regex": "^3$", "field": "n"}, t("x", metadata={"n": 3})) == FAIL


def test_regex_over_the_messages_transcript() -> None:
    assert status({"regex": "where is", "field": "messages"}, with_calls()) == FAIL
    assert status({"regex": "where is"}, with_calls()) == PASS  # output is the reply only


@pytest.mark.parametrize("field", ["nope", "metadata.nope", "labels.verdict"])
def test_missing_field_is_an_error_not_a_pass(field: str) -> None:
    for spec in (
        {"regex": "x", "field": field},
        {"contains": "x", "field": field},
        {"not_contains": "x", "field": field},
        {"json_valid": True, "field": field},
        {"json_schema": {"type": "object"}, "field": field},
        {"max_chars": 3, "field": field},
        {"min_chars": 3, "field": field},
    ):
        verdict = to_verdict(rule(spec)(t("x")))
        assert verdict.status == ERROR, spec
        assert repr(field) in verdict.reason


def test_null_field_is_an_error() -> None:
    assert status({"contains": "x", "field": "flag"}, t("x", metadata={"flag": None})) == ERROR


# -- contains / not_contains ------------------------------------------------------


def test_contains_fails_on_any_phrase_case_insensitive_by_default() -> None:
    detector = rule({"contains": ["as an ai", "I cannot"]})
    verdict = to_verdict(detector(t("Sorry, AS AN AI model ...")))
    assert verdict.status == FAIL and verdict.evidence == "as an ai"
    assert status({"contains": ["as an ai", "I cannot"]}, t("Sure, here it is")) == PASS
    assert status({"contains": "single phrase"}, t("a Single Phrase!")) == FAIL


def test_contains_case_sensitive() -> None:
    spec = {"contains": ["Refund"], "ignore_case": False}
    assert status(spec, t("refund issued")) == PASS
    assert status(spec, t("Refund issued")) == FAIL


def test_not_contains_fails_when_none_present() -> None:
    spec = {"not_contains": ["order number", "tracking"]}
    assert status(spec, t("Here is your TRACKING link")) == PASS
    verdict = to_verdict(rule(spec)(t("Have a nice day")))
    assert verdict.status == FAIL and "none of" in verdict.reason
    assert status({"not_contains": "ok", "ignore_case": False}, t("OK")) == FAIL


# -- tool_called -----------------------------------------------------------------


def test_tool_called_by_name() -> None:
    trace = with_calls(("lookup_order", '{"order_id": 7}'), ("send_email", "{}"))
    assert status({"tool_called": "lookup_order"}, trace) == FAIL
    assert status({"tool_called": "refund"}, trace) == PASS
    assert status({"tool_called": "refund"}, t("no messages")) == PASS


def test_tool_called_with_args() -> None:
    trace = with_calls(("lookup_order", '{"order_id": 7, "verbose": true}'), ("lookup_order", {"order_id": "8"}))
    assert status({"tool_called": {"name": "lookup_order", "args": {"order_id": 7}}}, trace) == FAIL
    # values match by text too: "8" from a dict argument against 8 in YAML
    assert status({"tool_called": {"name": "lookup_order", "args": {"order_id": 8}}}, trace) == FAIL
    assert status({"tool_called": {"name": "lookup_order", "args": {"order_id": 9}}}, trace) == PASS
    assert status({"tool_called": {"name": "lookup_order", "args": {"order_id": 7, "verbose": True}}}, trace) == FAIL
    assert status({"tool_called": {"name": "lookup_order", "args": {"missing": 1}}}, trace) == PASS


def test_tool_called_present_false_fails_when_not_called() -> None:
    spec = {"tool_called": {"name": "lookup_order", "present": False}}
    verdict = to_verdict(rule(spec)(with_calls(("other", "{}"))))
    assert verdict.status == FAIL and "was not called" in verdict.reason
    assert status(spec, with_calls(("lookup_order", "{}"))) == PASS
    assert status(spec, t("plain output, no messages")) == FAIL
    with_args = {"tool_called": {"name": "lookup_order", "args": {"order_id": 1}, "present": False}}
    assert status(with_args, with_calls(("lookup_order", '{"order_id": 2}'))) == FAIL
    assert status(with_args, with_calls(("lookup_order", '{"order_id": 1}'))) == PASS


def test_tool_called_with_malformed_arguments_does_not_match_args() -> None:
    trace = with_calls(("lookup_order", "{broken"))
    assert status({"tool_called": "lookup_order"}, trace) == FAIL
    assert status({"tool_called": {"name": "lookup_order", "args": {"order_id": 1}}}, trace) == PASS


# -- json ------------------------------------------------------------------------


def test_json_valid() -> None:
    assert status({"json_valid": True}, t('{"a": 1}')) == PASS
    assert status({"json_valid": True}, t("[1, 2")) == FAIL
    assert status({"json_valid": True, "field": "payload"}, t("x", metadata={"payload": '"ok"'})) == PASS


SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}


def test_json_schema() -> None:
    assert status({"json_schema": SCHEMA}, t(json.dumps({"answer": "yes"}))) == PASS
    verdict = to_verdict(rule({"json_schema": SCHEMA})(t(json.dumps({"answer": 3}))))
    assert verdict.status == FAIL and "answer" in verdict.reason
    assert status({"json_schema": SCHEMA}, t("{}")) == FAIL
    assert status({"json_schema": SCHEMA}, t("not json")) == FAIL


def test_json_schema_invalid_schema_is_a_definition_error() -> None:
    with pytest.raises(RuleError, match="invalid JSON schema") as info:
        rule({"json_schema": {"type": "no-such-type"}})
    assert info.value.path == ("json_schema",)
    with pytest.raises(RuleError, match="takes a JSON Schema mapping"):
        rule({"json_schema": "object"})


# -- lengths ---------------------------------------------------------------------


def test_max_and_min_chars() -> None:
    assert status({"max_chars": 5}, t("12345")) == PASS
    verdict = to_verdict(rule({"max_chars": 5})(t("123456")))
    assert verdict.status == FAIL and verdict.evidence == 6
    assert status({"min_chars": 3}, t("abc")) == PASS
    assert status({"min_chars": 3}, t("ab")) == FAIL
    assert status({"min_chars": 1}, t("")) == FAIL
    assert status({"max_chars": 2, "field": "input"}, Trace(id="t", input="long input", output="")) == FAIL


# -- composition -----------------------------------------------------------------

FOUND_A = {"contains": "a"}
FOUND_B = {"contains": "b"}


@pytest.mark.parametrize(
    ("text", "any_", "all_"),
    [("ab", FAIL, FAIL), ("a", FAIL, PASS), ("b", FAIL, PASS), ("z", PASS, PASS)],
)
def test_any_and_all(text: str, any_: str, all_: str) -> None:
    assert status({"any": [FOUND_A, FOUND_B]}, t(text)) == any_
    assert status({"all": [FOUND_A, FOUND_B]}, t(text)) == all_


def test_not_inverts() -> None:
    assert status({"not": FOUND_A}, t("a")) == PASS
    verdict = to_verdict(rule({"not": FOUND_A})(t("z")))
    assert verdict.status == FAIL and "did not match" in verdict.reason
    # double negation
    assert status({"not": {"not": FOUND_A}}, t("a")) == FAIL


def test_composition_nests() -> None:
    # FAIL: the output is not JSON and (too long or starts with x)
    spec = {"all": [{"json_valid": True}, {"any": [{"max_chars": 3}, {"regex": "^x"}]}]}
    assert status(spec, t("long and not json")) == FAIL
    assert status(spec, t("xy")) == FAIL
    assert status(spec, t("yy")) == PASS
    assert status(spec, t('{"json": "and long"}')) == PASS
    # FAIL when the output IS valid JSON
    assert status({"not": {"json_valid": True}}, t("[1]")) == FAIL
    assert status({"not": {"json_valid": True}}, t("[1")) == PASS


def test_composition_propagates_errors() -> None:
    missing = {"contains": "x", "field": "nope"}
    for spec in ({"any": [FOUND_A, missing]}, {"all": [FOUND_A, missing]}, {"not": missing}):
        assert status(spec, t("a")) == ERROR, spec


def test_fail_reasons_of_children_are_joined() -> None:
    verdict = to_verdict(rule({"any": [FOUND_A, FOUND_B]})(t("ab")))
    assert "'a'" in verdict.reason and "'b'" in verdict.reason


# -- building errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "path", "fragment"),
    [
        ("regex", (), "a rule is a mapping"),
        ({}, (), "empty rule"),
        ({"regex": "x", "contains": "y"}, ("contains",), "one rule kind per rule"),
        ({"regexx": "x"}, ("regexx",), "did you mean 'regex'"),
        ({"regex": "x", "feild": "input"}, ("feild",), "did you mean 'field'"),
        ({"tool_called": "x", "field": "output"}, ("field",), "valid options: (none)"),
        ({"regex": ""}, ("regex",), "non-empty pattern"),
        ({"regex": 3}, ("regex",), "non-empty pattern"),
        ({"regex": "("}, ("regex",), "invalid regular expression"),
        ({"regex": "x", "field": ""}, ("regex", "field"), "'field' takes a field name"),
        ({"contains": []}, ("contains",), "non-empty list of phrases"),
        ({"contains": ["ok", ""]}, ("contains",), "non-empty list of phrases"),
        ({"contains": "x", "ignore_case": "yes"}, ("contains", "ignore_case"), "true or false"),
        ({"tool_called": ""}, ("tool_called",), "tool name"),
        ({"tool_called": {"args": {}}}, ("tool_called", "name"), "'name'"),
        ({"tool_called": {"name": "x", "args": [1]}}, ("tool_called", "args"), "mapping"),
        ({"tool_called": {"name": "x", "present": "no"}}, ("tool_called", "present"), "true or false"),
        ({"tool_called": {"name": "x", "argz": {}}}, ("tool_called", "argz"), "did you mean 'args'"),
        ({"json_valid": False}, ("json_valid",), "json_valid takes true"),
        ({"max_chars": -1}, ("max_chars",), "whole number"),
        ({"max_chars": True}, ("max_chars",), "whole number"),
        ({"min_chars": 2.5}, ("min_chars",), "whole number"),
        ({"any": []}, ("any",), "non-empty list of rules"),
        ({"all": {"regex": "x"}}, ("all",), "non-empty list of rules"),
        ({"any": [{"regex": "x"}, {"contans": "y"}]}, ("any", 1, "contans"), "did you mean 'contains'"),
        ({"not": {"regex": "("}}, ("not", "regex"), "invalid regular expression"),
        ({"not": "x"}, ("not",), "a rule is a mapping"),
    ],
)
def test_invalid_rules(spec: Any, path: tuple[Any, ...], fragment: str) -> None:
    with pytest.raises(RuleError) as info:
        rule(spec)
    assert info.value.path == path
    assert fragment in str(info.value)


def test_detectors_are_frozen_with_readable_reprs() -> None:
    detector = rule({"tool_called": {"name": "lookup", "args": {"id": 1}, "present": False}})
    assert repr(detector) == "tool_called(lookup, args={'id': 1}, present=False)"
    assert repr(rule({"any": [{"regex": "x"}, {"not_contains": ["a"], "field": "input"}]})) == (
        "any(regex(/x/ in output), not_contains(['a'] in input))"
    )
    assert repr(rule({"max_chars": 5})) == "max_chars(5, output)"
    with pytest.raises(AttributeError):
        detector.name = "other"  # type: ignore[attr-defined]
    assert isinstance(detector, Detector)


def test_merge_rule_kinds_lets_earlier_results_override() -> None:
    def shout(value: Any, field: str = "output") -> Detector:
        return lambda trace: trace.get(field).isupper() == value

    custom = RuleKind("regex", shout)
    kinds = merge_rule_kinds([[custom], list(BUILTIN_RULE_KINDS)])
    assert kinds["regex"] is custom
    assert kinds["contains"] is KINDS["contains"]
    assert custom.options == ("field",)
    assert to_verdict(build_rule({"regex": True}, kinds)(t("LOUD"))).status == FAIL


def test_plugin_kind_raising_value_error_becomes_rule_error() -> None:
    def picky(value: Any) -> Detector:
        raise ValueError("nope")

    kinds = {**KINDS, "picky": RuleKind("picky", picky)}
    with pytest.raises(RuleError, match="invalid value for 'picky': nope") as info:
        build_rule({"picky": 1}, kinds)
    assert info.value.path == ("picky",)


# -- label detector --------------------------------------------------------------


def labelled(value: Any = None, **labels: Any) -> Trace:
    if value is not None:
        labels["verdict"] = value
    return Trace(id="t", output="o", labels=labels)


def test_label_fail_values() -> None:
    detector = LabelDetector("verdict", frozenset({"escalate", "bad"}))
    verdict = detector(labelled("escalate"))
    assert verdict.status == FAIL and verdict.reason == "labelled verdict=escalate"
    assert detector(labelled("fine")).status == PASS  # without pass_values anything else passes


def test_label_values_compare_as_text() -> None:
    detector = LabelDetector("flag", frozenset({"true", "1"}))
    assert detector(labelled(flag=True)).status == FAIL
    assert detector(labelled(flag="true")).status == FAIL
    assert detector(labelled(flag=1)).status == FAIL
    assert detector(labelled(flag=False)).status == PASS


def test_label_pass_values_make_unknown_values_errors() -> None:
    detector = LabelDetector("verdict", frozenset({"bad"}), frozenset({"good"}))
    assert detector(labelled("bad")).status == FAIL
    assert detector(labelled("good")).status == PASS
    verdict = detector(labelled("goood"))
    assert verdict.status == ERROR
    assert "'goood'" in verdict.reason and "neither" in verdict.reason


@pytest.mark.parametrize("trace", [labelled(), labelled(""), Trace(id="t", output="o", labels={"verdict": None})])
def test_missing_label_is_skipped(trace: Trace) -> None:
    detector = LabelDetector("verdict", frozenset({"bad"}), frozenset({"good"}))
    verdict = detector(trace)
    assert verdict.status == SKIP and "verdict" in verdict.reason


def test_label_read_from_metadata_or_dotted_paths() -> None:
    detector = LabelDetector("review.verdict", frozenset({"bad"}))
    assert detector(Trace(id="t", output="o", metadata={"review": {"verdict": "bad"}})).status == FAIL
    assert repr(detector) == "label(review.verdict in ['bad'])"
