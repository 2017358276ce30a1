"""Agent traces whose failure modes name the step they fail at (failmodes steps / cooccur tests)."""

from __future__ import annotations

from typing import Any


def chat(tools: list[tuple[str, str]], reply: str) -> list[dict[str, Any]]:
    """A user turn, one assistant turn per tool call with its result, and the reply."""
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
    for k, (name, result) in enumerate(tools):
        msgs.append({"role": "assistant", "content": None, "tool_calls": [{"id": f"c{k}", "type": "function", "function": {"name": name, "arguments": "{}"}}]})
        msgs.append({"role": "tool", "tool_call_id": f"c{k}", "name": name, "content": result})
    msgs.append({"role": "assistant", "content": reply})
    return msgs


def agent_rows() -> list[dict[str, Any]]:
    """6 traces book with no search and apologise; 2 search, book and finish; 2 search and apologise."""
    rows = []
    for i in range(10):
        if i < 6:
            tools, reply = [("book", "booked")], "Sorry, I booked it without checking."
        elif i < 8:
            tools, reply = [("search", "3 flights"), ("book", "booked")], "Done."
        else:
            tools, reply = [("search", "nothing")], "Sorry, nothing found."
        rows.append({"id": f"t{i}", "messages": chat(tools, reply)})
    return rows


AGENT_MODES = """
    dataset: data/traces.jsonl
    pipeline: [search, book, assistant]
    gate: {max_fail_rate: 1}
    failure_modes:
      - name: books_unsearched
        rule: {tool_order: {tool: book, after: search}}
      - name: apologises
        rule: {regex: "(?i)sorry"}
"""


