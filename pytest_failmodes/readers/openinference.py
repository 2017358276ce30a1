"""OpenInference (Arize Phoenix) spans: one span per JSONL line, or a JSON
array of spans, as the OpenTelemetry SDK's span JSON or a Phoenix export.

A span carries its trace id and span id (``context.trace_id`` /
``context.span_id``, or flat ``trace_id`` / ``span_id``), ``parent_id``,
``name``, ``start_time`` / ``end_time``, ``status`` and flattened
``attributes`` (``openinference.span.kind``, ``input.value``,
``llm.input_messages.0.message.role`` ...; nested attribute objects are
flattened first). Names come from ``openinference-semantic-conventions``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from openinference.semconv.trace import MessageAttributes, SpanAttributes, ToolCallAttributes

from ..errors import DatasetError
from ..trace import STEP_KINDS, Step, Trace, lazy_trace, make_step as _make_step
from . import Options, Record, kind_of
from ._source import _SCAN, MAX_DEPTH, deep_error, too_deep
from .spans import Group, SpanGrouper, iso_ms, message_text, preorder

__all__ = ["OpenInferenceReader", "READERS", "span_step", "messages_from_attributes"]

KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND
INPUT = SpanAttributes.INPUT_VALUE
INPUT_MIME = SpanAttributes.INPUT_MIME_TYPE
OUTPUT = SpanAttributes.OUTPUT_VALUE
OUTPUT_MIME = SpanAttributes.OUTPUT_MIME_TYPE
IN_MESSAGES = SpanAttributes.LLM_INPUT_MESSAGES
OUT_MESSAGES = SpanAttributes.LLM_OUTPUT_MESSAGES
TOOL_NAME = SpanAttributes.TOOL_NAME
AGENT_NAME = getattr(SpanAttributes, "AGENT_NAME", "agent.name")
TOKENS = {
    "prompt": SpanAttributes.LLM_TOKEN_COUNT_PROMPT,
    "completion": SpanAttributes.LLM_TOKEN_COUNT_COMPLETION,
    "total": SpanAttributes.LLM_TOKEN_COUNT_TOTAL,
}
ROLE = MessageAttributes.MESSAGE_ROLE
CONTENT = MessageAttributes.MESSAGE_CONTENT
TOOL_CALLS = MessageAttributes.MESSAGE_TOOL_CALLS
TOOL_CALL_ID_OF_MESSAGE = MessageAttributes.MESSAGE_TOOL_CALL_ID
CALL_NAME = ToolCallAttributes.TOOL_CALL_FUNCTION_NAME
CALL_ARGS = ToolCallAttributes.TOOL_CALL_FUNCTION_ARGUMENTS_JSON
CALL_ID = ToolCallAttributes.TOOL_CALL_ID
_JSON = "application/json"
_STATUS = {"OK": "ok", "ERROR": "error", "UNSET": "unset", "STATUS_CODE_OK": "ok", "STATUS_CODE_ERROR": "error"}


def _ids(span: dict[str, Any]) -> tuple[Any, Any, Any]:
    ctx = span.get("context")
    if isinstance(ctx, dict):
        trace_id, span_id = ctx.get("trace_id"), ctx.get("span_id")
    else:
        trace_id = span.get("context.trace_id", span.get("trace_id"))
        span_id = span.get("context.span_id", span.get("span_id"))
    parent = span.get("parent_id", span.get("parent_span_id"))
    return trace_id, span_id, parent


def _hex(value: Any) -> str:
    text = value if type(value) is str else str(value)  # noqa: E721 - exact str
    return text[2:] if text[:2] == "0x" else text


def _flat(attrs: dict[str, Any]) -> dict[str, Any]:
    """Phoenix can export attributes nested (``{"llm": {"model_name": ...}}``); flatten them."""
    if KIND in attrs or INPUT in attrs or not any(isinstance(v, (dict, list)) for v in attrs.values()):
        return attrs  # already flat: the SDK's span JSON
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, v in enumerate(value):
                walk(f"{prefix}.{i}", v)
        else:
            out[prefix] = value

    walk("", attrs)
    return out


def span_step(rec: Record) -> tuple[str, Step]:
    """The trace id and the step of one OpenInference span record."""
    # this runs once per span of files with millions of them: lookups are hoisted and
    # the common case (the SDK's span JSON) takes the shortest path
    span = rec.value
    if not isinstance(span, dict):
        raise DatasetError(f"expected a span object, got {kind_of(span)}", file=rec.file, line=rec.line)
    ctx = span.get("context")
    if type(ctx) is dict and "parent_id" in span:  # noqa: E721 - the SDK's span JSON, as _ids reads it
        trace_id, span_id, parent = ctx.get("trace_id"), ctx.get("span_id"), span["parent_id"]
    else:
        trace_id, span_id, parent = _ids(span)
    if not trace_id:
        raise DatasetError("span has no trace id", file=rec.file, line=rec.line, key="context.trace_id")
    if not span_id:
        raise DatasetError("span has no span id", file=rec.file, line=rec.line, key="context.span_id")
    attrs = span.get("attributes") or {}
    if type(attrs) is not dict:  # noqa: E721 - exact dict first
        if not isinstance(attrs, dict):
            raise DatasetError(
                f"span {_hex(span_id)!r}: attributes must be an object, got {kind_of(attrs)}",
                file=rec.file, line=rec.line, key="attributes",
            )
    if KIND not in attrs:
        attrs = _flat(attrs)
    raw_kind = attrs.get(KIND) or span.get("span_kind")
    kind = _KIND_OF.get(raw_kind) if type(raw_kind) is str else None  # noqa: E721 - exact str
    if kind is None:
        kind = str(raw_kind).lower() if raw_kind else "other"
        if kind not in STEP_KINDS:
            kind = "other"
    name = span.get("name") or ""
    if kind == "tool":
        name = attrs.get(TOOL_NAME) or name
    elif kind == "agent":
        name = attrs.get(AGENT_NAME) or name
    status_obj = span.get("status")
    if isinstance(status_obj, dict):
        code, message = status_obj.get("status_code"), status_obj.get("description")
    else:
        code, message = span.get("status_code"), span.get("status_message")
    status = _STATUS.get(code) if type(code) is str else None  # noqa: E721 - exact str
    if status is None:
        status = _STATUS.get(str(code).upper(), "unset") if code is not None else "unset"
    error = None
    if status == "error":
        error = message or next(
            (e.get("attributes", {}).get("exception.message") for e in span.get("events") or () if isinstance(e, dict) and e.get("name") == "exception"),
            None,
        ) or "error"
    tokens = {}
    if _TOKENS_TOTAL in attrs or _TOKENS_PROMPT in attrs or _TOKENS_COMPLETION in attrs:
        for key, attr in _TOKEN_ITEMS:
            value = attrs.get(attr)
            if isinstance(value, (int, float)):
                tokens[key] = int(value)
    value_in = attrs.get(INPUT)
    value_out = attrs.get(OUTPUT)
    if kind == "tool":
        if type(value_in) is str and attrs.get(INPUT_MIME) == _JSON:  # noqa: E721 - exact str
            value_in = _tool_arguments(value_in, rec)
    elif kind == "llm" and _OUT0_ROLE in attrs:
        # the reply's text ('' for a turn that only calls tools), not the raw response JSON
        value_out = _last_assistant_text(attrs) or ""
    # _hex and iso_ms inline for the SDK's span JSON ("0x..." ids, ISO times): two calls
    # fewer each, per span
    if type(span_id) is str and type(trace_id) is str:  # noqa: E721 - exact str
        sid = span_id[2:] if span_id[:2] == "0x" else span_id
        tid = trace_id[2:] if trace_id[:2] == "0x" else trace_id
    else:
        sid, tid = _hex(span_id), _hex(trace_id)
    if parent and type(parent) is str:  # noqa: E721 - exact str
        parent = parent[2:] if parent[:2] == "0x" else parent
    else:
        parent = _hex(parent) if parent else None
    start, end = span.get("start_time"), span.get("end_time")
    start_ms: float | None
    end_ms: float | None
    try:  # what iso_ms does with an ISO time; anything else (numbers, None, errors) through it
        start_ms, end_ms = _fromiso(start).timestamp() * 1000, _fromiso(end).timestamp() * 1000  # type: ignore[arg-type]
    except (TypeError, ValueError):
        start_ms, end_ms = iso_ms(start), iso_ms(end)
    step = _make_step({
        "id": sid,
        "parent_id": parent,
        "kind": kind,
        "name": name if type(name) is str else str(name),  # noqa: E721 - exact str
        "input": value_in,
        "output": value_out,
        "status": status,
        "error": error,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "tokens": tokens,
        "attributes": attrs,
    })
    return tid, step


def _tool_arguments(text: str, rec: Record) -> Any:
    """A tool span's JSON input as data, so step rules can match on it; text that is not JSON as it is."""
    # json's C scanner straight away (json.loads wraps it in Python); anything it does not
    # take whole (whitespace around the value, a BOM, an error) goes to json.loads as before
    try:
        value, end = _SCAN(text, 0)
        if end != len(text):
            value = json.loads(text)
    except RecursionError:
        raise deep_error(rec.file, rec.line, f"attributes.{INPUT}") from None
    except (ValueError, StopIteration):
        try:
            value = json.loads(text)
        except RecursionError:
            raise deep_error(rec.file, rec.line, f"attributes.{INPUT}") from None
        except ValueError:
            return text
    # a value nested deeper than rows may be would break whatever walks it later
    if type(value) is not str and text.count("{") + text.count("[") > MAX_DEPTH and too_deep(value):  # noqa: E721
        raise deep_error(rec.file, rec.line, f"attributes.{INPUT}")
    return value


