"""Traces for the review tests: conversations with tool calls, agent steps, metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_failmodes.trace import Trace

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 1">'


def rows(n: int = 12) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        tid = f"t{i:02d}"
        row: dict[str, Any] = {
            "id": tid,
            "messages": [
                {"role": "system", "content": "You are an airline agent."},
                {"role": "user", "content": f"Cancel reservation R{i}, please."},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": f"c{i}", "type": "function",
                         "function": {"name": "get_reservation", "arguments": json.dumps({"reservation_id": f"R{i}"})}}
                    ],
                },
                {"role": "tool", "tool_call_id": f"c{i}", "name": "get_reservation", "content": json.dumps({"id": f"R{i}", "status": "booked"})},
                {"role": "assistant", "content": f"Reservation R{i} is **cancelled**."},
            ],
            "metadata": {"route": "billing" if i % 2 else "shipping", "failed": 1 if i % 3 == 0 else 0},
        }
        if i % 2 == 0:
            row["steps"] = [
                {"id": f"s{i}-agent", "kind": "agent", "name": "support_agent", "status": "ok", "start_ms": 1000, "end_ms": 2400},
                {"id": f"s{i}-llm", "parent_id": f"s{i}-agent", "kind": "llm", "name": "gpt-4o", "status": "ok",
                 "input": "Cancel", "output": "call get_reservation", "start_ms": 1000, "end_ms": 1800, "tokens": {"total": 55}},
                {"id": f"s{i}-tool", "parent_id": f"s{i}-agent", "kind": "tool", "name": "get_reservation", "status": "error",
                 "input": {"reservation_id": f"R{i}"}, "error": "timeout", "start_ms": 1800, "end_ms": 2400},
            ]
        out.append(row)
    return out


def hostile_row() -> dict[str, Any]:
    """A trace with markup in every field that reaches the page."""
    return {
        "id": "x" + HOSTILE,
        "input": HOSTILE,
        "output": HOSTILE,
        "messages": [
            {"role": "user" + HOSTILE, "content": HOSTILE, "name": HOSTILE},
            {"role": "assistant", "content": [{"type": "text", "text": HOSTILE}, {"type": HOSTILE, "x": HOSTILE}],
             "tool_calls": [{"id": HOSTILE, "type": "function", "function": {"name": HOSTILE, "arguments": HOSTILE}}]},
            {"role": "tool", "tool_call_id": HOSTILE, "content": HOSTILE},
            {"role": "assistant", "content": HOSTILE},
        ],
        "steps": [
            {"id": HOSTILE, "kind": HOSTILE, "name": HOSTILE, "status": HOSTILE, "input": HOSTILE,
             "output": {HOSTILE: HOSTILE}, "error": HOSTILE, "attributes": {HOSTILE: HOSTILE}, "start_ms": 0, "end_ms": 5},
            {"id": "child", "parent_id": HOSTILE, "kind": "tool", "name": HOSTILE, "status": "ok"},
        ],
        "metadata": {HOSTILE: HOSTILE, "route": HOSTILE},
        "labels": {HOSTILE: HOSTILE},
    }


def write(path: Path, data: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    return path


def traces(data: list[dict[str, Any]]) -> list[Trace]:
    return [Trace.model_validate(r) for r in data]


def report(path: Path, verdicts: dict[str, tuple[str, str]], mode: str = "wrong_cancel") -> Path:
    """A JSON report in the shape ``pytest --failmodes --failmodes-report`` writes (one mode)."""
    data = {
        "schema": "pytest-failmodes/report",
        "version": 1,
        "modes": [
            {
                "key": f"failmodes.yaml::{mode}",
                "name": mode,
                "detector": "judge(openai/fake)",
                "traces": [{"id": tid, "verdict": v, "reason": r, "evidence": None} for tid, (v, r) in verdicts.items()],
            }
        ],
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
