"""Built-in rule kinds. Each rule describes the failure it detects (see docs/detectors.md)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..patterns import PatternTimeout, UserPattern, cached_pattern, compile_pattern
from ..trace import MISSING, CallView, Trace, speakers, tool_call_views, tool_names
from ..verdict import FAIL, Verdict, step_of
from . import Detector, RuleError, RuleKind, build_rule

__all__ = ["BUILTIN_RULE_KINDS"]

_FIELD = "output"
_PASS = Verdict.pass_()


def _text(trace: Trace, path: str) -> str | None:
    # most rules read the output: the attribute, without Trace.get's lookup of the path
    value = trace.output if path == _FIELD else trace.get(path)
    if value is MISSING or value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _missing(path: str) -> Verdict:
    return Verdict.error(f"field {path!r} is missing in this trace")


def _output_step(trace: Trace, path: str) -> dict[str, Any]:
    """Where a finding in the trace's output happened: its last LLM step that said something
    (the step that wrote the reply), as ``Verdict.fail`` keywords; none for other fields."""
    if path != _FIELD:
        return {}
    for i in range(len(trace.steps) - 1, -1, -1):
        step = trace.steps[i]
        if step.kind == "llm" and str(step.output or "").strip():
            return {"step_id": step.id, "step_index": i}
    return {}


def _call_step(trace: Trace, call: CallView) -> dict[str, Any]:
    """A call's step, as ``Verdict.fail`` keywords (a call read from messages of a trace
    without steps has no step to name)."""
    if 0 <= call.at < len(trace.steps) and trace.steps[call.at].id == call.step_id:
        return {"step_id": call.step_id, "step_index": call.at}
    return {"evidence": call.step_id}


@dataclass(frozen=True)
class Regex:
    """FAIL when the pattern is found in the field."""

    pattern: UserPattern
    field: str = _FIELD

    def __call__(self, trace: Trace) -> Verdict:
        text = _text(trace, self.field)
        if text is None:
            return _missing(self.field)
        pattern = self.pattern
        if pattern.literals is not None and pattern.cannot_match(
            text, _lowered(text) if pattern.ignore_case and text.isascii() else text
        ):
            return _PASS  # no literal every match holds is in the text: the search would find nothing
        try:
            m = pattern.search(text)
        except PatternTimeout as exc:
            return Verdict.error(f"{self.field}: {exc}")
        if m is None:
            return _PASS
        return Verdict.fail(f"{self.field} matches /{self.pattern.pattern}/: {m.group(0)!r:.80}", m.group(0), **_output_step(trace, self.field))

    def __repr__(self) -> str:
        return f"regex(/{self.pattern.pattern}/ in {self.field})"


#: the last text a case-blind rule lowered, and its lowered form (one tuple: a thread
#: that reads it never sees one text with another's lowered form)
_lowered_last: tuple[Any, str] = (None, "")


def _lowered(text: str) -> str:
    """``text.lower()``, once for the several rules that read one output case-blind
    (the same text object lowers alike; holding it keeps the object alive)."""
    global _lowered_last
    held = _lowered_last
    if held[0] is text:
        return held[1]
    low = text.lower()
    _lowered_last = (text, low)
    return low


@dataclass(frozen=True)
class Contains:
    """FAIL when the field contains any of the phrases (``negate``: none of them)."""

    phrases: tuple[str, ...]
    field: str = _FIELD
    ignore_case: bool = True
    negate: bool = False
    #: (phrase, what to look for): lowered once here, not once per trace
    _needles: tuple[tuple[str, str], ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        needles = tuple(p.lower() for p in self.phrases) if self.ignore_case else self.phrases
        object.__setattr__(self, "_needles", tuple(zip(self.phrases, needles)))

    def __call__(self, trace: Trace) -> Verdict:
        text = _text(trace, self.field)
        if text is None:
            return _missing(self.field)
        hay = _lowered(text) if self.ignore_case else text
        found = None
        for phrase, needle in self._needles:
            if needle in hay:
                found = phrase
                break
        if self.negate:
            if found is None:
                return Verdict.fail(f"{self.field} contains none of {list(self.phrases)}", **_output_step(trace, self.field))
            return _PASS
        if found is not None:
            return Verdict.fail(f"{self.field} contains {found!r}", found, **_output_step(trace, self.field))
        return _PASS

    def __repr__(self) -> str:
        return f"{'not_contains' if self.negate else 'contains'}({list(self.phrases)} in {self.field})"


@dataclass(frozen=True)
class ArgMatch:
    """One condition on a tool call's arguments: the value at a JSON path equals
    ``value``, or (``pattern``) its text matches the regular expression."""

    path: str
    value: Any = None
    pattern: UserPattern | None = None

    def __call__(self, arguments: Any) -> bool:
        actual = _at_path(arguments, self.path)
        if actual is MISSING:
            return False
        if self.pattern is not None:
            text = actual if isinstance(actual, str) else json.dumps(actual, default=str)
            return self.pattern.search(text) is not None
        return _same(actual, self.value)

    def __repr__(self) -> str:
        return f"{self.path}~/{self.pattern.pattern}/" if self.pattern is not None else f"{self.path}={self.value!r}"


def _at_path(obj: Any, path: str) -> Any:
    """``a.b[0].c`` (or ``a.b.0.c``) inside parsed JSON; MISSING when absent."""
    for part in re.findall(r"[^.\[\]]+", path):
        if isinstance(obj, Mapping) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return MISSING
    return obj


def _where(call: CallView) -> str:
    """How a reason points at a call: its step id and its place."""
    return f"step {call.step_id} (#{call.at})"


@dataclass(frozen=True)
class ToolCalled:
    """FAIL when the tool is called (``present: true``) or not called (``present: false``);
    ``args`` / ``args_match`` narrow it to calls whose arguments match."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    present: bool = True
    matchers: tuple[ArgMatch, ...] = ()

    def _matches(self, arguments: Any) -> bool:
        if self.args and not isinstance(arguments, Mapping):
            return False
        return all(
            k in arguments and _same(arguments[k], v) for k, v in self.args.items()
        ) and all(m(arguments) for m in self.matchers)

    def __call__(self, trace: Trace) -> Verdict:
        if not self.args and not self.matchers:
            # the name alone decides; only a call that was found needs its place (the views, the steps)
            by_name = self.name in tool_names(trace)
            if not self.present:
                return _PASS if by_name else Verdict.fail(f"tool {self.name} was not called")
            if not by_name:
                return _PASS
        called = next((c for c in tool_call_views(trace) if c.name == self.name and self._matches(c.arguments)), None)
        what = self.name + self._narrowed()
        if called is not None and self.present:
            return Verdict.fail(f"tool {what} was called at {_where(called)}", **_call_step(trace, called))
        if called is None and not self.present:
            return Verdict.fail(f"tool {what} was not called")
        return _PASS

    def _narrowed(self) -> str:
        parts = [f"{k}={v!r}" for k, v in self.args.items()] + [repr(m) for m in self.matchers]
        return f" with {', '.join(parts)}" if parts else ""

    def __repr__(self) -> str:
        args = f", args={dict(self.args)}" if self.args else ""
        paths = f", paths=[{', '.join(map(repr, self.matchers))}]" if self.matchers else ""
        return f"tool_called({self.name}{args}{paths}, present={self.present})"


