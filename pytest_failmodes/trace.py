"""The trace model: one interaction of the application under test."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cached_property
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Trace", "Message", "Step", "ToolCall", "MISSING", "TRACE_FIELDS", "STEP_KINDS", "DERIVED",
    "CallView", "tool_call_views", "speakers", "new_step", "make_step", "trace_from_fields", "plain_fields", "assemble_trace",
    "lazy_trace", "tool_names",
]

#: the fields a dataset row can map onto (``fields:`` in a definition)
TRACE_FIELDS = ("id", "input", "output", "messages", "steps", "metadata", "labels")

#: what a step can be; span formats map their own kinds onto these
STEP_KINDS = (
    "llm", "tool", "agent", "retriever", "chain", "embedding", "reranker",
    "guardrail", "evaluator", "message", "other",
)


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


#: returned by :meth:`Trace.get` when a path does not exist in the trace
MISSING: Any = _Missing()


class _Function(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    arguments: str | dict[str, Any] = "{}"

    @cached_property
    def parsed_arguments(self) -> Any:
        """The arguments as data: parsed once from JSON text (``{}`` when blank), kept as
        the text the model wrote when it is not JSON. :attr:`Trace.tool_calls`,
        :func:`tool_call_views` and the derived tool steps all read this one value."""
        return _arguments(self.arguments)


class _ToolCallItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    type: str = "function"
    function: _Function


class Message(BaseModel):
    """A chat message in OpenAI format (tool calls included)."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[_ToolCallItem] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        """The message's text; content parts of type ``text`` are joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(
            str(part.get("text", "")) for part in self.content if part.get("type", "text") == "text"
        )


class ToolCall(NamedTuple):
    """A tool call the assistant made: name and arguments (parsed from JSON when possible)."""

    name: str
    arguments: dict[str, Any]


