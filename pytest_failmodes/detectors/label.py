"""The ``label`` detector: a person's label is the verdict."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..trace import Trace
from ..values import is_absent, value_key, value_text
from ..verdict import Verdict

__all__ = ["LabelDetector"]


@dataclass(frozen=True)
class LabelDetector:
    """FAIL when the label's value is one of ``fail_values``.

    Values compare by what they mean (``0`` matches 0, 0.0, "0" and "0.0"; see
    :func:`pytest_failmodes.values.value_key`). With ``pass_values`` given, a
    value in neither list is an error (a typo in the labels must not pass
    silently). A trace without the label is skipped: not counted, and
    reported as skipped.
    """

    field: str
    fail_values: tuple[Any, ...]
    pass_values: tuple[Any, ...] | None = None
    # the dataclass field `field` shadows dataclasses.field here
    _fail: frozenset[Any] = dataclasses.field(init=False, repr=False, compare=False)
    _pass: frozenset[Any] | None = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_fail", frozenset(value_key(v) for v in self.fail_values))
        keys = None if self.pass_values is None else frozenset(value_key(v) for v in self.pass_values)
        object.__setattr__(self, "_pass", keys)

    def __call__(self, trace: Trace) -> Verdict:
        value = trace.get(self.field)
        if is_absent(value):
            return Verdict.skip(f"no label {self.field!r}")
        key = value_key(value)
        if key in self._fail:
            return Verdict.fail(f"labelled {self.field}={value_text(value)}")
        if self._pass is not None and key not in self._pass:
            return Verdict.error(
                f"label {self.field}={value_text(value)!r} is in neither fail_values {_shown(self.fail_values)} "
                f"nor pass_values {_shown(self.pass_values or ())}"
            )
        return Verdict.pass_()

    def __repr__(self) -> str:
        return f"label({self.field} in {_shown(self.fail_values)})"


def _shown(values: Iterable[Any]) -> list[str]:
    return sorted({value_text(v) for v in values})