def _same(actual: Any, expected: Any) -> bool:
    return actual == expected or str(actual) == str(expected)


@dataclass(frozen=True)
class ToolOrder:
    """FAIL when a call of ``tool`` breaks the order: no ``after`` call before it, or
    (``before``) no ``before`` call after it."""

    tool: str
    other: str
    after: bool  # True: ``tool`` must come after ``other``

    def __call__(self, trace: Trace) -> Verdict:
        calls = tool_call_views(trace)
        positions = [i for i, c in enumerate(calls) if c.name == self.other]
        for i, call in enumerate(calls):
            if call.name != self.tool:
                continue
            if self.after and not any(p < i for p in positions):
                return Verdict.fail(f"{self.tool} was called at {_where(call)} with no {self.other} call before it", **_call_step(trace, call))
            if not self.after and not any(p > i for p in positions):
                return Verdict.fail(f"{self.tool} was called at {_where(call)} with no {self.other} call after it", **_call_step(trace, call))
        return _PASS

    def __repr__(self) -> str:
        return f"tool_order({self.tool} {'after' if self.after else 'before'} {self.other})"


@dataclass(frozen=True)
class StepError:
    """FAIL when a step has error status (``kind`` / ``name``: only such steps)."""

    kind: str | None = None
    name: str | None = None

    def __call__(self, trace: Trace) -> Verdict:
        for i, step in enumerate(trace.steps):
            if step.status != "error":
                continue
            if (self.kind is None or step.kind == self.kind) and (self.name is None or step.name == self.name):
                what = f"{step.kind} step {step.name!r}" if step.name else f"{step.kind} step"
                why = f": {step.error:.120}" if step.error else ""
                return Verdict.fail(f"{what} {step.id} (#{i}) has error status{why}", step_id=step.id, step_index=i)
        return _PASS

    def __repr__(self) -> str:
        narrowed = [f"{k}={v}" for k, v in (("kind", self.kind), ("name", self.name)) if v]
        return f"step_error({', '.join(narrowed)})"


