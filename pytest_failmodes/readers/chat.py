"""Chat dialects converted into OpenAI Chat Completions messages, then read as rows.

- **Anthropic Messages**: ``{"id", "system"?, "messages": [...]}`` where a
  message's ``content`` is text or a list of blocks. ``text`` blocks become
  the message's text, an assistant's ``tool_use`` blocks its ``tool_calls``,
  a user's ``tool_result`` blocks ``tool`` messages (``is_error: true`` marks
  the tool step as an error); ``thinking`` blocks are dropped.
- **OpenAI Responses**: ``{"id", "instructions"?, "input": text or items,
  "output": items}`` (a stored ``response`` object has ``output`` only).
  ``message`` items become messages, ``function_call`` items an assistant's
  ``tool_calls``, ``function_call_output`` items ``tool`` messages; reasoning
  and other built-in tool items are dropped.

Every other key of the row stays metadata, as with flat rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..errors import DatasetError
from ..trace import Trace
from . import Options, Record, kind_of, tag
from .rows import RowMapper
from .spans import message_text

__all__ = ["AnthropicReader", "ResponsesReader", "READERS"]

_ANTHROPIC_BLOCKS = {"tool_use", "tool_result", "thinking", "redacted_thinking"}
_RESPONSES_ITEMS = {"message", "function_call", "function_call_output", "reasoning", "web_search_call", "file_search_call", "computer_call"}


class _Converted:
    """Converts each record's row into an OpenAI-messages row, then maps it."""

    name = ""
    key = "messages"

    def convert(self, rec: Record, row: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self, records: Iterator[Record], options: Options) -> Iterator[tuple[Record, Trace]]:
        mapper = RowMapper(options)
        for rec in records:
            row = rec.value
            if not isinstance(row, dict):
                raise DatasetError(f"expected an object with trace fields, got {kind_of(row)}", file=rec.file, line=rec.line)
            yield rec, mapper(rec, self.convert(rec, row))


class AnthropicReader(_Converted):
    """Anthropic Messages conversations."""

    name = "anthropic"

    def sniff(self, value: Any) -> int:
        if not isinstance(value, dict):
            return 0
        if value.get("type") == "message" and isinstance(value.get("content"), list):
            return 80  # a bare Messages API response
        messages = value.get("messages")
        if isinstance(messages, list):
            for m in messages:
                content = m.get("content") if isinstance(m, dict) else None
                if isinstance(content, list) and any(isinstance(b, dict) and tag(b.get("type")) in _ANTHROPIC_BLOCKS for b in content):
                    return 90
        return 0

    def convert(self, rec: Record, row: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in row.items() if k not in ("messages", "system", "content", "role", "type")}
        raw = row.get("messages")
        if raw is None and row.get("type") == "message":
            raw = [{"role": row.get("role", "assistant"), "content": row.get("content")}]
        if not isinstance(raw, list):
            raise DatasetError(f"messages must be a list, got {kind_of(raw)}", file=rec.file, line=rec.line, key="messages")
        messages: list[dict[str, Any]] = []
        system = row.get("system")
        if system:
            messages.append({"role": "system", "content": message_text(system)})
        for i, m in enumerate(raw):
            if not isinstance(m, dict):
                raise DatasetError(f"expected a message object, got {kind_of(m)}", file=rec.file, line=rec.line, key=f"messages[{i}]")
            role, content = m.get("role"), m.get("content")
            if not isinstance(content, list):
                messages.append({"role": role, "content": content})
                continue
            texts, calls = [], []
            for j, block in enumerate(content):
                btype = block.get("type") if isinstance(block, dict) else None
                if btype == "text":
                    texts.append(str(block.get("text", "")))
                elif btype == "tool_use":
                    if "name" not in block:
                        raise DatasetError("tool_use block has no name", file=rec.file, line=rec.line, key=f"messages[{i}].content[{j}].name")
                    calls.append({"id": block.get("id"), "type": "function", "function": {"name": block["name"], "arguments": block.get("input") or {}}})
                elif btype == "tool_result":
                    if "tool_use_id" not in block:
                        raise DatasetError(
                            "tool_result block has no tool_use_id", file=rec.file, line=rec.line, key=f"messages[{i}].content[{j}].tool_use_id"
                        )
                    tool: dict[str, Any] = {"role": "tool", "tool_call_id": block["tool_use_id"], "content": message_text(block.get("content"))}
                    if block.get("is_error") is True:
                        tool["is_error"] = True
                    messages.append(tool)
            if texts or calls or role != "user":
                msg: dict[str, Any] = {"role": role, "content": "\n".join(texts) if texts else None}
                if calls:
                    msg["tool_calls"] = calls
                messages.append(msg)
        out["messages"] = messages
        return out


class ResponsesReader(_Converted):
    """OpenAI Responses API input and output items."""

    name = "responses"

    def sniff(self, value: Any) -> int:
        if not isinstance(value, dict):
            return 0
        if value.get("object") == "response":
            return 90
        for key in ("output", "input"):
            items = value.get(key)
            if isinstance(items, list) and items and all(isinstance(x, dict) for x in items):
                if any(tag(x.get("type")) in _RESPONSES_ITEMS - {"message"} or x.get("type") == "message" and "role" in x for x in items):
                    return 85
        return 0

    def convert(self, rec: Record, row: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in row.items() if k not in ("input", "output", "instructions", "object")}
        messages: list[dict[str, Any]] = []
        if row.get("instructions"):
            messages.append({"role": "system", "content": message_text(row["instructions"])})
        for key in ("input", "output"):
            items = row.get(key)
            if items is None:
                continue
            if isinstance(items, str):
                messages.append({"role": "user" if key == "input" else "assistant", "content": items})
                continue
            if not isinstance(items, list):
                raise DatasetError(f"{key} must be text or a list of items, got {kind_of(items)}", file=rec.file, line=rec.line, key=key)
            for i, item in enumerate(items):
                self._item(rec, f"{key}[{i}]", item, messages)
        out["messages"] = messages
        if "output" not in row and "input" in row:
            out["output"] = ""  # the request alone: nothing was answered
        return out

    def _item(self, rec: Record, where: str, item: Any, messages: list[dict[str, Any]]) -> None:
        if not isinstance(item, dict):
            raise DatasetError(f"expected an item object, got {kind_of(item)}", file=rec.file, line=rec.line, key=where)
        itype = item.get("type", "message" if "role" in item else None)
        if itype == "message":
            messages.append({"role": item.get("role", "assistant"), "content": message_text(item.get("content"))})
        elif itype == "function_call":
            if "name" not in item:
                raise DatasetError("function_call item has no name", file=rec.file, line=rec.line, key=f"{where}.name")
            call = {"id": item.get("call_id") or item.get("id"), "type": "function",
                    "function": {"name": item["name"], "arguments": item.get("arguments") or "{}"}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls") is not None and not last.get("content"):
                last["tool_calls"].append(call)  # parallel calls: one assistant turn
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif itype == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"),
                             "content": output if isinstance(output, str) else json.dumps(output)})
        elif itype is None:
            raise DatasetError("item has neither a type nor a role", file=rec.file, line=rec.line, key=where)


READERS = {"anthropic": AnthropicReader(), "responses": ResponsesReader()}
