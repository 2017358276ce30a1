"""Rules over an agent's steps: tool arguments, order, errors, counts, loops, agents.

The same rules read a trace's ``steps`` (spans) and, for a trace given as OpenAI
``messages``, its tool calls and speakers.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_failmodes.detectors import RuleError, build_rule
from pytest_failmodes.detectors.rules import BUILTIN_RULE_KINDS
from pytest_failmodes.trace import Trace
from pytest_failmodes.verdict import FAIL, PASS, Verdict, to_verdict

KINDS = {k.name: k for k in BUILTIN_RULE_KINDS}


def tool(sid: str, name: str, args: Any, status: str = "ok", error: str | None = None) -> dict[str, Any]:
    return {"id": sid, "parent_id": "root", "kind": "tool", "name": name, "input": args, "status": status, "error": error}


def agent(sid: str, name: str) -> dict[str, Any]:
    return {"id": sid, "parent_id": None, "kind": "agent", "name": name}


def call(cid: str, name: str, args: str) -> dict[str, Any]:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


#: a1: policy then refund; a2: refund of 500 with no policy check; a3: lookup x3 in a row;
#: a4: a tool step that errored; a5: OpenAI messages, policy then refund, and an Auditor speaks;
#: a6: a plain chat, no tools
ROWS: list[dict[str, Any]] = [
    {"id": "a1", "input": "refund order 1", "output": "refunded", "metadata": {"task_id": "t1"}, "steps": [
        agent("root", "Support"),
        tool("s1", "check_policy", {"order_id": 1}),
        tool("s2", "issue_refund", '{"order_id": 1, "amount": 50}'),
    ]},
    {"id": "a2", "input": "refund order 2", "output": "refunded", "metadata": {"task_id": "t1"}, "steps": [
        agent("root", "Support"),
        tool("s1", "issue_refund", {"order_id": 2, "amount": 500, "items": [{"sku": "TV-55"}]}),
    ]},
    {"id": "a3", "input": "find it", "output": "not found", "metadata": {"task_id": "t2"}, "steps": [
        agent("root", "Support"),
        tool("s1", "lookup", {"q": "x"}),
        tool("s2", "lookup", {"q": "x"}),
        tool("s3", "lookup", {"q": "x"}),
    ]},
    {"id": "a4", "input": "find it", "output": "sorry", "metadata": {"task_id": "t2"}, "steps": [
        agent("root", "Support"),
        tool("s1", "lookup", {"q": "y"}, status="error", error="HTTP 503 from inventory"),
        tool("s2", "check_policy", {"order_id": 4}),
    ]},
    {"id": "a5", "metadata": {"task_id": "t3"}, "messages": [
        {"role": "user", "content": "refund order 5"},
        {"role": "assistant", "content": None, "tool_calls": [call("c1", "check_policy", '{"order_id": 5}')]},
        {"role": "tool", "tool_call_id": "c1", "content": "eligible"},
        {"role": "assistant", "content": None, "tool_calls": [call("c2", "issue_refund", '{"order_id": 5, "amount": 20}')]},
        {"role": "tool", "tool_call_id": "c2", "content": "ok"},
        {"role": "assistant", "name": "Auditor", "content": "approved"},
        {"role": "assistant", "content": "Your refund is on its way."},
    ]},
    {"id": "a6", "metadata": {"task_id": "t3"}, "messages": [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hi, how can I help?"},
    ]},
]

TRACES = {r["id"]: Trace.model_validate(r) for r in ROWS}


def verdict(spec: Any, tid: str) -> Verdict:
    return to_verdict(build_rule(spec, KINDS)(TRACES[tid]))


def failing(spec: Any) -> list[str]:
    return [tid for tid in TRACES if verdict(spec, tid).status == FAIL]


# -- each kind on both shapes of trace ----------------------------------------------------


def test_tool_called_reads_steps_and_messages_and_names_the_step() -> None:
    assert failing({"tool_called": "issue_refund"}) == ["a1", "a2", "a5"]
    v = verdict({"tool_called": "issue_refund"}, "a1")
    assert v.reason == "tool issue_refund was called at step s2 (#2)" and v.evidence == {"step_id": "s2", "step_index": 2}
    # messages become steps (an llm step per assistant turn, a tool step per call): #3 is c2's place among them
    assert verdict({"tool_called": "issue_refund"}, "a5").reason == "tool issue_refund was called at step c2 (#3)"


def test_tool_called_with_arguments_at_a_json_path_or_matching_a_regex() -> None:
    # arguments given as a JSON string (a1) or an object (a2) or in messages (a5) read the same
    assert failing({"tool_called": {"name": "issue_refund", "args": {"order_id": 1}}}) == ["a1"]
    assert failing({"tool_called": {"name": "issue_refund", "args": {"items[0].sku": "TV-55"}}}) == ["a2"]
    assert failing({"tool_called": {"name": "issue_refund", "args": {"items.0.sku": "TV-55"}}}) == ["a2"]
    big = {"tool_called": {"name": "issue_refund", "args_match": {"amount": r"^\d{3,}$"}}}
    assert failing(big) == ["a2"]
    assert verdict(big, "a2").reason == "tool issue_refund with amount~/^\\d{3,}$/ was called at step s1 (#1)"
    # a path that no call has matches nothing: not called
    assert failing({"tool_called": {"name": "issue_refund", "args": {"items[3].sku": "x"}}}) == []


def test_tool_order_after_and_before() -> None:
    after = {"tool_order": {"tool": "issue_refund", "after": "check_policy"}}
    assert failing(after) == ["a2"]
    assert verdict(after, "a2").reason == "issue_refund was called at step s1 (#1) with no check_policy call before it"
    before = {"tool_order": {"tool": "lookup", "before": "check_policy"}}
    assert failing(before) == ["a3"]
    assert "with no check_policy call after it" in verdict(before, "a3").reason


def test_step_error_names_the_step_and_its_error() -> None:
    assert failing({"step_error": True}) == ["a4"]
    v = verdict({"step_error": True}, "a4")
    assert v.reason == "tool step 'lookup' s1 (#1) has error status: HTTP 503 from inventory"
    assert v.evidence == {"step_id": "s1", "step_index": 1}
    assert failing({"step_error": True, "kind": "llm"}) == []
    assert failing({"step_error": True, "name": "lookup"}) == ["a4"]


def test_a_verdict_names_the_step_it_failed_at() -> None:
    # a tool rule: the call's step and its place in the steps
    assert verdict({"tool_order": {"tool": "issue_refund", "after": "check_policy"}}, "a2").evidence == {"step_id": "s1", "step_index": 1}
    assert verdict({"repeated_tool_call": 3}, "a3").evidence == {"step_id": "s3", "step_index": 3}
    assert verdict({"agent_spoke": "Support"}, "a1").evidence == {"step_id": "root", "step_index": 0}
    # a finding in the output: the last LLM step that said something wrote it
    assert verdict({"regex": "on its way"}, "a5").evidence == {"step_id": "msg6", "step_index": 5, "found": "on its way"}
    assert verdict({"contains": "refund is"}, "a5").evidence["step_id"] == "msg6"
    # a trace with no LLM step, or another field: the detector names no step
    assert verdict({"regex": "refunded"}, "a1").evidence == "refunded"
    assert verdict({"regex": "refund", "field": "input"}, "a5").evidence == "refund"
    # any: the earliest step a failing child names
    both = {"any": [{"tool_called": "issue_refund"}, {"tool_called": "check_policy"}]}
    assert verdict(both, "a1").evidence == {"step_id": "s1", "step_index": 1}
    # a rule that is about the whole trace names none
    assert verdict({"max_tool_calls": 2}, "a3").evidence == 3


def test_a_detector_names_a_step_and_readers_take_only_sound_ones() -> None:
    from pytest_failmodes.verdict import step_of

    v = Verdict.fail("bad plan", {"plan": [1, 2]}, step_id="s3", step_index=3)
    assert v.evidence == {"step_id": "s3", "step_index": 3, "found": {"plan": [1, 2]}} and step_of(v.evidence) == ("s3", 3)
    assert step_of(Verdict.fail("x", step_id="s3").evidence) == ("s3", None)
    # evidence that merely looks alike is read for what it holds, never guessed
    assert step_of({"step_id": 3, "step_index": True}) is None
    assert step_of({"step_id": "", "step_index": -1}) is None
    assert step_of("s3") is None and step_of({"found": 1}) is None


def test_max_steps_and_max_tool_calls() -> None:
    assert failing({"max_steps": 3}) == ["a3", "a5"]  # a5: 7 messages are its steps
    assert verdict({"max_steps": 3}, "a3").reason == "4 steps, more than 3"
    assert failing({"max_steps": 2, "kind": "tool"}) == ["a3"]
    assert failing({"max_tool_calls": 2, "tool": "lookup"}) == ["a3"]
    assert verdict({"max_tool_calls": 2, "tool": "lookup"}, "a3").reason == "3 calls of lookup, more than 2"
    assert failing({"max_tool_calls": 1}) == ["a1", "a3", "a4", "a5"]


def test_repeated_tool_call_in_a_row_and_in_all() -> None:
    assert failing({"repeated_tool_call": 3}) == ["a3"]
    v = verdict({"repeated_tool_call": 3}, "a3")
    assert v.reason == 'lookup({"q": "x"}) called 3 times in a row, the last at step s3 (#3)'
    assert failing({"repeated_tool_call": 4}) == []
    # another tool in between breaks a run, not a count in all
    trace = Trace.model_validate({"id": "x", "output": "", "steps": [
        tool("1", "lookup", {"q": 1}), tool("2", "ping", {}), tool("3", "lookup", {"q": 1}),
    ]})
    loop = build_rule({"repeated_tool_call": 2}, KINDS)
    in_all = build_rule({"repeated_tool_call": 2, "consecutive": False}, KINDS)
    assert to_verdict(loop(trace)).status == PASS
    assert to_verdict(in_all(trace)).reason == 'lookup({"q": 1}) called 2 times in all, the last at step 3 (#2)'


def test_agent_spoke_reads_agent_steps_and_named_messages() -> None:
    assert failing({"agent_spoke": "Auditor"}) == ["a5"]
    assert verdict({"agent_spoke": "Auditor"}, "a5").reason == "agent Auditor spoke at message5 (#5)"
    assert failing({"agent_spoke": "Support"}) == ["a1", "a2", "a3", "a4"]
    absent = {"agent_spoke": {"name": "Support", "present": False}}
    assert failing(absent) == ["a5", "a6"]
    assert verdict(absent, "a6").reason == "agent Support did not speak"


def test_derived_values_for_where_and_cohorts() -> None:
    a1, a5 = TRACES["a1"], TRACES["a5"]
    assert a1.get("tools") == ["check_policy", "issue_refund"]
    assert a5.get("tools") == ["check_policy", "issue_refund"]
    assert a1.get("steps.count") == 3
    assert a1.get("agents") == ["Support"] and a5.get("agents") == ["Auditor"]
    timed = Trace.model_validate({"id": "x", "output": "", "steps": [
        {"id": "r", "kind": "agent", "start_ms": 1000, "end_ms": 1900, "tokens": {"total": 30},
         "attributes": {"gen_ai.request.model": "gpt-4o-mini"}},
        {"id": "c", "parent_id": "r", "kind": "llm", "start_ms": 1100, "end_ms": 1500, "tokens": {"total": 30}},
        {"id": "d", "kind": "llm", "tokens": {"prompt": 5, "completion": 2}},
    ]})
    assert timed.get("latency_ms") == 900
    # the child's 30 are inside its parent's: counted once
    assert timed.get("tokens.total") == 37
    assert timed.get("model") == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("spec", "message", "path"),
    [
        ({"tool_order": {"tool": "a"}}, "give exactly one of 'after' or 'before'", ("tool_order",)),
        ({"tool_order": {"tool": "a", "afterr": "b"}}, "unknown key 'afterr'; did you mean 'after'?", ("tool_order", "afterr")),
        ({"step_error": True, "kind": "tools"}, "unknown step kind 'tools'; did you mean 'tool'?", ("step_error", "kind")),
        ({"repeated_tool_call": 1}, "takes how many identical calls make a loop (2 or more)", ("repeated_tool_call",)),
        ({"max_tool_calls": -1}, "takes a whole number (0 or more)", ("max_tool_calls",)),
        ({"tool_called": {"name": "a", "args_match": {"x": "("}}}, "invalid regular expression", ("tool_called", "args_match", "x")),
        ({"agent_spoke": {"nme": "a"}}, "unknown key 'nme'; did you mean 'name'?", ("agent_spoke", "nme")),
    ],
)
def test_bad_step_rules_name_the_key(spec: Any, message: str, path: tuple[str, ...]) -> None:
    with pytest.raises(RuleError) as info:
        build_rule(spec, KINDS)
    assert str(info.value).startswith(message)
    assert info.value.path == path


# -- in a pytest session --------------------------------------------------------------------

DEFINITIONS = """
    dataset: data/traces.jsonl
    cohorts: [tools]
    gate: {max_fail_rate: %s}
    failure_modes:
      - name: big_refund
        rule: {tool_called: {name: issue_refund, args_match: {amount: '^\\d{3,}$'}}}
      - name: refund_before_policy
        rule: {tool_order: {tool: issue_refund, after: check_policy}}
      - name: tool_errored
        rule: {step_error: true, kind: tool}
      - name: too_many_lookups
        rule: {max_tool_calls: 2, tool: lookup}
      - name: long_run
        rule: {max_steps: 3}
      - name: lookup_loop
        rule: {repeated_tool_call: 3}
      - name: auditor_spoke
        rule: {agent_spoke: Auditor}
