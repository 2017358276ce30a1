"""Multi-agent logs: one JSON object per file (or per JSONL line) whose
``history`` (or ``messages``) holds turns ``{"role", "content", "name"?}``
where the role names an agent: ``Orchestrator (thought)``, ``WebSurfer``,
``human``. This is the shape of Magentic-One / AutoGen logs as published in
failure-attribution datasets (``question``, ``ground_truth``,
``mistake_agent``, ``mistake_step`` beside the history).

Rules (documented in docs/datasets.md):

- a turn's **agent** is its role without a trailing ``(...)`` (the
  *channel*: ``thought``, ``-> WebSurfer``, ``final answer``); ``name``
  wins when the role is generic (``assistant``);
- the trace **input** is ``question`` (or ``task``) when present, else the
  first ``human``/``user`` turn;
- the trace **output** is the last turn on the ``final answer`` channel,
  else the last agent turn that is neither a thought nor an instruction to
  another agent (``-> Coder``) and says more than a termination marker
  (``TERMINATE`` is removed from its end);
- each turn is a step: ``agent`` for agents, ``message`` for the human.
- the trace **id** is ``id`` or ``question_ID``, else the file name
  (``name.json``, or ``name.jsonl:LINE`` for a JSONL of logs).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ..errors import DatasetError
from ..trace import Step, Trace, new_step
from . import Options, Record, kind_of
from .spans import message_text

__all__ = ["MultiAgentReader", "READERS", "agent_of"]

_STANDARD = {"system", "user", "assistant", "tool", "developer", "function"}
_HUMAN = {"human", "user"}
_CHANNEL = re.compile(r"^(?P<agent>.*?)\s*\((?P<channel>[^()]*)\)\s*$")
_TERMINATE = re.compile(r"\s*\bTERMINATE\b[\s.]*$")
_SKIP_CHANNELS = {"thought", "termination condition"}


def agent_of(role: str) -> tuple[str, str]:
    """``"Orchestrator (thought)"`` -> ``("Orchestrator", "thought")``."""
    m = _CHANNEL.match(role)
    return (m.group("agent"), m.group("channel").strip().lower()) if m else (role, "")


class MultiAgentReader:
    """Agent conversation logs with agent names as roles."""

    name = "multiagent"

    def sniff(self, value: Any) -> int:
        if not isinstance(value, dict):
            return 0
        turns = value.get("history")
        if isinstance(turns, list) and turns and any(isinstance(t, dict) and "role" in t for t in turns[:5]):
            return 80
        turns = value.get("messages")
        if isinstance(turns, list) and any(isinstance(t, dict) and isinstance(t.get("role"), str) and t["role"].lower() not in _STANDARD for t in turns):
            return 70
        return 0

    def read(self, records: Iterator[Record], options: Options) -> Iterator[tuple[Record, Trace]]:
        for rec in records:
            yield rec, self._trace(rec)

    def _trace(self, rec: Record) -> Trace:
        log = rec.value
        if not isinstance(log, dict):
            raise DatasetError(f"expected a log object, got {kind_of(log)}", file=rec.file, line=rec.line)
        key = "history" if "history" in log else "messages"
        turns = log.get(key)
        if not isinstance(turns, list):
            raise DatasetError(f"{key} must be a list of turns, got {kind_of(turns)}", file=rec.file, line=rec.line, key=key)
        steps: list[Step] = []
        messages: list[dict[str, Any]] = []
        first_human = None
        final = fallback = None
        for i, turn in enumerate(turns):
            if not isinstance(turn, dict) or "role" not in turn:
                raise DatasetError(
                    "a turn needs a role" if isinstance(turn, dict) else f"expected a turn object, got {kind_of(turn)}",
                    file=rec.file, line=rec.line, key=f"{key}[{i}].role" if isinstance(turn, dict) else f"{key}[{i}]",
                )
            if not isinstance(turn["role"], str) or not turn["role"]:
                raise DatasetError(
                    f"a turn's role must be a name, got {kind_of(turn['role'])}", file=rec.file, line=rec.line, key=f"{key}[{i}].role"
                )
            role = turn["role"]
            text = message_text(turn.get("content"))
            agent, channel = agent_of(role)
            if agent.lower() in ("assistant",) and turn.get("name"):
                agent = str(turn["name"])
            human = agent.lower() in _HUMAN
            if human and first_human is None:
                first_human = text
            if not human:
                if channel == "final answer":
                    final = text
                elif channel not in _SKIP_CHANNELS and not channel.startswith("->"):
                    said = _TERMINATE.sub("", text).strip()
                    if said:
                        fallback = said
            steps.append(new_step(
                id=str(i), kind="message" if human else "agent", name=agent, output=text,
                attributes={"role": role, "channel": channel} if channel else {"role": role},
            ))
            messages.append({"role": role, "content": text})
        question = log.get("question", log.get("task"))
        text_in = question if isinstance(question, str) else first_human or ""
        tid = log.get("id", log.get("question_ID"))
        if tid in (None, ""):
            tid = rec.file.name if rec.line == 1 else f"{rec.file.name}:{rec.line}"
        metadata = {k: v for k, v in log.items() if k not in (key, "id")}
        return Trace(
            id=str(tid),
            input=text_in,
            output=final if final is not None else fallback or "",
            messages=messages,  # type: ignore[arg-type]
            steps=steps,
            metadata=metadata,
        )


READERS = {"multiagent": MultiAgentReader()}
