"""OpenTelemetry traces as OTLP/JSON (``resourceSpans[].scopeSpans[].spans[]``),
one export per file or one per JSONL line (the Collector's file exporter),
read with the GenAI semantic conventions.

Ids may be hex (the OTLP/JSON spec) or base64 (protobuf's JSON mapping, as
``MessageToJson`` writes them). Messages come from the current
``gen_ai.input.messages`` / ``gen_ai.output.messages`` attributes (parts:
``text``, ``tool_call``, ``tool_call_response``) or from the older
per-message span events (``gen_ai.user.message``, ``gen_ai.choice`` ...).
Spans that carry OpenInference attributes instead are read as OpenInference.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as G

from ..errors import DatasetError
from ..trace import STEP_KINDS, Step, Trace, new_step
from . import Options, Record, kind_of, tag
from .openinference import KIND as OI_KIND
from .openinference import INPUT as OI_INPUT, OUTPUT as OI_OUTPUT, TOOL_NAME as OI_TOOL
from .openinference import _oi_messages, build_trace
from .spans import Group, SpanGrouper, message_text

__all__ = ["OtlpReader", "READERS"]

# names from opentelemetry-semantic-conventions; older releases lack the newest,
# so each falls back to its spelled-out value
AGENT_NAME = getattr(G, "GEN_AI_AGENT_NAME", "gen_ai.agent.name")
INPUT_MESSAGES = getattr(G, "GEN_AI_INPUT_MESSAGES", "gen_ai.input.messages")
OPERATION_NAME = getattr(G, "GEN_AI_OPERATION_NAME", "gen_ai.operation.name")
OUTPUT_MESSAGES = getattr(G, "GEN_AI_OUTPUT_MESSAGES", "gen_ai.output.messages")
TOOL_CALL_ARGUMENTS = getattr(G, "GEN_AI_TOOL_CALL_ARGUMENTS", "gen_ai.tool.call.arguments")
TOOL_CALL_RESULT = getattr(G, "GEN_AI_TOOL_CALL_RESULT", "gen_ai.tool.call.result")
TOOL_NAME = getattr(G, "GEN_AI_TOOL_NAME", "gen_ai.tool.name")
USAGE_COMPLETION_TOKENS = getattr(G, "GEN_AI_USAGE_COMPLETION_TOKENS", "gen_ai.usage.completion_tokens")
USAGE_INPUT_TOKENS = getattr(G, "GEN_AI_USAGE_INPUT_TOKENS", "gen_ai.usage.input_tokens")
USAGE_OUTPUT_TOKENS = getattr(G, "GEN_AI_USAGE_OUTPUT_TOKENS", "gen_ai.usage.output_tokens")
USAGE_PROMPT_TOKENS = getattr(G, "GEN_AI_USAGE_PROMPT_TOKENS", "gen_ai.usage.prompt_tokens")

_KIND_OF_OPERATION = {
    "chat": "llm", "text_completion": "llm", "generate_content": "llm",
    "execute_tool": "tool", "invoke_agent": "agent", "create_agent": "agent",
    "embeddings": "embedding", "retrieval": "retriever",
}
_EVENT_ROLES = {
    "gen_ai.system.message": "system", "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool",
}
_STATUS = {0: "unset", 1: "ok", 2: "error", "STATUS_CODE_UNSET": "unset", "STATUS_CODE_OK": "ok", "STATUS_CODE_ERROR": "error"}
# the attribute that holds each JSON-valued message list
_MSG_IN, _MSG_OUT = INPUT_MESSAGES, OUTPUT_MESSAGES
_IN_MIME, _OUT_MIME = "_in_mime", "_out_mime"  # no mime types in GenAI spans


def _value(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])  # int64 is a JSON string in OTLP/JSON
    if "arrayValue" in v:
        return [_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return {kv.get("key"): _value(kv.get("value")) for kv in (v["kvlistValue"] or {}).get("values", [])}
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def _attrs(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    return {kv["key"]: _value(kv.get("value")) for kv in items if isinstance(kv, dict) and "key" in kv}


def _id(value: Any) -> str:
    text = str(value or "")
    if len(text) in (16, 32) and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower()
    try:
        return base64.b64decode(text, validate=True).hex()
    except (binascii.Error, ValueError):
        return text


def _nanos_ms(value: Any) -> float | None:
    try:
        return int(value) / 1e6 if value not in (None, "", "0", 0) else None
    except (TypeError, ValueError):
        return None


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _genai_messages(raw: Any) -> list[dict[str, Any]]:
    """OpenAI-shaped messages from GenAI ``parts`` messages."""
    out: list[dict[str, Any]] = []
    for m in _json(raw) or ():
        if not isinstance(m, dict):
            continue
        role = str(m.get("role", "user"))
        texts, calls = [], []
        for part in m.get("parts") or ():
            if not isinstance(part, dict):
                continue
            ptype = part.get("type")
            if ptype == "text":
                texts.append(str(part.get("content", "")))
            elif ptype == "tool_call":
                args = part.get("arguments")
                calls.append({"id": part.get("id"), "type": "function", "function": {
                    "name": str(part.get("name", "")), "arguments": args if isinstance(args, (str, dict)) else json.dumps(args)}})
            elif ptype == "tool_call_response":
                resp = part.get("response")
                out.append({"role": "tool", "tool_call_id": part.get("id"), "content": resp if isinstance(resp, str) else json.dumps(resp)})
        if texts or calls or role not in ("tool",):
            if role == "tool" and not texts:
                continue
            msg: dict[str, Any] = {"role": role, "content": "\n".join(texts) if texts else None}
            if calls:
                msg["tool_calls"] = calls
            out.append(msg)
    return out


def _event_messages(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Input and output messages from the older per-message span events."""
    ins, outs = [], []
    for e in events:
        name = tag(e.get("name"))
        attrs = _attrs(e.get("attributes"))
        if name in _EVENT_ROLES:
            msg: dict[str, Any] = {"role": attrs.get("role") or _EVENT_ROLES[name], "content": message_text(_json(attrs.get("content")))}
            if attrs.get("id") and _EVENT_ROLES[name] == "tool":
                msg["tool_call_id"] = attrs["id"]
            ins.append(msg)
        elif name == "gen_ai.choice":
            message = _json(attrs.get("message"))
            if isinstance(message, dict):
                outs.append({"role": message.get("role", "assistant"), "content": message_text(message.get("content"))})
            else:
                outs.append({"role": "assistant", "content": message_text(_json(attrs.get("content")))})
    return ins, outs


