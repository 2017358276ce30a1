"""The rows reader's unvalidated construction gives the trace full validation gives.

``trace_from_fields`` builds a Trace without validating the whole row (the cost
of a large rule run); for every row it accepts, the result must equal
``Trace.model_validate`` of the same data, down to the fields marked as set,
and every row it declines goes through the validation (whose errors
tests/test_bad_input.py pins).
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_failmodes.trace import Trace, tool_call_views, tool_names, trace_from_fields

_CALL = {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": "7"}'}}

PLAIN: list[dict[str, Any]] = [
    {"id": "a", "input": "hi", "output": "hello", "metadata": {"route": "billing", "n": 3}},
    {"id": "b", "output": "", "metadata": {}},
    {"id": "c", "input": None, "output": "x", "metadata": {"k": None}, "labels": {"verdict": "fail"}},
    {"id": "d", "output": "x", "steps": [], "metadata": {"nested": {"a": [1, 2]}}},
    {"id": "e", "messages": [{"role": "user", "content": "where is my order?"}, {"role": "assistant", "content": "shipped"}],
     "metadata": {"route": "orders"}},
    {"id": "f", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "order 7?"}]},
        {"role": "assistant", "content": None, "tool_calls": [_CALL]},
        {"role": "tool", "tool_call_id": "c1", "content": "Error: not found"},
        {"role": "assistant", "content": "I could not find it."},
    ], "metadata": {}},
    {"id": "g", "input": "given", "messages": [{"role": "assistant", "content": "only a reply"}], "metadata": {}},
    {"id": "h", "output": "kept", "messages": [], "metadata": {}},
]

# shapes left to the validation: it coerces, rejects or derives them itself
DECLINED: list[dict[str, Any]] = [
    {"id": 7, "output": "x", "metadata": {}},
    {"id": "i", "output": 3.5, "metadata": {}},
    {"id": "j", "output": "x", "metadata": []},
    {"id": "k", "output": "x", "labels": "free text", "metadata": {}},
    {"id": "l", "metadata": {}},
    {"id": "m", "messages": [], "metadata": {}},
    {"id": "n", "messages": [{"role": 5}], "metadata": {}},
    {"id": "o", "messages": "not a list", "metadata": {}},
    {"id": "p", "output": "x", "steps": [{"id": "s1"}], "metadata": {}},
    {"id": "q", "output": "x", "surprise": 1, "metadata": {}},
    {"id": "", "output": "x", "metadata": {}},
]


@pytest.mark.parametrize("data", PLAIN, ids=[d["id"] for d in PLAIN])
def test_plain_rows_are_built_as_validation_builds_them(data: dict[str, Any]) -> None:
    fast = trace_from_fields(dict(data))
    slow = Trace.model_validate(dict(data))
    assert fast is not None, "a plain row should take the fast path"
    # messages are validated on first use; what was derived from them before that is the same
    for name in ("id", "input", "output", "metadata", "labels"):
        assert getattr(fast, name) == getattr(slow, name)
    assert fast.messages == slow.messages
    assert fast.__dict__ == slow.__dict__
    assert fast.model_fields_set == slow.model_fields_set
    assert fast == slow
    assert fast.model_dump() == slow.model_dump()
    assert fast.steps == slow.steps


@pytest.mark.parametrize("data", DECLINED, ids=[str(d["id"]) or "empty-id" for d in DECLINED])
def test_other_rows_are_left_to_the_validation(data: dict[str, Any]) -> None:
    assert trace_from_fields(dict(data)) is None


@pytest.mark.parametrize("data", PLAIN, ids=[d["id"] for d in PLAIN])
def test_tool_names_match_the_tool_call_views(data: dict[str, Any]) -> None:
    trace = trace_from_fields(dict(data))
    assert trace is not None
    names = tool_names(trace)
    assert "steps" not in trace.__dict__ or not trace.messages, "tool_names must not derive the steps"
    assert names == [v.name for v in tool_call_views(trace)]
    assert tool_names(trace) == names  # and the same once the steps exist


def test_tool_names_of_a_chat_without_assistant_turns() -> None:
    # no assistant turn: the derived steps are empty, so the views read every message's calls
    trace = Trace.model_validate(
        {"id": "u", "output": "x", "messages": [{"role": "user", "content": "hi", "tool_calls": [_CALL]}]}
    )
    assert tool_names(trace) == [v.name for v in tool_call_views(trace)] == ["lookup_order"]
    trace = Trace.model_validate({"id": "v", "messages": [
        {"role": "user", "content": "hi", "tool_calls": [_CALL]}, {"role": "assistant", "content": "ok"},
    ]})
    assert tool_names(trace) == [v.name for v in tool_call_views(trace)] == []


# rows as the JSONL reader hands them over, without ``fields:``: nulls, labels, extra keys
ROWS: list[dict[str, Any]] = [
    *PLAIN,
    {"id": "r1", "input": None, "output": "x", "messages": None, "steps": None, "metadata": None, "labels": None},
    {"id": "r2", "output": "x", "route": "billing", "metadata": {"tier": "gold"}},
    {"id": "r3", "output": "x", "labels": "free text"},
    {"id": "r4", "output": "x", "metadata": "not an object"},
    {"id": "r5", "messages": [{"role": "assistant", "content": "hi", "tool_calls": [{"function": {"name": "t", "arguments": {"a": 1}}}]}]},
    {"id": "r6", "messages": [{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "image"}, {"text": "b"}]},
                              {"role": "user", "content": [{"type": "text", "text": "q"}], "name": "ann", "extra": [1]}]},
    {"id": "r7", "messages": [{"role": "user", "content": "only a question"}], "output": None},
]


@pytest.mark.parametrize("row", ROWS, ids=[str(r["id"]) for r in ROWS])
def test_plain_rows_read_as_the_general_path_reads_them(row: dict[str, Any], tmp_path: Any) -> None:
    import json

    from pytest_failmodes.dataset import DatasetSpec
    from pytest_failmodes.errors import DatasetError
    from pytest_failmodes.readers import Record
    from pytest_failmodes.readers.rows import RowMapper

    spec = DatasetSpec(path=tmp_path / "d.jsonl")
    fast, general = RowMapper(spec), RowMapper(spec)
    general.plain = False  # the path every row took before
    rec = Record(spec.path, 1, json.loads(json.dumps(row)))
    try:
        want = general(Record(rec.file, rec.line, json.loads(json.dumps(row))))
    except DatasetError as exc:
        with pytest.raises(DatasetError) as got:
            fast(rec)
        assert got.value.format() == exc.format()
        return
    trace = fast(rec)
    assert trace.model_fields_set == want.model_fields_set
    assert (trace.id, trace.input, trace.output) == (want.id, want.input, want.output)
    assert tool_names(trace) == tool_names(want)
    assert trace == want
    assert trace.model_dump() == want.model_dump()


def test_messages_of_another_shape_are_validated_at_once() -> None:
    # a number where text goes: validated (and coerced or refused) when the row is read, never later
    raw = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "name": 5}]
    trace = trace_from_fields({"id": "x", "messages": raw})
    assert trace is None or "messages" in trace.__dict__
