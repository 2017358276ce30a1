"""Failure-mode definitions: YAML files and ``@failure_mode`` keyword arguments.

Validated by pydantic; every error names the file, the line and the key, and
suggests the nearest valid key for a typo.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    AllowInfNan, BaseModel, ConfigDict, Discriminator, Field, Strict, Tag, ValidationError, field_validator, model_validator,
)
from pydantic_core import PydanticCustomError

from .dataset import FORMATS, DatasetSpec
from .readers._source import is_data_path
from .detectors import Detector, RuleError, RuleKind, build_rule
from .detectors.label import LabelDetector
from .detectors.python import FixtureRef
from .engine import ModeSpec, Suite
from .errors import DefinitionError, did_you_mean, read_definition_text, strip_union_tags
from .gate_layers import merge_gate
from .trace import TRACE_FIELDS
from .seen import Need, needs_of_rule
from .values import value_text
from .where import WhereError, compile_where
from .yamlload import load_definition_yaml

if TYPE_CHECKING:
    from collections.abc import Callable

    from .probes.compare import Comparator
    from .probes.models import EquivalenceSpec, ParaphraseSpec
    from .probes.run import ProbeSpec

__all__ = ["load_suite", "suite_from_mapping", "is_definition_file", "FileDef"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
Path_ = tuple[str | int, ...]


def is_definition_file(path: Path) -> bool:
    """``failmodes.yaml`` or ``*.failmodes.yaml`` (``.yml`` too)."""
    name = path.name
    return name in ("failmodes.yaml", "failmodes.yml") or name.endswith((".failmodes.yaml", ".failmodes.yml"))


class _Strict(BaseModel):
    """Rejects unknown keys, naming the nearest valid one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            valid = list(cls.model_fields)
            for key in data:
                if key not in cls.model_fields:
                    raise PydanticCustomError(
                        "unknown_key",
                        "unknown key '{key}'{hint}",
                        {"key": str(key), "hint": did_you_mean(str(key), valid)},
                    )
        return data


#: numbers are numbers: YAML's `true` is not 1.0 and a quoted "0.05" is not 0.05 (both
#: are typos pydantic's lax mode would accept); an int is fine where a float is meant
Num = Annotated[float, Strict(), AllowInfNan(False)]
Whole = Annotated[int, Strict()]
Rate = Field(default=None, ge=0.0, le=1.0)


class GateDef(_Strict):
    max_fail_rate: Num | None = Rate
    gate_on: Literal["point", "upper", "lower"] | None = None
    max_errors: Whole | None = Field(default=None, ge=0)
    min_cohort_size: Whole | None = Field(default=None, ge=0)
    cohort_limits: dict[str, Num] = Field(default_factory=dict)
    min_increase: Num | None = Field(default=None, ge=0.0, lt=1.0)
    #: gate on the judge-error-corrected rate (a mode with human labels; see docs/calibration.md)
    gate_on_corrected: bool | None = None
    #: a mode whose every trace was skipped passes (by default it fails: it checked nothing)
    allow_empty: bool | None = None

    @field_validator("cohort_limits")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        for cohort, rate in value.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"limit for {cohort!r} must be between 0 and 1, got {rate}")
        return value