"""

#: mode -> the traces it detects, and the reason of the first
EXPECTED = {
    "big_refund": (["a2"], "tool issue_refund with amount~/^\\d{3,}$/ was called at step s1 (#1)"),
    "refund_before_policy": (["a2"], "issue_refund was called at step s1 (#1) with no check_policy call before it"),
    "tool_errored": (["a4"], "tool step 'lookup' s1 (#1) has error status: HTTP 503 from inventory"),
    "too_many_lookups": (["a3"], "3 calls of lookup, more than 2"),
    "long_run": (["a3", "a5"], "4 steps, more than 3"),
    "lookup_loop": (["a3"], 'lookup({"q": "x"}) called 3 times in a row, the last at step s3 (#3)'),
    "auditor_spoke": (["a5"], "agent Auditor spoke at message5 (#5)"),
}


@pytest.fixture
def agents(project):
    project.traces(ROWS)
    return project


def test_each_step_rule_per_mode(agents) -> None:
    agents.definitions(DEFINITIONS % 0.1)
    result = agents.run("--failmodes-report=report.json")

    assert result.ret == 1
    report = agents.report("report.json")
    modes = {m["name"]: m for m in report["modes"]}
    for name, (ids, reason) in EXPECTED.items():
        failed = [t for t in modes[name]["traces"] if t["verdict"] == "fail"]
        assert [t["id"] for t in failed] == ids, name
        assert failed[0]["reason"] == reason, name
        result.stdout.fnmatch_lines([f"*{ids[0]}*{reason[:40]}*"])
    # a list-valued cohort field prints as its values
    cohorts = {r["cohort"] for r in modes["big_refund"]["cohorts"]}
    assert cohorts == {"all", "tools=check_policy,issue_refund", "tools=issue_refund", "tools=lookup",
                       "tools=lookup,check_policy", "tools=(none)"}


def test_each_step_rule_per_trace(agents) -> None:
    agents.definitions(DEFINITIONS % 1.0)
    result = agents.run("--failmodes-per-trace", "-v")

    assert result.ret == 0
    for name, (ids, _reason) in EXPECTED.items():
        for tid in TRACES:
            outcome = "DETECTED" if tid in ids else "PASSED"
            result.stdout.fnmatch_lines([f"failmodes.yaml::{name}[[]{tid}] {outcome}*"])
    detected = sum(len(ids) for ids, _ in EXPECTED.values())
    result.stdout.fnmatch_lines([f"*= {7 * 6 - detected} passed, {detected} detected in *"])


@pytest.mark.slow
def test_step_rules_under_xdist_match_one_process(agents) -> None:
    agents.definitions(DEFINITIONS % 0.1)
    serial = agents.run_subprocess("-n", "0", "-p", "no:cacheprovider", "--failmodes-report=serial.json")
    parallel = agents.run_subprocess("-n", "2", "-p", "no:cacheprovider", "--failmodes-report=parallel.json")

    parallel.stdout.fnmatch_lines(["*2 workers*"])
    assert serial.ret == parallel.ret == 1
    assert agents.summary(serial) == agents.summary(parallel)
    assert (agents.path / "serial.json").read_bytes() == (agents.path / "parallel.json").read_bytes()


@pytest.mark.parametrize("per_trace", [False, True], ids=["per-mode", "per-trace"])
def test_a_tool_or_agent_no_trace_has_is_said(agents, per_trace: bool) -> None:
    agents.definitions("""
        dataset: data/traces.jsonl
        failure_modes:
          - name: refund_unchecked
            rule: {tool_order: {tool: issue_refnd, after: check_policy}}
          - name: no_audit
            rule: {agent_spoke: {name: Auditr, present: false}}
          - name: lookups
            rule: {max_tool_calls: 3, tool: lokup}
    """)
    result = agents.run(*(["--failmodes-per-trace"] if per_trace else []))

    result.stdout.fnmatch_lines([
        "note: refund_unchecked: failmodes.yaml:4: failure_modes[[]0[]].rule.tool_order.tool: the rule names tool "
        "'issue_refnd', which no trace has; did you mean 'issue_refund'? (tools seen: check_policy, issue_refund, lookup)",
        "note: no_audit: failmodes.yaml:6: failure_modes[[]1[]].rule.agent_spoke.name: the rule names agent 'Auditr', "
        "which no trace has; did you mean 'Auditor'? (agents seen: Auditor, Support)",
        "note: lookups: failmodes.yaml:8: failure_modes[[]2[]].rule.tool: the rule names tool 'lokup', which no trace "
        "has; did you mean 'lookup'? (tools seen: check_policy, issue_refund, lookup)",
    ])
    # check_policy (tool_order's other tool) occurs: no note of its own
    assert sum("which no trace has" in line for line in result.outlines) == 3


def test_where_and_cohorts_on_values_derived_from_steps(agents) -> None:
    agents.definitions("""
        dataset: data/traces.jsonl
        cohorts: [agents, {field: tools, has: lookup}]
        failure_modes:
          - name: long_run_with_refund
            where: {steps.count: {gte: 3}, tool_calls.count: {gte: 2}}
            rule: {tool_called: issue_refund}
    """)
    result = agents.run("--failmodes-report=r.json")

    assert result.ret == 0
    mode = agents.report("r.json")["modes"][0]
    # a1 (3 steps, 2 calls), a3 (4 steps, 3 calls), a4 (3 steps, 2 calls), a5 (7 messages, 2 calls)
    assert [t["id"] for t in mode["traces"]] == ["a1", "a3", "a4", "a5"]
    assert mode["skipped"] == 2
    rows = {r["cohort"]: (r["n"], r["fails"]) for r in mode["cohorts"]}
    assert rows == {
        "all": (4, 2),
        "agents=Auditor": (1, 1),
        "agents=Support": (3, 1),
        "tools has lookup=false": (2, 2),
        "tools has lookup=true": (2, 0),
    }