@dataclass(frozen=True)
class MaxCount:
    """FAIL when the trace has more than ``limit`` steps (``kind``: of that kind), or
    more than ``limit`` tool calls (``tool``: of that tool)."""

    limit: int
    what: str  # "steps" or "tool calls"
    only: str | None = None

    def __call__(self, trace: Trace) -> Verdict:
        if self.what == "steps":
            n = sum(1 for s in trace.steps if self.only is None or s.kind == self.only)
            if not trace.steps and self.only is None:
                n = len(trace.messages)  # a chat trace: its turns are its steps
            label = f"{self.only} steps" if self.only else "steps"
        else:
            n = sum(1 for c in tool_call_views(trace) if self.only is None or c.name == self.only)
            label = f"calls of {self.only}" if self.only else "tool calls"
        if n > self.limit:
            return Verdict.fail(f"{n} {label}, more than {self.limit}", n)
        return _PASS

    def __repr__(self) -> str:
        kind = "max_steps" if self.what == "steps" else "max_tool_calls"
        return f"{kind}({self.limit}{', ' + self.only if self.only else ''})"


@dataclass(frozen=True)
class RepeatedCall:
    """FAIL when the same tool is called with the same arguments ``times`` times:
    in a row (``consecutive``, the default), or in all."""

    times: int
    consecutive: bool = True
    tool: str | None = None

    def __call__(self, trace: Trace) -> Verdict:
        seen: dict[str, int] = {}
        run_key, run = "", 0
        for call in tool_call_views(trace):
            if self.tool is not None and call.name != self.tool:
                if self.consecutive:
                    run_key, run = "", 0
                continue
            key = call.name + "\x00" + json.dumps(call.arguments, sort_keys=True, default=str)
            if self.consecutive:
                run = run + 1 if key == run_key else 1
                run_key, count = key, run
            else:
                count = seen[key] = seen.get(key, 0) + 1
            if count >= self.times:
                how = "in a row" if self.consecutive else "in all"
                args = json.dumps(call.arguments, default=str)
                return Verdict.fail(
                    f"{call.name}({args:.80}) called {count} times {how}, the last at {_where(call)}", **_call_step(trace, call)
                )
        return _PASS

    def __repr__(self) -> str:
        return f"repeated_tool_call({self.times}{'' if self.consecutive else ', in all'}{', ' + self.tool if self.tool else ''})"


@dataclass(frozen=True)
class AgentSpoke:
    """FAIL when the agent speaks (``present: true``) or never does (``present: false``)."""

    name: str
    present: bool = True

    def __call__(self, trace: Trace) -> Verdict:
        turn = next(((i, sid) for i, sid, who in speakers(trace) if who == self.name), None)
        if turn is not None and self.present:
            i, sid = turn
            at = {"step_id": sid, "step_index": i} if 0 <= i < len(trace.steps) and trace.steps[i].id == sid else {}
            return Verdict.fail(f"agent {self.name} spoke at {sid} (#{i})", **at)
        if turn is None and not self.present:
            return Verdict.fail(f"agent {self.name} did not speak")
        return _PASS

    def __repr__(self) -> str:
        return f"agent_spoke({self.name}, present={self.present})"


