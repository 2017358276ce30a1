"""Langfuse observations and traces, as its public API and UI export them.

Three shapes, detected from the first record:

- observations, one per JSONL line or a JSON array of them (the v2
  observations API's items, ``GET /api/public/v2/observations``): each names
  its ``traceId``; they are grouped into traces as spans are (see
  :mod:`.spans`), with ``parentObservationId`` making the tree;
- that API's response page, ``{"data": [observations...], "meta": {...}}``;
- a trace with its observations inside (``{"id", "observations": [...],
  "scores": [...]}``, the trace API's and the UI's trace download): one trace
  per record.

Mapping:

- step ``kind``: ``type`` (``GENERATION`` -> ``llm``, ``SPAN`` and ``CHAIN``
  -> ``chain``, ``TOOL``, ``AGENT``, ``RETRIEVER``, ``EMBEDDING``,
  ``EVALUATOR``, ``GUARDRAIL`` as named, ``EVENT`` -> ``other``);
- ``status``: ``error`` when ``level`` is ``ERROR`` (``statusMessage`` is the
  error), else ``unset`` (Langfuse records no success);
- tokens: ``usageDetails`` (or the older ``usage``) ``input``/``output``/``total``;
- trace ``input`` / ``output``: the trace's own text input/output where the
  record has one, else the root observation's, else the generations'
  messages (first user message in, last assistant reply out);
- trace ``metadata``: the root's (or the trace's) ``metadata``, ``sessionId``,
  ``userId``, ``tags``; ``scores`` become ``labels`` (name -> value).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import DatasetError
from ..trace import Step, Trace, new_step
from . import Options, Record, kind_of, tag
from .openinference import build_trace
from .spans import Group, SpanGrouper, iso_ms, message_text

__all__ = ["LangfuseReader", "READERS", "observation_step"]

_KINDS = {
    "GENERATION": "llm", "SPAN": "chain", "CHAIN": "chain", "TOOL": "tool", "AGENT": "agent",
    "RETRIEVER": "retriever", "EMBEDDING": "embedding", "EVALUATOR": "evaluator", "GUARDRAIL": "guardrail",
    "EVENT": "other",
}
# the observation's own fields that are not kept as step attributes
_NOT_ATTRIBUTES = frozenset({"input", "output"})
# mime keys build_trace consults; Langfuse has none, so text inputs always count as text
_NO_MIME = "_langfuse_no_mime"


def _messages(value: Any) -> list[dict[str, Any]]:
    """OpenAI-shaped messages from a generation's input or output."""
    if isinstance(value, dict):
        if "role" in value:
            return [value]
        for key in ("messages", "choices"):
            if isinstance(value.get(key), list):
                value = value[key]
                break
        else:
            return []
    if not isinstance(value, list):
        return []
    out = []
    for m in value:
        if isinstance(m, dict) and isinstance(m.get("message"), dict):
            m = m["message"]  # a choice
        if isinstance(m, dict) and isinstance(m.get("role"), str):
            out.append({k: m[k] for k in ("role", "content", "tool_calls", "tool_call_id", "name") if k in m})
    return out


def _reply_text(value: Any) -> Any:
    # a generation's output is a message (or a list of choices); its text is the step's output
    outs = _messages(value)
    if outs:
        return next((message_text(m.get("content")) for m in reversed(outs) if m.get("content")), "")
    return value


def observation_step(rec: Record, obs: Any, where: str | None = None) -> tuple[str | None, Step]:
    """The trace id (None when the observation names none) and the step of one observation.

    ``where`` names the observation inside its record (``observations[2]``) for errors.
    """
    prefix = f"{where}." if where else ""
    if not isinstance(obs, dict):
        raise DatasetError(f"expected an observation object, got {kind_of(obs)}", file=rec.file, line=rec.line, key=where)
    obs_id = obs.get("id")
    if not obs_id or not isinstance(obs_id, (str, int)):
        raise DatasetError("observation has no id", file=rec.file, line=rec.line, key=f"{prefix}id")
    raw_type = tag(obs.get("type"))
    if raw_type is None:
        raise DatasetError(
            f"observation {obs_id!r} has no type (GENERATION, SPAN, EVENT, TOOL ...)",
            file=rec.file, line=rec.line, key=f"{prefix}type",
        )
    kind = _KINDS.get(raw_type.upper(), "other")
    attrs = {k: v for k, v in obs.items() if k not in _NOT_ATTRIBUTES and v is not None}
    value_in, value_out = obs.get("input"), obs.get("output")
    if kind == "llm":
        attrs["_messages"] = (_messages(value_in), _messages(value_out))
        value_out = _reply_text(value_out)
    level = tag(obs.get("level"))
    status, error = "unset", None
    if level is not None and level.upper() == "ERROR":
        status, error = "error", str(obs.get("statusMessage") or "error")
    usage = obs.get("usageDetails") or obs.get("usage") or {}
    tokens = {}
    if isinstance(usage, dict):
        for ours, theirs in (("prompt", "input"), ("completion", "output"), ("total", "total")):
            value = usage.get(theirs)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                tokens[ours] = int(value)
    parent = obs.get("parentObservationId")
    if obs.get("isRootObservation") is True:
        parent = None  # an app root keeps its physical parent, which is not in the trace
    trace_id = obs.get("traceId")
    return (str(trace_id) if trace_id else None), new_step(
        id=str(obs_id), parent_id=str(parent) if parent else None, kind=kind, name=str(obs.get("name") or ""),
        input=value_in, output=value_out, status=status, error=error,
        start_ms=iso_ms(obs.get("startTime")), end_ms=iso_ms(obs.get("endTime")), tokens=tokens, attributes=attrs,
    )