def span_step(rec: Record, span: Any, where: str) -> tuple[str, Step]:
    """The trace id and the step of one OTLP span (``where`` names it for errors)."""
    if not isinstance(span, dict):
        raise DatasetError(f"{where}: expected a span object, got {kind_of(span)}", file=rec.file, line=rec.line)
    trace_id, span_id = _id(span.get("traceId")), _id(span.get("spanId"))
    if not trace_id:
        raise DatasetError(f"{where}: span has no traceId", file=rec.file, line=rec.line, key="traceId")
    if not span_id:
        raise DatasetError(f"{where}: span has no spanId", file=rec.file, line=rec.line, key="spanId")
    if "attributes" in span and not isinstance(span["attributes"], list):
        raise DatasetError(
            f"span {span_id!r}: attributes must be a list of key/value objects, got {kind_of(span['attributes'])}",
            file=rec.file, line=rec.line, key="attributes",
        )
    attrs = _attrs(span.get("attributes"))
    events = [e for e in span.get("events") or () if isinstance(e, dict)]
    operation = attrs.get(OPERATION_NAME)
    name = str(span.get("name") or "")
    if attrs.get(OI_KIND):  # OpenInference spans sent over OTLP
        kind = str(attrs[OI_KIND]).lower()
        kind = kind if kind in STEP_KINDS else "other"
        value_in, value_out = attrs.get(OI_INPUT), attrs.get(OI_OUTPUT)
        if kind == "tool":
            name = attrs.get(OI_TOOL) or name
            value_in = _json(value_in)
    else:
        kind = _KIND_OF_OPERATION.get(str(operation), "other") if operation else "other"
        if kind == "other" and any(tag(e.get("name")) in _EVENT_ROLES or e.get("name") == "gen_ai.choice" for e in events):
            kind = "llm"
        value_in = value_out = None
        if kind == "tool":
            name = attrs.get(TOOL_NAME) or name
            value_in = _json(attrs.get(TOOL_CALL_ARGUMENTS))
            value_out = attrs.get(TOOL_CALL_RESULT)
        elif kind == "agent":
            name = attrs.get(AGENT_NAME) or name
        if kind in ("llm", "agent"):
            ins, outs = _genai_messages(attrs.get(_MSG_IN)), _genai_messages(attrs.get(_MSG_OUT))
            if not ins and not outs and events:
                ins, outs = _event_messages(events)
            if ins or outs:
                attrs["_messages"] = (ins, outs)  # kept for the trace-level input/output
            value_in = next((m["content"] for m in reversed(ins) if m["role"] == "user" and m.get("content")), None)
            value_out = next((m["content"] for m in reversed(outs) if m.get("content")), "" if outs else None)
    raw_status = span.get("status")
    status_obj: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    status = _STATUS.get(status_obj.get("code", 0), "unset")
    error = None
    if status == "error":
        exc = next((_attrs(e.get("attributes")).get("exception.message") for e in events if e.get("name") == "exception"), None)
        error = status_obj.get("message") or exc or attrs.get("error.type") or "error"
    tokens = {}
    prompt = attrs.get(USAGE_INPUT_TOKENS, attrs.get(USAGE_PROMPT_TOKENS))
    completion = attrs.get(USAGE_OUTPUT_TOKENS, attrs.get(USAGE_COMPLETION_TOKENS))
    if isinstance(prompt, int):
        tokens["prompt"] = prompt
    if isinstance(completion, int):
        tokens["completion"] = completion
    if tokens:
        tokens["total"] = tokens.get("prompt", 0) + tokens.get("completion", 0)
    for key, attr in (("prompt", "llm.token_count.prompt"), ("completion", "llm.token_count.completion"), ("total", "llm.token_count.total")):
        if isinstance(attrs.get(attr), int):
            tokens[key] = attrs[attr]
    parent = span.get("parentSpanId")
    step = new_step(
        id=span_id,
        parent_id=_id(parent) if parent else None,
        kind=kind,
        name=str(name),
        input=value_in,
        output=value_out,
        status=status,
        error=error,
        start_ms=_nanos_ms(span.get("startTimeUnixNano")),
        end_ms=_nanos_ms(span.get("endTimeUnixNano")),
        tokens=tokens,
        attributes=attrs,
    )
    return trace_id, step


