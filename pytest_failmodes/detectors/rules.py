"""Built-in rule kinds. Each rule describes the failure it detects (see docs/detectors.md)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..patterns import PatternTimeout, UserPattern, cached_pattern, compile_pattern
from ..trace import MISSING, Trace
from ..verdict import Verdict
from . import Detector, RuleError, RuleKind, build_rule

__all__ = ["BUILTIN_RULE_KINDS"]

_FIELD = "output"
_PASS = Verdict.pass_()


def _text(trace: Trace, path: str) -> str | None:
    value = trace.get(path)
    if value is MISSING or value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _missing(path: str) -> Verdict:
    return Verdict.error(f"field {path!r} is missing in this trace")


@dataclass(frozen=True)
class Regex:
    """FAIL when the pattern is found in the field."""

    pattern: UserPattern
    field: str = _FIELD

    def __call__(self, trace: Trace) -> Verdict:
        text = _text(trace, self.field)
        if text is None:
            return _missing(self.field)
        try:
            m = self.pattern.search(text)
        except PatternTimeout as exc:
            return Verdict.error(f"{self.field}: {exc}")
        if m is None:
            return _PASS
        return Verdict.fail(f"{self.field} matches /{self.pattern.pattern}/: {m.group(0)!r:.80}", m.group(0))

    def __repr__(self) -> str:
        return f"regex(/{self.pattern.pattern}/ in {self.field})"


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
        hay = text.lower() if self.ignore_case else text
        found = None
        for phrase, needle in self._needles:
            if needle in hay:
                found = phrase
                break
        if self.negate:
            if found is None:
                return Verdict.fail(f"{self.field} contains none of {list(self.phrases)}")
            return _PASS
        if found is not None:
            return Verdict.fail(f"{self.field} contains {found!r}", found)
        return _PASS

    def __repr__(self) -> str:
        return f"{'not_contains' if self.negate else 'contains'}({list(self.phrases)} in {self.field})"


@dataclass(frozen=True)
class ToolCalled:
    """FAIL when the tool is called (``present: true``) or not called (``present: false``)."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    present: bool = True

    def _matches(self, arguments: Mapping[str, Any]) -> bool:
        return all(k in arguments and _same(arguments[k], v) for k, v in self.args.items())

    def __call__(self, trace: Trace) -> Verdict:
        called = any(c.name == self.name and self._matches(c.arguments) for c in trace.tool_calls)
        what = self.name + (f" with {dict(self.args)}" if self.args else "")
        if called and self.present:
            return Verdict.fail(f"tool {what} was called")
        if not called and not self.present:
            return Verdict.fail(f"tool {what} was not called")
        return _PASS

    def __repr__(self) -> str:
        return f"tool_called({self.name}{', args=' + str(dict(self.args)) if self.args else ''}, present={self.present})"


def _same(actual: Any, expected: Any) -> bool:
    return actual == expected or str(actual) == str(expected)


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
            return Verdict.fail("; ".join(v.reason for v in failed))
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


def _tool_called(value: Any) -> Detector:
    if isinstance(value, str) and value:
        return ToolCalled(value)
    if not isinstance(value, Mapping):
        raise RuleError("takes a tool name or {name, args, present}")
    unknown = set(value) - {"name", "args", "present"}
    if unknown:
        from ..errors import did_you_mean

        key = sorted(unknown)[0]
        raise RuleError(f"unknown key {key!r}{did_you_mean(key, ('name', 'args', 'present'))}", (key,))
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise RuleError("'name' (the tool's name) is required", ("name",))
    args = value.get("args", {})
    if not isinstance(args, Mapping):
        raise RuleError("'args' takes a mapping of argument -> expected value", ("args",))
    return ToolCalled(name, dict(args), _bool(value.get("present", True), "present"))


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
    RuleKind("json_valid", _json_valid),
    RuleKind("json_schema", _json_schema),
    RuleKind("max_chars", _length(True)),
    RuleKind("min_chars", _length(False)),
    RuleKind("any", _composite("any")),
    RuleKind("all", _composite("all")),
    RuleKind("not", _composite("not")),
)