class Step(BaseModel):
    """One step of a trace: a span, an LLM call, a tool call or an agent's turn.

    Steps form a tree through ``parent_id``; :attr:`Trace.steps` lists them in
    pre-order (a parent before its children, siblings by start time).
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    parent_id: str | None = None
    #: one of :data:`STEP_KINDS`
    kind: str = "other"
    #: the tool's, agent's or span's name
    name: str = ""
    input: Any = None
    output: Any = None
    #: ``ok``, ``error`` or ``unset`` (the span said nothing)
    status: str = "unset"
    error: str | None = None
    #: epoch milliseconds
    start_ms: float | None = None
    end_ms: float | None = None
    #: ``prompt``, ``completion``, ``total`` where known
    tokens: dict[str, int] = Field(default_factory=dict)
    #: the span's own attributes, as exported (flattened keys kept as they were)
    attributes: dict[str, Any] = Field(default_factory=dict)

    @property
    def duration_ms(self) -> float | None:
        if self.start_ms is None or self.end_ms is None:
            return None
        return self.end_ms - self.start_ms


class Trace(BaseModel):
    """One trace: what went in, what came out, and what is known about it.

    A trace given only as ``messages`` gets ``input`` (the last user message)
    and ``output`` (the last assistant reply with text) derived from them.
    """

    model_config = ConfigDict(coerce_numbers_to_str=True, extra="forbid")

    id: str = Field(min_length=1)
    input: str | None = None
    output: str | None = None
    messages: list[Message] = Field(default_factory=list)
    #: agent steps in pre-order; empty when the format has none (see :attr:`Trace.steps`)
    steps: list[Step] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _derive_from_messages(self) -> Trace:
        if self.output is None:
            if not self.messages:
                raise ValueError("a trace needs an 'output' or 'messages'")
            self.output = self.final_reply
        if self.input is None:
            self.input = next(
                (m.text for m in reversed(self.messages) if m.role == "user"), ""
            )
        if not self.steps and self.messages:
            # derived on first access (__getattr__): a run whose rules never look at
            # steps should not build them for every trace of a large chat dataset
            del self.__dict__["steps"]
        return self

    def __getattr__(self, name: str) -> Any:
        if name == "steps":
            steps = _steps_from_messages(self.messages)
            self.__dict__["steps"] = steps
            return steps
        if name == "messages" and _PENDING in self.__dict__:
            return _validate_pending(self)
        return super().__getattr__(name)  # type: ignore[misc]

    def _materialise(self) -> None:
        # pydantic reads fields straight from __dict__: a dump or a comparison must
        # see the messages and the derived steps, never a trace that silently lacks them
        if _PENDING in self.__dict__:
            _validate_pending(self)
        if "steps" not in self.__dict__:
            self.__getattr__("steps")

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:  # noqa: D102 - pydantic's
        self._materialise()
        return super().model_dump(**kwargs)

    def model_dump_json(self, **kwargs: Any) -> str:  # noqa: D102 - pydantic's
        self._materialise()
        return super().model_dump_json(**kwargs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Trace):
            self._materialise()
            other._materialise()
        return super().__eq__(other)

    def __getstate__(self) -> dict[Any, Any]:
        self._materialise()
        return super().__getstate__()

    def __repr_args__(self) -> Any:
        self._materialise()
        return super().__repr_args__()

    @cached_property
    def final_reply(self) -> str:
        """The last assistant message that has text ('' when there is none)."""
        for message in reversed(self.messages):
            if message.role == "assistant" and message.text:
                return message.text
        return self.output or ""

    @cached_property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """Every tool call made by the assistant, in order."""
        calls = []
        for message in self.messages:
            for item in message.tool_calls or ():
                args = item.function.parsed_arguments
                if not isinstance(args, dict):
                    # text that is not JSON, or JSON that is not an object
                    args = {"_raw": args} if args is item.function.arguments else {"_value": args}
                calls.append(ToolCall(item.function.name, args))
        return tuple(calls)

    @cached_property
    def transcript(self) -> str:
        """All message texts, one per line, prefixed by role."""
        return "\n".join(f"{m.role}: {m.text}" for m in self.messages)

    def get(self, path: str) -> Any:
        """Look up a dotted path: a trace field, or a key of ``metadata`` / ``labels``.

        ``output``, ``input``, ``id``, ``final_reply`` and ``messages`` (the
        transcript) name trace fields; ``metadata.a.b`` and ``labels.x`` are
        explicit; any other name is looked up in ``metadata``, then ``labels``,
        then among the values derived from the steps (:data:`DERIVED`), so a
        dataset's own ``model`` column wins over the model named in its spans.
        Returns :data:`MISSING` when the path does not exist.
        """
        if "." not in path:
            # the common case (a metadata key, a trace field), without splitting the path
            if path in _DIRECT:
                return getattr(self, _DIRECT[path])
            if path in self.metadata:
                return self.metadata[path]
            if path in self.labels:
                return self.labels[path]
            return self.derived.get(path, MISSING) if path in DERIVED else MISSING
        head, _, rest = path.partition(".")
        if head in _DIRECT:
            return getattr(self, _DIRECT[head]) if not rest else MISSING
        if head in ("metadata", "labels") and rest:
            return _dig(getattr(self, head), rest)
        value = _dig(self.metadata, path)
        if value is MISSING:
            value = _dig(self.labels, path)
        if value is MISSING and path in DERIVED:
            value = self.derived.get(path, MISSING)
        return value

    @cached_property
    def derived(self) -> dict[str, Any]:
        """Trace-level values computed from the steps (the keys of :data:`DERIVED`);
        a value the steps do not tell (no timing, no token counts) is absent."""
        steps = self.steps
        out: dict[str, Any] = {"steps.count": len(steps)}
        tools = [s.name for s in steps if s.kind == "tool"] if steps else [c.name for c in self.tool_calls]
        out["tools"] = list(dict.fromkeys(tools))
        out["tool_calls.count"] = len(tools)
        # agent steps, else messages that name their agent (multi-agent logs)
        out["agents"] = _distinct(name for _i, _id, name in speakers(self))
        out["errors.count"] = sum(1 for s in steps if s.status == "error")
        # the model of the first LLM call, else of any step that names one
        for step in sorted(steps, key=lambda s: s.kind != "llm"):
            model = next((step.attributes[k] for k in _MODEL_KEYS if step.attributes.get(k)), None)
            if model:
                out["model"] = str(model)
                break
        counted = {s.id for s in steps if s.tokens}
        if counted:
            # a parent span repeats its children's counts: only the outermost counted steps add up
            out["tokens.total"] = sum(
                s.tokens.get("total", s.tokens.get("prompt", 0) + s.tokens.get("completion", 0))
                for s in steps
                if s.tokens and s.parent_id not in counted
            )
        starts = [s.start_ms for s in steps if s.start_ms is not None]
        ends = [s.end_ms for s in steps if s.end_ms is not None]
        if starts and ends:
            out["latency_ms"] = max(ends) - min(starts)
        return out


#: trace-level values derived from the steps, for ``where:``, cohorts and rules
DERIVED = (
    "steps.count", "tools", "tool_calls.count", "agents", "errors.count", "model", "tokens.total", "latency_ms",
)
# where span formats name an LLM call's model, most specific first
_MODEL_KEYS = ("llm.model_name", "gen_ai.response.model", "gen_ai.request.model", "ls_model_name", "model")


_STEP_DEFAULTS = {
    "parent_id": None, "kind": "other", "name": "", "input": None, "output": None, "status": "unset",
    "error": None, "start_ms": None, "end_ms": None,
}


def new_step(**values: Any) -> Step:
    """A Step from values a reader has already checked, without validating them again.

    Readers build one per span; pydantic's ``model_construct`` costs several
    times the span's own parsing, so the instance is assembled directly.
    ``id`` is required; ``tokens`` and ``attributes`` default to new dicts.
    """
    data = {**_STEP_DEFAULTS, **values}
    data.setdefault("tokens", {})
    data.setdefault("attributes", {})
    return make_step(data)


_set = object.__setattr__
_ALL_STEP_FIELDS = frozenset(Step.model_fields)
_Model = TypeVar("_Model", bound=BaseModel)


def _unvalidated(model: type[_Model], values: dict[str, Any], fields_set: set[str]) -> _Model:
    """An instance of ``model`` with ``values`` as its ``__dict__``, built without
    validation: the least that leaves an instance pydantic can dump, copy and compare.
    ``fields_set`` is the instance's own (pydantic adds to it on assignment)."""
    obj = model.__new__(model)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", fields_set)
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


