"""What a definition names, checked against what the dataset holds.

A field, tool name or value that occurs in no trace matches nothing, and a
mode built on it would report a quiet 0%. During the one streaming pass a
:class:`Seen` records which of the names a suite needs occur somewhere, and,
only while some are still unseen, a capped vocabulary of the field paths and
tool names the traces do have (for "did you mean"). After the pass, a name
seen nowhere breaks the modes that read it; a *value* seen nowhere (a
``fail_values`` or ``where:`` entry) is a note, since a run without that
value can be a clean run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import FailmodesError, did_you_mean
from .trace import MISSING, Trace, speakers
from .values import is_absent, value_key, value_text

__all__ = ["Need", "Seen", "DIRECT_FIELDS", "UnmatchedName"]

#: trace fields every trace has (``Trace.get`` reads them directly)
DIRECT_FIELDS = frozenset({"id", "input", "output", "final_reply", "messages", "transcript"})
#: caps that keep the vocabulary small whatever the dataset
MAX_NAMES = 2000
MAX_DEPTH = 4
MAX_SHOWN_VALUES = 8


@dataclass(frozen=True)
class Need:
    """One name a definition reads, and where it is written.

    ``kind``: ``field`` (a path :meth:`Trace.get` resolves), ``tool`` (a tool
    name), ``agent`` (an agent that speaks), ``mapped`` (a trace field filled
    through ``dataset.fields``; ``name`` is the trace field, ``source`` the
    column) or ``value`` (``values`` of field ``name``, any of which should
    occur). ``note``: a name no trace has is a note with the names the traces
    do have, not an error (the tool and agent names of step rules). ``step``
    (a ``pipeline:`` state) is not checked here: ``failmodes steps`` checks it
    against the traces' step names.
    """

    kind: str
    name: str
    file: str
    line: int | None
    key: str
    values: tuple[Any, ...] = ()
    source: str = ""
    note: bool = False

    def error(self, message: str) -> str:
        return str(FailmodesError(message, file=self.file, line=self.line, key=self.key))


class UnmatchedName(FailmodesError):
    """A name no trace has, as :meth:`Seen.problems` words it (file, line and key included)."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(text)

    def format(self) -> str:
        return self.text


class Seen:
    """Records, over a stream of traces, which needed names occur (bounded memory)."""

    __slots__ = (
        "_fields", "_mapped", "_tools", "_agents", "_values", "_field_names", "_tool_names", "_agent_names",
        "_value_seen", "traces", "busy",
    )

    def __init__(self, needs: Iterable[Need]) -> None:
        needs = list(needs)
        self._fields = {n.name for n in needs if n.kind == "field" and _top(n.name) not in DIRECT_FIELDS}
        self._mapped = {n.name for n in needs if n.kind == "mapped" and n.name != "id"}
        self._tools = {n.name for n in needs if n.kind == "tool"}
        self._agents = {n.name for n in needs if n.kind == "agent"}
        # field -> value keys not seen yet; field -> a few values it has (for the note)
        self._values: dict[str, set[Any]] = {}
        for n in needs:
            if n.kind == "value":
                self._values.setdefault(n.name, set()).update(value_key(v) for v in n.values)
        self._value_seen: dict[str, list[str]] = {f: [] for f in self._values}
        self._field_names: set[str] = set()
        self._tool_names: set[str] = set()
        self._agent_names: set[str] = set()
        self.traces = 0
        #: some needed name is still unseen (a caller may skip observe() and count ``traces`` itself once not)
        self.busy = True

    def observe(self, trace: Trace) -> None:
        """Note what this trace holds of the needed names (nothing, once all are seen)."""
        self.traces += 1
        if not self.busy:
            return
        if self._fields or self._mapped:
            get = trace.get
            if self._fields:
                self._fields = {f for f in self._fields if get(f) is MISSING}
            if self._mapped:
                self._mapped = {f for f in self._mapped if not _mapped_present(trace, f)}
            if (self._fields or self._mapped) and len(self._field_names) < MAX_NAMES:
                _collect_paths(trace.metadata, "", self._field_names, 0)
                _collect_paths(trace.labels, "", self._field_names, 0)
        if self._tools:
            names = _tool_names(trace)
            self._tools.difference_update(names)
            if self._tools and len(self._tool_names) < MAX_NAMES:
                self._tool_names.update(names)
        if self._agents:
            names = {who for _i, _id, who in speakers(trace)}
            self._agents.difference_update(names)
            if self._agents and len(self._agent_names) < MAX_NAMES:
                self._agent_names.update(names)
        if self._values:
            for field, wanted in list(self._values.items()):
                value = trace.get(field)
                if is_absent(value) or isinstance(value, (dict, list)):
                    continue
                key = value_key(value)
                shown = self._value_seen[field]
                if len(shown) < MAX_SHOWN_VALUES:
                    text = value_text(value)
                    if text not in shown:
                        shown.append(text)
                wanted.discard(key)
                if not wanted:
                    del self._values[field]
        self.busy = bool(self._fields or self._mapped or self._tools or self._agents or self._values)

    def problems(self, needs: Iterable[Need]) -> tuple[list[str], list[str]]:
        """``(errors, notes)`` for these needs after the pass: a name no trace has is an
        error; a value no trace has (of a field some trace has) is a note."""
        errors: list[str] = []
        notes: list[str] = []
        where = "the dataset" if self.traces else "the dataset (it has no traces)"
        for need in needs:
            if need.kind == "field" and need.name in self._fields:
                errors.append(need.error(f"field {need.name!r} occurs in no trace of {where}{self._suggest(need.name)}"))
            elif need.kind == "mapped" and need.name in self._mapped:
                errors.append(need.error(
                    f"column {need.source!r} (mapped onto {need.name}) occurs in no row of {where}"
                    f"{did_you_mean(need.source, sorted(self._field_names))}"
                ))
            elif need.note and need.kind in ("tool", "agent") and need.name in (self._tools if need.kind == "tool" else self._agents):
                notes.append(need.error(self._unnamed(need)))
            elif need.kind == "tool" and need.name in self._tools:
                hint = did_you_mean(need.name, sorted(self._tool_names))
                if not self._tool_names:
                    hint = "; the traces hold no tool calls" if self.traces else ""
                errors.append(need.error(f"tool {need.name!r} is called in no trace of {where}{hint}"))
            elif need.kind == "value" and need.name not in self._fields:
                shown = self._value_seen.get(need.name)
                if not shown:
                    continue  # the field holds no value anywhere: its own check speaks
                missing = self._values.get(need.name, set())
                never = [value_text(v) for v in need.values if value_key(v) in missing]
                if never:
                    has = ", ".join(shown) + (" …" if len(shown) >= MAX_SHOWN_VALUES else "")
                    quoted = ", ".join(repr(v) for v in never)
                    notes.append(need.error(f"{quoted} never occurs in {need.name!r}, which has {has}: it matches no trace"))
        return errors, notes

    def _unnamed(self, need: Need) -> str:
        """A step rule's tool or agent name that no trace has, with the names the traces do have."""
        have = sorted(self._tool_names if need.kind == "tool" else self._agent_names)
        listed = ", ".join(have[:10]) + (", ..." if len(have) > 10 else "") if have else "none"
        return (
            f"the rule names {need.kind} {need.name!r}, which no trace has{did_you_mean(need.name, have)} "
            f"({need.kind}s seen: {listed})"
        )

    def _suggest(self, name: str) -> str:
        head, dot, rest = name.partition(".")
        vocab = sorted(self._field_names | DIRECT_FIELDS)
        if dot and head in ("metadata", "labels"):
            hint = did_you_mean(rest, vocab)
            return hint.replace(" '", f" '{head}.", 1) if hint else ""
        return did_you_mean(name, vocab)


