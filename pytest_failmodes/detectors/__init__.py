"""Detectors: one small protocol, built by factory functions.

A detector answers "is this failure present in this trace?" with a
:class:`~pytest_failmodes.Verdict` (or a bool: True means present).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import did_you_mean
from ..trace import Trace
from ..verdict import Verdict

__all__ = ["Detector", "RuleKind", "RuleError", "build_rule", "merge_rule_kinds"]


@runtime_checkable
class Detector(Protocol):
    """Anything that maps a trace to a Verdict (or a bool, True = failure present)."""

    def __call__(self, trace: Trace) -> Verdict | bool: ...


class RuleError(ValueError):
    """Invalid rule; ``path`` locates the offending key inside ``rule:``."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class RuleKind:
    """A named rule kind: ``build(value, **options) -> Detector``.

    The options a rule accepts are the keyword parameters of ``build`` (for
    example ``field``); unknown options are rejected with a suggestion.
    """

    name: str
    build: Callable[..., Detector]
    options: tuple[str, ...] = field(init=False)
    #: ``build`` takes ``kinds=`` (the registry) to build nested rules
    nested: bool = field(init=False)

    def __post_init__(self) -> None:
        params = [p.name for p in list(inspect.signature(self.build).parameters.values())[1:]]
        object.__setattr__(self, "options", tuple(p for p in params if p != "kinds"))
        object.__setattr__(self, "nested", "kinds" in params)


def merge_rule_kinds(results: Iterable[Iterable[RuleKind]]) -> dict[str, RuleKind]:
    """Merge the hook's results; earlier results (user plugins) override later ones."""
    kinds: dict[str, RuleKind] = {}
    for group in reversed(list(results)):
        for kind in group:
            kinds[kind.name] = kind
    return kinds


def build_rule(spec: Any, kinds: Mapping[str, RuleKind]) -> Detector:
    """Build a detector from a ``rule:`` mapping with exactly one kind key."""
    if not isinstance(spec, Mapping):
        raise RuleError(f"a rule is a mapping such as {{regex: '...'}}; got {spec!r:.60}")
    present = [k for k in spec if k in kinds]
    if not present:
        unknown = next(iter(spec), None)
        hint = did_you_mean(str(unknown), kinds) if unknown is not None else ""
        known = f"; known kinds: {', '.join(sorted(kinds))}" if not hint else ""
        what = f"unknown rule kind {unknown!r}" if unknown is not None else "empty rule"
        raise RuleError(f"{what}{hint}{known}", (str(unknown),) if unknown is not None else ())
    if len(present) > 1:
        raise RuleError(f"one rule kind per rule, got {present}; combine them with any/all", (present[1],))
    name = present[0]
    kind = kinds[name]
    options = {k: v for k, v in spec.items() if k != name}
    for key in options:
        if key not in kind.options:
            valid = kind.options or ("(none)",)
            raise RuleError(
                f"unknown option {key!r} for rule {name!r}{did_you_mean(str(key), kind.options)}; "
                f"valid options: {', '.join(valid)}",
                (key,),
            )
    value = spec[name]
    if kind.nested:
        options["kinds"] = kinds
    try:
        return kind.build(value, **options)
    except RuleError as exc:
        raise RuleError(str(exc), (name, *exc.path)) from None
    except (TypeError, ValueError) as exc:
        raise RuleError(f"invalid value for {name!r}: {exc}", (name,)) from None