def make_step(data: dict[str, Any]) -> Step:
    """A Step whose ``data`` holds every field (see :func:`new_step`), used as its ``__dict__``.

    The span readers call this once per span, so it does the least that leaves a
    Step pydantic can dump, copy and compare.
    """
    return _unvalidated(Step, data, set(_ALL_STEP_FIELDS))


_TRACE_FIELD_SET = frozenset(TRACE_FIELDS)
_messages_adapter: Any = None
#: the key in a trace's ``__dict__``, in the place of ``messages``, of its messages until
#: something reads them: a row's raw list (assemble_trace) or a function that builds it
#: (lazy_trace). Not a field: pydantic's dumps and comparisons read fields only, and
#: Trace._materialise validates them first
_PENDING = "_pending_messages"


def trace_from_fields(data: dict[str, Any]) -> Trace | None:
    """The Trace ``Trace.model_validate(data)`` would give, built without pydantic's
    validation of the whole row, or None when ``data`` is not of the plain shape checked
    here (the caller then validates it, and gets pydantic's errors unchanged).

    The rows reader calls this once per row: validating every row was most of the
    cost of a rule run over a large JSONL file. The plain shape: a non-empty text
    ``id``, text or null ``input`` / ``output``, ``metadata`` / ``labels`` objects
    (parsed from JSON or CSV, so their keys are text), ``steps`` absent or empty;
    ``messages`` absent, or a list whose shape :func:`_plain_messages` accepts (else
    it is validated here).
    """
    if not data.keys() <= _TRACE_FIELD_SET:
        return None
    values = plain_fields(data, _NO_DICT)
    return None if values is None else assemble_trace(*values, set(data))