def _step_messages(step: Step) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return step.attributes.get("_messages", ([], []))  # type: ignore[no-any-return]


def _build(group: Group, trace_doc: dict[str, Any] | None = None) -> tuple[Record, Trace]:
    try:
        trace = build_trace(group, _step_messages, _NO_MIME, _NO_MIME)
    except (ValueError, TypeError) as exc:
        raise DatasetError(
            f"trace {group.trace_id!r}: cannot build the trace from its observations: {exc}",
            file=group.first.file, line=group.first.line,
        ) from None
    for step in trace.steps:
        step.attributes.pop("_messages", None)
    root = trace.steps[0].attributes if trace.steps else {}
    if trace_doc is not None:
        # the trace's own fields win over its root observation's
        if isinstance(trace_doc.get("input"), str) and trace_doc["input"]:
            trace.input = trace_doc["input"]
        if isinstance(trace_doc.get("output"), str) and trace_doc["output"]:
            trace.output = trace_doc["output"]
        if isinstance(trace_doc.get("metadata"), dict):
            trace.metadata.update(trace_doc["metadata"])
        root = {**root, **{k: v for k, v in trace_doc.items() if k in ("sessionId", "userId", "tags", "name")}}
        trace.labels.update(_scores(group.first, trace_doc.get("scores")))
    for key in ("sessionId", "userId", "tags"):
        if root.get(key) is not None:
            trace.metadata.setdefault(key, root[key])
    return group.first, trace


def _scores(rec: Record, scores: Any) -> dict[str, Any]:
    if scores is None:
        return {}
    if not isinstance(scores, list):
        raise DatasetError(f"scores must be a list, got {kind_of(scores)}", file=rec.file, line=rec.line, key="scores")
    out: dict[str, Any] = {}
    for i, score in enumerate(scores):
        if not isinstance(score, dict) or not isinstance(score.get("name"), str):
            raise DatasetError("a score needs a name", file=rec.file, line=rec.line, key=f"scores[{i}].name")
        value = score.get("stringValue") if score.get("dataType") == "CATEGORICAL" else score.get("value")
        out[score["name"]] = score.get("stringValue", value) if value is None else value
    return out


def _is_observation(value: Any) -> bool:
    return isinstance(value, dict) and "traceId" in value and tag(value.get("type")) is not None and (
        "startTime" in value or "parentObservationId" in value)


class LangfuseReader:
    """Langfuse observations (grouped by trace id) and traces with their observations."""

    name = "langfuse"

    def sniff(self, value: Any) -> int:
        if _is_observation(value):
            return 90
        if isinstance(value, dict):
            obs = value.get("observations")
            if "id" in value and isinstance(obs, list) and (not obs or _is_observation(obs[0])):
                return 90
            data = value.get("data")
            if isinstance(data, list) and data and _is_observation(data[0]):
                return 90
        if isinstance(value, list) and value and _is_observation(value[0]):
            return 90
        return 0

    def read(self, records: Iterator[Record], options: Options) -> Iterator[tuple[Record, Trace]]:
        grouper = SpanGrouper()
        for rec in records:
            value = rec.value
            if isinstance(value, dict) and isinstance(value.get("observations"), list):
                yield self._trace_document(rec, value)
                continue
            if isinstance(value, dict) and isinstance(value.get("data"), list):
                items, where = value["data"], "data"
            elif isinstance(value, list):
                items, where = value, ""
            else:
                items, where = [value], None
            for i, obs in enumerate(items):
                at = f"{where}[{i}]" if where is not None else None
                trace_id, step = observation_step(rec, obs, at)
                if trace_id is None:
                    raise DatasetError(
                        f"observation {step.id!r} has no traceId", file=rec.file, line=rec.line,
                        key=f"{at}.traceId" if at else "traceId",
                    )
                for group in grouper.add(rec, trace_id, step):
                    yield _build(group)
        for group in grouper.finish():
            yield _build(group)

    def _trace_document(self, rec: Record, doc: dict[str, Any]) -> tuple[Record, Trace]:
        trace_id = doc.get("id")
        if not trace_id:
            raise DatasetError("trace has no id", file=rec.file, line=rec.line, key="id")
        steps = []
        for i, obs in enumerate(doc["observations"]):
            obs_trace, step = observation_step(rec, obs, f"observations[{i}]")
            if obs_trace is not None and obs_trace != str(trace_id):
                raise DatasetError(
                    f"observation {step.id!r} names trace {obs_trace!r}, inside trace {str(trace_id)!r}",
                    file=rec.file, line=rec.line, key=f"observations[{i}].traceId",
                )
            steps.append(step)
        if not steps:
            # a trace logged with its input and output only (no spans inside)
            text_in, text_out = doc.get("input"), doc.get("output")
            if not isinstance(text_out, str):
                raise DatasetError(
                    f"trace {str(trace_id)!r} has no observations and no text output", file=rec.file, line=rec.line,
                    key="observations",
                )
            metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
            return rec, Trace(id=str(trace_id), input=text_in if isinstance(text_in, str) else "", output=text_out,
                              metadata=metadata, labels=_scores(rec, doc.get("scores")))
        return _build(Group(str(trace_id), rec, steps), doc)


READERS = {"langfuse": LangfuseReader()}
