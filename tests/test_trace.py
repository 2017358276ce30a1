"""The trace model: derived fields, tool calls, content parts, ``get()``."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pytest_failmodes.trace import MISSING, Message, ToolCall, Trace


def call(name: str, arguments: Any, call_id: str = "c") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


CHAT = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "first answer"},
    {"role": "user", "content": "where is order 7?"},
    {"role": "assistant", "content": None, "tool_calls": [call("lookup_order", '{"order_id": 7}')]},
    {"role": "tool", "tool_call_id": "c", "content": '{"status": "shipped"}'},
    {"role": "assistant", "content": "It has shipped."},
    {"role": "assistant", "content": ""},
]


def test_input_and_output_derived_from_messages() -> None:
    trace = Trace(id="t", messages=CHAT)
    assert trace.input == "where is order 7?"
    assert trace.output == "It has shipped."
    assert trace.final_reply == "It has shipped."


def test_explicit_input_and_output_win_over_messages() -> None:
    trace = Trace(id="t", input="given in", output="given out", messages=CHAT)
    assert (trace.input, trace.output) == ("given in", "given out")
    # final_reply still reads the messages
    assert trace.final_reply == "It has shipped."


def test_messages_without_user_or_assistant_text() -> None:
    trace = Trace(id="t", messages=[{"role": "assistant", "content": None, "tool_calls": [call("x", "{}")]}])
    assert trace.input == ""
    assert trace.output == ""
    assert trace.final_reply == ""


def test_final_reply_falls_back_to_output_without_messages() -> None:
    trace = Trace(id="t", output="plain")
    assert trace.final_reply == "plain"
    assert trace.input == ""
    assert trace.messages == []
    assert trace.tool_calls == ()


def test_a_trace_needs_output_or_messages() -> None:
    with pytest.raises(ValidationError, match="needs an 'output' or 'messages'"):
        Trace(id="t", input="only input")
    with pytest.raises(ValidationError):
        Trace(id="t", messages=[])


def test_empty_output_is_a_valid_output() -> None:
    assert Trace(id="t", output="").output == ""


@pytest.mark.parametrize(("given", "expected"), [(7, "7"), (0, "0"), (3.5, "3.5"), ("x", "x")])
def test_numeric_ids_are_coerced_to_text(given: Any, expected: str) -> None:
    assert Trace(id=given, output="o").id == expected


def test_numeric_output_is_coerced_to_text() -> None:
    assert Trace(id="t", output=42).output == "42"


@pytest.mark.parametrize("bad", [{"id": ""}, {"id": None}, {}])
def test_id_is_required_and_non_empty(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Trace(output="o", **bad)


def test_unknown_top_level_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Trace(id="t", output="o", route="billing")


def test_tool_calls_parse_json_string_and_dict_arguments() -> None:
    messages = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "tool_calls": [
                call("a", '{"x": 1, "y": [1, 2]}', "1"),
                call("b", {"already": "parsed"}, "2"),
                call("c", "", "3"),
                call("d", "   ", "4"),
            ],
        },
        {"role": "assistant", "content": "done", "tool_calls": [call("e", "[1, 2]", "5"), call("f", "3", "6")]},
    ]
    trace = Trace(id="t", messages=messages)
    assert trace.tool_calls == (
        ToolCall("a", {"x": 1, "y": [1, 2]}),
        ToolCall("b", {"already": "parsed"}),
        ToolCall("c", {}),
        ToolCall("d", {}),
        ToolCall("e", {"_value": [1, 2]}),
        ToolCall("f", {"_value": 3}),
    )
    assert trace.tool_calls[0].name == "a"


def test_tool_call_with_malformed_json_arguments_keeps_the_raw_text() -> None:
    trace = Trace(id="t", messages=[{"role": "assistant", "tool_calls": [call("a", "{not json")]}])
    assert trace.tool_calls == (ToolCall("a", {"_raw": "{not json"}),)


def test_tool_call_arguments_default_to_empty() -> None:
    trace = Trace(id="t", messages=[{"role": "assistant", "tool_calls": [{"function": {"name": "ping"}}]}])
    assert trace.tool_calls == (ToolCall("ping", {}),)


def test_tool_call_without_a_function_name_is_invalid() -> None:
    with pytest.raises(ValidationError):
        Trace(id="t", messages=[{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}])


def test_content_parts_text_is_joined() -> None:
    msg = Message(
        role="user",
        content=[
            {"type": "text", "text": "look at"},
            {"type": "image_url", "image_url": {"url": "http://example.invalid/x.png"}},
            {"text": "this"},  # no type: treated as text
        ],
    )
    assert msg.text == "look at\nthis"
    reply = {"role": "assistant", "content": [{"type": "text", "text": "ok"}]}
    trace = Trace(id="t", messages=[msg.model_dump(), reply])
    assert trace.input == "look at\nthis"
    assert trace.output == "ok"


def test_message_text_of_none_content() -> None:
    assert Message(role="assistant").text == ""


def test_extra_message_keys_are_kept() -> None:
    trace = Trace(id="t", messages=[{"role": "assistant", "content": "x", "refusal": None, "audio": {"id": 1}}])
    assert trace.messages[0].model_extra == {"refusal": None, "audio": {"id": 1}}


def test_transcript_joins_roles_and_texts() -> None:
    trace = Trace(id="t", messages=CHAT[:3])
    assert trace.transcript == "system: You are helpful.\nuser: first question\nassistant: first answer"


# -- get() --------------------------------------------------------------------


@pytest.fixture
def trace() -> Trace:
    return Trace(
        id="t1",
        input="in",
        output="out",
        messages=CHAT[:3],
        metadata={"route": "billing", "user": {"tier": "gold", "n": 0}, "flag": None, "shared": "meta"},
        labels={"verdict": "bad", "shared": "label"},
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("id", "t1"),
        ("input", "in"),
        ("output", "out"),
        ("final_reply", "first answer"),
        ("messages", "system: You are helpful.\nuser: first question\nassistant: first answer"),
        ("transcript", "system: You are helpful.\nuser: first question\nassistant: first answer"),
        ("route", "billing"),
        ("user.tier", "gold"),
        ("user.n", 0),
        ("flag", None),
        ("metadata.route", "billing"),
        ("metadata.user.tier", "gold"),
        ("verdict", "bad"),
        ("labels.verdict", "bad"),
        # metadata is searched before labels
        ("shared", "meta"),
        ("labels.shared", "label"),
    ],
)
def test_get_lookups(trace: Trace, path: str, expected: Any) -> None:
    assert trace.get(path) == expected


@pytest.mark.parametrize(
    "path",
    ["nope", "user.nope", "route.deeper", "output.x", "id.x", "metadata.nope", "labels.route", "metadata", ""],
)
def test_get_missing_paths(trace: Trace, path: str) -> None:
    assert trace.get(path) is MISSING


def test_missing_is_falsy_and_prints_plainly() -> None:
    assert not MISSING
    assert repr(MISSING) == "MISSING"


def test_steps_are_derived_on_first_access_and_kept() -> None:
    trace = Trace(id="t", messages=CHAT)
    assert "steps" not in trace.__dict__  # nothing built until asked for
    steps = trace.steps
    assert [(s.kind, s.name) for s in steps] == [
        ("llm", "assistant"), ("llm", "assistant"), ("tool", "lookup_order"), ("llm", "assistant"), ("llm", "assistant"),
    ]
    assert trace.steps is steps
    # the tool step, the call views and tool_calls share one parse of the arguments
    assert steps[2].input == {"order_id": 7} and steps[2].input is trace.tool_calls[0].arguments


def test_a_dump_or_a_comparison_sees_the_derived_steps() -> None:
    fresh, used = Trace(id="t", messages=CHAT), Trace(id="t", messages=CHAT)
    assert len(used.steps) == 5
    assert fresh == used  # one derived its steps already, the other not yet
    assert len(Trace(id="t", messages=CHAT).model_dump()["steps"]) == 5
    assert '"lookup_order"' in Trace(id="t", messages=CHAT).model_dump_json()
    assert "lookup_order" in repr(Trace(id="t", messages=CHAT))


@pytest.mark.parametrize(("result", "status"), [("Error: order 7 not found", "error"), ("  error - timeout", "error"),
                                                ('{"status": "shipped"}', "unset"), ("No errors found", "unset")])
def test_a_chat_tool_result_that_reads_as_an_error_fails_its_step(result: str, status: str) -> None:
    messages = [m if m.get("role") != "tool" else {**m, "content": result} for m in CHAT]
    trace = Trace(id="t", messages=messages)
    [tool] = [s for s in trace.steps if s.kind == "tool"]
    assert tool.status == status
    assert tool.error == (result if status == "error" else None)
    assert trace.get("errors.count") == (status == "error")