@dataclass(frozen=True)
class JsonValid:
    """FAIL when the field is not valid JSON."""

    field: str = _FIELD

    def __call__(self, trace: Trace) -> Verdict:
        text = _text(trace, self.field)
        if text is None:
            return _missing(self.field)
        try:
            json.loads(text)
        except ValueError as exc:
            return Verdict.fail(f"{self.field} is not valid JSON: {exc}")
        return _PASS

    def __repr__(self) -> str:
        return f"json_valid({self.field})"


@dataclass(frozen=True)
class JsonSchema:
    """FAIL when the field is not JSON or does not match the schema."""

    schema: Mapping[str, Any]
    field: str = _FIELD

    def __post_init__(self) -> None:
        import jsonschema

        cls = jsonschema.validators.validator_for(self.schema)
        try:
            cls.check_schema(self.schema)
        except jsonschema.SchemaError as exc:
            raise RuleError(f"invalid JSON schema: {exc.message}") from None
        object.__setattr__(self, "_validator", _bounded_patterns(cls)(self.schema))

    def __call__(self, trace: Trace) -> Verdict:
        text = _text(trace, self.field)
        if text is None:
            return _missing(self.field)
        try:
            doc = json.loads(text)
        except ValueError as exc:
            return Verdict.fail(f"{self.field} is not valid JSON: {exc}")
        try:
            error = next(iter(self._validator.iter_errors(doc)), None)  # type: ignore[attr-defined]
        except PatternTimeout as exc:
            return Verdict.error(f"{self.field}: JSON schema {exc}")
        except RecursionError:
            return Verdict.error(f"{self.field} is nested too deeply to check against the schema")
        if error is None:
            return _PASS
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return Verdict.fail(f"{self.field} violates the schema at {where}: {error.message}")

    def __repr__(self) -> str:
        return f"json_schema({self.field})"