def _top(path: str) -> str:
    return path.partition(".")[0]


def _mapped_present(trace: Trace, name: str) -> bool:
    value = getattr(trace, name, MISSING)
    if isinstance(value, (list, dict)):
        return bool(value)
    return not is_absent(value)


def _collect_paths(obj: Mapping[str, Any], prefix: str, out: set[str], depth: int) -> None:
    for key, value in obj.items():
        if len(out) >= MAX_NAMES:
            return
        path = f"{prefix}{key}"
        out.add(path)
        if isinstance(value, dict) and depth + 1 < MAX_DEPTH:
            _collect_paths(value, path + ".", out, depth + 1)


def _tool_names(trace: Trace) -> set[str]:
    # names only: Trace.tool_calls would parse every call's arguments
    names = {call.function.name for m in trace.messages for call in (m.tool_calls or ())}
    names.update(step.name for step in trace.steps if step.kind == "tool" and step.name)
    return names


#: the step rules' keys that name a tool or an agent: rule -> ((kind, key), ...); a
#: bare key ("" rule) sits beside the rule's own value (``max_tool_calls: 3, tool: x``)
_STEP_RULE_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "tool_order": (("tool", "tool"), ("tool", "after"), ("tool", "before")),
    "agent_spoke": (("agent", "name"),),
}
_SIBLING_TOOL_RULES = ("max_tool_calls", "repeated_tool_call")

#: ``(kind, name, key path, note)``: see :class:`Need`
RuleName = tuple[str, str, tuple[str | int, ...], bool]


def needs_of_rule(spec: Any, path: tuple[str | int, ...]) -> list[RuleName]:
    """The fields, tool names and agent names a ``rule:`` mapping reads, found by
    walking it: any ``field:`` option, any ``tool_called`` name (no trace has it: an
    error), the tools of ``tool_order``, ``max_tool_calls`` and ``repeated_tool_call``
    and the agent of ``agent_spoke`` (no trace has it: a note), and the same inside
    nested rules (``any``, ``all``, ``not``)."""
    out: list[RuleName] = []
    if isinstance(spec, Mapping):
        for key, value in spec.items():
            if key == "field" and isinstance(value, str) and value:
                out.append(("field", value, (*path, "field"), False))
            elif key == "tool_called":
                if isinstance(value, str) and value:
                    out.append(("tool", value, (*path, "tool_called"), False))
                elif isinstance(value, Mapping) and isinstance(value.get("name"), str):
                    out.append(("tool", value["name"], (*path, "tool_called", "name"), False))
            elif key in _STEP_RULE_NAMES:
                if isinstance(value, Mapping):
                    for kind, sub in _STEP_RULE_NAMES[key]:
                        if isinstance(value.get(sub), str) and value[sub]:
                            out.append((kind, value[sub], (*path, key, sub), True))
            elif key == "tool" and isinstance(value, str) and value and any(r in spec for r in _SIBLING_TOOL_RULES):
                out.append(("tool", value, (*path, "tool"), True))
            elif key != "json_schema" and isinstance(value, (Mapping, list)):  # a schema is data, not rules
                out.extend(needs_of_rule(value, (*path, str(key))))
    elif isinstance(spec, list):
        for i, item in enumerate(spec):
            out.extend(needs_of_rule(item, (*path, i)))
    return out