def _messages(step: Step) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if step.attributes.get(OI_KIND):
        return _oi_messages(step)
    return step.attributes.get("_messages", ([], []))  # type: ignore[no-any-return]


class OtlpReader:
    """OTLP/JSON trace exports (GenAI semantic conventions)."""

    name = "otlp"

    def sniff(self, value: Any) -> int:
        return 95 if isinstance(value, dict) and "resourceSpans" in value else 0

    def read(self, records: Iterator[Record], options: Options) -> Iterator[tuple[Record, Trace]]:
        grouper = SpanGrouper()
        for rec in records:
            doc = rec.value
            if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans"), list):
                raise DatasetError(
                    "expected an OTLP export with a resourceSpans list", file=rec.file, line=rec.line, key="resourceSpans"
                )
            for i, rs in enumerate(doc["resourceSpans"]):
                for j, ss in enumerate((rs or {}).get("scopeSpans") or ()):
                    spans = (ss or {}).get("spans") or ()
                    if not isinstance(spans, list):
                        raise DatasetError(
                            f"spans must be a list, got {kind_of(spans)}",
                            file=rec.file, line=rec.line, key=f"resourceSpans[{i}].scopeSpans[{j}].spans",
                        )
                    for k, span in enumerate(spans):
                        trace_id, step = span_step(rec, span, f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]")
                        for group in grouper.add(rec, trace_id, step):
                            yield self._trace(group)
        for group in grouper.finish():
            yield self._trace(group)

    def _trace(self, group: Group) -> tuple[Record, Trace]:
        trace = build_trace(group, _messages, _IN_MIME, _OUT_MIME)
        for step in trace.steps:
            step.attributes.pop("_messages", None)
        return group.first, trace


READERS = {"otlp": OtlpReader()}
