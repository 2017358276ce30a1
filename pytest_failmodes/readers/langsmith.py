"""LangSmith runs, as ``Client.list_runs`` returns them: one run per JSONL line
(or a JSON array of runs), grouped into traces by ``trace_id`` and ordered by
``parent_run_id`` (``dotted_order`` when present orders siblings).

- step ``kind``: ``run_type`` (``llm``, ``chain``, ``tool``, ``retriever``,
  ``embedding``; ``prompt`` and ``parser`` are ``other``); ``name``: the run's;
- ``input`` / ``output``: the run's ``inputs`` / ``outputs``; an object with a
  single value (``{"question": ...}``, ``{"output": ...}``) gives that value,
  except a tool's inputs, which are its arguments (an object);
- ``status``: ``error`` when the run has an ``error``, ``ok`` on ``success``;
- tokens: ``prompt_tokens``, ``completion_tokens``, ``total_tokens``;
- trace ``input`` / ``output``: the root run's single text input / output
  (``question``, ``answer`` ...), else the LLM runs' messages;
- an LLM run's messages: ``inputs.messages`` (OpenAI dicts) and
  ``outputs.choices[].message`` or ``outputs.generations[][].text``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import DatasetError
from ..trace import Step, Trace, new_step
from . import Options, Record, kind_of
from .openinference import build_trace
from .spans import Group, SpanGrouper, iso_ms, message_text

__all__ = ["LangSmithReader", "READERS"]

_KINDS = {"llm": "llm", "chain": "chain", "tool": "tool", "retriever": "retriever", "embedding": "embedding"}


def _single(value: Any) -> Any:
    """``{"output": x}`` -> ``x``: LangSmith wraps plain values in a one-key object."""
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value.values()))
    return value


def _llm_messages(run_in: Any, run_out: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ins: list[dict[str, Any]] = []
    raw = run_in.get("messages") if isinstance(run_in, dict) else None
    if isinstance(raw, list) and raw and isinstance(raw[0], list):
        raw = raw[0]  # LangChain batches: [[message, ...]]
    for m in raw or ():
        if isinstance(m, dict) and "role" in m:
            ins.append(m)
    outs: list[dict[str, Any]] = []
    if isinstance(run_out, dict):
        for choice in run_out.get("choices") or ():
            msg = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(msg, dict):
                outs.append({k: v for k, v in msg.items() if k in ("role", "content", "tool_calls")})
        for batch in run_out.get("generations") or ():
            for gen in batch if isinstance(batch, list) else [batch]:
                if isinstance(gen, dict) and gen.get("text"):
                    outs.append({"role": "assistant", "content": str(gen["text"])})
    return ins, outs


def run_step(rec: Record, run: Any) -> tuple[str, Step]:
    """The trace id and the step of one LangSmith run."""
    if not isinstance(run, dict):
        raise DatasetError(f"expected a run object, got {kind_of(run)}", file=rec.file, line=rec.line)
    run_id = run.get("id")
    if not run_id:
        raise DatasetError("run has no id", file=rec.file, line=rec.line, key="id")
    trace_id = run.get("trace_id")
    if not trace_id:
        raise DatasetError(f"run {run_id!r} has no trace_id", file=rec.file, line=rec.line, key="trace_id")
    kind = _KINDS.get(str(run.get("run_type")), "other")
    inputs, outputs = run.get("inputs"), run.get("outputs")
    attrs: dict[str, Any] = {k: v for k, v in run.items() if k not in ("inputs", "outputs") and v is not None}
    if kind == "llm":
        ins, outs = _llm_messages(inputs, outputs)
        attrs["_messages"] = (ins, outs)
        model = ((run.get("extra") or {}).get("metadata") or {}).get("ls_model_name")
        if model:
            attrs["ls_model_name"] = model
        value_in: Any = inputs
        value_out: Any = next((message_text(m.get("content")) for m in reversed(outs) if m.get("content")), "" if outs else outputs)
    else:
        # a tool's inputs are its arguments: kept as an object unless LangChain wrapped a text in "input"
        value_in = inputs.get("input") if kind == "tool" and isinstance(inputs, dict) and list(inputs) == ["input"] else (
            inputs if kind == "tool" else _single(inputs))
        value_out = _single(outputs) if outputs else None
    error = run.get("error")
    status = "error" if error else "ok" if run.get("status") == "success" else "unset"
    tokens = {k: int(run[f"{k}_tokens"]) for k in ("prompt", "completion", "total") if isinstance(run.get(f"{k}_tokens"), int)}
    parent = run.get("parent_run_id")
    return str(trace_id), new_step(
        id=str(run_id), parent_id=str(parent) if parent else None, kind=kind, name=str(run.get("name") or ""),
        input=value_in, output=value_out, status=status, error=str(error) if error else None,
        start_ms=iso_ms(run.get("start_time")), end_ms=iso_ms(run.get("end_time")), tokens=tokens, attributes=attrs,
    )


def _messages(step: Step) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return step.attributes.get("_messages", ([], []))  # type: ignore[no-any-return]


class LangSmithReader:
    """LangSmith run exports."""

    name = "langsmith"

    def sniff(self, value: Any) -> int:
        if isinstance(value, dict) and "run_type" in value and ("trace_id" in value or "dotted_order" in value):
            return 90
        return 0

    def read(self, records: Iterator[Record], options: Options) -> Iterator[tuple[Record, Trace]]:
        grouper = SpanGrouper()
        for rec in records:
            for run in rec.value if isinstance(rec.value, list) else [rec.value]:
                trace_id, step = run_step(rec, run)
                for group in grouper.add(rec, trace_id, step):
                    yield self._trace(group)
        for group in grouper.finish():
            yield self._trace(group)

    def _trace(self, group: Group) -> tuple[Record, Trace]:
        # siblings in dotted_order (start time, then id), as LangSmith shows them
        group.steps.sort(key=lambda s: str(s.attributes.get("dotted_order", "")))
        trace = build_trace(group, _messages, "_in_mime", "_out_mime")
        for step in trace.steps:
            step.attributes.pop("_messages", None)
        return group.first, trace


READERS = {"langsmith": LangSmithReader()}