class DatasetDef(_Strict):
    path: str = Field(min_length=1)
    fields: dict[str, str | list[str]] = Field(default_factory=dict)
    #: a file type (jsonl, json, csv) or a trace format (openinference, otlp, ...)
    format: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str | None) -> str | None:
        if value is not None and value not in FORMATS:
            raise PydanticCustomError(
                "unknown_format",
                "unknown format '{value}'{hint}; use one of: " + ", ".join(FORMATS),
                {"value": value, "hint": did_you_mean(value, FORMATS)},
            )
        return value

    @field_validator("fields")
    @classmethod
    def _trace_fields(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for key in value:
            if key not in TRACE_FIELDS:
                raise PydanticCustomError(
                    "unknown_key",
                    "unknown trace field '{key}'{hint}; map onto one of: " + ", ".join(TRACE_FIELDS),
                    {"key": key, "hint": did_you_mean(key, TRACE_FIELDS)},
                )
        return value


class LabelDef(_Strict):
    field: str = Field(min_length=1)
    # bool first: a union tries exact types, and True must stay a boolean, 1.0 a number
    fail_values: list[bool | int | float | str] = Field(min_length=1)
    pass_values: list[bool | int | float | str] | None = None


class LabelsFileDef(_Strict):
    """``labels:`` at file level: a file of human verdicts ``{id, mode, verdict, note?}``."""

    path: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data


class CalibrationDef(_Strict):
    """``calibration:``: how labelled traces are split and resampled."""

    split: dict[Literal["train", "dev", "test"], Num] | None = None
    use: Literal["train", "dev", "test"] | list[Literal["train", "dev", "test"]] = "test"
    resamples: Whole = Field(default=2000, ge=100, le=100_000)
    seed: Whole = 0

    @field_validator("split")
    @classmethod
    def _shares(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return value
        if any(not 0.0 <= v <= 1.0 for v in value.values()):
            raise ValueError("split shares are between 0 and 1")
        if abs(sum(value.values()) - 1.0) > 1e-9:
            raise ValueError(f"split shares must add up to 1, got {sum(value.values()):g}")
        return value


def _no_secret_params(value: dict[str, Any]) -> dict[str, Any]:
    for key in value:
        if re.search(r"(api[_-]?key|secret|token|password|authorization)", str(key), re.I) and key != "max_tokens":
            raise ValueError(
                f"{key!r} looks like a secret: keep keys out of definition files; "
                "litellm reads them from the environment (e.g. OPENAI_API_KEY)"
            )
    return value


def _check_name(value: str) -> str:
    # fullmatch: `$` in match() would let a trailing line break through ("leak\n")
    if not _NAME.fullmatch(value):
        raise ValueError("a name starts with a letter or _ and holds only letters, digits, _ . and -")
    return value


class ExampleDef(_Strict):
    input: str = ""
    output: str
    verdict: Literal["fail", "pass"]
    why: str = ""


class JudgeDef(_Strict):
    """``judge:`` at file level (defaults) or in a mode (overrides; examples are per mode)."""

    model: str | None = None
    temperature: Num | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: Whole | None = Field(default=None, ge=1)
    api_base: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    examples: list[ExampleDef] = Field(default_factory=list)
    prompt: str | None = None
    structured_output: Literal["auto", "true", "false"] | None = None
    #: through the provider's batch API (half price, no client concurrency; see docs/judges.md)
    batch: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _bools(cls, data: Any) -> Any:
        # YAML reads `structured_output: true` as a bool
        if isinstance(data, Mapping) and isinstance(data.get("structured_output"), bool):
            data = {**data, "structured_output": "true" if data["structured_output"] else "false"}
        return data

    @field_validator("params")
    @classmethod
    def _no_secrets(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _no_secret_params(value)

    @field_validator("prompt")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from string import Formatter

        hint = "use {name}, {definition}, {examples}, {trace}, and double braces {{ }} for literal ones"
        try:
            parsed = [(f, spec, conv) for _, f, spec, conv in Formatter().parse(value) if f is not None]
        except ValueError as exc:
            raise ValueError(f"bad placeholder in prompt ({exc}); {hint}") from None
        fields = [f for f, _, _ in parsed]
        # exact names only: {name.attr} / {name[0]} would format to junk or raise at run time
        unknown = [f for f in fields if f not in ("name", "definition", "examples", "trace")]
        if unknown:
            raise ValueError(f"bad placeholder in prompt ({unknown[0]!r}); {hint}")
        # "{trace:>99999999999}" would pad to gigabytes; "{trace!r}" changes the text
        shaped = next((p for p in parsed if p[1] or p[2]), None)
        if shaped is not None:
            f, spec, conv = shaped
            written = "{" + f + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(
                f"bad placeholder in prompt ({written}): no format specs or conversions; {hint}"
            )
        if "trace" not in fields:  # "{{trace}}" is literal text, not the placeholder
            raise ValueError("a custom prompt must contain the {trace} placeholder")
        return value


class ModeDef(_Strict):
    name: str
    description: str = ""
    where: dict[str, Any] | None = None
    rule: dict[str, Any] | None = None
    label: LabelDef | None = None
    #: human verdicts in a dataset column, to measure this mode's detector
    labels: LabelDef | None = None
    detector: str | None = None
    judge: JudgeDef | None = None
    max_fail_rate: Num | None = Rate
    allow_empty: bool | None = None
    gate: GateDef | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @model_validator(mode="after")
    def _one_detector(self) -> ModeDef:
        given = [k for k in ("rule", "label", "detector", "judge") if getattr(self, k) is not None]
        if len(given) != 1:
            what = "none" if not given else " and ".join(given)
            raise ValueError(f"give exactly one of rule, label, detector or judge (got {what})")
        if self.judge is not None and not self.description.strip():
            raise ValueError("a judge mode needs a description: the binary definition the judge applies")
        return self


class DerivedCohortDef(_Strict):
    """A cohort computed from a field: numeric ``bins``, or membership (``has``) of a list."""

    field: str = Field(min_length=1)
    bins: list[float] | None = Field(default=None, min_length=1)
    has: str | int | bool | None = None

    @model_validator(mode="after")
    def _one(self) -> DerivedCohortDef:
        given = [k for k in ("bins", "has") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of bins or has (got {' and '.join(given) or 'none'})")
        if self.bins is not None and any(b >= a for a, b in zip(self.bins[1:], self.bins)):
            raise ValueError("bins must be increasing numbers, such as [0, 500, 2000]")
        return self


def _cohort_tag(value: Any) -> str:
    # a mapping is a derived cohort: its errors, not "input should be a valid string"
    if isinstance(value, Mapping):
        return "dict[derived]"
    return "list[str]" if isinstance(value, list) else "str"


# tags with "[" or named like a type are dropped from error locations (_is_union_tag)
Cohort = Annotated[
    Annotated[str, Tag("str")] | Annotated[list[str], Tag("list[str]")] | Annotated[DerivedCohortDef, Tag("dict[derived]")],
    Discriminator(_cohort_tag),
]


class TargetDef(_Strict):
    """``target:``: a fixture returning the application (input -> output or Trace)."""

    fixture: str = Field(min_length=1)
    #: reuse outputs across runs; only when the outputs depend on the input alone
    cache: bool = False
    #: part of the cache key: bump it when the application changes
    version: str = ""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"fixture": data} if isinstance(data, str) else data


# -- consistency probes (built into ProbeSpecs by _probe_specs below) ------------------------


class _ModelCallDef(_Strict):
    model: str | None = None
    temperature: Num | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: Whole | None = Field(default=None, ge=1)
    api_base: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _no_secrets(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _no_secret_params(value)


class ParaphraseDef(_ModelCallDef):
    n: Whole = Field(default=3, ge=1, le=50)
    style: str | None = None


class EquivalenceDef(_ModelCallDef):
    question: str | None = None


class NumericDef(_Strict):
    tolerance: Num = Field(default=0.0, ge=0.0)
    relative: Num = Field(default=0.0, ge=0.0)
    pattern: str | None = None

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _check_regex(value) if value is not None else None


class ExtractDef(_Strict):
    pattern: str = Field(min_length=1)
    group: Whole | str = 1

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"pattern": data} if isinstance(data, str) else data

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        return _check_regex(value)


def _check_regex(value: str) -> str:
    from .patterns import compile_pattern

    compile_pattern(value)  # ValueError naming the problem
    return value


COMPARATORS = ("exact", "normalized", "numeric", "extract", "json_field", "judge", "fixture")


class SameWhenDef(_Strict):
    """``same_when:``: when two outputs count as the same answer (exactly one key)."""

    exact: bool | None = None
    normalized: bool | None = None
    numeric: NumericDef | None = None
    extract: ExtractDef | None = None
    json_field: str | None = None
    judge: EquivalenceDef | None = None
    fixture: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data not in ("exact", "normalized", "numeric", "judge"):
                raise PydanticCustomError(
                    "unknown_comparator",
                    "unknown comparator '{name}'{hint}; use one of exact, normalized, numeric, judge, "
                    "or a mapping with one key: extract, json_field or fixture",
                    {"name": data, "hint": did_you_mean(data, COMPARATORS)},
                )
            return {data: True if data in ("exact", "normalized") else {}}
        return data

    @model_validator(mode="after")
    def _one(self) -> SameWhenDef:
        given = [k for k in COMPARATORS if getattr(self, k) not in (None, False)]
        if len(given) != 1:
            raise ValueError(f"give exactly one comparator of {', '.join(COMPARATORS)} (got {' and '.join(given) or 'none'})")
        return self


class ProbeDef(_Strict):
    name: str
    description: str = ""
    target: str = Field(min_length=1)
    inputs: Any
    perturb: list[str] = Field(default_factory=list)
    variants: Whole = Field(default=5, ge=1, le=1000)
    max_edits: Whole = Field(default=1, ge=1, le=20)
    protect: list[str | dict[str, str]] = Field(default_factory=list)
    number_range: tuple[Num, Num] | None = None
    paraphrase: ParaphraseDef | None = None
    same_when: SameWhenDef = Field(default_factory=lambda: SameWhenDef(exact=True))
    expect: Literal["same", "changes"] = "same"
    direction: Literal["up", "down"] | None = None
    max_fail_rate: Num | None = Rate
    gate: GateDef | None = None
    seed: Whole = 0

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @property
    def inputs_from_dataset(self) -> bool:
        return isinstance(self.inputs, Mapping)

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                raise ValueError("give at least one input")
            for i, item in enumerate(value):
                if not isinstance(item, str) or not item.strip():
                    raise ValueError(f"input {i + 1} must be non-empty text")
            return value
        if isinstance(value, Mapping):
            for key in value:
                if key not in ("from_dataset", "where"):
                    raise ValueError(f"unknown key {key!r}{did_you_mean(str(key), ['from_dataset', 'where'])}")
            if value.get("from_dataset") is not True:
                raise ValueError("inputs is a list of texts or {from_dataset: true, where: ...}")
            where = value.get("where")
            if where is not None:
                try:
                    compile_where(where)
                except WhereError as exc:
                    raise ValueError(f"where: {exc}") from None
            return dict(value)
        raise ValueError("inputs is a list of texts or {from_dataset: true, where: ...}")

    @field_validator("perturb")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        from .probes.perturb import parse_kinds

        if value:
            parse_kinds(value)
        return value

    @field_validator("protect")
    @classmethod
    def _protect(cls, value: list[str | dict[str, str]]) -> list[str | dict[str, str]]:
        for item in value:
            if isinstance(item, str):
                if not item:
                    raise ValueError("a protected text cannot be empty")
                continue
            if set(item) != {"regex"}:
                raise ValueError("protect holds texts or {regex: PATTERN} mappings")
            _check_regex(item["regex"])
        return value

    @field_validator("number_range")
    @classmethod
    def _range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not value[0] < value[1]:
            raise ValueError(f"number_range is [low, high] with low < high, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ProbeDef:
        if not self.perturb and self.paraphrase is None:
            raise ValueError("give perturb: (a list of kinds) or paraphrase: (or both)")
        if "negation" in self.perturb and self.expect == "same":
            raise ValueError("negation changes the meaning: use it in a probe with expect: changes")
        if self.direction is not None:
            if self.expect != "changes":
                raise ValueError("direction needs expect: changes")
            if self.same_when.numeric is None:
                raise ValueError("direction needs a numeric comparator (same_when: {numeric: ...})")
        return self


class FileDef(_Strict):
    # both required unless the file holds only probes (checked in suite_from_mapping)
    dataset: DatasetDef | None = None
    cohorts: list[Cohort] = Field(default_factory=list)
    gate: GateDef = Field(default_factory=GateDef)
    judge: JudgeDef = Field(default_factory=JudgeDef)
    target: TargetDef | None = None
    labels: LabelsFileDef | None = None
    calibration: CalibrationDef | None = None
    failure_modes: list[ModeDef] | None = Field(default=None, min_length=1)
    probes: list[ProbeDef] = Field(default_factory=list)
    #: which traces the whole file evaluates
    where: dict[str, Any] | None = None
    #: fields that pair a trace with its baseline counterpart (default: the id)
    pair_by: list[str] | None = Field(default=None, min_length=1)
    #: traces with the same value are one cluster (repeated trials of a task)
    cluster_by: str | None = Field(default=None, min_length=1)
    #: the agent's states (step names) in pipeline order, for ``failmodes steps``
    pipeline: list[str] | None = Field(default=None, min_length=1)

    @field_validator("pipeline")
    @classmethod
    def _pipeline(cls, value: list[str] | None) -> list[str] | None:
        return _check_pipeline(value)

    @field_validator("pair_by", mode="before")
    @classmethod
    def _pair_shorthand(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("judge")
    @classmethod
    def _no_file_examples(cls, value: JudgeDef) -> JudgeDef:
        # examples illustrate one mode's definition; at file level they were silently unused
        if value.examples:
            raise ValueError("examples belong to one failure mode: move them into that mode's judge:")
        return value

    @field_validator("failure_modes")
    @classmethod
    def _unique(cls, modes: list[ModeDef] | None) -> list[ModeDef] | None:
        seen: set[str] = set()
        for mode in modes or ():
            if mode.name in seen:
                raise ValueError(f"two failure modes are named {mode.name!r}")
            seen.add(mode.name)
        return modes

    @field_validator("probes")
    @classmethod
    def _unique_probes(cls, probes: list[ProbeDef]) -> list[ProbeDef]:
        seen: set[str] = set()
        for probe in probes:
            if probe.name in seen:
                raise ValueError(f"two probes are named {probe.name!r}")
            seen.add(probe.name)
        return probes


def _check_pipeline(value: list[str] | None) -> list[str] | None:
    seen: set[str] = set()
    for name in value or ():
        if not name.strip():
            raise ValueError("a pipeline state is a step name, not an empty string")
        if name in seen:
            raise ValueError(f"{name!r} is twice in the pipeline")
        seen.add(name)
    return value


class _PipelineOnly(BaseModel):
    """The ``pipeline:`` of a definition file, for the analysis (which needs nothing else)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    pipeline: list[str] | None = Field(default=None, min_length=1)

    @field_validator("pipeline")
    @classmethod
    def _pipeline(cls, value: list[str] | None) -> list[str] | None:
        return _check_pipeline(value)


def read_pipeline(path: Path, display: str | None = None) -> tuple[Need, ...]:
    """The states a definition file's ``pipeline:`` names, in order, each with its file,
    line and key (so a state no trace has is reported where it is written); ``()`` when
    the file names no pipeline."""
    shown = display or str(path)
    data, node = load_definition_yaml(read_definition_text(path, shown), shown)
    lines = _LineMap()
    if node is not None:
        lines.record(node)
    if not isinstance(data, dict):
        raise DefinitionError("expected a mapping with 'dataset' and 'failure_modes'", file=shown, line=lines.line(()))
    try:
        names = _PipelineOnly.model_validate(data).pipeline or []
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc: Path_ = tuple(err["loc"])
        raise DefinitionError(_lower(err["msg"]).removeprefix("value error, "), file=shown, line=lines.line(loc), key=_key(loc)) from None
    return tuple(Need("step", name, shown, lines.line(("pipeline", i)), _key(("pipeline", i))) for i, name in enumerate(names))


class _LineMap:
    """Line numbers of YAML nodes by key path, so pydantic locations become lines."""

    def __init__(self) -> None:
        self.lines: dict[Path_, int] = {}

    def record(self, node: yaml.Node, path: Path_ = ()) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                k = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
                self.lines[(*path, k)] = key.start_mark.line + 1
                self.record(value, (*path, k))
                self.lines[(*path, k)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.record(item, (*path, i))

    def line(self, path: Path_) -> int | None:
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def _key(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_suite(
    path: Path,
    rule_kinds: Mapping[str, RuleKind],
    *,
    dataset_override: Path | None = None,
    display: str | None = None,
) -> Suite:
    """Read and validate a YAML definition file (``display``: its name in messages)."""
    shown = display or str(path)
    text = read_definition_text(path, shown)
    lines = _LineMap()
    data, node = load_definition_yaml(text, shown)
    if node is not None:
        lines.record(node)
    if not isinstance(data, dict):
        raise DefinitionError(
            "expected a mapping with 'dataset' and 'failure_modes'", file=shown, line=lines.line(())
        )
    return suite_from_mapping(
        data, path, rule_kinds, lines=lines, dataset_override=dataset_override, display=shown
    )


def suite_from_mapping(
    data: Mapping[str, Any],
    source: Path,
    rule_kinds: Mapping[str, RuleKind],
    *,
    lines: _LineMap | None = None,
    dataset_override: Path | None = None,
    display: str | None = None,
    first_line: int | None = None,
) -> Suite:
    """Validate a definition mapping and build the engine's :class:`Suite`.

    ``source`` locates relative dataset paths; ``display`` names it in
    messages; ``first_line`` is where a mapping that did not come from YAML
    (``@failure_mode``) is defined.
    """
    lines = lines or _LineMap()
    shown = display or str(source)

    def error(message: str, path: Path_) -> DefinitionError:
        line = lines.line(path) if lines.lines else first_line
        return DefinitionError(message, file=shown, line=line, key=_key(path) or None)

    try:
        fdef = FileDef.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc: Path_ = tuple(err["loc"])
        if err["type"] == "unknown_key":
            loc = (*loc, err["ctx"]["key"])
        loc = strip_union_tags(loc)
        msg = "required key is missing" if err["type"] == "missing" else _lower(err["msg"])
        if err["type"] in ("float_type", "int_type"):
            msg = _not_a_number(err["type"], err.get("input"))
        raise error(msg.removeprefix("value error, "), loc) from None

    if not fdef.probes or fdef.failure_modes is not None:
        # a file of probes alone needs neither; otherwise both, as before probes existed
        for key in ("dataset", "failure_modes"):
            if getattr(fdef, key) is None:
                raise error("required key is missing", (key,))
    if fdef.dataset is None and any(p.inputs_from_dataset for p in fdef.probes):
        first = next(i for i, p in enumerate(fdef.probes) if p.inputs_from_dataset)
        raise error("inputs: {from_dataset: true} needs a dataset; add dataset: to this file", ("probes", first, "inputs"))

    base = source.parent
    dataset = None
    file_where = None
    if fdef.where is not None:
        if fdef.dataset is None:
            raise error("where: chooses the traces of the dataset; this file has no dataset", ("where",))
        try:
            file_where = compile_where(fdef.where)
        except WhereError as exc:
            raise error(str(exc), ("where", *exc.path)) from None
    if fdef.dataset is not None:
        dpath = dataset_override if dataset_override is not None else (base / fdef.dataset.path)
        dataset = DatasetSpec(
            dpath, dict(fdef.dataset.fields), fdef.dataset.format, inputs_only=fdef.target is not None or not fdef.failure_modes,
            where=file_where,
        )
        if dataset.format is None and not is_data_path(dpath):
            raise error(f"cannot tell the format of {dpath.name!r}; set format to one of {', '.join(FORMATS)}", ("dataset", "path"))

    cohorts: list[tuple[Any, ...]] = []
    for i, c in enumerate(fdef.cohorts):
        if isinstance(c, DerivedCohortDef):
            from .engine import DerivedCohort

            cohorts.append((DerivedCohort(c.field, tuple(c.bins or ()), None if c.has is None else _as_text(c.has)),))
            continue
        group = (c,) if isinstance(c, str) else tuple(c)
        if not group or not all(group):
            raise error("a cohort is a field name or a non-empty list of field names", ("cohorts", i))
        cohorts.append(group)

    def need(kind: str, name: str, path: Path_, **extra: Any) -> Need:
        return Need(kind, name, shown, (lines.line(path) if lines.lines else first_line), _key(path), **extra)

    suite_needs: list[Need] = []
    for i, c in enumerate(fdef.cohorts):
        if isinstance(c, DerivedCohortDef):
            suite_needs.append(need("field", c.field, ("cohorts", i, "field")))
            continue
        for j, name in enumerate([c] if isinstance(c, str) else c):
            suite_needs.append(need("field", name, ("cohorts", i) if isinstance(c, str) else ("cohorts", i, j)))
    if fdef.dataset is not None:
        for trace_field, column in fdef.dataset.fields.items():
            suite_needs.append(need("mapped", trace_field, ("dataset", "fields", trace_field), source=column))

    labels_file: dict[str, dict[str, tuple[str, str]]] = {}
    if fdef.labels is not None:
        from .labels import load_labels_file

        lpath = base / fdef.labels.path
        labels_file = load_labels_file(lpath, _shown_beside(shown, fdef.labels.path), {m.name: m for m in fdef.failure_modes or ()})

    modes = []
    for i, m in enumerate(fdef.failure_modes or ()):
        at: Path_ = ("failure_modes", i)
        where = None
        if m.where is not None:
            try:
                where = compile_where(m.where)
            except WhereError as exc:
                raise error(str(exc), (*at, "where", *exc.path)) from None
        detector: Detector | FixtureRef
        if m.rule is not None:
            try:
                detector = build_rule(m.rule, rule_kinds)
            except RuleError as exc:
                raise error(str(exc), (*at, "rule", *exc.path)) from None
        elif m.label is not None:
            detector = LabelDetector(
                m.label.field,
                tuple(m.label.fail_values),
                tuple(m.label.pass_values) if m.label.pass_values is not None else None,
            )
        elif m.judge is not None:
            detector = _judge(m, fdef.judge)
        else:
            assert m.detector is not None
            detector = FixtureRef(m.detector)
        gate = merge_gate(fdef.gate, m)
        if m.labels is not None and m.name in labels_file:
            raise error(
                f"{m.name!r} has labels here and in {fdef.labels.path}: give its labels in one place",  # type: ignore[union-attr]
                (*at, "labels"),
            )
        human = _human_labels(m, labels_file.get(m.name), fdef)
        needs: list[Need] = []
        for fieldname, cond in (m.where or {}).items():
            needs.append(need("field", str(fieldname), (*at, "where", fieldname)))
        if where is not None:
            for fieldname, op, given in where.values():
                path = (*at, "where", fieldname) + ((op,) if isinstance(m.where[fieldname], Mapping) else ())  # type: ignore[index]
                needs.append(need("value", fieldname, path, values=given))
        if m.rule is not None:
            needs.extend(
                need(kind, name, (*at, "rule", *path), note=note) for kind, name, path, note in needs_of_rule(m.rule, ())
            )
        for key in ("label", "labels"):
            ldef = getattr(m, key)
            if ldef is not None:
                needs.append(need("field", ldef.field, (*at, key, "field")))
                needs.append(need("value", ldef.field, (*at, key, "fail_values"), values=tuple(ldef.fail_values)))
                if ldef.pass_values:
                    needs.append(need("value", ldef.field, (*at, key, "pass_values"), values=tuple(ldef.pass_values)))
        modes.append(
            ModeSpec(
                name=m.name,
                description=m.description,
                source=shown,
                line=first_line or lines.line(at) or 1,
                where=where,
                detector=detector,
                gate=gate,
                order=i,
                fingerprint=_fingerprint(m, fdef.judge),
                labels=human,
                needs=tuple(needs),
            )
        )
    target = None
    if fdef.target is not None:
        from .target import TargetSpec

        target = TargetSpec(fdef.target.fixture, fdef.target.cache, fdef.target.version)
    probes: tuple[ProbeSpec, ...] = ()
    if fdef.probes:
        probes = _probe_specs(fdef, shown, lines.line if lines.lines else (lambda _p: first_line), len(modes))
    return Suite(
        source=shown, dataset=dataset, cohorts=tuple(cohorts), modes=tuple(modes), target=target,  # type: ignore[arg-type]
        probes=probes, needs=tuple(suite_needs), cluster_by=fdef.cluster_by, pair_by=tuple(fdef.pair_by or ()),
        pipeline=tuple(need("step", name, ("pipeline", i)) for i, name in enumerate(fdef.pipeline or ())),
    )


# -- probes: definitions -> ProbeSpecs -----------------------------------------------------


def _probe_specs(fdef: FileDef, source: str, line_of: Callable[[Any], int | None], first_order: int) -> tuple[ProbeSpec, ...]:
    """``probes:`` of a definition file (validated ProbeDefs) -> ProbeSpecs."""
    from .patterns import compile_pattern
    from .probes.run import ProbeInput, ProbeSpec

    out = []
    for i, p in enumerate(fdef.probes):
        where = None
        if p.inputs_from_dataset and p.inputs.get("where") is not None:
            where = compile_where(p.inputs["where"])
        inputs = () if p.inputs_from_dataset else tuple(ProbeInput(f"in{j + 1}", text) for j, text in enumerate(p.inputs))
        out.append(
            ProbeSpec(
                name=p.name,
                source=source,
                target=p.target,
                kinds=tuple(p.perturb),
                inputs=inputs,
                from_dataset=p.inputs_from_dataset,
                where=where,
                variants=p.variants,
                max_edits=p.max_edits,
                protected=tuple(compile_pattern(x["regex"]) if isinstance(x, dict) else x for x in p.protect),
                number_range=tuple(p.number_range) if p.number_range else None,  # type: ignore[arg-type]
                paraphrase=_paraphrase_spec(p, fdef) if p.paraphrase is not None else None,
                comparator=_comparator(p.same_when, fdef),
                expect=p.expect,
                direction=p.direction,
                gate=merge_gate(fdef.gate, p),
                seed=p.seed,
                description=p.description,
                line=line_of(("probes", i)) or 1,
                order=first_order + i,
                fingerprint=_probe_fingerprint(p),
            )
        )
    return tuple(out)


def _call_params(own: Any, fdef: FileDef, defaults: dict[str, Any]) -> dict[str, Any]:
    """model, temperature, max_tokens, api_base, params: the probe's, else the file's judge:, else defaults."""
    values: dict[str, Any] = {}
    for key in ("model", "temperature", "max_tokens", "api_base"):
        value = getattr(own, key)
        if value is None:
            value = getattr(fdef.judge, key)
        values[key] = defaults.get(key) if value is None else value
    values["params"] = {**fdef.judge.params, **own.params}
    return values


def _paraphrase_spec(p: ProbeDef, fdef: FileDef) -> ParaphraseSpec:
    from .probes.models import ParaphraseSpec

    own = p.paraphrase
    assert own is not None
    # a paraphrase wants variety: the file's judge temperature (0 for verdicts) is not inherited
    values = _call_params(own, fdef, {"temperature": 0.7, "max_tokens": 800})
    if own.temperature is None:
        values["temperature"] = 0.7
    return ParaphraseSpec(n=own.n, style=own.style, **values)


def _comparator(same: SameWhenDef, fdef: FileDef) -> Comparator | EquivalenceSpec | str:
    from .probes import compare
    from .probes.models import EquivalenceSpec

    if same.exact:
        return compare.exact()
    if same.normalized:
        return compare.normalized()
    if same.numeric is not None:
        return compare.numeric(same.numeric.tolerance, same.numeric.relative, same.numeric.pattern)
    if same.extract is not None:
        return compare.extract(same.extract.pattern, same.extract.group)
    if same.json_field is not None:
        return compare.json_field(same.json_field)
    if same.judge is not None:
        values = _call_params(same.judge, fdef, {"temperature": 0.0, "max_tokens": 300})
        if same.judge.question:
            values["question"] = same.judge.question
        return EquivalenceSpec(**values)
    assert same.fixture is not None
    return same.fixture


def _probe_fingerprint(p: ProbeDef) -> str:
    import hashlib
    import json

    data = p.model_dump(mode="json", exclude={"max_fail_rate", "gate"})
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _shown_beside(shown: str, relative: str) -> str:
    """A file named in a definition file, shown as the user sees the definition file."""
    parent = Path(shown).parent
    return (parent / relative).as_posix() if str(parent) != "." else relative


def _human_labels(mode: ModeDef, rows: dict[str, tuple[str, str]] | None, fdef: FileDef) -> Any:
    """The mode's human labels (column or labels file), or None when it has none."""
    if mode.labels is None and rows is None:
        return None
    from .labels import SPLITS, HumanLabels, content_key

    cal = fdef.calibration or CalibrationDef()
    examples = frozenset(content_key(e.input, e.output) for e in (mode.judge.examples if mode.judge else ()))
    common: dict[str, Any] = {
        "examples": examples,
        "split": tuple(cal.split.get(s, 0.0) for s in SPLITS) if cal.split else None,
        "use": (cal.use,) if isinstance(cal.use, str) else tuple(cal.use),
        "resamples": cal.resamples,
        "seed": cal.seed,
    }
    if mode.labels is not None:
        return HumanLabels(
            source=f"field {mode.labels.field}",
            field=mode.labels.field,
            fail_values=frozenset(_as_text(v) for v in mode.labels.fail_values),
            pass_values=frozenset(_as_text(v) for v in mode.labels.pass_values) if mode.labels.pass_values is not None else None,
            **common,
        )
    assert fdef.labels is not None
    return HumanLabels(source=fdef.labels.path, by_id=rows or {}, **common)


def _judge(mode: ModeDef, defaults: JudgeDef) -> Any:
    from .judge import Example, JudgeDetector, JudgeSpec

    own = mode.judge
    assert own is not None

    def pick(key: str, fallback: Any) -> Any:
        value = getattr(own, key)
        if value is None:
            value = getattr(defaults, key)
        return fallback if value is None else value

    spec = JudgeSpec(
        model=pick("model", None),
        temperature=pick("temperature", 0.0),
        max_tokens=pick("max_tokens", 400),
        api_base=pick("api_base", None),
        params={**defaults.params, **own.params},
        examples=tuple(Example(e.input, e.output, e.verdict, e.why) for e in own.examples),
        template=pick("prompt", None),
        structured_output=pick("structured_output", "auto"),
        batch=bool(pick("batch", False)),
    )
    return JudgeDetector(mode.name, mode.description, spec)


def _fingerprint(mode: ModeDef, judge_defaults: JudgeDef) -> str:
    """What the mode detects, as a hash: name, description, where and detector.

    Its gate is left out: a new limit still compares with the old rates. A
    judge mode also hashes the file-level judge defaults it inherits, and the
    model ``FAILMODES_JUDGE_MODEL`` puts in place of theirs: another judge is
    another detector.
    """
    import hashlib
    import json
    import os

    from .judge import ENV_MODEL

    data = mode.model_dump(mode="json", exclude={"max_fail_rate", "gate", "labels", "allow_empty"})
    if mode.judge is not None:
        # how the calls are sent (batch or live) is not what the judge decides
        data["judge"].pop("batch", None)
        data["judge_defaults"] = judge_defaults.model_dump(mode="json", exclude={"batch"})
        if os.environ.get(ENV_MODEL):
            data["judge_model_from_env"] = os.environ[ENV_MODEL]
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _as_text(value: str | int | float | bool) -> str:
    return value_text(value)


def _not_a_number(kind: str, given: Any) -> str:
    want = "a number" if kind == "float_type" else "a whole number"
    if isinstance(given, bool):
        return f"expected {want}, got {'true' if given else 'false'}"
    if isinstance(given, str):
        return f"expected {want}, got the text {given!r}" + ("; write the number without quotes" if _numeric_text(given) else "")
    if isinstance(given, float) and kind == "int_type":
        return f"expected {want}, got {given:g}"
    return f"expected {want}, got {type(given).__name__ if given is not None else 'null'}"


def _numeric_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _lower(msg: str) -> str:
    return msg[:1].lower() + msg[1:]


def python_mode_definition(
    func_name: str, kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Turn ``@failure_mode(...)`` keyword arguments into a definition mapping."""
    data: dict[str, Any] = {"dataset": kwargs.get("dataset")}
    if kwargs.get("fields"):
        data["dataset"] = {"path": kwargs["dataset"], "fields": dict(kwargs["fields"])}
    for key in ("cohorts", "gate"):
        if kwargs.get(key) is not None:
            data[key] = kwargs[key]
    mode: dict[str, Any] = {"name": func_name, "detector": "__python__"}
    for key in ("description", "where", "max_fail_rate", "allow_empty"):
        if kwargs.get(key) is not None:
            mode[key] = kwargs[key]
    data["failure_modes"] = [mode]
    return data