def plain_fields(
    data: dict[str, Any], absent: Any
) -> tuple[str, str | None, str | None, list[Any] | None, dict[str, Any], dict[str, Any]] | None:
    """``(id, input, output, messages, metadata, labels)`` of a row of the plain shape
    :func:`trace_from_fields` describes, for :func:`assemble_trace`; None for any other.
    ``absent``: what ``data.get`` gives for a structured field the row does not give
    (``None`` where a null means absent, as in the rows reader); ``messages`` comes back
    as None when absent, ``metadata`` and ``labels`` as new empty dicts."""
    get = data.get
    tid, inp, out = get("id"), get("input"), get("output")
    if type(tid) is not str or not tid or not (inp is None or type(inp) is str) or not (out is None or type(out) is str):
        return None
    # their keys are text: the rows come from JSON or CSV (checking each key cost more than the rest)
    metadata = get("metadata", absent)
    if metadata is absent:
        metadata = {}
    elif type(metadata) is not dict:
        return None
    labels = get("labels", absent)
    if labels is absent:
        labels = {}
    elif type(labels) is not dict:
        return None
    steps = get("steps", absent)
    if steps is not absent and (type(steps) is not list or steps):
        return None
    raw = get("messages", absent)
    if raw is absent:
        raw = None
    elif type(raw) is not list:
        return None
    return tid, inp, out, raw, metadata, labels


def assemble_trace(
    tid: str, inp: str | None, out: str | None, raw: list[Any] | None, metadata: dict[str, Any],
    labels: dict[str, Any], fields_set: set[str],
) -> Trace | None:
    """The trace of values :func:`trace_from_fields` has checked (``raw``: the row's
    ``messages`` list, or None), or None when its messages would not validate.

    Messages of the plain shape are kept as they were read and validated into
    :class:`Message` objects on first use: a rule over the output of a chat
    trace needs only the final reply, which is read from the raw messages here.
    """
    messages: list[Message] | None = None
    if not raw:
        messages = []
    elif not _plain_messages(raw):
        try:
            messages = _validate_messages(raw)
        except ValueError:  # pydantic's ValidationError: the full validation words it
            return None
    if out is None and not raw:
        return None
    # the order of the fields, as pydantic fills __dict__; raw messages wait in the messages'
    # place, validated when first read (Trace.__getattr__): the shape check guarantees they validate
    values: dict[str, Any] = {"id": tid, "input": inp, "output": out}
    if messages is None:
        values[_PENDING] = raw
    else:
        values["messages"] = messages
    values["steps"] = []
    values["metadata"] = metadata
    values["labels"] = labels
    trace = _unvalidated(Trace, values, fields_set)
    if messages is None:
        assert raw is not None  # messages stay None only for a non-empty plain list
        # what Trace._derive_from_messages does after a validation, from the raw messages
        if out is None:
            values["output"] = values["final_reply"] = next(
                (text for m in reversed(raw) if m["role"] == "assistant" for text in (_raw_text(m),) if text), ""
            )
            fields_set.add("output")
        if inp is None:
            values["input"] = next((_raw_text(m) for m in reversed(raw) if m["role"] == "user"), "")
            fields_set.add("input")
        del values["steps"]
        return trace
    # what Trace._derive_from_messages does after a validation (its assignments mark the fields set)
    if out is None:
        values["output"] = trace.final_reply
        fields_set.add("output")
    if inp is None:
        values["input"] = next((m.text for m in reversed(messages) if m.role == "user"), "")
        fields_set.add("input")
    if messages:
        del values["steps"]
    return trace


def _validate_messages(raw: list[Any]) -> list[Message]:
    global _messages_adapter
    if _messages_adapter is None:
        from pydantic import TypeAdapter

        _messages_adapter = TypeAdapter(list[Message])
    messages: list[Message] = _messages_adapter.validate_python(raw)
    return messages


def _validate_pending(trace: Trace) -> list[Message]:
    """Validate the messages a trace holds under :data:`_PENDING` (a row's raw list, or a
    span reader's function that builds it) and put them in their place."""
    values = trace.__dict__
    pending = values.get(_PENDING)
    if pending is None:  # another thread got here first
        return values["messages"]  # type: ignore[no-any-return]
    messages = _validate_messages(pending() if callable(pending) else pending)
    # a new __dict__ with the messages where the pending entry was (dumps follow the
    # fields' order), swapped in whole: another thread may be reading this trace
    fresh: dict[str, Any] = {}
    for key, value in values.items():
        if key == _PENDING:
            fresh["messages"] = messages
        else:
            fresh[key] = value
    _set(trace, "__dict__", fresh)
    return messages