_fromiso = datetime.fromisoformat
_OUT0_ROLE = f"{OUT_MESSAGES}.0.{ROLE}"
_TOKEN_ITEMS = tuple(TOKENS.items())
_TOKENS_TOTAL, _TOKENS_PROMPT, _TOKENS_COMPLETION = TOKENS["total"], TOKENS["prompt"], TOKENS["completion"]
#: the span kinds as exporters spell them -> step kinds (others are lowered and checked)
_KIND_OF = {k.upper(): k for k in STEP_KINDS} | {k: k for k in STEP_KINDS}


def _last_assistant_text(attrs: dict[str, Any]) -> str | None:
    # output messages are few; their content keys are found without unflattening
    for content_key, role_key in _OUT_KEYS:
        content = attrs.get(content_key)
        if content is None and role_key not in attrs:
            break
        if content:
            return str(content)
    return None


_OUT_KEYS = tuple((f"{OUT_MESSAGES}.{i}.{CONTENT}", f"{OUT_MESSAGES}.{i}.{ROLE}") for i in range(8))


def messages_from_attributes(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """OpenAI-shaped messages from flattened ``<prefix>.N.message.*`` attributes."""
    return _messages_by_prefix(attrs, (prefix,))[0]


def _messages_by_prefix(attrs: dict[str, Any], prefixes: tuple[str, ...]) -> list[list[dict[str, Any]]]:
    # one pass over the attributes for every prefix: LLM spans have many keys, most of
    # them not messages, so one C-level startswith (all prefixes at once) skips those
    heads = tuple(f"{p}." for p in prefixes)
    found: list[dict[int, dict[str, Any]]] = [{} for _ in prefixes]
    role, content, call_id_of, calls_head = ROLE, CONTENT, TOOL_CALL_ID_OF_MESSAGE, _CALLS_HEAD
    last_key: tuple[int, str] | None = None
    msg: dict[str, Any] = {}
    for key, value in attrs.items():
        if type(key) is not str or not key.startswith(heads):  # noqa: E721 - exact str
            continue
        which = 0
        while not key.startswith(heads[which]):
            which += 1
        # "<prefix>.<N>.<field>": N is ASCII digits ("²" is a digit to isdigit, not to int)
        idx_text, dot, rest = key[len(heads[which]):].partition(".")
        if (which, idx_text) != last_key:  # a message's keys come together: look it up once
            if not dot or not idx_text.isdigit() or not idx_text.isascii():
                continue
            messages = found[which]
            idx = int(idx_text)
            got = messages.get(idx)
            msg = messages[idx] = {"role": "user"} if got is None else got
            last_key = (which, idx_text)
        elif not dot:
            continue
        if rest == role:
            msg["role"] = str(value)
        elif rest == content:
            msg["content"] = value if type(value) is str else message_text(value)  # noqa: E721 - exact str
        elif rest == call_id_of:
            msg["tool_call_id"] = str(value)
        elif rest.startswith(calls_head):
            n_text, _, field = rest[len(calls_head):].partition(".")
            if not n_text.isdigit() or not n_text.isascii():
                continue
            calls = msg.setdefault("_calls", {})
            n = int(n_text)
            call = calls.get(n)
            if call is None:
                call = calls[n] = {"type": "function", "function": {"name": ""}}
            if field == CALL_NAME:
                call["function"]["name"] = str(value)
            elif field == CALL_ARGS:
                # text or an object as exported; any other JSON value kept as its JSON text, so
                # the messages always validate (they may be built long after reading: lazy_trace)
                call["function"]["arguments"] = value if type(value) is str or type(value) is dict else json.dumps(value)  # noqa: E721
            elif field == CALL_ID:
                call["id"] = str(value)
    result = []
    for messages in found:
        out = []
        for _, msg in sorted(messages.items()):
            calls = msg.pop("_calls", None)
            if calls:
                msg["tool_calls"] = [c for _, c in sorted(calls.items())]
            out.append(msg)
        result.append(out)
    return result


_CALLS_HEAD = TOOL_CALLS + "."


def _text_value(step: Step, mime_key: str, value: Any) -> str | None:
    if isinstance(value, str) and value and step.attributes.get(mime_key) != _JSON:
        return value
    return None


def build_trace(group: Group, messages_of: Any, in_mime: str, out_mime: str, lazy: bool = False) -> Trace:
    """A trace from a complete group of steps, shared by the span readers.

    ``input`` is the root span's text input, else the last user message the
    first LLM call saw; ``output`` the root's text output, else the last LLM
    call's reply. ``messages`` are the last LLM call's conversation (its input
    messages and its reply), so message rules see the whole exchange.
    ``messages_of(step) -> (input messages, output messages)``. With ``lazy``,
    ``messages_of`` must build new, valid messages from the step alone every time
    it is called: the messages are then built on first access (:func:`lazy_trace`).
    """
    steps = preorder(group.steps)
    root = steps[0]
    llms = [s for s in steps if s.kind == "llm"]
    last = llms[-1] if llms else None
    text_in = _text_value(root, in_mime, root.input)
    text_out = _text_value(root, out_mime, root.output) if root.kind != "llm" else None
    if not lazy or text_in is None or text_out is None:
        # input or output from the messages (or all eager): build them now
        last_in, last_out = messages_of(last) if last is not None else ([], [])
        if text_in is None:
            first_in = messages_of(llms[0])[0] if len(llms) > 1 else last_in
            text_in = next((message_text(m.get("content")) for m in reversed(first_in) if m.get("role") == "user"), "")
        if text_out is None:
            text_out = next((message_text(m.get("content")) for m in reversed(last_out) if message_text(m.get("content"))), "")
            if not text_out and last is not None and isinstance(last.output, str):
                text_out = last.output if last.attributes.get(out_mime) != _JSON else ""
    metadata: dict[str, Any] = {}
    raw_meta = root.attributes.get(SpanAttributes.METADATA)
    if isinstance(raw_meta, str):
        try:
            raw_meta = json.loads(raw_meta)
        except ValueError:
            raw_meta = None
    if isinstance(raw_meta, dict):
        metadata.update(raw_meta)
    for key in (SpanAttributes.SESSION_ID, SpanAttributes.USER_ID):
        if root.attributes.get(key) is not None:
            metadata[key] = root.attributes[key]
    if not lazy:
        return Trace(
            id=group.trace_id,
            input=text_in,
            output=text_out,
            messages=last_in + last_out,
            steps=steps,
            metadata=metadata,
        )
    if not group.trace_id:
        raise ValueError("the trace id is empty")
    return lazy_trace(group.trace_id, text_in, text_out, steps, metadata, _pending(last, messages_of) if last else None)


def _pending(step: Step, messages_of: Any) -> Any:
    def build() -> list[dict[str, Any]]:
        ins, outs = messages_of(step)
        return ins + outs  # type: ignore[no-any-return]

    return build


def _oi_messages(step: Step) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ins, outs = _messages_by_prefix(step.attributes, (IN_MESSAGES, OUT_MESSAGES))
    return ins, outs


class OpenInferenceReader:
    """Spans with OpenInference attributes, grouped into traces by trace id."""

    name = "openinference"

    def sniff(self, value: Any) -> int:
        if not isinstance(value, dict):
            return 0
        attrs = value.get("attributes")
        has_ids = any(k in value for k in ("context", "context.span_id", "span_id"))
        if isinstance(attrs, dict) and (KIND in attrs or "openinference" in attrs):
            return 90 if has_ids else 40
        if "span_kind" in value and has_ids:
            return 60  # a Phoenix span export with the kind as a column
        return 0

    def read(self, records: Iterator[Record], options: Options) -> Iterator[tuple[Record, Trace]]:
        grouper = SpanGrouper()
        add, build = grouper.add, self._trace
        for rec in records:
            if isinstance(rec.value, list):  # one trace per file: a JSON array of its spans
                for value in rec.value:
                    trace_id, step = span_step(Record(rec.file, rec.line, value))
                    for group in add(rec, trace_id, step):
                        yield build(group)
                continue
            trace_id, step = span_step(rec)
            for group in add(rec, trace_id, step):
                yield build(group)
        for group in grouper.finish():
            yield build(group)

    def _trace(self, group: Group) -> tuple[Record, Trace]:
        try:
            return group.first, build_trace(group, _oi_messages, INPUT_MIME, OUTPUT_MIME, lazy=True)
        except (ValueError, TypeError) as exc:
            raise DatasetError(
                f"trace {group.trace_id!r}: cannot build the trace from its spans: {exc}",
                file=group.first.file, line=group.first.line,
            ) from None


READERS = {"openinference": OpenInferenceReader()}