def _bounded_patterns(cls: Any) -> Any:
    """``cls`` with ``pattern`` / ``patternProperties`` matched under the time limit.

    jsonschema matches them with ``re``, which a catastrophic pattern in a
    user's schema would hang on one unlucky output.
    """
    import jsonschema

    def search(pattern: str, text: str) -> bool:
        return cached_pattern(pattern).search(text) is not None

    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Any:
        if validator.is_type(instance, "string") and not search(patrn, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")

    def pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Any:
        if not validator.is_type(instance, "object"):
            return
        for patrn, subschema in patterns.items():
            for k, v in instance.items():
                if search(patrn, k):
                    yield from validator.descend(v, subschema, path=k, schema_path=patrn)

    original_additional = cls.VALIDATORS.get("additionalProperties")

    def additional_properties(validator: Any, aP: Any, instance: Any, schema: Any) -> Any:
        # the stock check matches patternProperties with re: match them here and
        # hand it those keys as plain properties instead
        patterns = schema.get("patternProperties")
        if patterns and validator.is_type(instance, "object"):
            props = schema.get("properties", {})
            matched = {k: True for k in instance if k not in props and any(search(p, k) for p in patterns)}
            schema = {**schema, "patternProperties": {}, "properties": {**props, **matched}}
        yield from original_additional(validator, aP, instance, schema)

    overrides = {"pattern": pattern, "patternProperties": pattern_properties}
    if original_additional is not None:
        overrides["additionalProperties"] = additional_properties
    return jsonschema.validators.extend(cls, overrides)


@dataclass(frozen=True)
class Length:
    """FAIL when the field is longer than ``max_chars`` or shorter than ``min_chars``."""

    limit: int
    longest: bool
    field: str = _FIELD

    def __call__(self, trace: Trace) -> Verdict:
        text = _text(trace, self.field)
        if text is None:
            return _missing(self.field)
        n = len(text)
        if self.longest and n > self.limit:
            return Verdict.fail(f"{self.field} has {n} characters, more than {self.limit}", n)
        if not self.longest and n < self.limit:
            return Verdict.fail(f"{self.field} has {n} characters, fewer than {self.limit}", n)
        return _PASS

    def __repr__(self) -> str:
        return f"{'max' if self.longest else 'min'}_chars({self.limit}, {self.field})"


@dataclass(frozen=True)
class Combine:
    """``any``: FAIL when any child fails; ``all``: when every child fails; ``not``: when the child passes."""

    op: str
    children: tuple[Detector, ...]

    def __call__(self, trace: Trace) -> Verdict:
        from ..verdict import to_verdict

        results = [to_verdict(child(trace)) for child in self.children]
        errors = [v for v in results if v.errored]
        if errors:
            return errors[0]
        if self.op == "not":
            if results[0].failed:
                return _PASS
            return Verdict.fail(f"not {self.children[0]!r}: it did not match")
        failed = [v for v in results if v.failed]
        if (self.op == "any" and failed) or (self.op == "all" and len(failed) == len(results)):
            # the earliest step a failing child names is where the combination failed
            located = [(loc[1] if loc[1] is not None else len(trace.steps), i) for i, v in enumerate(failed) if (loc := step_of(v.evidence))]
            at = failed[min(located)[1]].evidence if located else None
            return Verdict(FAIL, "; ".join(v.reason for v in failed), at)
        return _PASS

    def __repr__(self) -> str:
        return f"{self.op}({', '.join(map(repr, self.children))})"


def _regex(value: Any, field: str = _FIELD) -> Detector:
    if not isinstance(value, str) or not value:
        raise RuleError("regex takes a non-empty pattern string")
    try:
        pattern = compile_pattern(value)
    except ValueError as exc:
        raise RuleError(str(exc)) from None
    return Regex(pattern, _field(field))


def _phrases(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or not items or not all(isinstance(p, str) and p for p in items):
        raise RuleError("takes a phrase or a non-empty list of phrases")
    return tuple(items)


def _contains(value: Any, field: str = _FIELD, ignore_case: bool = True) -> Detector:
    return Contains(_phrases(value), _field(field), _bool(ignore_case, "ignore_case"))


def _not_contains(value: Any, field: str = _FIELD, ignore_case: bool = True) -> Detector:
    return Contains(_phrases(value), _field(field), _bool(ignore_case, "ignore_case"), negate=True)


def _keys(value: Mapping[str, Any], valid: tuple[str, ...]) -> None:
    unknown = set(value) - set(valid)
    if unknown:
        from ..errors import did_you_mean

        key = sorted(map(str, unknown))[0]
        raise RuleError(f"unknown key {key!r}{did_you_mean(key, valid)}", (key,))


def _name(value: Any, key: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise RuleError(f"{key!r} ({what}) is required", (key,))
    return value


_TOOL_KEYS = ("name", "args", "args_match", "present")


def _tool_called(value: Any) -> Detector:
    if isinstance(value, str) and value:
        return ToolCalled(value)
    if not isinstance(value, Mapping):
        raise RuleError("takes a tool name or {name, args, args_match, present}")
    _keys(value, _TOOL_KEYS)
    name = _name(value.get("name"), "name", "the tool's name")
    args = value.get("args", {})
    if not isinstance(args, Mapping):
        raise RuleError("'args' takes a mapping of argument (or JSON path) -> expected value", ("args",))
    plain = {k: v for k, v in args.items() if not _is_path(str(k))}
    matchers = [ArgMatch(str(k), v) for k, v in args.items() if _is_path(str(k))]
    patterns = value.get("args_match", {})
    if not isinstance(patterns, Mapping):
        raise RuleError("'args_match' takes a mapping of argument (or JSON path) -> regular expression", ("args_match",))
    for path, pattern in patterns.items():
        if not isinstance(pattern, str) or not pattern:
            raise RuleError("takes a regular expression", ("args_match", str(path)))
        try:
            # time-limited like every user regex: a catastrophic one makes the trace an error
            matchers.append(ArgMatch(str(path), pattern=compile_pattern(pattern)))
        except ValueError as exc:
            raise RuleError(str(exc), ("args_match", str(path))) from None
    return ToolCalled(name, plain, _bool(value.get("present", True), "present"), tuple(matchers))


def _is_path(key: str) -> bool:
    return "." in key or "[" in key


def _tool_order(value: Any) -> Detector:
    if not isinstance(value, Mapping):
        raise RuleError("takes {tool, after} or {tool, before}")
    _keys(value, ("tool", "after", "before"))
    tool = _name(value.get("tool"), "tool", "the tool whose calls are checked")
    given = [k for k in ("after", "before") if k in value]
    if len(given) != 1:
        raise RuleError("give exactly one of 'after' or 'before'", ())
    other = _name(value[given[0]], given[0], "the other tool")
    return ToolOrder(tool, other, given[0] == "after")


def _step_error(value: Any, kind: str | None = None, name: str | None = None) -> Detector:
    if value is not True:
        raise RuleError("step_error takes true (narrow it with the options kind and name)")
    return StepError(_step_kind(kind), _opt_name(name, "name"))


def _step_kind(kind: Any) -> str | None:
    from ..trace import STEP_KINDS

    if kind is None:
        return None
    if kind not in STEP_KINDS:
        from ..errors import did_you_mean

        raise RuleError(f"unknown step kind {kind!r}{did_you_mean(str(kind), STEP_KINDS)}; one of: {', '.join(STEP_KINDS)}", ("kind",))
    return str(kind)


def _opt_name(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RuleError(f"{key!r} takes a name", (key,))
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RuleError("takes a whole number (0 or more)")
    return value


def _max_steps(value: Any, kind: str | None = None) -> Detector:
    return MaxCount(_count(value), "steps", _step_kind(kind))


def _max_tool_calls(value: Any, tool: str | None = None) -> Detector:
    return MaxCount(_count(value), "tool calls", _opt_name(tool, "tool"))


def _repeated_tool_call(value: Any, consecutive: bool = True, tool: str | None = None) -> Detector:
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise RuleError("takes how many identical calls make a loop (2 or more)")
    return RepeatedCall(value, _bool(consecutive, "consecutive"), _opt_name(tool, "tool"))


def _agent_spoke(value: Any) -> Detector:
    if isinstance(value, str) and value:
        return AgentSpoke(value)
    if not isinstance(value, Mapping):
        raise RuleError("takes an agent name or {name, present}")
    _keys(value, ("name", "present"))
    return AgentSpoke(_name(value.get("name"), "name", "the agent's name"), _bool(value.get("present", True), "present"))


def _json_valid(value: Any, field: str = _FIELD) -> Detector:
    if value is not True:
        raise RuleError("json_valid takes true")
    return JsonValid(_field(field))


def _json_schema(value: Any, field: str = _FIELD) -> Detector:
    if not isinstance(value, Mapping):
        raise RuleError("json_schema takes a JSON Schema mapping")
    return JsonSchema(dict(value), _field(field))


def _length(longest: bool) -> Any:
    def build(value: Any, field: str = _FIELD) -> Detector:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RuleError("takes a whole number of characters (0 or more)")
        return Length(value, longest, _field(field))

    return build


def _composite(op: str) -> Any:
    def build(value: Any, kinds: Mapping[str, RuleKind]) -> Detector:
        if op == "not":
            children: list[Any] = [value]
        elif isinstance(value, list) and value:
            children = value
        else:
            raise RuleError(f"{op!r} takes a non-empty list of rules")
        built = []
        for i, child in enumerate(children):
            try:
                built.append(build_rule(child, kinds))
            except RuleError as exc:
                raise RuleError(str(exc), ((i,) if op != "not" else ()) + exc.path) from None
        return Combine(op, tuple(built))

    return build


def _field(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise RuleError("'field' takes a field name such as output, input or metadata.x", ("field",))
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise RuleError(f"{name!r} takes true or false", (name,))
    return value


BUILTIN_RULE_KINDS: tuple[RuleKind, ...] = (
    RuleKind("regex", _regex),
    RuleKind("contains", _contains),
    RuleKind("not_contains", _not_contains),
    RuleKind("tool_called", _tool_called),
    RuleKind("tool_order", _tool_order),
    RuleKind("step_error", _step_error),
    RuleKind("max_steps", _max_steps),
    RuleKind("max_tool_calls", _max_tool_calls),
    RuleKind("repeated_tool_call", _repeated_tool_call),
    RuleKind("agent_spoke", _agent_spoke),
    RuleKind("json_valid", _json_valid),
    RuleKind("json_schema", _json_schema),
    RuleKind("max_chars", _length(True)),
    RuleKind("min_chars", _length(False)),
    RuleKind("any", _composite("any")),
    RuleKind("all", _composite("all")),
    RuleKind("not", _composite("not")),
)