_OPT_TEXT = (str, type(None))
_MESSAGE_TEXT_KEYS = ("tool_call_id", "name")


def _plain_messages(raw: list[Any]) -> bool:
    """Whether every message has a shape :class:`Message` validates as it is: text
    ``role``; ``content`` text, null or a list of objects; ``tool_calls`` null or a
    list of objects whose ``function`` has a text ``name`` and text or object
    ``arguments``; text or null ``tool_call_id`` / ``name``. Anything else (a number
    where text goes, say) is left to the validation, which coerces or words the error."""
    for m in raw:
        if type(m) is not dict or type(m.get("role")) is not str:
            return False
        content = m.get("content")
        if not (content is None or type(content) is str):
            if type(content) is not list:
                return False
            for part in content:
                if type(part) is not dict:
                    return False
        for key in _MESSAGE_TEXT_KEYS:
            if type(m.get(key)) not in _OPT_TEXT:
                return False
        calls = m.get("tool_calls")
        if calls is not None:
            if type(calls) is not list:
                return False
            for call in calls:
                if type(call) is not dict or type(call.get("id")) not in _OPT_TEXT:
                    return False
                if "type" in call and type(call["type"]) is not str:
                    return False
                function = call.get("function")
                if type(function) is not dict or type(function.get("name")) is not str:
                    return False
                if "arguments" in function and type(function["arguments"]) not in _ARGUMENT_TYPES:
                    return False
    return True


_ARGUMENT_TYPES = (str, dict)


def _raw_text(m: dict[str, Any]) -> str:
    # Message.text, on a message _plain_messages accepted
    content = m.get("content")
    if content is None:
        return ""
    if type(content) is str:
        return content
    return "\n".join(str(part.get("text", "")) for part in content if part.get("type", "text") == "text")


_NO_DICT: Any = object()


_LAZY_FIELDS_SET = frozenset(("id", "input", "output", "messages", "steps", "metadata"))


def lazy_trace(
    id: str, input: str, output: str, steps: list[Step], metadata: dict[str, Any],
    messages: Callable[[], list[dict[str, Any]]] | None,
) -> Trace:
    """The Trace ``Trace(id=..., input=..., output=..., messages=messages(), steps=...,
    metadata=...)`` would give, with its messages built and validated on first access.

    The span readers call this once per trace: rebuilding every trace's messages from
    flattened span attributes was a third of loading a span export, and most rules
    never read them. The caller guarantees what validation would check: ``id`` is
    non-empty text, ``input`` / ``output`` text, ``steps`` Steps, ``metadata`` a dict
    with text keys, and ``messages()`` OpenAI-shaped dicts that validate as
    :class:`Message` (it is called on first access, possibly long after reading, and
    more than once when threads reach it together: each call builds new dicts).
    """
    values: dict[str, Any] = {"id": id, "input": input, "output": output}
    # in the place of the messages field, so that building them keeps the fields' order
    if messages is None:
        values["messages"] = []
    else:
        values[_PENDING] = messages
    values["steps"] = steps
    values["metadata"] = metadata
    values["labels"] = {}
    return _unvalidated(Trace, values, set(_LAZY_FIELDS_SET))


def tool_names(trace: Trace) -> list[str]:
    """The names of the trace's tool calls, in order, as :func:`tool_call_views` names
    them, without deriving steps from the messages (a rule that asks only whether a
    tool was called should not build every chat trace's steps)."""
    state = trace.__dict__
    if "steps" not in state:
        # steps not derived yet: they would hold the assistant turns' calls (and be empty,
        # so that every message's calls count, when no assistant spoke)
        raw = state.get(_PENDING)
        if type(raw) is list:  # a row's messages, not validated yet: their plain shape holds these keys
            if any(m["role"] == "assistant" for m in raw):
                raw = [m for m in raw if m["role"] == "assistant"]
            return [call["function"]["name"] for m in raw for call in (m.get("tool_calls") or ())]
        messages = trace.messages
        if any(m.role == "assistant" for m in messages):
            messages = [m for m in messages if m.role == "assistant"]
        return [item.function.name for m in messages for item in (m.tool_calls or ())]
    if trace.steps:
        return [s.name for s in trace.steps if s.kind == "tool"]
    return [item.function.name for m in trace.messages for item in (m.tool_calls or ())]


def _steps_from_messages(messages: list[Message]) -> list[Step]:
    """An ``llm`` step per assistant turn and, under it, a ``tool`` step per tool
    call with the matching tool message as its output.

    Built with :func:`new_step`: the messages are already validated, and a
    dataset of plain chats should not pay for a second validation. A tool result
    that reads as an error (:func:`_reads_as_error`) makes its step's status ``error``.
    """
    results: dict[str, Message] = {}
    for m in messages:
        if m.role == "tool" and m.tool_call_id:
            results[m.tool_call_id] = m
    steps: list[Step] = []
    construct = new_step
    for i, m in enumerate(messages):
        if m.role != "assistant":
            continue
        sid = f"msg{i}"
        steps.append(construct(id=sid, kind="llm", name=m.name or "assistant", output=m.text, attributes={}))
        for j, call in enumerate(m.tool_calls or ()):
            result = results.get(call.id) if call.id else None
            output = result.text if result is not None else None
            error = None
            status = "unset"
            if result is not None and (getattr(result, "is_error", None) is True or _reads_as_error(output)):
                status, error = "error", output
            steps.append(construct(
                id=call.id or f"{sid}.{j}", parent_id=sid, kind="tool", name=call.function.name,
                input=call.function.parsed_arguments, output=output,
                status=status, error=error, attributes={},
            ))
    return steps


def _reads_as_error(text: str | None) -> bool:
    """Whether a tool's result says it failed, for formats with no status of their own
    (chat messages): Anthropic marks a failed result (``is_error``); OpenAI-style
    messages only show it in the text, which tools conventionally start with "Error"."""
    return bool(text) and text.lstrip()[:5].lower() == "error"  # type: ignore[union-attr]


_DIRECT = {
    "id": "id",
    "input": "input",
    "output": "output",
    "final_reply": "final_reply",
    "messages": "transcript",
    "transcript": "transcript",
}


def _dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.lstrip("-").isdigit() and -len(obj) <= int(part) < len(obj):
            obj = obj[int(part)]  # traj.0.content: an index into a list
        else:
            return MISSING
    return obj


# -- values derived from the steps (where:, cohorts and rules read them) -----------------
#
# A trace with ``steps`` is read from them; one with only OpenAI ``messages``
# from its tool calls and speakers, so a rule means the same on both shapes.


class CallView(NamedTuple):
    """A tool call as rules see it: where it is (``at``: its index in the steps, or the
    call's position among the calls of the messages), its step id, name, arguments."""

    at: int
    step_id: str
    name: str
    arguments: Any
    status: str


_CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def tool_call_views(trace: Trace) -> list[CallView]:
    """Every tool call of the trace, in order: its ``tool`` steps, else the messages' calls."""
    if trace.steps:
        return [
            CallView(i, s.id, s.name, _arguments(s.input), s.status)
            for i, s in enumerate(trace.steps)
            if s.kind == "tool"
        ]
    views = []
    n = 0
    for message in trace.messages:
        for item in message.tool_calls or ():
            views.append(CallView(n, item.id or f"call{n}", item.function.name, item.function.parsed_arguments, "unset"))
            n += 1
    return views


def _arguments(value: Any) -> Any:
    # exporters give arguments as a JSON string or as an object; rules look into objects
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else {}
        except ValueError:
            return value
    return value


def speakers(trace: Trace) -> list[tuple[int, str, str]]:
    """``(index, step id, agent name)`` for every agent turn: ``agent`` steps, else
    messages with a ``name`` or an agent's name as their role."""
    agents = [(i, s.id, s.name) for i, s in enumerate(trace.steps) if s.kind == "agent" and s.name]
    if agents:
        return agents
    # steps derived from chat messages have no agent steps: the messages name the speakers
    out = []
    for i, m in enumerate(trace.messages):
        name = m.name or (m.role if m.role not in _CHAT_ROLES else "")
        if name:
            out.append((i, f"message{i}", name))
    return out


def _distinct(names: Any) -> list[str]:
    return list(dict.fromkeys(names))
